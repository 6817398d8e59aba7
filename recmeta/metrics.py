"""Ranking and rating metrics of PROTOCOL.md, vectorised over users."""

from __future__ import annotations

import numpy as np


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best scores per row, best first; ties go to the lower index and
    NaN comes after every number.

    torch's top-k finds each row's n-th best score (3-5x faster than a partition over a
    large catalogue); where scores tie across that cut, the tied items of lowest index fill
    the list, and a row holding NaN is sorted in full."""
    scores = np.asarray(scores)
    n = min(n, scores.shape[1])
    if n == 0 or len(scores) == 0:
        return np.zeros((len(scores), n), np.int64)
    import torch

    part = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), n, dim=1, sorted=False).indices.numpy()
    cut = np.take_along_axis(scores, part, 1).min(1)  # NaN where the row holds a NaN
    with np.errstate(invalid="ignore"):
        tied = (scores >= cut[:, None]).sum(1) != n
    nan = np.isnan(cut)
    tied &= ~nan
    if tied.any():  # everything above the cut, then the tied items of lowest index
        s, c = scores[tied], cut[tied, None]
        above, at = s > c, s == c
        need = n - above.sum(1, keepdims=True)
        part[tied] = np.nonzero(above | (at & (np.cumsum(at, 1) <= need)))[1].reshape(-1, n)
    part = np.take_along_axis(part, np.lexsort((part, -np.take_along_axis(scores, part, 1)), axis=1), 1)
    if nan.any():
        s = scores[nan]
        index = np.broadcast_to(np.arange(s.shape[1]), s.shape)
        part[nan] = np.lexsort((index, np.isnan(s), -np.nan_to_num(s, nan=0.0)), axis=1)[:, :n]
    return part


def ranking_metrics(top: np.ndarray, relevant: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Per-user ndcg@n, recall@n, hr@n, mrr@n.

    `top`: (U, >=n) ranked item indices; `relevant`: (U, n_items) bool.
    Binary gains, log2 discount; ideal DCG and recall over min(n, |relevant|).
    """
    top = top[:, :n]
    hits = np.take_along_axis(relevant, top, 1).astype(np.float64)
    n_rel = relevant.sum(1)
    denom = np.minimum(n_rel, n).astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    dcg = (hits * discount).sum(1)
    idcg = np.cumsum(discount)[np.maximum(denom.astype(int), 1) - 1]
    first = np.where(hits.any(1), hits.argmax(1), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            f"ndcg@{n}": np.where(n_rel > 0, dcg / idcg, np.nan),
            f"recall@{n}": np.where(n_rel > 0, hits.sum(1) / denom, np.nan),
            f"hr@{n}": np.where(n_rel > 0, hits.any(1).astype(float), np.nan),
            f"mrr@{n}": np.where(first >= 0, 1.0 / (first + 1), 0.0),
        }


def graded_ndcg(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, n: int = 3) -> np.ndarray:
    """qndcg@n: nDCG over the query items alone, ranked by `pred`, gain 2^rating - 1."""
    neg = np.where(mask, -pred, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(pred.shape[1]), pred.shape), neg), axis=1)[:, :n]
    gains = np.where(mask, 2.0**truth - 1.0, 0.0)
    got = np.take_along_axis(gains, order, 1) * np.take_along_axis(mask, order, 1)
    discount = 1.0 / np.log2(np.arange(2, order.shape[1] + 2))
    ideal = -np.sort(-gains, axis=1)[:, : order.shape[1]]
    idcg = (ideal * discount).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, (got * discount).sum(1) / idcg, np.nan)


def rating_errors(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user mae and rmse over the masked query rows."""
    err = np.where(mask, pred - truth, 0.0)
    cnt = np.maximum(mask.sum(1), 1)
    return {"mae": np.abs(err).sum(1) / cnt, "rmse": np.sqrt((err**2).sum(1) / cnt)}
