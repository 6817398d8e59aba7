"""implicit's alternating least squares, tuned on validation users, each new user folded in."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from recmeta.learners.base import Progress, check_tensor
from recmeta.learners.baselines.base import FromLiked, Tuning, log, quiet_blas
from recmeta.snapshot import Interactions
from recmeta.tasks import Batch

if TYPE_CHECKING:
    import scipy.sparse as sp


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


class ALS(FromLiked):
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
