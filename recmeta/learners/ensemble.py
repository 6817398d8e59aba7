"""The meta-learners together: each scores the catalogue, and a user's list ranks by the mean
of their scores standardised per user (z-scores), so that no model's scale dominates;
ratings are the mean of the members' predictions.

On the ML-100K validation users of three seeds it matched or beat the best single
meta-learner at every support size from 0 to 20 (BENCHMARKS.md), which a router that picks
one of them from about 90 validation users cannot promise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from recmeta.errors import ParameterError
from recmeta.learners.backbone import on_scale
from recmeta.learners.base import Recommender, chunks, mask_support, ndcg_of, size_batches
from recmeta.learners.maml import MAML
from recmeta.learners.metalstm import MetaLSTM
from recmeta.learners.protonet import ProtoNet
from recmeta.snapshot import Interactions
from recmeta.tasks import Batch

MEMBERS: dict[str, type[Recommender]] = {cls.kind: cls for cls in (MAML, ProtoNet, MetaLSTM)}


BIAS_SHOTS = (1, 3, 5, 10, 20)  # support sizes whose item-bias weight the validation users pick
BIAS_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)  # the candidates, the members' own weight first
BIAS_USERS = 1000  # validation users scored per size at most (a seeded draw beyond that)
# a size with fewer validation users keeps the weight below it (1 for the first): on fewer,
# ndcg@10's standard error (about 0.2 / sqrt(users)) passes 0.02, more than the weights differ by
BIAS_MIN_USERS = 100


class Standardised:
    """The mean over members of their scores less c times their item biases, each row
    standardised (less its mean, over its standard deviation; a constant row stays 0), for
    any per-user bias share c, from statistics taken once: with A a member's scores less
    each row's mean and beta its biases less their mean, the row is (A - c beta) / sd(c),
    where sd(c)^2 = var(A) - 2 c cov(A, beta) + c^2 var(beta). So each share costs one
    scaled sum of the members' scores and one small product, not a pass to standardise
    every member again (the ensemble's bias tuning scores five shares of the same scores)."""

    def __init__(self, member_scores: Sequence[np.ndarray], biases: Sequence[np.ndarray] | None) -> None:
        self.centred, self.beta, self.moments = [], [], []
        for i, scores in enumerate(member_scores):
            a = scores - scores.mean(1, keepdims=True, dtype=np.float64).astype(scores.dtype)
            var_a = np.einsum("ij,ij->i", a, a, dtype=np.float64) / a.shape[1]
            if biases is None:  # no biases: nothing to correlate with
                beta, cov = np.zeros(scores.shape[1]), np.zeros(len(a))
            else:
                beta = biases[i] - biases[i].mean()
                cov = (a @ beta.astype(a.dtype)).astype(np.float64) / a.shape[1]
            self.centred.append(a)
            self.beta.append(beta)
            self.moments.append((var_a, cov, float(beta @ beta) / len(beta)))

    def combine(self, share: np.ndarray) -> np.ndarray:
        """The members' mean z-score with each user's bias share `share` (1 - the weight)."""
        n = len(self.centred)
        out = np.zeros_like(self.centred[0])
        inverse = np.empty((len(share), n))
        for m, (a, (var_a, cov, var_b)) in enumerate(zip(self.centred, self.moments, strict=True)):
            var = var_a - 2 * share * cov + share**2 * var_b
            # a constant row (variance zero up to rounding) stays 0
            flat = var <= 1e-12 * (var_a + share**2 * var_b)
            inverse[:, m] = np.where(flat, 1.0, 1.0 / np.sqrt(np.where(flat, 1.0, var))) / n
            out += a * inverse[:, m, None].astype(a.dtype)
        if np.any(share != 0):
            out -= ((inverse * share[:, None]) @ np.stack(self.beta)).astype(out.dtype)
        return out


class Ensemble(Recommender):
    """Members are meta-learners (MAML, ProtoNet, Meta-LSTM by default). `fitted` hands over
    members already fitted on the same data, which `recmeta.training.fit` then keeps
    instead of refitting; other parameters (epochs, max_time, threshold, device) go to the
    members it fits."""

    kind = "ensemble"
    predicts_ratings = True

    def __init__(
        self,
        members: Sequence[str] = tuple(MEMBERS),
        fitted: Mapping[str, Recommender] | None = None,
        **params: Any,
    ) -> None:
        unknown = [m for m in members if m not in MEMBERS]
        if unknown or not members:
            raise ParameterError(f"ensemble members must be among {', '.join(MEMBERS)}, not {list(members)}")
        super().__init__(members=list(members), **params)
        from recmeta.learners import REGISTRY  # here: the registry imports this module

        for m in members:  # what the members will be created with, checked now
            REGISTRY[m](**self.member_params)
        fitted = fitted or {}
        self.models: dict[str, Recommender] = {m: fitted[m] for m in members if m in fitted}
        self.start = fitted.get("als")  # the tuned ALS the members it fits itself start from
        self.fitted_: bool | None = None

    def assemble(self, fitted: Mapping[str, Recommender]) -> Ensemble:
        """Take the members from `fitted` (each fitted on the same data); returns self."""
        missing = [m for m in self.params["members"] if m not in fitted]
        if missing:
            raise ValueError(f"ensemble members not fitted: {', '.join(missing)}")
        self.models = {m: fitted[m] for m in self.params["members"]}
        self.fitted_ = True
        return self

    @property
    def member_params(self) -> dict[str, Any]:
        """Parameters handed to members the ensemble has to have fitted."""
        return {k: v for k, v in self.params.items() if k not in ("members", "bias_weights")}

    def _members(self) -> list[Recommender]:
        self._check_fitted("fitted_")
        return [self.models[k] for k in self.params["members"]]

    @property
    def scores_new_items(self) -> bool:
        return all(getattr(m, "scores_new_items", False) for m in self._members())

    def score(
        self, batch: Batch, user_x: np.ndarray | None = None, new_items: np.ndarray | None = None
    ) -> np.ndarray:
        return self.combine([m.score(batch, user_x, new_items) for m in self._members()], batch)

    def combine(self, member_scores: Sequence[np.ndarray], batch: Batch) -> np.ndarray:
        """The ensemble's scores from its members' scores of `batch`'s users: each member's
        item biases weighted by the weight of the user's support size (`tune_bias`), each
        member's scores standardised, their mean."""
        return self._weighed(member_scores, self.bias_weight(batch.support_mask.sum(1)))

    def _weighed(self, member_scores: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
        """`combine` with each user's item-bias weight given."""
        biased = bool(np.any(weights != 1.0))
        return self._standardised(member_scores, biased).combine(1.0 - weights)

    def _standardised(self, member_scores: Sequence[np.ndarray], biased: bool) -> Standardised:
        """`Standardised` over the members' scores, with their item biases when `biased`."""
        width = member_scores[0].shape[1]
        return Standardised(
            member_scores, [self._bias(m, width) for m in self._members()] if biased else None
        )

    def bias_weight(self, rows: np.ndarray) -> np.ndarray:
        """The item-bias weight of users with `rows` support rows: that of the largest size
        tuned at or below it, 1 below the first (and when nothing was tuned)."""
        bands = self.params.get("bias_weights") or []
        out = np.ones(len(rows))
        for start, weight in bands:
            out[np.asarray(rows) >= start] = weight
        return out

    @staticmethod
    def _bias(member: Recommender, width: int) -> np.ndarray:
        """A member's item biases over the `width` items scored (items added after training
        take the median bias, as the member scores them)."""
        bias = member.backbone.item_bias.detach().float().cpu().numpy()
        if width > len(bias):
            bias = np.concatenate([bias, np.full(width - len(bias), np.median(bias))])
        return bias

    def tune_bias(self, validation: Interactions, seed: int = 0) -> Ensemble:
        """Pick, for each support size of BIAS_SHOTS, the weight of the members' item biases
        (popularity) that ranks the validation users best (ndcg@10): as a user's rows grow,
        what they say of their taste can deserve more than the population's. Ties keep the
        larger weight. Returns self."""
        members = self._members()
        batches = size_batches(validation, BIAS_SHOTS, members[0].threshold, seed, BIAS_USERS)
        bands: list[list[float]] = []
        for k in BIAS_SHOTS:
            batch = batches.get(k)
            if batch is None or len(batch.users) < BIAS_MIN_USERS:
                break
            values: dict[float, list[np.ndarray]] = {w: [] for w in BIAS_WEIGHTS}
            for part in chunks(batch):
                shared = self._standardised([m.score(part.support_only()) for m in members], True)
                for w in BIAS_WEIGHTS:
                    scores = shared.combine(np.full(len(part.users), 1.0 - w))
                    values[w].append(ndcg_of(mask_support(scores, part), part))
            mean = {w: float(np.mean(np.concatenate(v))) if v else 0.0 for w, v in values.items()}
            bands.append([k, max(BIAS_WEIGHTS, key=lambda w: (mean[w], w))])
        self.params["bias_weights"] = bands
        return self

    @property
    def members(self) -> list[Recommender]:
        """The fitted members, in the order `combine` takes their scores."""
        return self._members()

    def predict(self, batch: Batch, items: np.ndarray, user_x: np.ndarray | None = None) -> np.ndarray:
        return np.mean([m.predict(batch, items, user_x) for m in self._members()], axis=0)

    def rating(self, pred: np.ndarray) -> np.ndarray:
        """The members' mean prediction as a rating on their log's scale, on its stars when
        every member predicts medians (as `MetaLearner.rating`)."""
        members = self._members()
        scale = members[0].params["shapes"].get("scale")
        medians = all(m.params["rate_loss"] == "absolute" for m in members)
        return pred if scale is None else on_scale(pred, scale, medians)

    def state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        configs, tensors = {}, {}
        for kind, model in zip(self.params["members"], self._members(), strict=True):
            configs[kind], own = model.state()
            tensors.update({f"{kind}/{name}": t for name, t in own.items()})
        return {**self.params, "member_configs": configs}, tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Ensemble:
        config = dict(config)
        configs = config.pop("member_configs")
        fitted = {
            kind: MEMBERS[kind].from_state(
                configs[kind], {k.split("/", 1)[1]: t for k, t in tensors.items() if k.startswith(f"{kind}/")}
            )
            for kind in config["members"]
        }
        model = cls(fitted=fitted, **config)
        model.fitted_ = True
        return model
