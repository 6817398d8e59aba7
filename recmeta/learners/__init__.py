"""Every model behind one `Recommender` interface: three meta-learners and three baselines."""

from recmeta.learners.base import Recommender
from recmeta.learners.baselines import ALS, ItemKNN, Popular
from recmeta.learners.maml import MAML
from recmeta.learners.metalstm import MetaLSTM
from recmeta.learners.protonet import ProtoNet

REGISTRY: dict[str, type[Recommender]] = {
    cls.kind: cls for cls in (MAML, ProtoNet, MetaLSTM, ALS, ItemKNN, Popular)
}
META_LEARNERS = ("maml", "protonet", "metalstm")
BASELINES = ("als", "itemknn", "popular")


def create(kind: str, **params) -> Recommender:
    """A new, unfitted model of `kind`."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[kind](**params)
