"""Ingestion: read, validate and bulk-write a log or metadata file in one transaction."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recmeta.errors import DataError
from recmeta.ingest import movielens
from recmeta.ingest.files import SEPARATORS, check_encoding, check_file, default_sep, file_kind, sniff_sep
from recmeta.ingest.ids import check_id, clipped
from recmeta.ingest.readers import (
    LogSpec,
    find_column,
    is_count_column,
    parse_event_weights,
    read_raw,
    resolve_columns,
    shown_columns,
    validate,
)
from recmeta.paths import writable_file
from recmeta.store import repository as repo
from recmeta.store import session_scope
from recmeta.store.models import MAX_VALUE, Item, User

Progress = Callable[[int], None]


@dataclass
class IngestReport:
    """What one ingest did."""

    source: str
    rows_read: int = 0
    inserted: int = 0
    rejected: int = 0
    users_created: int = 0
    items_created: int = 0
    rejects_path: str | None = None
    seen_before: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.rows_read - self.rejected - self.inserted

    def as_dict(self) -> dict:
        return {**asdict(self), "duplicates": self.duplicates}


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def looks_like_counts(text: pd.Series) -> bool:
    """Whole numbers of 0 or more whose largest is above 10 and at least 10 times the median:
    counts with a long tail, not ratings on a fixed scale (1-5, 1-10, 0-100)."""
    values = pd.to_numeric(text, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if len(values) < 20 or not np.all(np.isfinite(values)):
        return False
    top, median = float(values.max()), float(np.median(values))
    return bool(
        (values >= 0).all()
        and (values == np.round(values)).all()
        and top > 10
        and top >= 10 * max(median, 1.0)
    )


def default_rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.csv")


def ingest_log(
    session: Session,
    spec: LogSpec,
    *,
    on_error: str = "fail",
    rejects_path: Path | None = None,
    progress: Progress | None = None,
    catalogue: set[str] | None = None,
) -> IngestReport:
    """Ingest an interaction log inside the caller's transaction; with `catalogue` (a
    MovieLens folder's item file), a row whose item is not in it is a bad row.

    `on_error="fail"` raises `DataError` on the first bad row (the caller rolls back, so
    nothing is written); `"skip"` writes the valid rows and the bad ones to `rejects_path`.
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    path = Path(spec.path)
    check_file(path)
    check_encoding(spec.encoding)
    rejects_path = Path(rejects_path or default_rejects_path(path))
    if on_error == "skip":
        writable_file(rejects_path, f"--rejects {rejects_path}")
    sniffed = None if spec.sep or file_kind(path, spec.fmt) != "text" else sniff_sep(path, spec.encoding)
    spec = replace(spec, sep=spec.sep or sniffed)
    with repo.first_load(session):
        report = _ingest_chunks(
            session,
            spec,
            read_raw(spec),
            file_hash(path),
            on_error=on_error,
            rejects_path=rejects_path,
            progress=progress,
            catalogue=catalogue,
        )
    if sniffed is not None and sniffed != default_sep(path):
        name = dict(SEPARATORS)[sniffed]
        report.notes.insert(0, f"its first line is {name}-separated: read as such (--sep sets it)")
    return report


def ingest_events(session: Session, events: list[dict[str, Any]], *, implicit: bool) -> IngestReport:
    """Events sent to a running store (`recmeta serve`, the Python API): dicts with user,
    item, and value and timestamp where known. They pass the validation of a file's rows
    (messages name the event, counting from 1), a missing timestamp is now, a missing value
    counts 1 in an implicit store; any bad event fails them all and nothing is written."""
    if not events:
        raise DataError("no events: send at least one {user, item[, value][, timestamp]}")
    if len(events) > MAX_EVENTS:
        raise DataError(f"{len(events):,} events in one request; send at most {MAX_EVENTS:,}")
    now = int(time.time())
    rows = []
    for k, event in enumerate(events, 1):
        if not isinstance(event, dict):
            raise DataError(f"event {k}: an event is an object with user, item, value, timestamp")
        unknown = set(event) - {"user", "item", "value", "timestamp"}
        if unknown:
            raise DataError(
                f"event {k}: unknown field(s) {sorted(unknown)}; give user, item, value, timestamp"
            )
        value = event.get("value")
        stamp = event.get("timestamp")
        rows.append(
            [
                _text(event.get("user"), k, "user"),
                _text(event.get("item"), k, "item"),
                _text(1 if value is None and implicit else value, k, "value"),
                _text(now if stamp is None else stamp, k, "timestamp"),
            ]
        )
    frame = pd.DataFrame(rows, columns=["user", "item", "value", "timestamp"], index=range(1, len(rows) + 1))
    spec = LogSpec(path=Path("event"), implicit=implicit, explicit=not implicit)
    digest = hashlib.sha256(frame.to_csv().encode()).hexdigest()
    return _ingest_chunks(session, spec, iter([frame]), digest, on_error="fail")


MAX_EVENTS = 10_000  # per request: a larger load is a file for `recmeta ingest`


def _text(value: Any, k: int, name: str) -> str:
    """An event's field as the text a file would hold ('' when missing), for `validate`."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"event {k}: {name} must be a string or a number, not {type(value).__name__}")
    return str(value)


def _ingest_chunks(
    session: Session,
    spec: LogSpec,
    chunks: Iterator[pd.DataFrame],
    digest: str,
    *,
    on_error: str,
    rejects_path: Path | None = None,
    progress: Progress | None = None,
    catalogue: set[str] | None = None,
) -> IngestReport:
    """Validate and write text chunks (indexed by line) of the log that `spec` describes."""
    path = Path(spec.path)
    report = IngestReport(source=str(path))
    report.seen_before = repo.batch_seen(session, digest)
    first = next(chunks, None)
    if first is None:
        raise DataError(f"{path}: the file holds no rows")
    cols = resolve_columns(spec, list(first.columns))
    report.notes.extend(_event_notes(spec, cols, first))
    if cols["value"] is None and not spec.implicit:  # only user, item (and time) columns
        spec = replace(spec, implicit=True)
        report.notes.append("no value column: read as an implicit log, one event per row")
    elif spec.explicit:
        pass
    elif not spec.implicit and spec.value_col is None and is_count_column(cols["value"]):
        spec = replace(spec, implicit=True)
        report.notes.append(
            f"column {cols['value']!r} holds counts: read as an implicit log "
            "(pass --explicit to read it as ratings)"
        )
    elif not spec.implicit and looks_like_counts(first[cols["value"]]):
        spec = replace(spec, implicit=True)
        report.notes.append(
            f"column {cols['value']!r} holds whole numbers with a long tail and no fixed scale "
            "(counts): read as an implicit log (pass --explicit to read it as ratings)"
        )
    # Without timestamps a repeated (user, item) row is another event: its count is added to
    # the stored one. Only an identical file cannot be told apart from a re-sent one: skipped.
    add_counts = spec.implicit and cols["time"] is None
    if add_counts and report.seen_before:
        report.notes.append(
            "this exact file was ingested before; its rows have no timestamps, so they cannot be "
            "told from new events: skipped"
        )
        return report
    batch = repo.start_batch(
        session, source=str(path), kind="implicit" if spec.implicit else "explicit", content_hash=digest
    )
    users, items = repo.id_map(session, User), repo.id_map(session, Item)
    n_users, n_items = len(users), len(items)
    stored = repo.value_range(session) if not spec.implicit else (None, None)
    seen = [np.inf, -np.inf]  # the file's smallest and largest valid value
    conflicts = counted = 0
    wrote_rejects = False
    for raw in itertools.chain([first], chunks):
        chunk = validate(raw, cols, spec)
        report.rows_read += chunk.rows_read
        if len(chunk.rejects):
            if on_error == "fail":
                first = chunk.rejects.iloc[0]
                skip = (
                    " Fix the row, or pass --on-error skip to load the valid rows and write the "
                    "rest to a rejects file"
                    if rejects_path is not None
                    else ""
                )
                raise DataError(f"{path}:{first['line']}: {first['reason']}. Nothing was written.{skip}")
            try:
                chunk.rejects.to_csv(
                    rejects_path, mode="a" if wrote_rejects else "w", header=not wrote_rejects, index=False
                )
            except OSError as exc:
                raise DataError(
                    f"{rejects_path}: cannot write the rejects file ({exc}); nothing was written"
                ) from None
            wrote_rejects = True
            report.rejected += len(chunk.rejects)
        valid = chunk.valid
        if len(valid):
            seen = [min(seen[0], float(valid["value"].min())), max(seen[1], float(valid["value"].max()))]
        if catalogue is not None and len(valid):
            unknown = ~valid["item"].isin(catalogue)
            if unknown.any():
                line = valid.index[unknown.to_numpy()][0]
                raise DataError(
                    f"{path}:{line}: item {valid['item'][unknown].iloc[0]!r} is not in the folder's "
                    "item file; nothing was written"
                )
        if cols["time"] is None and len(valid):
            valid = valid.groupby(["user", "item"], as_index=False, sort=False).agg(
                value=("value", "sum"), timestamp=("timestamp", "first")
            )  # fold repeated clicks
        repo.ensure_entities(session, User, valid["user"], users)
        repo.ensure_entities(session, Item, valid["item"], items)
        frame = pd.DataFrame(
            {
                "user_id": repo.lookup(users, valid["user"]),
                "item_id": repo.lookup(items, valid["item"]),
                "value": valid["value"].to_numpy(),
                "timestamp": valid["timestamp"].to_numpy(),
                "batch_id": batch.id,
            }
        )
        added = repo.insert_interactions(session, frame, add_counts=add_counts)
        report.inserted += added
        if add_counts:
            counted += len(frame) - added
        elif added < len(frame):  # some rows were already stored: say when their values differ
            conflicts += repo.value_conflicts(session, frame)
        if progress:
            progress(report.rows_read)
    if report.rows_read == 0:
        raise DataError(f"{path}: the file has a header but no rows; nothing was written")
    if counted:
        report.notes.append(f"{counted:,} row(s) added to the counts of (user, item) pairs already stored")
    if conflicts:
        report.notes.append(
            f"{conflicts:,} duplicate row(s) (same user, item and time as a stored row) had another "
            "value; the stored value was kept"
        )
    lo, hi = stored
    if lo is not None and report.inserted and (seen[0] < lo or seen[1] > hi):
        report.notes.append(
            f"values {seen[0]:g} to {seen[1]:g} lie outside the {lo:g} to {hi:g} the store held; "
            "check the scale: ratings are compared on one scale, and --with ITEM now counts as "
            f"{max(hi, seen[1]):g}"
        )
    report.users_created = len(users) - n_users
    report.items_created = len(items) - n_items
    report.rejects_path = str(rejects_path) if wrote_rejects else None
    repo.finish_batch(
        session,
        batch,
        rows_read=report.rows_read,
        rows_inserted=report.inserted,
        rows_rejected=report.rejected,
    )
    return report


def ingest_metadata(
    session: Session, entity: type[User] | type[Item], records: list[dict], source: str
) -> IngestReport:
    """Insert or update users or items with their metadata."""
    report = IngestReport(source=source, rows_read=len(records))
    before = len(repo.id_map(session, entity))
    written = repo.upsert_metadata(session, entity, records)
    created = len(repo.id_map(session, entity)) - before
    report.inserted = created  # new rows; the others were updated in place
    if written > created:
        what = "users" if entity is User else "items"
        report.notes.append(f"{written - created:,} {what} already in the store: their metadata was updated")
    if entity is User:
        report.users_created = created
    else:
        report.items_created = created
    return report


def read_metadata(
    path: Path,
    *,
    id_col: str | None = None,
    title_col: str | None = None,
    genres_col: str | None = None,
    year_col: str | None = None,
    sep: str | None = None,
    for_items: bool = True,
) -> list[dict]:
    """Rows of an item or user metadata file; columns not named go into `features`. A column
    not named is found by its usual names (item_id, title, genres, year, ...), as a log's are."""
    spec = LogSpec(path=path, sep=sep)
    role = "item" if for_items else "user"
    records: list[dict] = []
    for raw in read_raw(spec):
        columns = list(raw.columns)
        cid = find_column(columns, role, id_col, str(path))
        if cid is None:
            raise DataError(
                f"{path}:1: no {role} id column; the file has {shown_columns(columns)}. Pass --id-col NAME"
            )
        given = (("title", title_col), ("genres", genres_col), ("year", year_col)) if for_items else ()
        named = {k: find_column(columns, k, v, str(path)) for k, v in given}
        rest = [c for c in raw.columns if c != cid and c not in named.values()]
        if len(rest) > MAX_FEATURES:
            raise DataError(
                f"{path}:1: {len(rest):,} columns besides the id would each become a feature (at most "
                f"{MAX_FEATURES}); keep the columns worth learning from, e.g. with `cut -d, -f1-20`"
            )
        for line, row in raw.iterrows():
            ext = check_id(row[cid].strip(), f"{path}:{line}: column {cid!r}")
            rec: dict = {"external_id": ext}
            if for_items:
                if named["title"]:
                    rec["title"] = row[named["title"]] or None
                if named["genres"]:
                    rec["genres"] = row[named["genres"]].replace(",", "|") or None
                if named["year"]:
                    year = pd.to_numeric(row[named["year"]], errors="coerce")
                    if row[named["year"]] and not (pd.notna(year) and abs(year) <= MAX_YEAR):
                        raise DataError(
                            f"{path}:{line}: column {named['year']!r}: "
                            f"{clipped(row[named['year']])} is not a year"
                        )
                    rec["year"] = None if pd.isna(year) else int(year)
            if rest:
                where = f"{path}:{line}: column"
                rec["features"] = {c: _typed(row[c], f"{where} {c!r}") for c in rest if row[c] != ""}
            records.append(rec)
    return records


MAX_YEAR = 9999  # a year column holds whole years within ±this
MAX_FEATURES = 100  # metadata columns that become features, at most (each one or more dense columns)


def _typed(text: str, where: str) -> float | str:
    """A feature's value: a number where the text is one (finite, within ±MAX_VALUE, as
    interaction values), else the text itself (a category)."""
    num = pd.to_numeric(text, errors="coerce")
    if pd.isna(num):
        return text
    if not abs(num) <= MAX_VALUE:
        raise DataError(f"{where}: {clipped(text)} is not a finite number within ±{MAX_VALUE:g}")
    return float(num)


def ingest_movielens(
    session: Session, directory: Path, fmt: str, progress: Progress | None = None
) -> list[IngestReport]:
    """Ratings, items and users of a MovieLens folder, in the caller's transaction."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a folder; --format {fmt} takes the unpacked folder")
    if fmt == "movielens-100k":
        spec, items, users = (
            movielens.ml100k_log(directory),
            movielens.ml100k_items(directory),
            movielens.ml100k_users(directory),
        )
    elif fmt == "movielens":
        spec, items, users = (movielens.latest_log(directory), movielens.latest_items(directory), [])
    else:
        raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(movielens.FORMATS)}")
    reports = [ingest_metadata(session, Item, items, str(directory / "items"))]
    if users:
        reports.append(ingest_metadata(session, User, users, str(directory / "users")))
    known = {str(r["external_id"]) for r in items}
    reports.insert(0, ingest_log(session, spec, progress=progress, catalogue=known))
    return reports


EVENT_NAMES_SHOWN = 5  # event names a note lists


def _event_notes(spec: LogSpec, cols: dict[str, str | None], first: pd.DataFrame) -> list[str]:
    """What ingest says about events: how --event-weights weighs them, or, for a log read as
    one event a row beside a column of event names, how they could be weighed."""
    if spec.event_weights:
        weights = ", ".join(f"{name} {weight:g}" for name, weight in spec.event_weights)
        return [f"column {cols['value']!r} names events, weighed {weights}: read as an implicit log"]
    unused = [c for c in first.columns if c not in cols.values()]
    column = find_column(unused, "event", None, "") if cols["value"] is None and spec.implicit else None
    if column is None:
        return []
    names = first[column].str.strip().value_counts().index[:EVENT_NAMES_SHOWN]
    example = ",".join(f"{name}=1" for name in names if name and "," not in name and "=" not in name)
    return [
        f"column {column!r} names events ({', '.join(map(clipped, names))}): each row counts as one; "
        f"--event-weights {example} weighs them"
    ]


def file_spec(path: Path, fmt: str, **spec: Any) -> LogSpec:
    """The LogSpec of a log file from ingest's options, checked against each other: `names`
    (a list, or text split by commas) names the columns of a file without a header line; a
    headerless file without them has the columns user, item, value, timestamp."""
    names = spec.get("names")
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    if names:
        if not all(names) or len(set(names)) < len(names):
            raise DataError(
                f"--names {','.join(names)}: give each column a name once, as user,item,rating,time"
            )
        spec["names"], spec["header"] = tuple(names), False
    if file_kind(path, fmt) != "text":
        layout = (
            ("--sep", spec.get("sep")),
            ("--names", names),
            ("--no-header", not spec.get("header", True) and not names),
        )
        given = [option for option, value in layout if value]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise DataError(f"{' and '.join(given)} {verb} to CSV/TSV logs, not to {path.name}")
    spec["sep"] = spec.get("sep") or {"tsv": "\t", "csv": ","}.get(fmt)
    if not spec.get("header", True) and not spec.get("names"):
        spec["names"] = tuple(
            spec.get(f"{r}_col") or d
            for r, d in (("user", "user"), ("item", "item"), ("value", "value"), ("time", "timestamp"))
        )
    if spec.get("implicit") and spec.get("explicit"):
        raise DataError("--implicit and --explicit contradict each other; give one")
    spec["event_weights"] = parse_event_weights(spec.get("event_weights"))
    if spec["event_weights"] and spec.get("explicit"):
        raise DataError(
            "--event-weights makes an implicit log (events weighed); it cannot go with --explicit"
        )
    spec["implicit"] = spec.get("implicit", False) or bool(spec["event_weights"])
    return LogSpec(path=path, fmt=fmt, **spec)


FILE_FORMATS = ("auto", "csv", "tsv", "parquet", "jsonl")


def ingest_path(
    session: Session,
    path: Path,
    fmt: str = "auto",
    *,
    on_error: str = "fail",
    rejects_path: Path | None = None,
    progress: Progress | None = None,
    **spec: Any,
) -> list[IngestReport]:
    """Ingest a log in any supported layout: a MovieLens folder (`fmt` movielens-100k or
    movielens) or a CSV/TSV/Parquet/JSON Lines file described by `spec` (`file_spec`)."""
    if fmt in movielens.FORMATS:
        return ingest_movielens(session, Path(path), fmt, progress)
    if fmt not in FILE_FORMATS:
        raise DataError(
            f"unknown format {fmt!r}; choose {', '.join(FILE_FORMATS)} or {', '.join(movielens.FORMATS)}"
        )
    log_spec = file_spec(Path(path), fmt, **spec)
    return [ingest_log(session, log_spec, on_error=on_error, rejects_path=rejects_path, progress=progress)]


def ingest_paths(
    session: Session,
    paths: list[Path],
    fmt: str = "auto",
    *,
    rejects_path: Path | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> list[IngestReport]:
    """Several logs of one layout (a folder of daily files), one after another inside the
    caller's transaction: every one is written, or none. `progress` gets the rows read
    across all of them."""
    if rejects_path is not None and len(paths) > 1:
        raise DataError("--rejects names one file; with several logs each gets its own (LOG.rejects.csv)")
    reports: list[IngestReport] = []
    before = 0
    for path in paths:
        tick = None if progress is None else (lambda n, base=before: progress(base + n))
        done = ingest_path(session, Path(path), fmt, rejects_path=rejects_path, progress=tick, **options)
        before += sum(r.rows_read for r in done)
        reports += done
    return reports


def ingest_file(engine: Engine, fn: Callable[[Session], IngestReport | list[IngestReport]]):
    """Run one ingest in one transaction: on any error nothing is written."""
    with session_scope(engine) as session:
        return fn(session)
