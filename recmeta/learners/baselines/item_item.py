"""Item-item baselines: a user scored as the sum of their liked items' rows of a weight
matrix; item kNN's cosine or BM25 similarities."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from recmeta.errors import ParameterError
from recmeta.learners.base import check_tensor
from recmeta.learners.baselines.base import FromLiked, Tuning, log, quiet_blas

if TYPE_CHECKING:
    import scipy.sparse as sp


KNN_NEIGHBOURS = (25, 50, 100, 200, 400)
KNN_WEIGHTING = ("cosine", "bm25")


class ItemItem(FromLiked):
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


class ItemKNN(ItemItem):
    """implicit's item-item neighbours (fitted on positive rows), scored from the positive
    support rows. Unless `neighbours` is given, the neighbour count and the weighting
    (cosine, or BM25 of the user-item matrix) are picked on the validation users."""

    kind = "itemknn"

    def __init__(
        self, neighbours: int | None = None, weighting: str = "cosine", threshold: float | None = None
    ) -> None:
        if weighting not in KNN_WEIGHTING:
            raise ParameterError(f"weighting must be one of {', '.join(KNN_WEIGHTING)}, not {weighting!r}")
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
