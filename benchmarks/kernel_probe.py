"""Can a matching network's attention close the meta-learners' gap to item-item weights on
an implicit log? No training: each liked support item pulls the catalogue through a kernel
over the meta-learners' start (whitened ALS factors, `als_start`) or over ALS's own item
factors, and the pulls are pooled by log-sum-exp, so that several tastes stay apart where
a mean prototype (or ALS's fold-in) blurs them. One seed of PROTOCOL.md, ndcg@10 at
K = 1 / 3 / 5 / 10 / 20 on validation users (at most 1,000 a size) and the test users:

- `als`: the ALS at the given configuration, each user folded in;
- `start sum`: the start's rows of the liked support summed, scored by dot product;
- `start lse T`: log sum_s exp(<e_s, e_i> / T): large T is the sum, small T the nearest;
- `cosine T`: the same over unit-length ALS factors (a kernel kNN in factor space);
- `cosine T + 0.3 log pop`: with log-popularity added, as the learners' item biases do.

OPENBLAS_NUM_THREADS=2 python benchmarks/kernel_probe.py amazon.db \
    --factors 128 --regularization 10 --alpha 10
"""

from __future__ import annotations

import argparse

import numpy as np
from common import protocol_split

from recmeta.learners.base import chunks, mask_support, ndcg_of, size_batches
from recmeta.learners.baselines import ALS, liked_matrix
from recmeta.learners.meta import als_start
from recmeta.tasks import make_batch

SHOTS = (1, 3, 5, 10, 20)


def liked(batch, threshold: float) -> np.ndarray:
    """(users, support rows) 1 where a support row is a liked one, else 0."""
    return (batch.support_mask & (batch.support_values >= threshold)).astype(np.float32)


def summed(emb: np.ndarray, threshold: float):
    """Scores: the dot product with the sum of a user's liked support rows (all users at once)."""
    return lambda batch: np.einsum("bs,bsd->bd", liked(batch, threshold), emb[batch.support_items]) @ emb.T


def pooled(emb: np.ndarray, temperature: float, prior: np.ndarray, threshold: float, unit: bool = False):
    """Scores: log-sum-exp over a user's liked support items of <e_s, e_i> / T (cosines
    less 1 when `unit`), plus `prior`; a user with no liked row gets `prior`."""
    if unit:
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def score(batch):
        out = np.tile(prior, (len(batch.users), 1))
        rows = liked(batch, threshold) > 0
        for u in range(len(batch.users)):  # a user at a time: all at once is users x rows x items
            items = batch.support_items[u][rows[u]]
            if len(items):
                z = (emb[items] @ emb.T - (1.0 if unit else 0.0)) / temperature
                top = z.max(0)
                out[u] += top + np.log(np.exp(z - top).sum(0))
        return out

    return score


def ndcg(score, part) -> np.ndarray:
    return ndcg_of(mask_support(score(part.support_only()), part), part)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--factors", type=int, default=128)
    ap.add_argument("--regularization", type=float, default=10.0)
    ap.add_argument("--alpha", type=float, default=10.0)
    a = ap.parse_args()
    data, threshold, seq, split, train, val = protocol_split(a.db, a.seed)
    liked = liked_matrix(train, threshold)
    als = ALS(factors=a.factors, regularization=a.regularization, alpha=a.alpha).fit(train, seed=a.seed)
    start = als_start(liked, a.factors, a.regularization, a.alpha, 0.1, a.seed).astype(np.float32)
    factors = np.asarray(als.item_factors_, dtype=np.float32)
    none = np.zeros(data.n_items, np.float32)
    log_pop = np.log1p(np.asarray(liked.sum(0)).ravel()).astype(np.float32)
    rows = {"als": als.score, "start sum": summed(start, threshold)}
    for t in (0.1, 0.03, 0.01):
        rows[f"start lse {t}"] = pooled(start, t, none, threshold)
    rows["cosine 0.2"] = pooled(factors, 0.2, none, threshold, unit=True)
    rows["cosine 0.05 + 0.3 log pop"] = pooled(factors, 0.05, 0.3 * log_pop, threshold, unit=True)
    validation = size_batches(val, SHOTS, threshold, a.seed, 1000)
    test = {
        k: make_batch(seq, split.test, k, data.n_items, threshold, max_query=None, dense=False) for k in SHOTS
    }
    print(
        f"seed {a.seed}; ALS at {a.factors} factors, regularization {a.regularization:g}, alpha {a.alpha:g}"
    )
    print("| scores | validation | test |\n|---|---|---|")
    for name, score in rows.items():
        cells = []
        for batches in (validation, test):
            means = [
                np.concatenate(
                    [ndcg_of(mask_support(score(p.support_only()), p), p) for p in chunks(b)]
                ).mean()
                for b in batches.values()
            ]
            cells.append(" / ".join(f"{m:.3f}" for m in means))
        print(f"| {name} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
