"""EASE (Steck, 2019): item-item weights that rebuild each training user's positive rows
from their others, in closed form over the most liked items; the dense linear algebra
the episodic weights share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from recmeta.learners.baselines.base import Tuning
from recmeta.learners.baselines.item_item import ItemItem
from recmeta.snapshot import Interactions

if TYPE_CHECKING:
    import scipy.sparse as sp


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


class EASE(ItemItem):
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
