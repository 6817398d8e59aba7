"""The one interface every model implements, meta-learner or baseline."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from recmeta.errors import NotFittedError
from recmeta.metrics import ranking_metrics, top_n
from recmeta.snapshot import Interactions
from recmeta.tasks import Batch, Sequences, make_batch

Progress = Callable[[dict[str, Any]], None]


class Recommender(ABC):
    """Scores the whole catalogue for users known only by their support rows.

    Fitting: a baseline's `fit(train, validation)` learns from the training users' rows
    (`train` holds no other user's rows) and may use `validation` (validation users' rows)
    for tuning; a meta-learner holds only the math, and `recmeta.training.fit` fits either
    kind. `score(batch)` returns a (users, items) array for the supports in `batch`; the
    caller removes the support items. State round-trips through `state()` and
    `from_state()` as plain JSON config plus tensors, so checkpoints never unpickle code.
    """

    kind: ClassVar[str]
    needs_support: ClassVar[bool] = False  # True: cannot score a user with no rows
    predicts_ratings: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def score(self, batch: Batch) -> np.ndarray:
        """(len(batch.users), n_items) scores; higher is better."""

    def predict(self, batch: Batch, items: np.ndarray) -> np.ndarray:
        """Predicted values of `items` (B, Q) for the users of `batch` (explicit data)."""
        raise NotImplementedError(f"{self.kind} does not predict ratings")

    def rating(self, pred: np.ndarray) -> np.ndarray:
        """`predict`'s values as the ratings a user is told (and mae, rmse measure)."""
        return pred

    @abstractmethod
    def state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON-able config, tensors) that `from_state` rebuilds the fitted model from."""

    @classmethod
    @abstractmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Recommender:
        """Rebuild a fitted model."""

    def _check_fitted(self, attr: str) -> None:
        if getattr(self, attr, None) is None:
            raise NotFittedError(f"{self.kind} is not fitted; call fit() or load a checkpoint")


def batch_csr(batch: Batch, n_items: int, weights: np.ndarray | None = None):
    """The supports of a batch as a users x items CSR (for the CF baselines)."""
    import scipy.sparse as sp

    rows = np.repeat(np.arange(len(batch.users)), batch.support_mask.sum(1))
    cols = batch.support_items[batch.support_mask]
    data = np.ones(len(cols), np.float32) if weights is None else weights[batch.support_mask]
    return sp.csr_matrix((data.astype(np.float32), (rows, cols)), shape=(len(batch.users), n_items))


VAL_CHUNK = 512  # users scored at once: memory is a chunk's scores, whatever the catalogue


def unseen_scores(model: Recommender, batch: Batch) -> np.ndarray:
    """(B, N) scores from the supports alone (the model never sees the query), support items
    at -inf. A copy in the model's own dtype: float32 ranks as its float64 cast would."""
    return mask_support(model.score(batch.support_only()), batch)


def mask_support(scores: np.ndarray, batch: Batch) -> np.ndarray:
    """A copy of `scores` with each user's support items at -inf."""
    scores = np.array(scores)
    rows = np.arange(len(scores))[:, None]
    seen = scores[rows, batch.support_items]
    scores[rows, batch.support_items] = np.where(batch.support_mask, -np.inf, seen)
    return scores


def ndcg_of(scores: np.ndarray, batch: Batch, n: int = 10) -> np.ndarray:
    """ndcg@n of each user of `batch` with a query target, from their unseen scores."""
    relevant = batch.positives(scores.shape[1])
    keep = relevant.any(1)
    return ranking_metrics(top_n(scores[keep], n), relevant[keep], n)[f"ndcg@{n}"]


def validation_ndcg(model: Recommender, batch: Batch, n: int = 10) -> float:
    """Mean ndcg@n over the users of a batch with query targets (support items removed),
    scored VAL_CHUNK users at a time."""
    values = [ndcg_of(unseen_scores(model, part), part, n) for part in chunks(batch)]
    found = np.concatenate(values) if values else np.empty(0)
    return float(found.mean()) if len(found) else float("nan")  # NaN: no user has a target


def chunks(batch: Batch) -> Iterator[Batch]:
    """`batch` in parts of VAL_CHUNK users."""
    for start in range(0, len(batch.users), VAL_CHUNK):
        yield batch.rows(slice(start, start + VAL_CHUNK))


def size_batches(
    validation: Interactions, sizes: Sequence[int], threshold: float, seed: int, most_users: int
) -> dict[int, Batch]:
    """For each support size k of `sizes`, the validation users with more than k rows (a
    seeded draw of `most_users` beyond that), their first k rows the support: what a model
    tunes a setting per support size on. Sizes that no user passes are left out."""
    seq = Sequences.from_data(validation, seed=seed)
    counts = validation.counts_per_user()
    out = {}
    for k in sizes:
        users = np.flatnonzero(counts > k)
        if len(users) > most_users:
            users = np.sort(np.random.default_rng(k).choice(users, most_users, replace=False))
        if len(users):
            out[k] = make_batch(seq, users, k, validation.n_items, threshold, dense=False)
    return out


def check_tensor(
    tensors: dict[str, torch.Tensor],
    name: str,
    dtype: torch.dtype,
    ndim: int,
    shape: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """A tensor read from a checkpoint, refused (ValueError) unless it has the dtype, number
    of dimensions and shape the model expects, and finite values when it is a float: a
    header that calls the same bytes another type must not reach the math."""
    if name not in tensors:
        raise ValueError(f"tensor {name!r} is missing")
    t = tensors[name]
    if t.dtype != dtype or t.dim() != ndim or (shape is not None and tuple(t.shape) != shape):
        want = f"{dtype} {shape if shape is not None else f'{ndim}-d'}"
        raise ValueError(f"tensor {name!r} is {t.dtype} {tuple(t.shape)} where the model expects {want}")
    if t.is_floating_point() and not torch.isfinite(t).all():
        raise ValueError(f"tensor {name!r} holds values that are not finite")
    return t
