"""Popularity: the training users' positive counts, the same list for everyone."""

from __future__ import annotations

import numpy as np

from recmeta.learners.baselines.base import FromLiked


class Popular(FromLiked):
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
