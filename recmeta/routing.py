"""Routing: which model serves a user with n interactions. `recmeta train` chooses the
policy on validation users and stores it; recommend and evaluate read it. Nothing here
trains."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from recmeta.learners import META_LEARNERS, Recommender
from recmeta.learners.base import chunks, mask_support, ndcg_of
from recmeta.learners.ensemble import Ensemble
from recmeta.snapshot import Interactions
from recmeta.tasks import Sequences, make_batch

VAL_SHOTS = (0, 1, 3, 5, 10, 20, 50, 100)  # support sizes validated; 50 and 100 place the warm route
MIN_VAL_USERS = 20  # a support size with fewer validation users than this is too noisy to use
COLD_SHOTS = 20  # the cold model is the best meta-learner up to this many rows (PROTOCOL.md's range)
MAX_VAL_USERS = 2000  # validation users scored per support size (a seeded draw beyond that)


def validation_table(
    model: Recommender, validation: Interactions, threshold: float, shots=VAL_SHOTS
) -> dict[str, float]:
    """ndcg@10 of `model` on the validation users at each number of support rows; sizes past
    COLD_SHOTS count only when at least MIN_VAL_USERS validation users have more rows. At most
    MAX_VAL_USERS users are scored per size (the same seeded draw for every model)."""
    return validation_tables([model], validation, threshold, shots)[0]


def validation_tables(
    models: Sequence[Recommender], validation: Interactions, threshold: float, shots=VAL_SHOTS
) -> list[dict[str, float]]:
    """`validation_table` of each model, the models scoring each chunk of users in turn: an
    ensemble whose members are among `models` combines the scores they just gave instead of
    scoring the chunk again (held for one chunk, so memory is a few chunks' scores)."""
    seq = Sequences.from_data(validation)
    counts = validation.counts_per_user()
    reused = {id(m) for e in models if isinstance(e, Ensemble) for m in e.members}
    out: list[dict[str, float]] = [{} for _ in models]
    for k in shots:
        users = np.flatnonzero(counts > k)
        if len(users) > MAX_VAL_USERS:
            users = np.sort(np.random.default_rng(k).choice(users, MAX_VAL_USERS, replace=False))
        scoring = [j for j, m in enumerate(models) if not (k == 0 and m.needs_support)]
        if not (len(users) and scoring and (k <= COLD_SHOTS or len(users) >= MIN_VAL_USERS)):
            continue
        batch = make_batch(seq, users, k, validation.n_items, threshold, dense=False)
        values: dict[int, list[np.ndarray]] = {j: [] for j in scoring}
        for part in chunks(batch):
            given: dict[int, np.ndarray] = {}
            for j in scoring:
                model = models[j]
                if isinstance(model, Ensemble) and all(id(m) in given for m in model.members):
                    scores = model.combine([given[id(m)] for m in model.members])
                else:
                    scores = model.score(part.support_only())
                if id(model) in reused:
                    given[id(model)] = scores
                values[j].append(ndcg_of(mask_support(scores, part), part))
        for j in scoring:
            out[j][f"K{k}"] = round(float(np.mean(np.concatenate(values[j]))), 5)
    return out


def validation_users(validation: Interactions, shots=VAL_SHOTS) -> dict[str, int]:
    """How many validation users each support size of `validation_table` scores."""
    counts = validation.counts_per_user()
    return {f"K{k}": int(min((counts > k).sum(), MAX_VAL_USERS)) for k in shots}


def routing(validation: dict[str, dict[str, float]]) -> dict[str, Any]:
    """From each model's validation ndcg@10 by support size ({"K5": ...}): the best
    meta-learner up to COLD_SHOTS rows serves cold users. Every baseline is weighed: each
    has a threshold, the smallest support size from which it beats the cold model at every
    larger size validated; the baseline with the smallest threshold (the best one from that
    size on, between equals) serves users with at least that many rows."""
    metas = [k for k in validation if k in META_LEARNERS]
    others = [k for k in validation if k not in META_LEARNERS]
    if not validation:
        return {}

    def mean(kind: str, keep: Callable[[int], bool]) -> float:
        vals = [v for k, v in validation[kind].items() if keep(int(k[1:]))]
        return float(np.mean(vals)) if vals else -1.0

    cold = max(metas or others, key=lambda m: mean(m, lambda k: k <= COLD_SHOTS))

    def threshold_of(warm: str) -> int | None:
        found = None
        for k in reversed(VAL_SHOTS[1:]):
            key = f"K{k}"
            if key not in validation[warm] or key not in validation[cold]:
                continue
            if validation[warm][key] > validation[cold][key]:
                found = k
            else:
                break
        return found

    candidates = [(threshold_of(b), b) for b in others if b != cold]
    winners = [(t, b) for t, b in candidates if t is not None]
    warm, threshold = cold, None
    if winners:
        threshold = min(t for t, _ in winners)
        warm = max((b for t, b in winners if t == threshold), key=lambda b: mean(b, lambda k: k >= threshold))
    return {
        "cold": cold,
        "warm": warm,
        "threshold": threshold,
        "validation": validation,
    }


def served_by(route: dict[str, Any], n_rows: int) -> str:
    """The model that `route` sends a user with `n_rows` interactions to."""
    threshold = route["threshold"]
    return route["warm"] if threshold is not None and n_rows >= threshold else route["cold"]
