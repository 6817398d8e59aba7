"""Training: the episodic loop outside the models, replay memory, and the one `fit` that
`recmeta train`, `recmeta evaluate` and the continual protocol all call."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from recmeta.learners import Recommender, create
from recmeta.learners.base import Progress
from recmeta.learners.ensemble import Ensemble
from recmeta.learners.meta import MetaLearner
from recmeta.snapshot import Interactions
from recmeta.training.budget import Budget
from recmeta.training.distributed import Group
from recmeta.training.loop import Outcome, Trainer, TrainState
from recmeta.training.replay import Reservoir
from recmeta.training.sampler import EpisodeSampler, Source

__all__ = [
    "EpisodeSampler",
    "Fitted",
    "Group",
    "Outcome",
    "Reservoir",
    "Source",
    "TrainState",
    "Trainer",
    "fit",
]


@dataclass
class Fitted:
    """A fitted model, what its training did (meta-learners) and its optimiser state."""

    model: Recommender
    outcome: Outcome | None = None
    optimizer: dict[str, Tensor] = field(default_factory=dict)


def fit_detailed(
    model: Recommender,
    train: Interactions,
    validation: Interactions | None = None,
    *,
    progress: Progress | None = None,
    seed: int = 0,
    group: Group | None = None,
) -> Fitted:
    """`fit`, also returning the training outcome and optimiser state of a meta-learner."""
    if isinstance(model, MetaLearner):
        trainer = Trainer(model, seed=seed, progress=progress, group=group)
        trainer.fit(train, validation)
        return Fitted(model, trainer.outcome, trainer.optimizer_)
    return Fitted(fit(model, train, validation, progress=progress, seed=seed, group=group))


def fit(
    model: Recommender,
    train: Interactions,
    validation: Interactions | None = None,
    *,
    progress: Progress | None = None,
    seed: int = 0,
    group: Group | None = None,
) -> Recommender:
    """Fit any model on `train`, with `validation` users for early stopping and tuning;
    returns the model. A meta-learner goes through the `Trainer`; an ensemble fits the
    members it was not handed; a baseline fits itself. With `group`, meta-learners train
    data-parallel on every worker of it."""
    if isinstance(model, MetaLearner):
        return Trainer(model, seed=seed, progress=progress, group=group).fit(train, validation)
    if isinstance(model, Ensemble):
        fitted = dict(model.models)
        todo = tuple(k for k in model.params["members"] if k not in fitted)
        budget = Budget(todo, model.params.get("max_time"))  # for the members it fits itself
        for kind in todo:
            report = (lambda d, k=kind: progress({"member": k, **d})) if progress else None
            share = budget.share(kind)
            params = {**model.member_params, **({"max_time": share} if share else {})}
            member = create(kind, fitted={"als": model.start} if model.start is not None else None, **params)
            fitted[kind] = fit(member, train, validation, progress=report, seed=seed, group=group)
        model.assemble(fitted)
        model.start = None  # its members have their start; the ALS let go
        return (
            model.tune_bias(validation, seed) if validation is not None and validation.values.nnz else model
        )
    return model.fit(train, validation, progress=progress, seed=seed)
