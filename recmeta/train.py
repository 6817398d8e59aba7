"""`recmeta train`: fit models on the store's log, validate, checkpoint, register, route;
`recmeta train --continue`: grow the active meta-learners to what the store holds since
their checkpoint and learn it with replay, refit the baselines, route again."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from recmeta import checkpoint, snapshot
from recmeta.errors import CheckpointError, DataError, check_whole, distinct
from recmeta.learners import (
    BASELINES,
    META_LEARNERS,
    Recommender,
    check_models,
    create,
    fit_order,
    meta_fits,
)
from recmeta.learners.baselines import ALS
from recmeta.learners.ensemble import Ensemble
from recmeta.learners.meta import MetaLearner
from recmeta.paths import writable_folder
from recmeta.routing import means, paired_noise, reference_model, routing, validation_ndcgs, validation_users
from recmeta.snapshot import Interactions
from recmeta.store import make_engine, session_scope
from recmeta.store import repository as repo
from recmeta.tasks import positive_threshold, split_users
from recmeta.threads import check_parallel, set_threads
from recmeta.training import Group, Outcome, Reservoir, fit_detailed
from recmeta.training.budget import TRAIN_BUDGET, Budget, check_max_time
from recmeta.training.continual import grow, item_index, offer_rows, replay_users, update
from recmeta.training.distributed import Workers
from recmeta.training.replay import DEFAULT_SIZE

ALL = (*META_LEARNERS, *BASELINES)
VAL_MIN_ROWS = 6  # a user needs this many rows to be held out for validation
REPLAY = DEFAULT_SIZE  # rows in the replay reservoir
ProgressFactory = Callable[[str], Callable[[dict[str, Any]], None]]


@dataclass
class TrainConfig:
    models: tuple[str, ...] = ALL
    seed: int = 0
    epochs: int | None = None
    max_time: float | None = TRAIN_BUDGET  # seconds for the run's fits (`Budget`); None: no limit
    models_dir: Path = Path("models")
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    resume: bool = False  # `--continue`: start from the active checkpoints
    replay: int | None = None  # reservoir rows; None: the parent's size (REPLAY for a new model)
    workers: int = 1  # data-parallel meta-training processes on this machine
    threads: int | None = None  # per worker; None: the machine's cores shared among the workers

    def __post_init__(self) -> None:  # a model named twice is trained once
        self.models = distinct(self.models)


@dataclass
class Trained:
    kind: str
    model: Recommender
    path: Path
    seconds: float
    validation: dict[str, float]
    parent: int | None = None  # registry id of the checkpoint it continued
    new_rows: int = 0
    steps: int = 0
    validation_users: dict[str, int] = field(default_factory=dict)  # users behind each K
    history: list[dict[str, float]] = field(default_factory=list)  # a meta-learner's epochs


@dataclass
class Split:
    """Training and validation users (dense indices of `data`) and their views."""

    data: Interactions
    train_users: np.ndarray
    val_users: np.ndarray

    @cached_property
    def train(self) -> Interactions:
        return snapshot.restrict(self.data, self.train_users)

    @cached_property
    def validation(self) -> Interactions:
        return snapshot.restrict(self.data, self.val_users)


def _params(kind: str, cfg: TrainConfig, share: float | None = None) -> dict[str, Any]:
    """The parameters `kind` is created with: the config's, the run's epoch cap, and `share`,
    the seconds of the run's budget it may use."""
    params = dict(cfg.params.get(kind, {}))
    if kind in META_LEARNERS:
        if cfg.epochs is not None:
            params["epochs"] = cfg.epochs
        if share is not None:
            params["max_time"] = share
    return params


def _start_shape(group: Group, fitted: dict[str, Recommender], params: dict[str, Any]) -> dict[str, Any]:
    """Only rank 0 fits ALS, whose factors set a meta-learner's dimension (`item_init`
    "tuned"): on a data-parallel run the other workers take that dimension from it, and
    the starting weights with the rest (`Group.same_tensors`)."""
    if group.world == 1 or "dim" in params or params.get("item_init", "tuned") != "tuned":
        return {}
    als = fitted.get(ALS.kind)
    dim = int(group.from_root([float(als.item_factors_.shape[1]) if als is not None else 0.0])[0])
    return {"dim": dim, "item_init": "random"} if dim and not group.root else {}


def _share(group: Group, budget: Budget, kind: str) -> float | None:
    """`kind`'s share of the run's budget, as rank 0 (which fitted the baselines) sees it."""
    share = budget.share(kind)
    if group.world == 1 or kind not in META_LEARNERS:
        return share
    return group.from_root([share or 0.0])[0] or None


def _check_models(cfg: TrainConfig) -> None:
    check_models(cfg.models, {kind: _params(kind, cfg) for kind in cfg.models})
    check_max_time(cfg.max_time)
    if cfg.replay is not None and cfg.replay < 0:
        raise DataError(f"--replay must be 0 or more, not {cfg.replay}")
    check_whole("--seed", cfg.seed, 0)


def train(engine: Engine, cfg: TrainConfig, progress: ProgressFactory | None = None) -> list[Trained] | None:
    """Fit every model of `cfg` on the store (validation users held out for early stopping),
    write each checkpoint atomically and register it, then register the routing. With
    `cfg.resume`, continue the active checkpoints instead (`continue_training`).

    Meta-learners train data-parallel on `cfg.workers` local processes, or on the workers
    torchrun started this process among (WORLD_SIZE, RANK; PostgreSQL as the shared store
    across hosts). Rank 0 fits the baselines, writes, registers and returns the results;
    every other worker returns None."""
    _check_models(cfg)
    writable_folder(cfg.models_dir, f"--models-dir {cfg.models_dir}", make=True)
    if cfg.workers < 1:
        raise DataError(f"--workers must be 1 or more, not {cfg.workers}")
    check_parallel("--workers", cfg.workers)
    group = Group.from_environment()
    if cfg.resume:
        if (group and group.world > 1) or cfg.workers > 1:
            raise DataError("--continue runs in one process (it is a fraction of a training); drop --workers")
        return continue_training(engine, cfg, progress)
    if group is not None or cfg.workers == 1:
        group = group or Group.solo()
        try:
            results = _train(engine, cfg, progress, group)
        except BaseException:
            group.close(together=False)
            raise
        group.close()  # a torchrun worker leaves its process group, with the others, before it exits
        return results
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // cfg.workers)
    set_threads(threads)
    url = engine.url.render_as_string(hide_password=False)
    return Workers(cfg.workers, _worker, (url, cfg, threads)).run(_train, engine, cfg, progress)


def _worker(url: str, cfg: TrainConfig, threads: int, group: Group) -> None:
    """What a worker process other than rank 0 runs."""
    set_threads(threads)
    _train(make_engine(url, migrate=False), cfg, None, group)


def _train(
    engine: Engine, cfg: TrainConfig, progress: ProgressFactory | None, group: Group
) -> list[Trained] | None:
    data = snapshot.load(engine)
    group.check_same("interactions", int(data.watermark.get("max_interaction_id", 0)))
    if data.values.nnz == 0:
        raise DataError("the store holds no interactions; run `recmeta ingest` first")
    progress = progress if group.root else None
    s = split_users(data, seed=cfg.seed, fractions=(0.1, 0.0), min_interactions=VAL_MIN_ROWS)
    split = Split(data, s.train, s.validation)
    train_data, val_data = split.train, split.validation
    reservoir = None
    if group.root:  # the replay memory goes into rank 0's checkpoints
        reservoir = offer_rows(
            Reservoir(REPLAY if cfg.replay is None else cfg.replay, seed=cfg.seed), train_data
        )
    run = Run(engine, cfg, split)
    budget = Budget(cfg.models, cfg.max_time)
    fitted: dict[str, Recommender] = {}
    # the ensemble's members wait for it, to be validated with it (it reuses their scores)
    waiting = set(META_LEARNERS) if "ensemble" in cfg.models else set()
    pending: dict[str, tuple[float, Any]] = {}  # fitted, not yet saved: (seconds, fit result)
    results: list[Trained] = []
    for kind in fit_order(cfg.models):
        if not group.root and kind not in META_LEARNERS:
            continue  # baselines are rank 0's
        params = _params(kind, cfg, _share(group, budget, kind))
        if kind in META_LEARNERS:  # the ensemble hands it to the members it fits itself
            params.update(_start_shape(group, fitted, params))
        model = create(kind, fitted=fitted, **params)
        start = time.perf_counter()
        done = fit_detailed(
            model,
            train_data,
            val_data,
            progress=progress(kind) if progress else None,
            seed=cfg.seed,
            group=group,
        )
        fitted[kind] = model
        if not group.root:
            continue
        pending[kind] = (time.perf_counter() - start, done)
        if kind in waiting and "ensemble" not in fitted:
            continue
        tables = run.validate({k: fitted[k] for k in pending})
        for k, (seconds, d) in pending.items():
            results.append(
                run.save(fitted[k], seconds, reservoir, d.optimizer, outcome=d.outcome, validation=tables[k])
            )
        pending = {}
    if not group.root:
        return None
    results.sort(key=lambda t: cfg.models.index(t.kind))  # as asked for, not as fitted
    run.route(results)
    return results


def continue_training(
    engine: Engine, cfg: TrainConfig, progress: ProgressFactory | None = None
) -> list[Trained]:
    """Each meta-learner of `cfg` starts from its active checkpoint: new items get rows, new
    users join the training (or, 10 % of them, the validation) users, and it trains on the
    tasks of the rows ingested since its watermark, mixed with replayed earlier users. The
    ensemble is assembled from the continued members; baselines are refitted, first, so
    that the learners share what they leave of `max_time` as in `train`; routing is
    validated again. Returns [] when the store holds nothing new."""
    with session_scope(engine) as session:
        registry = repo.active_models(session)
    members = meta_fits(cfg.models)
    if not members:
        raise DataError(
            "--continue continues meta-learners (maml, protonet, metalstm, ensemble); baselines "
            "are cheap to refit: run `recmeta train --model ...` for them"
        )
    missing = [k for k in members if k not in registry]
    if missing:
        raise DataError(f"no trained {', '.join(missing)} to continue; run `recmeta train` first")
    parents = {k: _load(registry[k].path) for k in members}
    for kind, parent in parents.items():
        if not isinstance(parent.model, MetaLearner):
            raise CheckpointError(f"{registry[kind].path}: not a meta-learner checkpoint")
    marks = {p.manifest["watermark"].get("max_interaction_id", 0) for p in parents.values()}
    if len(marks) > 1:
        raise CheckpointError(
            "the active meta-learners were trained on different data; run `recmeta train` once, "
            "or continue them one at a time with --model"
        )
    first = parents[members[0]].manifest
    mark = marks.pop()
    spec = {"item": first["item_feature_spec"], "user": first.get("user_feature_spec")}
    data, old, new = snapshot.load_since(engine, mark, spec=spec)
    new_users = len(data.user_ids) - len(first["user_ids"])
    if new.values.nnz == 0 and data.n_items == len(first["item_ids"]) and new_users == 0:
        return []
    for kind, parent in parents.items():
        checkpoint.check_catalogue(parent.manifest, set(data.item_ids), Path(registry[kind].path))
    split = _continued_split(data, first, cfg.seed)
    val_data = split.validation
    run = Run(engine, cfg, split)
    budget = Budget(cfg.models, cfg.max_time)
    results: list[Trained] = []
    fitted: dict[str, Recommender] = {}
    reservoir = None

    def refit(kind: str, memory: Reservoir | None = None) -> Trained:
        """A baseline fitted anew (or the ensemble, from the continued members), saved with
        the replay `memory` given."""
        model = create(kind, fitted=fitted, **_params(kind, cfg))
        start = time.perf_counter()
        done = fit_detailed(
            model, split.train, val_data, progress=progress(kind) if progress else None, seed=cfg.seed
        )
        parent = (registry[kind].id, mark) if kind in registry else None
        seconds = time.perf_counter() - start
        return run.save(model, seconds, memory, done.optimizer, parent=parent, new_rows=int(new.values.nnz))

    # baselines refit first, inside the budget (`Budget`); the ensemble after its members
    results += [refit(k) for k in cfg.models if k not in members and k != Ensemble.kind]
    for kind in members:
        parent, model = parents[kind], parents[kind].model
        model.params["max_time"] = budget.share(kind)  # this run's budget and epoch cap
        if cfg.epochs is not None:
            model.params["epochs"] = cfg.epochs
        reservoir = _reservoir(parent.manifest, cfg, old, split)
        optimizer = grow(model, parent.optimizer, item_index(parent.item_ids, data.item_ids), data)
        replay = np.intersect1d(replay_users(reservoir, data.user_ids), split.train_users)
        start = time.perf_counter()
        _, outcome, optimizer = update(
            model,
            snapshot.restrict(new, split.train_users),
            snapshot.restrict(old, split.train_users),
            val_data,
            train_users=split.train_users,
            replay=replay,
            optimizer=optimizer,
            seed=cfg.seed,
            progress=progress(kind) if progress else None,
        )
        seconds = time.perf_counter() - start
        fitted[kind] = model
        if kind in cfg.models:
            offer_rows(reservoir, snapshot.restrict(new, split.train_users))
            lineage = {"parent": (registry[kind].id, mark), "new_rows": int(new.values.nnz)}
            results.append(run.save(model, seconds, reservoir, optimizer, outcome=outcome, **lineage))
    if Ensemble.kind in cfg.models:
        results.append(refit(Ensemble.kind, reservoir))
    results.sort(key=lambda t: cfg.models.index(t.kind))  # as asked for, not as fitted
    run.route(results)
    return results


# ---------------------------------------------------------------------- parts


def _load(path: str) -> checkpoint.Loaded:
    loaded = checkpoint.load(Path(path))
    if "validation_user_ids" not in loaded.manifest:
        raise CheckpointError(
            f"{path}: written by a recmeta without `--continue` support; run `recmeta train` once"
        )
    return loaded


def _continued_split(data: Interactions, parent: dict[str, Any], seed: int) -> Split:
    """The parent's validation users stay validation users and its training users stay
    training users; users new since the parent are split as `recmeta train` splits."""
    known = set(parent["user_ids"])
    validation = set(parent["validation_user_ids"])
    fresh = np.array([u not in known for u in data.user_ids])
    if fresh.any():
        s = split_users(
            snapshot.restrict(data, np.flatnonzero(fresh)),
            seed=seed,
            fractions=(0.1, 0.0),
            min_interactions=VAL_MIN_ROWS,
        )
        validation |= set(data.user_ids[s.validation])
    is_val = np.array([u in validation for u in data.user_ids])
    return Split(data, np.flatnonzero(~is_val), np.flatnonzero(is_val))


def _reservoir(manifest: dict[str, Any], cfg: TrainConfig, old: Interactions, split: Split) -> Reservoir:
    """The parent's replay memory, or (another --replay size) a new one over its rows."""
    state = manifest.get("replay")
    if state is not None and (cfg.replay is None or cfg.replay == state["size"]):
        return Reservoir.from_state(state, state["sample"])
    size = REPLAY if cfg.replay is None else cfg.replay
    return offer_rows(Reservoir(size, seed=cfg.seed), snapshot.restrict(old, split.train_users))


@dataclass
class Run:
    """One `recmeta train` run: where and how its checkpoints are written and registered."""

    engine: Engine
    cfg: TrainConfig
    split: Split
    stamp: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f"))
    # each model validated in this run: its per-user ndcg@10 by support size (for the router)
    per_user: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def save(
        self,
        model: Recommender,
        seconds: float,
        reservoir: Reservoir | None,
        optimizer: dict,
        *,
        parent: tuple[int, int] | None = None,
        new_rows: int = 0,
        outcome: Outcome | None = None,
        validation: dict[str, float] | None = None,
    ) -> Trained:
        """Validate (unless `validation` holds its table), checkpoint (with its lineage and
        replay memory) and register one model."""
        data, kind = self.split.data, model.kind
        steps = outcome.steps if outcome is not None else 0
        val = validation if validation is not None else self.validate({kind: model})[kind]
        path = (self.cfg.models_dir / f"{kind}-{self.stamp}.safetensors").resolve()
        lineage = {}
        if parent is not None:
            lineage = {
                "parent_id": parent[0],
                "watermark_range": [parent[1], data.watermark.get("max_interaction_id", 0)],
                "new_rows": new_rows,
            }
        replay = None
        if reservoir is not None:
            state, sample = reservoir.state()
            replay = {**state, "sample": [str(u) for u in sample]}
        checkpoint.save(
            model,
            path,
            data,
            optimizer=optimizer,
            name=kind,
            seed=self.cfg.seed,
            train_seconds=seconds,
            validation=val,
            validation_user_ids=[str(u) for u in data.user_ids[self.split.val_users]],
            replay=replay,
            **lineage,
        )
        with session_scope(self.engine) as session:
            repo.register_model(
                session,
                name=kind,
                kind=kind,
                path=str(path),
                config=checkpoint.read_manifest(path)["config"],
                data_watermark=self.split.data.watermark,
                metrics={
                    "validation_ndcg@10": val,
                    "train_seconds": seconds,
                    "steps": steps,
                    "versions": checkpoint.versions(),
                    **lineage,
                },
            )
        users = validation_users(self.split.validation)
        history = list(outcome.history) if outcome is not None else []
        parent_id = parent[0] if parent else None
        return Trained(kind, model, path, seconds, val, parent_id, new_rows, steps, users, history)

    def validate(self, models: dict[str, Recommender]) -> dict[str, dict[str, float]]:
        """Each model's validation table (ndcg@10 by support size); models with the same
        positive threshold are scored together, an ensemble reusing its members' scores."""
        by_threshold: dict[float, list[str]] = {}
        for kind, model in models.items():
            threshold = positive_threshold(self.split.data, model.params.get("threshold"))
            by_threshold.setdefault(threshold, []).append(kind)
        tables = {}
        for threshold, kinds in by_threshold.items():
            found = validation_ndcgs([models[k] for k in kinds], self.split.validation, threshold)
            self.per_user.update(zip(kinds, found, strict=True))
            tables.update({k: means(per_user) for k, per_user in zip(kinds, found, strict=True)})
        return tables

    def route(self, results: list[Trained]) -> None:
        """Choose the routing on validation and register it. Active models this run did not
        fit keep their place, with the validation figures they were registered with (a
        `train --model popular` does not route everyone to popularity); a model must lead
        the ensemble by more than noise to take a band from it: the noise paired with the
        ensemble on this run's validation users where both were validated here, else the
        figure the active router kept for that model."""
        with session_scope(self.engine) as session:
            active = repo.active_models(session)
            validation = {
                name: dict(row.metrics.get("validation_ndcg@10") or {})
                for name, row in active.items()
                if name != "router" and row.metrics.get("validation_ndcg@10")
            }
            kept = dict((active["router"].config or {}).get("noise") or {}) if "router" in active else {}
        validation.update({r.kind: r.validation for r in results})
        noise = {**kept, **paired_noise(self.per_user, reference_model(list(validation)))}
        route = routing(validation, {m: v for m, v in noise.items() if m in validation})
        if not route:
            return
        path = (self.cfg.models_dir / f"routing-{self.stamp}.json").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(route, indent=2))
        with session_scope(self.engine) as session:
            repo.register_model(
                session,
                name="router",
                kind="router",
                path=str(path),
                config=route,
                data_watermark=self.split.data.watermark,
                metrics={},
            )
