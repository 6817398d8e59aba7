"""How far past a tuned ALS a strong shallow item-item model gets on new users under
PROTOCOL.md: EASE (Steck, WWW 2019; B = I - P / diag(P), P = (X'X + lam I)^-1, zero
diagonal), fitted on the training users' positive rows over the items with at least
`--min-count` of them (a dense items x items inverse, so the catalogue is cut), lam picked
on validation users (at most 1,000 a size, K = 1, 3, 5, 10: what recmeta's baselines tune
on), and each test user scored as the sum of their support items' rows of B; items
outside the cut rank last, by popularity. It is a reference for issue 12's 1.10x target,
not a recmeta model: it prints ndcg@10 at K = 1 / 3 / 5 / 10 / 20 for validation and test
users beside the tuned ALS that `recmeta evaluate` fits.

python benchmarks/ease_reference.py amazon.db --min-count 10
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import scipy.sparse as sp
from common import protocol_split

from recmeta.evaluate.protocol import score_cell
from recmeta.learners import create
from recmeta.learners.base import batch_csr
from recmeta.learners.baselines import ease_weights, liked_matrix, top_per_row
from recmeta.tasks import make_batch
from recmeta.training import fit

SHOTS = (1, 3, 5, 10, 20)
TUNE_SHOTS = (1, 3, 5, 10)
VAL_USERS = 1000
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
LAMBDAS = (50.0, 200.0, 500.0, 1000.0, 3000.0, 10000.0, 30000.0, 100000.0)


def kept_items(liked: sp.csr_matrix, min_count: int) -> np.ndarray:
    """The items with at least `min_count` training positives."""
    return np.flatnonzero(np.asarray(liked.sum(0)).ravel() >= min_count)


def gram(liked: sp.csr_matrix, keep: np.ndarray) -> np.ndarray:
    """X'X over the items `keep`, dense."""
    x = liked[:, keep].astype(np.float64)
    return (x.T @ x).toarray()


class Ease:
    """EASE over the items `keep` of an n_items catalogue; scored by `score_cell`."""

    predicts_ratings = False

    def __init__(self, liked: sp.csr_matrix, keep: np.ndarray, threshold: float) -> None:
        self.gram = gram(liked, keep)
        self.keep, self.threshold, self.n_items = keep, threshold, liked.shape[1]
        counts = np.asarray(liked.sum(0)).ravel()
        self.fallback = (counts / max(counts.max(), 1.0) - 2.0).astype(np.float32)  # below any kept item
        self.b: np.ndarray | None = None

    def set_lambda(self, lam: float) -> Ease:
        self.b = ease_weights(self.gram, lam).astype(np.float32)
        return self

    def sparsified(self, top: int) -> Ease:
        """A copy whose B keeps each item's `top` largest weights (as item kNN keeps its
        neighbour lists), the rest zero: what a checkpoint of bounded size could hold."""
        out = copy.copy(self)
        cols, values = top_per_row(self.b, top)
        rows = np.repeat(np.arange(len(self.b)), top)
        out.b = sp.csr_matrix((values.ravel(), (rows, cols.ravel())), shape=self.b.shape)
        return out

    def score(self, batch) -> np.ndarray:
        weights = (batch.support_values >= self.threshold).astype(np.float32)
        x = batch_csr(batch, self.n_items, weights)[:, self.keep]
        out = np.broadcast_to(self.fallback, (len(batch.users), self.n_items)).copy()
        scores = x @ self.b
        out[:, self.keep] = np.asarray(scores.todense() if sp.issparse(scores) else scores) + 1e-3 * (
            self.fallback[self.keep] + 2.0
        )
        return out


class Blend:
    """(1 - w) z(first) + w z(second): each model's per-user scores standardised over the
    catalogue, as recmeta's ensemble combines its members."""

    predicts_ratings = False

    def __init__(self, first, second, w: float) -> None:
        self.first, self.second, self.w = first, second, w

    def score(self, batch) -> np.ndarray:
        def z(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x, dtype=np.float32)
            return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-9)

        return (1 - self.w) * z(self.first.score(batch)) + self.w * z(self.second.score(batch))


def ndcg(model, seq, users, shots, data, threshold, cap: bool) -> list[float]:
    row = []
    for k in shots:
        chosen = users
        if cap and len(users) > VAL_USERS:
            chosen = np.sort(np.random.default_rng(k).choice(users, VAL_USERS, replace=False))
        batch = make_batch(seq, chosen, k, data.n_items, threshold, max_query=None)
        row.append(float(score_cell(model, batch, data, n=10)["ndcg@10"].mean()))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--blend", action="store_true", help="also ALS and EASE blended, the weight per K on validation"
    )
    ap.add_argument("--lambdas", help="comma-separated lambdas to try (default: 50 to 100,000)")
    ap.add_argument("--top", help="comma-separated weights kept per item: EASE's B sparsified")
    ap.add_argument("--min-count", type=int, default=10, help="training positives an item needs to be kept")
    a = ap.parse_args()
    data, threshold, seq, split, train, val = protocol_split(a.db, a.seed)
    fmt = lambda r: " / ".join(f"{v:.3f}" for v in r)  # noqa: E731

    t0 = time.perf_counter()
    als = fit(create("als"), train, val, seed=a.seed)
    print(f"tuned ALS ({time.perf_counter() - t0:.0f} s): {als.params}", flush=True)
    print(
        f"als: validation {fmt(ndcg(als, seq, split.validation, SHOTS, data, threshold, True))}; "
        f"test {fmt(ndcg(als, seq, split.test, SHOTS, data, threshold, False))}",
        flush=True,
    )

    liked = liked_matrix(train, threshold)
    keep = kept_items(liked, a.min_count)
    print(
        f"EASE over {len(keep):,} of {data.n_items:,} items ({a.min_count}+ training positives)", flush=True
    )
    ease = Ease(liked, keep, threshold)
    best, best_lam = -1.0, None
    for lam in [float(x) for x in a.lambdas.split(",")] if a.lambdas else LAMBDAS:
        t0 = time.perf_counter()
        ease.set_lambda(lam)
        tune = ndcg(ease, seq, split.validation, TUNE_SHOTS, data, threshold, True)
        print(f"  lambda {lam:g} ({time.perf_counter() - t0:.0f} s): validation {fmt(tune)}", flush=True)
        if np.mean(tune) > best:
            best, best_lam = float(np.mean(tune)), lam
    ease.set_lambda(best_lam)
    on_val = ndcg(ease, seq, split.validation, SHOTS, data, threshold, True)
    on_test = ndcg(ease, seq, split.test, SHOTS, data, threshold, False)
    print(f"ease (lambda {best_lam:g}): validation {fmt(on_val)}; test {fmt(on_test)}", flush=True)
    for top in [int(x) for x in a.top.split(",")] if a.top else []:
        sparse = ease.sparsified(top)
        on_val = ndcg(sparse, seq, split.validation, SHOTS, data, threshold, True)
        on_test = ndcg(sparse, seq, split.test, SHOTS, data, threshold, False)
        print(f"ease, {top} weights an item: validation {fmt(on_val)}; test {fmt(on_test)}", flush=True)
    if a.blend:
        picked, on_val, on_test = [], [], []
        for k in SHOTS:
            tried = {
                w: ndcg(Blend(als, ease, w), seq, split.validation, [k], data, threshold, True)[0]
                for w in WEIGHTS
            }
            w = max(tried, key=tried.get)
            picked.append(w)
            on_val.append(tried[w])
            on_test.append(ndcg(Blend(als, ease, w), seq, split.test, [k], data, threshold, False)[0])
        weights = " / ".join(f"{w:g}" for w in picked)
        print(
            f"als + ease (EASE's weight {weights}): validation {fmt(on_val)}; test {fmt(on_test)}", flush=True
        )


if __name__ == "__main__":
    main()
