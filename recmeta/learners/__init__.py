"""Every model behind one `Recommender` interface: three meta-learners, their ensemble and
three baselines."""

from collections.abc import Mapping

from recmeta.learners.base import Recommender
from recmeta.learners.baselines import ALS, ItemKNN, Popular
from recmeta.learners.ensemble import Ensemble
from recmeta.learners.maml import MAML
from recmeta.learners.metalstm import MetaLSTM
from recmeta.learners.protonet import ProtoNet

REGISTRY: dict[str, type[Recommender]] = {
    cls.kind: cls for cls in (MAML, ProtoNet, MetaLSTM, Ensemble, ALS, ItemKNN, Popular)
}
META_LEARNERS = ("maml", "protonet", "metalstm", "ensemble")  # the ensemble after its members
BASELINES = ("als", "itemknn", "popular")


def create(kind: str, fitted: Mapping[str, Recommender] | None = None, **params) -> Recommender:
    """A new, unfitted model of `kind`. An ensemble takes its members from `fitted` (models
    already fitted on the same data) where they are there, and fits only the others."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(REGISTRY)}")
    if kind == Ensemble.kind:
        return Ensemble(fitted=dict(fitted or {}), **params)
    return REGISTRY[kind](**params)
