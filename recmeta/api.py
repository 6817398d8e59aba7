"""The Python API, for notebooks and services: a store, and what the CLI does with it, with
DataFrames out.

    from recmeta.api import Recmeta

    rm = Recmeta("shop.db")                  # a SQLite file, or postgresql://...
    rm.ingest(clicks_frame, implicit=True)   # the same validation as `recmeta ingest`
    rm.train()                               # all models; a DataFrame of what was fitted
    rm.recommend(user="42")                  # item, title, score, rank
    rm.recommend(items={"50": 5, "181": 4})  # someone not in the store; nothing written
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from recmeta.errors import DataError
from recmeta.evaluate import EvalConfig
from recmeta.evaluate.run import evaluate_store
from recmeta.ingest.pipeline import ingest_file, ingest_path
from recmeta.recommend import Filters, Recommendations, RecommendationService
from recmeta.store import make_engine
from recmeta.train import ALL, TrainConfig, train


class Recmeta:
    """One store (`db`: a SQLite path or a database URL; default ./recmeta.db or $RECMETA_DB)."""

    def __init__(self, db: str | None = None, models_dir: str | Path = "models") -> None:
        self.engine = make_engine(db)
        self.models_dir = Path(models_dir)

    def ingest(self, frame: pd.DataFrame, **spec: Any) -> dict[str, Any]:
        """Load interactions from a DataFrame (user, item[, value][, timestamp] columns, named
        as `recmeta ingest` recognises them or with user_col=..., item_col=...; implicit=True
        for clicks). All or nothing, as `recmeta ingest`; returns the ingest report."""
        if not isinstance(frame, pd.DataFrame) or frame.empty:
            raise DataError("ingest takes a DataFrame with at least one row")
        with tempfile.TemporaryDirectory(prefix="recmeta-api-") as tmp:
            path = Path(tmp) / "frame.parquet"
            frame.to_parquet(path, index=False)
            (report,) = ingest_file(self.engine, lambda s: ingest_path(s, path, **spec))
        return report.as_dict()

    def train(self, models: Iterable[str] = ALL, *, resume: bool = False, **options: Any) -> pd.DataFrame:
        """Fit (or, with resume=True, continue) models as `recmeta train` does; one row per
        model: path, seconds, validation ndcg@10 by support size. `options` are TrainConfig's
        (seed, epochs, max_time, replay, params)."""
        cfg = TrainConfig(models=tuple(models), models_dir=self.models_dir, resume=resume, **options)
        results = train(self.engine, cfg)
        return pd.DataFrame(
            [{"model": r.kind, "path": str(r.path), "seconds": r.seconds, **r.validation} for r in results]
        )

    def recommend(
        self,
        user: str | None = None,
        items: Mapping[str, float] | Iterable[str] | None = None,
        n: int = 10,
        model: str = "auto",
        exclude: Iterable[str] = (),
        candidates: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Top `n` for a stored `user`, or for someone known only by `items` (item ids, or a
        mapping item -> value); nothing is written. Columns: rank, item, title, score; the
        frame's `attrs` hold the route and any notes."""
        service = RecommendationService(self.engine)
        filters = Filters(
            frozenset(map(str, exclude)), frozenset(map(str, candidates)) if candidates else None
        )
        if (user is None) == (items is None):
            raise DataError("give either user=... or items=...")
        if user is not None:
            result = service.for_user(str(user), n=n, model=model, filters=filters)
        else:
            pairs = (
                [f"{i}:{v}" for i, v in items.items()]
                if isinstance(items, Mapping)
                else [str(i) for i in items]
            )
            result = service.for_history(service.parse_with(pairs), n=n, model=model, filters=filters)
        return _frame(result)

    def similar(self, item: str, n: int = 10, model: str = "auto") -> pd.DataFrame:
        """Items like `item` (rank, item, title, score), as `recmeta similar`."""
        return _frame(RecommendationService(self.engine).similar(str(item), n=n, model=model))

    def evaluate(self, **options: Any) -> pd.DataFrame:
        """PROTOCOL.md's cold-start evaluation of the store (EvalConfig's options: models,
        shots, seeds, ...); the summary: model, shots, metric, mean, std, users, skipped."""
        return evaluate_store(self.engine, EvalConfig(**options)).summary


def _frame(result: Recommendations) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {"rank": r, "item": it.item, "title": it.title, "score": it.score}
            for r, it in enumerate(result.items, 1)
        ],
        columns=["rank", "item", "title", "score"],
    )
    frame.attrs.update(route=result.route, model=result.model, notes=list(result.warnings))
    return frame
