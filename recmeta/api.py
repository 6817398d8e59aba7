"""The Python API, for notebooks and services: a store, and what the CLI does with it, with
DataFrames out.

    from recmeta.api import Recmeta

    rm = Recmeta("shop.db")                  # a SQLite file, or postgresql://...
    rm.ingest(clicks_frame, implicit=True)   # the same validation as `recmeta ingest`
    rm.train()                               # all models; a DataFrame of what was fitted
    rm.recommend(user="42")                  # item, title, score, rank
    rm.recommend(items={"50": 5, "181": 4})  # someone not in the store; nothing written
    rm.add_interactions([{"user": "42", "item": "50"}])  # counts in the next recommend at once

One `Recmeta` serves many requests (`recmeta serve` runs on one): checkpoints load once and
`refresh()` switches to newly trained ones without failing requests in flight.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from recmeta.errors import DataError, distinct
from recmeta.learners import BASELINES, META_LEARNERS, REGISTRY
from recmeta.recommend import Filters, Recommendations, RecommendationService
from recmeta.store import make_engine, session_scope
from recmeta.store import repository as repo

if TYPE_CHECKING:  # pandas, training and evaluation are imported when used: a single
    import pandas as pd  # `recmeta recommend` starts faster without them

MODELS = (*META_LEARNERS, *BASELINES)  # what train and evaluate fit unless told otherwise
BATCH_CHUNK = 1024  # users per chunk of a batch: the unit of work, of output and of sharding


class Recmeta:
    """One store (`db`: a SQLite path, a database URL or an Engine; default ./recmeta.db or
    $RECMETA_DB). Safe to share between threads."""

    def __init__(
        self,
        db: str | Engine | None = None,
        models_dir: str | Path = "models",
        *,
        check_every: float | None = 0.0,
    ) -> None:
        """`check_every`: `recommendations` calls `refresh` when this many seconds have passed
        since the last check (0: every call, two small queries); None: only when called (a
        server refreshes in the background instead)."""
        self.engine = db if isinstance(db, Engine) else make_engine(db)
        self.models_dir = Path(models_dir)
        self.check_every = check_every
        self._service: RecommendationService | None = None
        self._serving: tuple | None = None  # what the service was built from (see `refresh`)
        self._checked = -math.inf
        self._lock = threading.Lock()

    # ------------------------------------------------------------ serving state
    @property
    def service(self) -> RecommendationService:
        """The warm recommendation service: active checkpoints loaded once, the catalogue read
        once (built on first use; `refresh` replaces it)."""
        service = self._service
        if service is None:
            self.refresh()
            service = self._service
        return service

    def refresh(self, *, preload: bool = False) -> bool:
        """Switch to what the store holds now when its active models or its catalogue changed
        since the service was built: a new service is made (with `preload`, every model loaded
        and warmed) and then swapped in, so requests already running finish on the old one.
        True when it switched."""
        with self._lock:
            self._checked = time.monotonic()
            with session_scope(self.engine) as session:
                now = repo.serving_state(session)
            if self._service is not None and now == self._serving:
                return False
            service = RecommendationService(self.engine)
            if preload:
                service.preload()
            self._service, self._serving = service, now
            return True

    def ingest(self, frame: pd.DataFrame | str | Path | Sequence[str | Path], **spec: Any) -> dict[str, Any]:
        """Load interactions from a DataFrame (user, item[, value][, timestamp] columns, named
        as `recmeta ingest` recognises them or with user_col=..., item_col=...; implicit=True
        for clicks) or from files or a MovieLens folder, as `recmeta ingest interactions` reads
        them (fmt=..., sep=..., header=...). All or nothing; returns the ingest report (or
        {"reports": [...]}, one a file)."""
        import pandas as pd

        from recmeta.ingest.pipeline import ingest_file, ingest_path, ingest_paths

        if isinstance(frame, (str, Path, list, tuple)):
            fmt, paths = spec.pop("fmt", "auto"), [frame] if isinstance(frame, (str, Path)) else list(frame)
            (report, *more) = ingest_file(self.engine, lambda s: ingest_paths(s, paths, fmt, **spec))
            self._service = None
            return report.as_dict() if not more else {"reports": [r.as_dict() for r in (report, *more)]}
        if not isinstance(frame, pd.DataFrame) or frame.empty:
            raise DataError("ingest takes a DataFrame with at least one row, or a file's path")
        with tempfile.TemporaryDirectory(prefix="recmeta-api-") as tmp:
            path = Path(tmp) / "frame.parquet"
            frame.to_parquet(path, index=False)
            try:
                (report,) = ingest_file(self.engine, lambda s: ingest_path(s, path, **spec))
            except DataError as exc:  # "frame.parquet:3:" is the frame's third row
                said = re.sub(
                    rf"{re.escape(str(path))}:(\d+):", lambda m: f"frame.iloc[{int(m[1]) - 1}]:", str(exc)
                )
                raise DataError(said.replace(str(path), "the frame")) from None
        self._service = None  # the catalogue may have grown
        return report.as_dict()

    def add_interactions(self, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Append events ({user, item, value?, timestamp?} each) through ingest's validation,
        all or nothing; a user's next recommendation counts them at once, with no training.
        A missing timestamp is now; a missing value is 1 in an implicit store (a ratings store
        needs one). Returns what was written (inserted, duplicates, users/items created)."""
        from recmeta.ingest.pipeline import ingest_events

        events = [dict(e) if isinstance(e, Mapping) else e for e in events]
        with session_scope(self.engine) as session:
            implicit = repo.log_is_implicit(session)
            report = ingest_events(session, events, implicit=implicit)
        out = report.as_dict()
        return {k: out[k] for k in ("inserted", "duplicates", "users_created", "items_created", "notes")}

    def train(self, models: Iterable[str] = MODELS, *, resume: bool = False, **options: Any) -> pd.DataFrame:
        """Fit (or, with resume=True, continue) models as `recmeta train` does; one row per
        model: path, seconds, validation ndcg@10 by support size. `options` are TrainConfig's
        (seed, epochs, max_time, replay, params, workers, threads); a torchrun worker other
        than rank 0 gets no rows."""
        import pandas as pd

        from recmeta.train import TrainConfig, train

        cfg = TrainConfig(models=distinct(models), models_dir=self.models_dir, resume=resume, **options)
        results = train(self.engine, cfg) or []
        self._service = None  # new checkpoints are active
        return pd.DataFrame(
            [{"model": r.kind, "path": str(r.path), "seconds": r.seconds, **r.validation} for r in results]
        )

    def recommendations(
        self,
        user: str | None = None,
        items: Mapping[str, float | None] | Iterable[str | tuple[str, float | None]] | None = None,
        n: int = 10,
        model: str = "auto",
        exclude: Iterable[str] = (),
        candidates: Iterable[str] | None = None,
        explain: bool = False,
        remember: str | None = None,
    ) -> Recommendations:
        """Top `n` for a stored `user`, or for someone known only by `items` (item ids, (item,
        value) pairs, or a mapping item -> value; None for a like); nothing is written unless
        `remember` names a new user to store those items as. The route, the model, the items
        with their scores (and reasons with `explain`) and any notes."""
        service = self._checked_service(model)
        filters = Filters.of(exclude, candidates)
        if (user is None) == (items is None):
            raise DataError("give either user=... or items=...")
        if user is not None:
            if remember is not None:
                raise DataError("remember=... stores the items of someone new; it does not go with user=...")
            return service.for_user(str(user), n=n, model=model, explain=explain, filters=filters)
        pairs = (
            list(items.items())
            if isinstance(items, Mapping)
            else [i if isinstance(i, tuple) else (i, None) for i in items]
        )
        history = service.history_of(pairs)
        result = service.for_history(
            history, n=n, model=model, explain=explain, filters=filters, user=remember
        )
        if remember is not None:
            service.remember(remember, history)
            result.warnings.append(f"stored {len(history)} interaction(s) as new user {remember!r}")
        return result

    def recommend(self, user: str | None = None, items=None, n: int = 10, **options: Any) -> pd.DataFrame:
        """`recommendations` as a frame: rank, item, title, score (and reasons with
        explain=True); `attrs` hold the route, the model and any notes."""
        return _frame(self.recommendations(user, items, n, **options))

    def user_ids(self) -> Iterator[str]:
        """Every user id in the store, streamed (for `recommend_users_to` over everyone)."""
        return repo.iter_user_ids(self.engine)

    def user_count(self) -> int:
        """How many users the store holds."""
        with session_scope(self.engine) as session:
            return repo.entity_counts(session)[0]

    def recommend_users_to(
        self,
        users: Iterable[str],
        out: str | Path,
        n: int = 10,
        model: str = "auto",
        exclude: Iterable[str] = (),
        candidates: Iterable[str] | None = None,
        workers: int = 1,
        threads: int | None = None,
        chunk: int = BATCH_CHUNK,
        progress=None,
    ) -> dict[str, Any]:
        """Top `n` for a stream of stored users, written to `out` (.parquet, .csv or .jsonl)
        chunk by chunk, so memory stays flat however many users there are. `workers` > 1
        scores chunks in that many processes (`threads` intra-op threads each); the file
        is the same as one process writes with the same threads per process. Returns the
        counts: users, rows, unknown (skipped ids) and one unknown id as an example."""
        from recmeta.recommend import RecsWriter

        if workers < 1 or chunk < 1:
            raise DataError("workers and chunk must be at least 1")
        from recmeta.threads import check_parallel

        check_parallel("--workers", workers)
        self._checked_service(model)
        args = (
            n,
            model,
            tuple(map(str, exclude)),
            None if candidates is None else tuple(map(str, candidates)),
        )
        chunks = _chunks((str(u) for u in users), chunk)
        done = {"users": 0, "rows": 0, "unknown": 0, "unknown_example": None}
        with RecsWriter(Path(out)) as writer:
            for frame, missing, size in _score_chunks(self, chunks, args, workers, threads):
                writer.write(frame)
                done["users"] += size - len(missing)
                done["unknown"] += len(missing)
                done["unknown_example"] = done["unknown_example"] or (missing[0] if missing else None)
                if progress:
                    progress(size)
            done["rows"] = writer.rows
        return done

    def similar_items(self, item: str, n: int = 10, model: str = "auto") -> Recommendations:
        """Items like `item`, as `recmeta similar`."""
        return self._checked_service(model).similar(str(item), n=n, model=model)

    def similar(self, item: str, n: int = 10, model: str = "auto") -> pd.DataFrame:
        """`similar_items` as a frame: rank, item, title, score."""
        return _frame(self.similar_items(item, n, model))

    def _checked_service(self, model: str) -> RecommendationService:
        if model != "auto" and model not in REGISTRY:
            raise DataError(f"unknown model {model!r}; choose auto, {', '.join(REGISTRY)}")
        if self.check_every is not None and time.monotonic() - self._checked >= self.check_every:
            self.refresh()
        return self.service

    def models(self, active_only: bool = False) -> list[dict[str, Any]]:
        """Registered checkpoints, newest first: id, name, kind, active, path, created,
        validation ndcg@10 by support size, lineage (parent, watermark range, new rows), config."""
        with session_scope(self.engine) as session:
            return repo.describe_models(session, active_only=active_only)

    def activate(self, model_id: int) -> dict[str, Any]:
        """Serve checkpoint `model_id` for its name from now on (roll back to an earlier one, or
        forward again); a running server switches at its next check. Its file must load."""
        from recmeta.checkpoint import read_manifest

        if isinstance(model_id, bool) or not str(model_id).strip().isdigit():
            raise DataError(
                f"a checkpoint id is a whole number (`recmeta models` lists them), not {model_id!r}"
            )
        with session_scope(self.engine) as session:
            model = repo.activate_model(session, int(model_id))
            if model.kind != "router":
                read_manifest(Path(model.path))  # a missing or damaged file: nothing changes
            return {"id": model.id, "name": model.name, "path": model.path}

    def prune(self, keep: int = 1, *, dry_run: bool = False) -> dict[str, Any]:
        """Delete the inactive checkpoints of each name beyond the `keep` newest inactive ones
        (kept for `activate`), registry rows and files (and a run's learning curves once none of
        its checkpoints is left); active checkpoints are never touched.
        With `dry_run`, only say what would go."""
        if keep < 0:
            raise DataError("--keep must be 0 or more")
        with session_scope(self.engine) as session:
            stale = repo.stale_models(session, keep)
            gone = [{"id": m.id, "name": m.name, "path": m.path} for m in stale]
            ids = {m.id for m in stale}
            still = {m.path for m in repo.list_models(session) if m.id not in ids}  # shared files stay
            if not dry_run:
                for m in stale:
                    session.delete(m)
        files = _stale_files([g["path"] for g in gone], still)
        freed = sum(f.stat().st_size for f in files)
        if not dry_run:
            for f in files:  # after the rows are gone: a crash here leaves files, never a row
                f.unlink(missing_ok=True)  # pointing at nothing
        return {"removed": gone, "files": len(files), "bytes": freed, "dry_run": dry_run}

    def health(self) -> dict[str, Any]:
        """Whether the store answers and which models are loaded (name -> registry id)."""
        with session_scope(self.engine) as session:
            users, items = repo.entity_counts(session)
        service = self._service
        loaded = {} if service is None else {k: v.id for k, v in service.registry.items()}
        return {"store": "ok", "users": users, "items": items, "models": loaded}

    def evaluate(self, **options: Any) -> pd.DataFrame:
        """PROTOCOL.md's cold-start evaluation of the store (EvalConfig's options: models,
        shots, seeds, ...); the summary: model, shots, metric, mean, std, users, skipped."""
        from recmeta.evaluate import EvalConfig
        from recmeta.evaluate.run import evaluate_store

        return evaluate_store(self.engine, EvalConfig(**options)).summary


def _chunks(items: Iterable[str], size: int) -> Iterable[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _score_chunks(rm: Recmeta, chunks: Iterable[list[str]], args: tuple, workers: int, threads: int | None):
    """(frame, unknown ids, chunk size) per chunk, in order: in this process, or in
    `workers` spawned processes with at most two chunks each in flight."""
    if workers == 1:
        for users in chunks:
            yield (*_score(rm.service, users, args), len(users))
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    url = rm.engine.url.render_as_string(hide_password=False)
    per = threads or max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(url, per)
    ) as pool:
        pending: deque = deque()
        for users in chunks:
            pending.append((pool.submit(_worker_score, users, args), len(users)))
            if len(pending) >= 2 * workers:
                future, size = pending.popleft()
                yield (*future.result(), size)
        while pending:
            future, size = pending.popleft()
            yield (*future.result(), size)


def _score(service: RecommendationService, users: list[str], args: tuple):
    n, model, exclude, candidates = args
    return service.batch_users(users, n=n, model=model, filters=Filters.of(exclude, candidates))


_WORKER: dict[str, RecommendationService] = {}


def _start_worker(url: str, threads: int) -> None:
    from recmeta.threads import set_threads

    set_threads(threads)
    _WORKER["service"] = Recmeta(url, check_every=None).service


def _worker_score(users: list[str], args: tuple):
    return _score(_WORKER["service"], users, args)


def _stale_files(gone: list[str], still: set[str]) -> list[Path]:
    """The files of pruned checkpoints that no remaining row uses, only of the kinds train
    writes, and the learning curves (curves-STAMP.png) of runs with no checkpoint left."""
    files = [
        Path(p)
        for p in gone
        if p not in still and Path(p).suffix in (".safetensors", ".json") and Path(p).is_file()
    ]
    from recmeta.training.curves import curves_path

    runs = {curves_path(f) for f in files}
    kept = {curves_path(Path(p)) for p in still}  # a run with a checkpoint left keeps its curves
    return files + sorted(c for c in runs - kept if c.is_file())


def _frame(result: Recommendations) -> pd.DataFrame:
    import pandas as pd

    explained = any(it.reasons for it in result.items)
    columns = ["rank", "item", "title", "score", *(["reasons"] if explained else [])]
    frame = pd.DataFrame(
        [
            {"rank": r, "item": it.item, "title": it.title, "score": it.score, "reasons": it.reasons}
            for r, it in enumerate(result.items, 1)
        ],
        columns=columns,
    )
    frame.attrs.update(route=result.route, model=result.model, notes=list(result.warnings))
    return frame
