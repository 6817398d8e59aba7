"""What the baselines share: the positive rows they learn from, the popularity tie-break,
support weights, state, and the validation users a baseline tunes on."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from recmeta.learners.base import Recommender, batch_csr, check_tensor, validation_ndcg
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


class FromLiked(Recommender):
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
