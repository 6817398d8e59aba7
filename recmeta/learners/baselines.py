"""Baselines behind the same interface: popularity, implicit's ALS, item-item cosine kNN and
EASE.

The CF baselines learn from the training users' positive rows and score a user from the
positive rows of their support; ties (a support with no positive row) fall back to
popularity order through a 1e-6 popularity term.

scipy and implicit are imported where a baseline is built, so that serving a meta-learner
(whose module imports this one through the registry) does not pay for them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from recmeta.errors import is_whole
from recmeta.learners.base import (
    Progress,
    Recommender,
    batch_csr,
    check_tensor,
    size_batches,
    validation_ndcg,
)
from recmeta.learners.hyper import check_hyper, defaults_of
from recmeta.snapshot import Interactions
from recmeta.tasks import Batch, Sequences, make_batch, positive_threshold

if TYPE_CHECKING:
    import scipy.sparse as sp

log = logging.getLogger("recmeta")
TIE_BREAK = 1e-6


@contextmanager
def quiet_blas() -> Iterator[None]:
    """One BLAS thread (implicit's advice for its own parallel loops) and none of implicit's
    warnings about matrix formats it converts internally."""
    from implicit.utils import ParameterWarning

    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterWarning)
        yield


def liked_matrix(train: Interactions, threshold: float) -> sp.csr_matrix:
    """1 where a training user's value is positive; other rows dropped."""
    m = train.values.astype(np.float32, copy=True)
    m.data = (m.data >= threshold).astype(np.float32)
    m.eliminate_zeros()
    return m


class _FromLiked(Recommender):
    """Shared parts: threshold, popularity tie-break, support weights."""

    counts_: np.ndarray | None = None

    def __init__(self, **params: Any) -> None:
        check_hyper(params, defaults_of(type(self).__init__))  # ranges and types, at entry
        super().__init__(**params)

    def _prepare(self, train: Interactions) -> sp.csr_matrix:
        self.params["threshold"] = positive_threshold(train, self.params.get("threshold"))
        liked = liked_matrix(train, self.params["threshold"])
        self.counts_ = np.asarray(liked.sum(0)).ravel().astype(np.float32)
        return liked

    def _tie_break(self) -> np.ndarray:
        return TIE_BREAK * self.counts_ / max(float(self.counts_.max()), 1.0)

    def _liked_support(self, batch: Batch) -> sp.csr_matrix:
        weights = (batch.support_values >= self.params["threshold"]).astype(np.float32)
        return batch_csr(batch, len(self.counts_), weights)

    def _base_state(self) -> dict[str, torch.Tensor]:
        self._check_fitted("counts_")
        return {"counts": torch.from_numpy(self.counts_)}

    @classmethod
    def from_state(cls, config, tensors):
        model = cls(**config)
        model.counts_ = check_tensor(tensors, "counts", torch.float32, 1).numpy()
        model._load(tensors)
        return model

    def _load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what a subclass adds to the state."""


class Popular(_FromLiked):
    """Training users' positive counts; the same list for everyone."""

    kind = "popular"

    def __init__(self, threshold: float | None = None) -> None:
        super().__init__(threshold=threshold)

    def fit(self, train, validation=None, *, progress=None, seed=0):
        self._prepare(train)
        return self

    def score(self, batch):
        self._check_fitted("counts_")
        return np.broadcast_to(self.counts_, (len(batch.users), len(self.counts_))).copy()

    def state(self):
        return dict(self.params), self._base_state()


class Tuning:
    """Validation users at 1, 5 and 10 support rows (those with more than 10 rows), and a
    configuration's score on them: the mean ndcg@10 a baseline tunes on."""

    def __init__(self, validation: Interactions, threshold: float, seed: int) -> None:
        seq = Sequences.from_data(validation, seed=seed)
        users = np.flatnonzero(validation.counts_per_user() > 10)
        self.batches = [
            make_batch(seq, users, k, validation.n_items, threshold, dense=False) for k in (1, 5, 10)
        ]

    def score(self, model: Recommender) -> float:
        return float(np.mean([validation_ndcg(model, b) for b in self.batches]))


KNN_NEIGHBOURS = (25, 50, 100, 200, 400)
KNN_WEIGHTING = ("cosine", "bm25")


class _ItemItem(_FromLiked):
    """A user scored as the sum of their positive support items' rows of an item-item weight
    matrix (`similarity_`, items x items, sparse)."""

    needs_support = True
    similarity_: sp.csr_matrix | None = None

    def _bands(self) -> int:
        """How many items x items weight matrices `similarity_` stacks."""
        return 1

    def _tune(self, tuning: Tuning, configs, fit_one, progress, best: tuple | None = None) -> tuple:
        """Fit each of `configs` (dicts of `self.params` entries) and keep the one best on
        `tuning`'s validation users, or `best` (score, config, weights) when none beats it;
        that triple is returned."""
        best = best or (-1.0, None, None)  # only the best fit's weights are kept
        for config in configs:
            self.params.update(config)
            fit_one()
            ndcg = tuning.score(self)
            if progress:
                progress({"config": tuple(config.values()), "val_ndcg@10": ndcg})
            # the first fit stands when none scores (NaN: no validation user has a target)
            if ndcg > best[0] or best[1] is None:
                best = (ndcg, config, self.similarity_)
        ndcg, config, self.similarity_ = best
        self.params.update(config)
        log.info("%s: picked %s (val ndcg@10 %.4f)", self.kind, config, ndcg)
        return best

    def score(self, batch):
        self._check_fitted("similarity_")
        scores = np.asarray((self._liked_support(batch) @ self.similarity_).todense())
        return scores + self._tie_break()

    def state(self):
        self._check_fitted("similarity_")
        s = self.similarity_
        return dict(self.params), {
            **self._base_state(),
            "indptr": torch.from_numpy(s.indptr.astype(np.int64)),
            "indices": torch.from_numpy(s.indices.astype(np.int64)),
            "data": torch.from_numpy(s.data.astype(np.float32)),
        }

    def _load(self, tensors):
        import scipy.sparse as sp

        n = len(self.counts_)
        data = check_tensor(tensors, "data", torch.float32, 1).numpy()
        indices = check_tensor(tensors, "indices", torch.int64, 1, tuple(data.shape)).numpy()
        indptr = check_tensor(tensors, "indptr", torch.int64, 1, (n * self._bands() + 1,)).numpy()
        bad_index = len(indices) and (indices.min() < 0 or indices.max() >= n)
        if bad_index or indptr[-1] != len(data) or (np.diff(indptr) < 0).any():
            raise ValueError(f"the {self.kind} weight matrix is not consistent")
        self.similarity_ = sp.csr_matrix((data, indices, indptr), shape=(n * self._bands(), n))


class ItemKNN(_ItemItem):
    """implicit's item-item neighbours (fitted on positive rows), scored from the positive
    support rows. Unless `neighbours` is given, the neighbour count and the weighting
    (cosine, or BM25 of the user-item matrix) are picked on the validation users."""

    kind = "itemknn"

    def __init__(
        self, neighbours: int | None = None, weighting: str = "cosine", threshold: float | None = None
    ) -> None:
        if weighting not in KNN_WEIGHTING:
            raise ValueError(f"weighting must be one of {', '.join(KNN_WEIGHTING)}, not {weighting!r}")
        super().__init__(neighbours=neighbours, weighting=weighting, threshold=threshold)

    def _fit_one(self, liked: sp.csr_matrix) -> None:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        p = self.params
        kind = BM25Recommender if p["weighting"] == "bm25" else CosineRecommender
        model = kind(K=p["neighbours"])
        with quiet_blas():
            model.fit(liked, show_progress=False)
        self.similarity_ = model.similarity.tocsr().astype(np.float32)

    def fit(self, train, validation=None, *, progress=None, seed=0):
        liked = self._prepare(train)
        if self.params["neighbours"] is not None or validation is None or not validation.values.nnz:
            self.params["neighbours"] = self.params["neighbours"] or 100
            self._fit_one(liked)
            return self
        configs = [{"neighbours": n, "weighting": w} for w in KNN_WEIGHTING for n in KNN_NEIGHBOURS]
        tuning = Tuning(validation, self.params["threshold"], seed)
        self._tune(tuning, configs, lambda: self._fit_one(liked), progress)
        return self


EASE_LAMBDAS = (100.0, 1000.0, 10_000.0, 100_000.0)  # the L2 penalty's grid (x10 steps)
EASE_BEYOND = 4  # at most this many more x3.16 steps past the grid while its end is the best


def ease_weights(
    gram: np.ndarray,
    regularization: float,
    rebuild: Callable[[], np.ndarray] | None = None,
    query_share: float | None = None,
) -> np.ndarray:
    """EASE's B for the Gram matrix X'X (in its dtype): I - P / diag(P), P = (X'X +
    regularization I)^-1, with a zero diagonal. X'X + regularization I is symmetric positive
    definite, so P comes from its Cholesky factor, in place: about a fifth of a general
    inverse's time and one matrix of memory beside `gram`. With `rebuild` (which builds
    X'X again), `gram` itself becomes B and no second matrix is held; `rebuild` is called
    only if rounding made the matrix indefinite, for the general inverse.

    With `query_share` r, the episodic weights instead (`Episodic`): those that best predict
    a user's query rows from their support rows when each row is support with probability
    1 / (1 + r), in expectation over such episodes: B = I - P diag((1 + r) D + regularization),
    P = (X'X + r D + regularization I)^-1, D = diag(X'X), zero diagonal (B is that
    expectation's least-squares solution divided by r, which ranks the same)."""
    from scipy.linalg import lapack

    extra = regularization if query_share is None else query_share * np.diag(gram) + regularization
    scale = None if query_share is None else -((1.0 + query_share) * np.diag(gram) + regularization)
    p = gram if rebuild is not None else gram.copy()
    p[np.diag_indices_from(p)] += extra
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (p,))
    # p is symmetric: p.T, a Fortran-ordered view that LAPACK takes without a copy, is the
    # same matrix, and its upper triangle is p's lower one
    factor, info = potrf(p.T, lower=False, overwrite_a=True, clean=False)
    if info == 0:
        p, info = potri(factor, lower=False, overwrite_c=True)
        p = p.T
    if info != 0:  # lost definiteness to rounding: the general inverse
        p = rebuild() if rebuild is not None else gram.copy()
        p[np.diag_indices_from(p)] += extra
        p = np.linalg.inv(p)
    else:
        mirror_lower(p)
    if scale is None:
        p /= -np.diag(p)
    else:
        p *= scale.astype(p.dtype)[None, :]
    np.fill_diagonal(p, 0.0)
    return p


def gram_matrix(x: sp.csr_matrix, block: int = 1024) -> np.ndarray:
    """X'X of the sparse `x`, dense in x's dtype, a block of columns at a time (the sparse
    product of a log's most liked items is nearly dense: whole, it would hold several times
    the dense result)."""
    cols = x.tocsc()
    rows = cols.T.tocsr()
    out = np.empty((x.shape[1], x.shape[1]), dtype=x.dtype)
    for start in range(0, x.shape[1], block):
        out[:, start : start + block] = (rows @ cols[:, start : start + block]).toarray()
    return out


def mirror_lower(a: np.ndarray, block: int = 1024) -> None:
    """Copies the lower triangle of the square `a` onto its upper one, in place, a block of
    rows at a time (no full-size temporary)."""
    for start in range(0, len(a), block):
        stop = start + block
        a[start:stop, stop:] = a[stop:, start:stop].T
        corner = a[start:stop, start:stop]
        upper = np.triu_indices(len(corner), 1)
        corner[upper] = corner.T[upper]


def top_per_row(a: np.ndarray, top: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `top` largest entries of `a`: their (rows, top) column indices and values
    (in no particular order; which of equal values at the cut is kept is unspecified),
    selected a block of rows at a time (no full-size temporary) by torch's topk, which
    uses every thread: 5x numpy's argpartition on 10,000 columns (BENCHMARKS.md)."""
    cols = np.empty((len(a), top), dtype=np.int64)
    values = np.empty((len(a), top), dtype=a.dtype)
    for start in range(0, len(a), block):
        part = torch.from_numpy(np.ascontiguousarray(a[start : start + block]))
        v, i = torch.topk(part, top, dim=1, sorted=False)
        cols[start : start + block], values[start : start + block] = i.numpy(), v.numpy()
    return cols, values


class EASE(_ItemItem):
    """EASE (Steck, WWW 2019): the item-item weights B that best rebuild each training user's
    positive rows from their other positive rows under an L2 penalty `regularization`, in
    closed form: B = I - P / diag(P), P = (X'X + regularization I)^-1, zero diagonal. A dense
    inverse, so it is fitted over the `max_items` items with the most training positives
    (the others score by popularity alone), and each item keeps its `neighbours` largest
    weights (the checkpoint's size). Unless `regularization` is given, it is picked on the
    validation users from 100 / 1,000 / 10,000 / 100,000 and the geometric midpoints
    around the best, going on past an end of the grid (x3.16 a step, `EASE_BEYOND` steps at
    most) while that end is the best, each fitted over the `tune_items` most liked items (a
    64th of the inverse's work at 10,000 items; on Amazon Beauty the 2,500 picked what all
    10,000 did on every seed, BENCHMARKS.md section 7); the pick is then fitted once over
    `max_items`."""

    kind = "ease"

    def __init__(
        self,
        regularization: float | None = None,
        max_items: int = 10_000,
        neighbours: int = 100,
        tune_items: int = 2_500,
        threshold: float | None = None,
    ) -> None:
        super().__init__(
            regularization=regularization,
            max_items=max_items,
            neighbours=neighbours,
            tune_items=tune_items,
            threshold=threshold,
        )

    def _items(self, train: Interactions) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
        """The `max_items` most liked items (sorted), where the `tune_items` most liked of
        them are among those, and their positive rows."""
        liked = self._prepare(train)
        keep = np.flatnonzero(self.counts_ > 0)
        keep = keep[np.argsort(-self.counts_[keep], kind="stable")[: self.params["max_items"]]]
        order = np.argsort(keep)  # the most liked first in `keep`; the weights want it sorted
        head = np.sort(np.argsort(order)[: self.params["tune_items"]])
        return keep[order], head, liked[:, keep[order]].astype(np.float32)

    def fit(self, train, validation=None, *, progress=None, seed=0):
        keep, head, x = self._items(train)
        gram = gram_matrix(x)
        if self.params["regularization"] is None and validation is not None and validation.values.nnz:
            # the penalty is picked over the `tune_items` most liked items, a smaller inverse
            tuning = Tuning(validation, self.params["threshold"], seed)
            if len(head) == len(keep):  # every item: the tuning's best fit is the fit
                self._pick(tuning, gram, keep, train.n_items, progress)
                return self
            self._pick(tuning, gram[np.ix_(head, head)], keep[head], train.n_items, progress)
        self.params["regularization"] = float(self.params["regularization"] or 1000.0)
        # the last fit: X'X becomes B in place (rebuilt only for the rare general inverse)
        reg = self.params["regularization"]
        b = ease_weights(gram, reg, rebuild=lambda: gram_matrix(x)) if len(keep) else gram
        del gram
        return self._keep_top(b, keep, train.n_items)

    def _pick(self, tuning: Tuning, gram: np.ndarray, keep: np.ndarray, n_items: int, progress) -> None:
        """The penalty best on `tuning`'s users, over the grid, the midpoints around its best
        and past its ends while an end is the best; the best fit is kept."""
        fit_one = lambda: self._fit_one(gram, keep, n_items)  # noqa: E731
        best = self._tune(tuning, [{"regularization": r} for r in EASE_LAMBDAS], fit_one, progress)
        tried = [best[1]["regularization"] * f for f in (10**-0.5, 10**0.5)]
        best = self._tune(tuning, [{"regularization": r} for r in tried], fit_one, progress, best)
        tried += EASE_LAMBDAS
        for _ in range(EASE_BEYOND):  # the best at an end of what was tried: go on past it
            r = best[1]["regularization"]
            if min(tried) < r < max(tried):
                break
            tried.append(r * 10**0.5 if r == max(tried) else r / 10**0.5)
            best = self._tune(tuning, [{"regularization": tried[-1]}], fit_one, progress, best)

    def _fit_one(self, gram: np.ndarray, keep: np.ndarray, n_items: int) -> None:
        """EASE over the items `keep`, whose X'X is `gram` (left as it is)."""
        b = ease_weights(gram, self.params["regularization"]) if len(keep) else gram
        self._keep_top(b, keep, n_items)

    def _keep_top(self, b: np.ndarray, keep: np.ndarray, n_items: int) -> EASE:
        """The weights `b` over the items `keep` as `similarity_`, each item's `neighbours`
        largest (no item: popularity alone); returns self."""
        import scipy.sparse as sp

        if not len(keep):  # no positive row to learn from: popularity alone
            self.similarity_ = sp.csr_matrix((n_items, n_items), dtype=np.float32)
            return self
        top = min(self.params["neighbours"], len(keep))
        cols, values = top_per_row(b, top)
        values = values.ravel().astype(np.float32)
        rows = np.repeat(keep, top)
        self.similarity_ = sp.csr_matrix((values, (rows, keep[cols.ravel()])), shape=(n_items, n_items))
        return self


EPISODIC_SIZES = (1, 3, 5, 10, 20)  # support sizes with weights of their own
EPISODIC_START = (10**1.5, 10**2.5)  # query rows and penalty the tuning starts from
EPISODIC_STEP = 10**0.5  # the tuning's step, a factor, up or down
EPISODIC_MAX_FITS = 24  # settings the tuning tries at most
EPISODIC_USERS = 1000  # validation users scored per support size at most (a seeded draw beyond)


class Episodic(EASE):
    """Item-item weights meta-trained on support -> query episodes, in closed form: the B
    that best predicts each training user's query rows from their support rows (a user
    scored as the sum of their support items' rows of B, as EASE scores), in expectation
    over episodes whose support holds each row with probability K / (K + `query_rows`). A
    user with K rows is scored with the weights of the largest size of `sizes` at or below
    K, each fitted for its K (few rows: the weights of a small support; more: of a larger
    one). EASE rebuilds every row from all the others; these weights learn what a few rows
    say of the rest, as the protocol asks. The closest published model is Steck's
    emphasised denoising linear autoencoder (EDLAE, NeurIPS 2020), whose loss also counts
    the rows kept. `query_rows` and `regularization`, unless given, are picked on the
    validation users (their mean ndcg@10 over the sizes) with the weights fitted over the
    `tune_items` most liked items, then fitted over `max_items`, as EASE's penalty is."""

    kind = "episodic"

    def __init__(
        self,
        regularization: float | None = None,
        query_rows: float | None = None,
        sizes: tuple[int, ...] | list[int] = EPISODIC_SIZES,
        max_items: int = 10_000,
        neighbours: int = 100,
        tune_items: int = 2_500,
        threshold: float | None = None,
    ) -> None:
        check_hyper({"query_rows": query_rows}, {"query_rows": None})
        ok = isinstance(sizes, list | tuple) and all(is_whole(k) and k >= 1 for k in sizes)
        if not ok or not sizes or list(sizes) != sorted(set(sizes)):
            raise ValueError(f"sizes must be increasing whole numbers, 1 or more, not {sizes!r}")
        super().__init__(regularization, max_items, neighbours, tune_items, threshold)
        self.params.update(query_rows=query_rows, sizes=list(sizes))

    def _bands(self) -> int:
        """One weight matrix per support size."""
        return len(self.params["sizes"])

    def fit(self, train, validation=None, *, progress=None, seed=0):
        import scipy.sparse as sp

        keep, head, x = self._items(train)
        gram = gram_matrix(x)
        p = self.params
        untuned = p["regularization"] is None or p["query_rows"] is None
        if untuned and validation is not None and validation.values.nnz:
            self._pick_episodes(validation, gram[np.ix_(head, head)], keep[head], seed, progress)
        start_rows, start_penalty = EPISODIC_START  # what an untuned fit takes
        p["regularization"] = float(p["regularization"] or start_penalty)
        p["query_rows"] = float(start_rows if p["query_rows"] is None else p["query_rows"])
        bands = []
        for i, k in enumerate(p["sizes"]):
            # X'X becomes the last band's B in place (rebuilt only for the general inverse)
            rebuild = (lambda: gram_matrix(x)) if i == len(p["sizes"]) - 1 else None
            b = ease_weights(gram, p["regularization"], rebuild, p["query_rows"] / k) if len(keep) else gram
            bands.append(self._keep_top(b, keep, train.n_items).similarity_)
            del b
        del gram
        self.similarity_ = sp.vstack(bands, format="csr")
        return self

    def _pick_episodes(self, validation, gram, keep, seed: int, progress) -> None:
        """The query rows and penalty (those not given) whose weights rank the validation
        users best, mean ndcg@10 over `sizes` (each size scored with its own weights)."""
        p, n_items = self.params, len(self.counts_)
        batches = size_batches(validation, p["sizes"], p["threshold"], seed, EPISODIC_USERS)
        names = ("query_rows", "regularization")
        free = [i for i, name in enumerate(names) if p[name] is None]
        seen: dict[tuple[int, int], float] = {}

        def setting(at: tuple[int, int]) -> tuple[float, float]:
            """Grid steps from the start -> (query rows, penalty); a given one stays."""
            return tuple(
                EPISODIC_START[i] * EPISODIC_STEP ** at[i] if i in free else float(p[n])
                for i, n in enumerate(names)
            )

        def ndcg(at: tuple[int, int]) -> float:
            if at not in seen:
                r, lam = setting(at)
                scores = []
                for k, batch in batches.items():
                    b = ease_weights(gram, lam, query_share=r / k) if len(keep) else gram
                    self._keep_top(b, keep, n_items)
                    scores.append(validation_ndcg(self, batch))
                seen[at] = float(np.mean(scores)) if scores else 0.0
                if progress:
                    progress({"config": setting(at), "val_ndcg@10": seen[at]})
            return seen[at]

        # a climb on a x3.16 grid: each step moves a free setting to the better of its two
        # neighbours while that is better, until nothing moves or the fits run out
        best, moved = (0, 0), True
        while moved and len(seen) < EPISODIC_MAX_FITS:
            moved = False
            for i in free:
                for d in (1, -1):
                    step = tuple(v + d if j == i else v for j, v in enumerate(best))
                    if ndcg(step) > ndcg(best):
                        best, moved = step, True
        p["query_rows"], p["regularization"] = setting(best)
        log.info("%s: picked %s (val ndcg@10 %.4f)", self.kind, setting(best), seen[best])

    def score(self, batch):
        self._check_fitted("similarity_")
        n = len(self.counts_)
        if self.similarity_.shape[0] == n:  # one band (scoring while tuning)
            return super().score(batch)
        rows = batch.support_mask.sum(1)
        band = np.maximum(np.searchsorted(self.params["sizes"], rows, side="right") - 1, 0)
        liked = self._liked_support(batch)
        out = np.empty((len(rows), n), dtype=np.float32)
        for i in np.unique(band):
            users = np.flatnonzero(band == i)
            out[users] = (liked[users] @ self.similarity_[i * n : (i + 1) * n]).toarray()
        return out + self._tie_break()


def als_model(
    liked: sp.csr_matrix, factors: int, regularization: float, alpha: float, iterations: int, seed: int
):
    """implicit's AlternatingLeastSquares fitted on `liked` for `iterations` sweeps."""
    from implicit.cpu.als import AlternatingLeastSquares

    with quiet_blas():
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
        )
        model.fit(liked, show_progress=False)
    return model


def als_continue(model, liked: sp.csr_matrix, iterations: int):
    """`model` (fitted on `liked`) taken `iterations` sweeps further: implicit starts from
    the factors a model already holds."""
    model.iterations = iterations
    with quiet_blas():
        model.fit(liked, show_progress=False)
    return model


def item_factors(model) -> np.ndarray:
    """A copy of an ALS model's item factors (a later sweep would change them in place)."""
    return np.array(model.item_factors, dtype=np.float32, copy=True)


def als_item_factors(
    liked: sp.csr_matrix, factors: int, regularization: float, alpha: float, iterations: int, seed: int
) -> np.ndarray:
    """(items, factors) item factors of implicit's AlternatingLeastSquares fitted on `liked`."""
    return item_factors(als_model(liked, factors, regularization, alpha, iterations, seed))


ALS_REGULARIZATION = (1.0, 10.0, 100.0, 1000.0)
ALS_ALPHA = (1.0, 10.0)
ALS_FACTORS = (32, 64, 128)
ALS_ITERATIONS = (8, 15)  # the grid is searched at the first; the winner is also taken to the second
ALS_TUNED = ("factors", "regularization", "alpha", "iterations")


class ALS(_FromLiked):
    """implicit's AlternatingLeastSquares on positive rows; a new user is folded in from the
    positive support rows (`recalculate_user`). Unless `factors` is given, factors,
    regularization, alpha and iterations are picked on the validation users (ndcg@10, 1-10
    support rows): regularization and alpha over a grid at 32 factors, then 64 and 128
    factors with the best alpha and the best regularization and its neighbours in the grid
    (at most 14 fits where the full grid takes 24), all at 8 sweeps; the best of them is
    then taken on to 15 sweeps and kept if that scores higher.
    """

    kind = "als"
    needs_support = True

    def __init__(
        self,
        factors: int | None = None,
        regularization: float = 100.0,
        alpha: float = 1.0,
        iterations: int = 15,
        threshold: float | None = None,
    ) -> None:
        super().__init__(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            threshold=threshold,
        )
        self.item_factors_: np.ndarray | None = None

    def _fit_one(self, liked: sp.csr_matrix, seed: int) -> None:
        p = self.params
        self.item_factors_ = als_item_factors(
            liked, p["factors"], p["regularization"], p["alpha"], p["iterations"], seed
        )

    def fit(self, train, validation=None, *, progress: Progress | None = None, seed=0):
        liked = self._prepare(train)
        if self.params["factors"] is None and validation is not None and validation.values.nnz:
            self._tune(liked, validation, progress, seed)  # keeps the best fit
            return self
        self.params["factors"] = self.params["factors"] or 64
        self._fit_one(liked, seed)
        return self

    def _tune(self, liked, validation: Interactions, progress, seed: int) -> None:
        tuning = Tuning(validation, self.params["threshold"], seed)
        short, long = ALS_ITERATIONS
        best: tuple | None = None  # (val ndcg@10, config, item factors, model): only the best is kept

        def keep(config: tuple, model) -> None:
            nonlocal best
            self.params.update(zip(ALS_TUNED, config, strict=True))
            self.item_factors_ = item_factors(model)
            ndcg = tuning.score(self)
            if progress:
                progress({"config": config, "val_ndcg@10": ndcg})
            if best is None or ndcg > best[0]:
                best = (ndcg, config, self.item_factors_, model)

        def search(factors: int, reg: float, alpha: float) -> None:
            keep((factors, reg, alpha, short), als_model(liked, factors, reg, alpha, short, seed))

        for reg in ALS_REGULARIZATION:
            for alpha in ALS_ALPHA:
                search(ALS_FACTORS[0], reg, alpha)
        _, reg, alpha, _ = best[1]
        near = [r for r in ALS_REGULARIZATION if reg / 10 <= r <= reg * 10]  # the best and its neighbours
        for factors in ALS_FACTORS[1:]:
            for r in near:
                search(factors, r, alpha)
        factors, reg, alpha, _ = best[1]
        keep((factors, reg, alpha, long), als_continue(best[3], liked, long - short))
        ndcg, config, self.item_factors_, _ = best
        self.params.update(zip(ALS_TUNED, config, strict=True))
        log.info(
            "als: picked factors=%s regularization=%s alpha=%s iterations=%s (val ndcg@10 %.4f)",
            *config,
            ndcg,
        )

    def score(self, batch):
        return self.fold_in(batch) @ self.item_factors_.T + self._tie_break()

    def fold_in(self, batch: Batch) -> np.ndarray:
        """Least-squares user factors from the positive support rows."""
        self._check_fitted("item_factors_")
        users = np.arange(len(batch.users))
        factors = self._folder().recalculate_user(users, self._liked_support(batch))
        return np.asarray(factors, dtype=np.float32).reshape(len(users), -1)

    def _folder(self):
        """An implicit ALS model holding the item factors, made once per set of factors."""
        from implicit.cpu.als import AlternatingLeastSquares

        v = self.item_factors_
        if getattr(self, "_folder_for", None) is not v:
            with quiet_blas():  # implicit checks the BLAS threads when a model is made
                model = AlternatingLeastSquares(
                    factors=v.shape[1],
                    regularization=self.params["regularization"],
                    alpha=self.params["alpha"],
                )
            model.item_factors = v
            model.user_factors = np.zeros((1, v.shape[1]), np.float32)
            self._folder_model, self._folder_for = model, v
        return self._folder_model

    def state(self):
        self._check_fitted("item_factors_")
        return dict(self.params), {**self._base_state(), "item_factors": torch.from_numpy(self.item_factors_)}

    def _load(self, tensors):
        factors = check_tensor(tensors, "item_factors", torch.float32, 2)
        if factors.shape[0] != len(self.counts_):
            raise ValueError("item_factors has a row count other than the catalogue's")
        self.item_factors_ = factors.numpy()
