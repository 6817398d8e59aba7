"""`recmeta train`: fit models on the store's log, validate, checkpoint, register, route."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from recmeta import checkpoint, snapshot
from recmeta.errors import DataError
from recmeta.learners import BASELINES, META_LEARNERS, REGISTRY, Recommender, create
from recmeta.routing import routing, validation_table
from recmeta.store import repository as repo
from recmeta.store import session_scope
from recmeta.tasks import positive_threshold, split_users
from recmeta.training import fit

ALL = (*META_LEARNERS, *BASELINES)
VAL_MIN_ROWS = 6  # a user needs this many rows to be held out for validation
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
        fit(model, train_data, val_data, progress=progress(kind) if progress else None, seed=cfg.seed)
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
