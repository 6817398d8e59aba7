"""`recmeta train`: fit models on the store's log, validate, checkpoint, register, route."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from recmeta import checkpoint, snapshot
from recmeta.errors import DataError
from recmeta.learners import BASELINES, META_LEARNERS, REGISTRY, Recommender, create
from recmeta.learners.base import validation_ndcg
from recmeta.snapshot import Interactions
from recmeta.store import repository as repo
from recmeta.store import session_scope
from recmeta.tasks import Sequences, make_batch, positive_threshold, split_users

ALL = (*META_LEARNERS, *BASELINES)
VAL_SHOTS = (0, 1, 3, 5, 10, 20, 50, 100)  # support sizes validated; 50 and 100 place the warm route
MIN_VAL_USERS = 20  # a support size with fewer validation users than this is too noisy to use
VAL_MIN_ROWS = 6  # a user needs this many rows to be held out for validation
COLD_SHOTS = 20  # the cold model is the best meta-learner up to this many rows (PROTOCOL.md's range)
ProgressFactory = Callable[[str], Callable[[dict[str, Any]], None]]


@dataclass
class TrainConfig:
    models: tuple[str, ...] = ALL
    seed: int = 0
    epochs: int | None = None
    max_time: float | None = None
    models_dir: Path = Path("models")
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Trained:
    kind: str
    model: Recommender
    path: Path
    seconds: float
    validation: dict[str, float]


def validation_table(
    model: Recommender, validation: Interactions, threshold: float, shots=VAL_SHOTS
) -> dict[str, float]:
    """ndcg@10 of `model` on the validation users at each number of support rows; sizes past
    COLD_SHOTS count only when at least MIN_VAL_USERS validation users have more rows."""
    seq = Sequences.from_data(validation)
    counts = validation.counts_per_user()
    out = {}
    for k in shots:
        if k == 0 and model.needs_support:
            continue
        users = np.flatnonzero(counts > k)
        if len(users) and (k <= COLD_SHOTS or len(users) >= MIN_VAL_USERS):
            batch = make_batch(seq, users, k, validation.n_items, threshold)
            out[f"K{k}"] = round(validation_ndcg(model, batch), 5)
    return out


def routing(validation: dict[str, dict[str, float]]) -> dict[str, Any]:
    """From each model's validation ndcg@10 by support size ({"K5": ...}): the best
    meta-learner up to COLD_SHOTS rows serves cold users; the baseline best from 10 rows up
    serves users with at least `threshold` rows, the smallest support size from which it
    beats the cold model at every larger size validated."""
    metas = [k for k in validation if k in META_LEARNERS]
    others = [k for k in validation if k not in META_LEARNERS]
    if not validation:
        return {}

    def mean(kind: str, keep: Callable[[int], bool]) -> float:
        vals = [v for k, v in validation[kind].items() if keep(int(k[1:]))]
        return float(np.mean(vals)) if vals else -1.0

    cold = max(metas or others, key=lambda m: mean(m, lambda k: k <= COLD_SHOTS))
    warm = max(others, key=lambda m: mean(m, lambda k: k >= 10)) if others else cold
    threshold = None
    for k in reversed(VAL_SHOTS[1:]):
        key = f"K{k}"
        if key not in validation[warm] or key not in validation[cold]:
            continue
        if validation[warm][key] > validation[cold][key]:
            threshold = k
        else:
            break
    return {
        "cold": cold,
        "warm": warm if threshold is not None else cold,
        "threshold": threshold,
        "validation": validation,
    }


def served_by(route: dict[str, Any], n_rows: int) -> str:
    """The model that `route` sends a user with `n_rows` interactions to."""
    threshold = route["threshold"]
    return route["warm"] if threshold is not None and n_rows >= threshold else route["cold"]


def train(engine: Engine, cfg: TrainConfig, progress: ProgressFactory | None = None) -> list[Trained]:
    """Fit every model of `cfg` on the store (validation users held out for early stopping),
    write each checkpoint atomically and register it, then register the routing."""
    unknown = [m for m in cfg.models if m not in REGISTRY]
    if unknown:
        raise DataError(f"unknown model(s) {unknown}; choose from {', '.join(ALL)} or all")
    data = snapshot.load(engine)
    if data.values.nnz == 0:
        raise DataError("the store holds no interactions; run `recmeta ingest` first")
    split = split_users(data, seed=cfg.seed, fractions=(0.1, 0.0), min_interactions=VAL_MIN_ROWS)
    train_data = snapshot.restrict(data, split.train)
    val_data = snapshot.restrict(data, split.validation)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    results = []
    for kind in cfg.models:
        params = dict(cfg.params.get(kind, {}))
        if kind in META_LEARNERS:
            if cfg.epochs is not None:
                params["epochs"] = cfg.epochs
            if cfg.max_time is not None:
                params["max_time"] = cfg.max_time
        model = create(kind, fitted={r.kind: r.model for r in results}, **params)
        start = time.perf_counter()
        model.fit(train_data, val_data, progress=progress(kind) if progress else None, seed=cfg.seed)
        seconds = time.perf_counter() - start
        val = validation_table(model, val_data, positive_threshold(train_data, model.params.get("threshold")))
        path = cfg.models_dir / f"{kind}-{stamp}.safetensors"
        checkpoint.save(
            model,
            path,
            data,
            name=kind,
            seed=cfg.seed,
            train_seconds=seconds,
            validation=val,
            validation_users=len(split.validation),
        )
        with session_scope(engine) as session:
            repo.register_model(
                session,
                name=kind,
                kind=kind,
                path=str(path),
                config=checkpoint.read_manifest(path)["config"],
                data_watermark=data.watermark,
                metrics={
                    "validation_ndcg@10": val,
                    "train_seconds": seconds,
                    "versions": checkpoint.versions(),
                },
            )
        results.append(Trained(kind, model, path, seconds, val))
    route = routing({r.kind: r.validation for r in results})
    if route:
        path = cfg.models_dir / f"routing-{stamp}.json"
        path.write_text(json.dumps(route, indent=2))
        with session_scope(engine) as session:
            repo.register_model(
                session,
                name="router",
                kind="router",
                path=str(path),
                config=route,
                data_watermark=data.watermark,
                metrics={},
            )
    return results
