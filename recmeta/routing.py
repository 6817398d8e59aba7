"""Routing: which model serves a user with n interactions. `recmeta train` chooses the
policy on validation users and stores it; recommend and evaluate read it. Nothing here
trains."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recmeta.learners import META_LEARNERS, Recommender
from recmeta.learners.base import chunks, mask_support, ndcg_of
from recmeta.learners.ensemble import Ensemble
from recmeta.snapshot import Interactions
from recmeta.tasks import Sequences, make_batch

VAL_SHOTS = (0, 1, 3, 5, 10, 20, 50, 100)  # support sizes validated; 50 and 100 place the warm route
MIN_VAL_USERS = 20  # a support size with fewer validation users than this is too noisy to use
COLD_SHOTS = 20  # sizes up to this (PROTOCOL.md's range) are validated with any number of users
MAX_VAL_USERS = 2000  # validation users scored per support size (a seeded draw beyond that)
# a model takes a band from the reference (the ensemble) only when its validation lead
# passes this many standard errors of their paired difference (one-sided, about 2.5 %)
NOISE_Z = 2.0


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
    return [means(per_user) for per_user in validation_ndcgs(models, validation, threshold, shots)]


def means(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    """A validation table from each size's per-user ndcg@10."""
    return {k: round(float(np.mean(v)), 5) for k, v in per_user.items()}


def validation_ndcgs(
    models: Sequence[Recommender], validation: Interactions, threshold: float, shots=VAL_SHOTS
) -> list[dict[str, np.ndarray]]:
    """Each model's per-user ndcg@10 by support size ({"K5": array}), the same users in the
    same order for every model (`validation_tables` gives their means)."""
    seq = Sequences.from_data(validation)
    counts = validation.counts_per_user()
    reused = {id(m) for e in models if isinstance(e, Ensemble) for m in e.members}
    out: list[dict[str, np.ndarray]] = [{} for _ in models]
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
                    scores = model.combine([given[id(m)] for m in model.members], part.support_only())
                else:
                    scores = model.score(part.support_only())
                if id(model) in reused:
                    given[id(model)] = scores
                values[j].append(ndcg_of(mask_support(scores, part), part))
        for j in scoring:
            out[j][f"K{k}"] = np.concatenate(values[j])
    return out


def reference_model(names: Sequence[str]) -> str | None:
    """The model a router keeps unless another is clearly better: the ensemble, else the
    first meta-learner among `names`; None without a meta-learner."""
    metas = [m for m in META_LEARNERS if m in names]
    return Ensemble.kind if Ensemble.kind in metas else next(iter(metas), None)


def paired_noise(
    per_user: dict[str, dict[str, np.ndarray]], reference: str | None = None
) -> dict[str, dict[str, float]]:
    """For each model other than the reference (`reference`, by default the
    `reference_model` of `per_user`), by support size, the standard error of its mean
    ndcg@10 minus the reference's over the same validation users (paired: what both models
    find easy or hard cancels); empty when the reference has no per-user figures."""
    ref = reference if reference is not None else reference_model(list(per_user))
    if ref not in per_user:
        return {}
    out: dict[str, dict[str, float]] = {}
    for name, table in per_user.items():
        if name == ref:
            continue
        diffs = {k: v - per_user[ref][k] for k, v in table.items() if k in per_user[ref] and len(v) > 1}
        out[name] = {k: round(float(d.std(ddof=1) / np.sqrt(len(d))), 6) for k, d in diffs.items()}
    return out


def _paired_errors(
    noise: dict[str, dict[str, float]], a: str, b: str, ref: str | None, window: list[str]
) -> list[float]:
    """The standard error of model a's ndcg@10 less model b's at each size of `window` that
    has one. `noise` holds each model's against the reference `ref`; two other models' is
    bounded by the sum of theirs (the standard deviation of a difference is at most the sum
    of those of two differences that make it up)."""
    others = [m for m in (a, b) if m != ref]
    if a == b or not all(noise.get(m) for m in others):
        return []  # the same model, or no paired figures: no gate
    return [float(sum(noise[m][w] for m in others)) for w in window if all(w in noise[m] for m in others)]


def validation_users(validation: Interactions, shots=VAL_SHOTS) -> dict[str, int]:
    """How many validation users each support size of `validation_table` scores."""
    counts = validation.counts_per_user()
    return {f"K{k}": int(min((counts > k).sum(), MAX_VAL_USERS)) for k in shots}


def routing(
    validation: dict[str, dict[str, float]], noise: dict[str, dict[str, float]] | None = None
) -> dict[str, Any]:
    """From each model's validation ndcg@10 by support size ({"K5": ...}): for every size
    validated, the model best there serves users with that many rows up to the next size
    validated (`bands`: [[from rows, model], ...]; between equals a meta-learner, then the
    name). "Best there" is the mean over the size and its neighbours among the sizes from 1
    row up, so that one noisy size does not hand a band to another model; and, with `noise`
    (`paired_noise`), a band changes hands only on a lead of more than NOISE_Z standard
    errors of the paired difference over those sizes, else the incumbent keeps it: the
    `reference_model` at 0 rows and at the first size with rows, after that the model
    serving the band below (so that a lead inside the noise neither takes a band from the
    reference nor hands it back).
    Users with no row go to the best model at K = 0 among those that need no support.
    `cold` is that model, `warm` the last band's and `threshold` where the last band starts
    (None with one band)."""
    if not validation:
        return {}
    noise = noise or {}
    ref = reference_model(list(validation))
    sizes = sorted({int(k[1:]) for table in validation.values() for k in table})
    warm = [k for k in sizes if k > 0]
    bands: list[list[Any]] = []
    incumbent = ref
    for k in sizes:
        key = f"K{k}"
        window = [f"K{w}" for w in warm[max(warm.index(k) - 1, 0) : warm.index(k) + 2]] if k else [key]
        scored = {
            m: float(np.mean([t[w] for w in window if w in t])) for m, t in validation.items() if key in t
        }
        best = max(sorted(scored), key=lambda m: (scored[m], m in META_LEARNERS))
        holder = incumbent if k else ref
        errors = _paired_errors(
            noise, best, holder, ref, [w for w in window if w in validation.get(holder, {})]
        )
        if best != holder and holder in scored and errors:
            margin = NOISE_Z * float(np.sqrt(np.sum(np.square(errors)))) / len(errors)
            if scored[best] - scored[holder] <= margin:
                best = holder
        if k:
            incumbent = best
        if not bands or bands[-1][1] != best:
            bands.append([k, best])
    if not bands:  # no size had validation users: a meta-learner, else the first model, serves
        bands = [[0, next((m for m in validation if m in META_LEARNERS), next(iter(validation)))]]
    bands[0][0] = 0
    return {
        "bands": bands,
        "cold": bands[0][1],
        "warm": bands[-1][1],
        "threshold": bands[-1][0] if len(bands) > 1 else None,
        "validation": validation,
        **({"noise": noise} if noise else {}),
    }


def route_bands(route: dict[str, Any]) -> list[list[Any]]:
    """A router's [[from rows, model], ...]; a router stored before bands existed has them
    from its cold model, warm model and threshold."""
    if "bands" in route:
        return route["bands"]
    threshold = route["threshold"]
    return [[0, route["cold"]]] + ([[threshold, route["warm"]]] if threshold is not None else [])


def band_of(route: dict[str, Any], n_rows: int) -> tuple[int, str]:
    """(the row count where its band starts, the model) serving a user with `n_rows` rows."""
    bands = route_bands(route)
    start, model = max((b for b in bands if n_rows >= b[0]), key=lambda b: b[0], default=bands[0])
    return start, model


def served_by(route: dict[str, Any], n_rows: int) -> str:
    """The model that `route` sends a user with `n_rows` interactions to."""
    return band_of(route, n_rows)[1]


def describe_bands(route: dict[str, Any]) -> str:
    """'ensemble from 0 rows, itemknn from 50 rows': who serves how many rows."""
    return ", ".join(f"{model} from {rows(start)}" for start, model in route_bands(route))


def rows(n: int) -> str:
    """'1 row', '5 rows': how route descriptions count support rows."""
    return f"{n} row" + ("" if n == 1 else "s")
