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

from recmeta.learners.base import Recommender
from recmeta.learners.maml import MAML
from recmeta.learners.metalstm import MetaLSTM
from recmeta.learners.protonet import ProtoNet
from recmeta.tasks import Batch

MEMBERS: dict[str, type[Recommender]] = {cls.kind: cls for cls in (MAML, ProtoNet, MetaLSTM)}


def standardise(scores: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (rows that are constant stay 0)."""
    sd = scores.std(1, keepdims=True)
    return (scores - scores.mean(1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


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
            raise ValueError(f"ensemble members must be among {', '.join(MEMBERS)}, not {list(members)}")
        super().__init__(members=list(members), **params)
        fitted = fitted or {}
        self.models: dict[str, Recommender] = {m: fitted[m] for m in members if m in fitted}
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
        return {k: v for k, v in self.params.items() if k != "members"}

    def _members(self) -> list[Recommender]:
        self._check_fitted("fitted_")
        return [self.models[k] for k in self.params["members"]]

    @property
    def scores_new_items(self) -> bool:
        return all(getattr(m, "scores_new_items", False) for m in self._members())

    def score(
        self, batch: Batch, user_x: np.ndarray | None = None, new_items: np.ndarray | None = None
    ) -> np.ndarray:
        return self.combine([m.score(batch, user_x, new_items) for m in self._members()])

    @staticmethod
    def combine(member_scores: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's scores from its members' scores of the same users."""
        return np.mean([standardise(s) for s in member_scores], axis=0)

    @property
    def members(self) -> list[Recommender]:
        """The fitted members, in the order `combine` takes their scores."""
        return self._members()

    def predict(self, batch: Batch, items: np.ndarray, user_x: np.ndarray | None = None) -> np.ndarray:
        return np.mean([m.predict(batch, items, user_x) for m in self._members()], axis=0)

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
