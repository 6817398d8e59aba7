"""Entry points: evaluate the store, or a log file through a temporary store, under the
cold-start or the continual protocol."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from recmeta import snapshot
from recmeta.evaluate.continual import ContinualConfig, build_log
from recmeta.evaluate.continual_run import ContinualResult, evaluate_continual
from recmeta.evaluate.protocol import EvalConfig, EvalResult, Progress, evaluate
from recmeta.ingest.pipeline import ingest_file, ingest_path
from recmeta.store import make_engine


def evaluate_store(engine: Engine, cfg: EvalConfig, progress: Progress | None = None) -> EvalResult:
    return evaluate(snapshot.load(engine), cfg, progress)


def evaluate_log(
    path: Path,
    cfg: EvalConfig,
    progress: Progress | None = None,
    *,
    fmt: str = "auto",
    **spec: Any,
) -> EvalResult:
    """Ingest `path` (`spec`: LogSpec fields such as implicit, user_col) into a throw-away
    SQLite store and evaluate it; the default store is never touched."""
    with tempfile.TemporaryDirectory(prefix="recmeta-eval-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'eval.db'}")
        ingest_file(engine, lambda s: ingest_path(s, Path(path), fmt, **spec))
        data = snapshot.load(engine)
        engine.dispose()
    return evaluate(data, cfg, progress)


def continual_store(
    engine: Engine, cfg: ContinualConfig, progress: Progress | None = None
) -> ContinualResult:
    """The continual protocol on the store's log."""
    data, users, items, values, times = snapshot.load_rows(engine)
    return evaluate_continual(
        build_log(data, users, items, values, times, cfg.periods, cfg.threshold), cfg, progress
    )


def continual_log(
    path: Path, cfg: ContinualConfig, progress: Progress | None = None, *, fmt: str = "auto", **spec: Any
) -> ContinualResult:
    """The continual protocol on a log file, through a throw-away SQLite store."""
    with tempfile.TemporaryDirectory(prefix="recmeta-eval-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'eval.db'}")
        ingest_file(engine, lambda s: ingest_path(s, Path(path), fmt, **spec))
        data, users, items, values, times = snapshot.load_rows(engine)
        engine.dispose()
    return evaluate_continual(
        build_log(data, users, items, values, times, cfg.periods, cfg.threshold), cfg, progress
    )
