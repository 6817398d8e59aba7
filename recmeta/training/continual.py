"""Learning from what is new without forgetting: grow a fitted meta-learner to a bigger
catalogue, then train on the new rows' tasks mixed with replayed earlier users.

`recmeta train --continue` and the continual protocol (`recmeta evaluate --continual`)
both go through `update`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recmeta.learners.base import Progress
from recmeta.learners.meta import OPTIM, MetaLearner, remap_rows
from recmeta.snapshot import Interactions
from recmeta.tasks import Sequences
from recmeta.training.loop import Outcome, Trainer
from recmeta.training.replay import Reservoir
from recmeta.training.sampler import Source


def item_index(old_ids: list[str] | np.ndarray, new_ids: list[str] | np.ndarray) -> np.ndarray:
    """For each item of the new catalogue, its row in the old one, or -1 for a new item."""
    pos = {str(i): k for k, i in enumerate(old_ids)}
    return np.array([pos.get(str(i), -1) for i in new_ids], dtype=np.int64)


def grow(
    model: MetaLearner, optimizer: dict[str, Tensor], index: np.ndarray, data: Interactions
) -> dict[str, Tensor]:
    """Grow `model` to `data`'s catalogue and users (`index` from `item_index`); returns the
    optimiser state re-indexed alike (new rows start with zero moments)."""
    model.grow(index, data.item_features, data.user_features, data.values.data)
    rows = torch.as_tensor(index)
    out = {}
    for key, value in optimizer.items():
        table = key[len(OPTIM) :].rsplit("/", 1)[0]
        if table in model.item_tables and value.dim() >= 1:
            out[key] = remap_rows(value, rows, torch.zeros((), dtype=value.dtype))
        else:
            out[key] = value
    return out


def replay_users(reservoir: Reservoir, user_ids: np.ndarray) -> np.ndarray:
    """Dense indices of the users that the reservoir's sampled rows belong to."""
    index = {u: k for k, u in enumerate(map(str, user_ids))}
    return np.array(sorted({index[u] for u in map(str, reservoir.sample) if u in index}), dtype=np.int64)


def offer_rows(reservoir: Reservoir, data: Interactions, users: np.ndarray | None = None) -> Reservoir:
    """Offer `reservoir` every row of `data` (of `users` only, when given) in time order,
    as the external id of the row's user."""
    owner = np.repeat(np.arange(data.n_users, dtype=np.int32), data.counts_per_user())
    keep = slice(None) if users is None else np.isin(owner, users)
    order = np.lexsort((data.values.indices[keep], owner[keep], data.times.data[keep]))
    return reservoir.offer(owner[keep][order], label=lambda u: data.user_ids[u].astype(str))


def items_of(data: Interactions, users: np.ndarray) -> np.ndarray:
    """Items in the rows of `users`."""
    owner = np.repeat(np.arange(data.n_users), data.counts_per_user())
    return np.unique(data.values.indices[np.isin(owner, users)])


def update(
    model: MetaLearner,
    new: Interactions,
    old: Interactions,
    validation: Interactions | None,
    *,
    train_users: np.ndarray,
    replay: np.ndarray | None = None,
    optimizer: dict[str, Tensor] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[MetaLearner, Outcome, dict[str, Tensor]]:
    """Train an already fitted (and grown) model on the tasks of `new` (each user's new rows
    only) of `train_users`, a `replay_share` of each step's users being episodes of the
    `replay` users over their `old` rows. Only the item rows those rows touch, and the shared
    parameters, change; the validation users' score before training is the bar an epoch
    must beat, so an update that does not help leaves the model as it was."""
    p = model.params
    train_users = np.asarray(train_users, np.int64)
    has_new = train_users[new.counts_per_user()[train_users] >= 2]
    replay = np.zeros(0, np.int64) if replay is None else np.asarray(replay, np.int64)
    replayed = round(p["batch_size"] * p["replay_share"]) if len(replay) else 0
    sources = [Source.of(Sequences.from_data(new), has_new, p["batch_size"] - replayed)]
    if replayed:
        sources.append(Source.of(Sequences.from_data(old), replay, replayed))
    touched = np.zeros(model.n_items, bool)
    touched[items_of(new, has_new)] = True
    touched[items_of(old, replay)] = True
    trainer = Trainer(
        model,
        seed=seed,
        progress=progress,
        frozen_items=np.flatnonzero(~touched),
        keep_start=True,
        patience=p["update_patience"],
    )
    if len(sources[0].users) == 0:
        return model, trainer.outcome, optimizer or {}
    trainer.fit(new, validation, sources=sources, optimizer_state=optimizer)
    return model, trainer.outcome, trainer.optimizer_
