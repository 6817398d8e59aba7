"""Every model behind one `Recommender` interface: three meta-learners, their ensemble and
four baselines."""

from collections.abc import Mapping, Sequence
from typing import Any

from recmeta.errors import DataError
from recmeta.learners.base import Recommender
from recmeta.learners.baselines import ALS, EASE, Episodic, ItemKNN, Popular
from recmeta.learners.ensemble import MEMBERS, Ensemble
from recmeta.learners.maml import MAML
from recmeta.learners.meta import DEFAULTS
from recmeta.learners.metalstm import MetaLSTM
from recmeta.learners.protonet import ProtoNet

REGISTRY: dict[str, type[Recommender]] = {
    cls.kind: cls for cls in (MAML, ProtoNet, MetaLSTM, Ensemble, ALS, ItemKNN, Popular, EASE, Episodic)
}
META_LEARNERS = ("maml", "protonet", "metalstm", "ensemble")  # the ensemble after its members
BASELINES = ("als", "itemknn", "popular", "ease", "episodic")


def create(kind: str, fitted: Mapping[str, Recommender] | None = None, **params) -> Recommender:
    """A new, unfitted model of `kind`. From `fitted` (models already fitted on the same
    data) an ensemble takes its members where they are there, and fits only the others; a
    meta-learner takes the tuned ALS its item embeddings start from."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(REGISTRY)}")
    fitted = fitted or {}
    if kind == Ensemble.kind:
        return Ensemble(fitted=dict(fitted), **params)
    if kind in META_LEARNERS:
        return REGISTRY[kind](start=fitted.get(ALS.kind), **params)
    return REGISTRY[kind](**params)


def fit_order(kinds: Sequence[str]) -> list[str]:
    """`kinds` in the order to fit them: ALS first, so that the meta-learners start from its
    tuned factors (`create`), then the other baselines, then the meta-learners (who share
    the time the baselines leave, `Budget`), the ensemble after its members; else as given."""
    return sorted(kinds, key=lambda k: (k in META_LEARNERS, k == Ensemble.kind, k != ALS.kind))


def meta_fits(kinds: Sequence[str]) -> list[str]:
    """The meta-learners a run over `kinds` trains: those named, then the members of an
    ensemble among them that are not named (it fits those itself)."""
    named = [k for k in kinds if k in MEMBERS]
    return named + ([m for m in MEMBERS if m not in named] if Ensemble.kind in kinds else [])


def parameters(kind: str) -> set[str] | None:
    """The hyperparameters a model of `kind` takes (what `--config` may set for it); None for
    the ensemble, which hands what it is given on to its members."""
    import inspect

    cls = REGISTRY[kind]
    if kind == Ensemble.kind:
        return None
    if kind in META_LEARNERS:
        return set(DEFAULTS) | set(cls.defaults)
    taken = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in taken if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD}


def check_params(params: Mapping[str, Mapping[str, Any]], where: str = "") -> None:
    """Every model's parameters (`--config`, `--epochs`), checked before any work: names the
    model takes, values in their ranges; a DataError that begins with `where` and the model."""
    for kind, given in params.items():
        known = parameters(kind)
        unknown = sorted(set(given) - known) if known is not None else []
        if unknown:
            raise DataError(
                f"{where}[{kind}]: unknown parameter(s) {unknown}; {kind} takes {', '.join(sorted(known))}"
            )
        try:
            create(kind, **given)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}[{kind}]: {exc}") from None


def check_models(kinds: Sequence[str], params: Mapping[str, Mapping[str, Any]]) -> None:
    """What train and evaluate fit, checked before any work: every model `kinds` names is
    one recmeta has, and `params` (each model's) are ones it takes, in their ranges."""
    unknown = [k for k in kinds if k not in REGISTRY]
    if unknown:
        raise DataError(f"unknown model(s) {unknown}; choose from {', '.join(REGISTRY)} or all")
    check_params(params)
