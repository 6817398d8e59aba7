"""Chunked readers for CSV, TSV and Parquet logs, and row validation that names file, line and reason.

Every value is read as text and validated here, so that a bad row is reported with its
file, line, column and reason instead of a pandas traceback.
"""

from __future__ import annotations

import lzma
import math
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recmeta.errors import DataError
from recmeta.ingest.files import (
    COMPRESSED,
    SEPARATORS,
    WHITESPACE,
    check_encoding,
    check_file,
    check_text,
    file_kind,
    holds,
    sniff_sep,
)
from recmeta.ingest.ids import CONTROL, MAX_ID_LENGTH, clipped
from recmeta.store.models import MAX_VALUE

CHUNK_ROWS = 200_000
MAX_UNIX_SECONDS = 4_102_444_800  # 2100-01-01: later timestamps are taken as impossible

# A value column found under one of these names holds counts: the log is read as implicit
COUNT_COLUMNS = (
    "weight",
    "count",
    "plays",
    "play_count",
    "playcount",
    "listens",
    "listen_count",
    "clicks",
    "views",
    "quantity",
    "qty",
    "purchases",
    "purchase_count",
    "interactions",
)

ALIASES = {
    "user": (
        "user",
        "user_id",
        "userid",
        "uid",
        "customer",
        "customer_id",
        "visitor",
        "visitorid",
        "visitor_id",
        "session_id",
        "reviewer_id",
        "reviewerid",
        "member_id",
        "account_id",
        "client_id",
    ),
    "item": (
        "item",
        "item_id",
        "itemid",
        "iid",
        "movie_id",
        "movieid",
        "product_id",
        "productid",
        "track_id",
        "song_id",
        "article_id",
        "artist_id",
        "book_id",
        "isbn",
        "asin",
        "anime_id",
        "business_id",
        "video_id",
        "sku",
        "product",
        "movie",
        "track",
        "song",
        "artist",
        "book",
        "article",
        "video",
        "business",
        "parent_asin",
    ),
    "value": ("value", "rating", "score", "stars", "overall", *COUNT_COLUMNS),
    "event": (  # a column of event names, weighed by --event-weights
        "event",
        "event_type",
        "behavior",
        "behavior_type",
        "behaviour",
        "action",
        "action_type",
        "interaction_type",
    ),
    "time": (
        "timestamp",
        "time",
        "ts",
        "datetime",
        "date",
        "event_time",
        "created_at",
        "unix_review_time",
        "date_added",
    ),
    "title": ("title", "name", "item_name", "movie_title", "product_name"),
    "genres": ("genres", "genre", "categories", "category"),
    "year": ("year", "release_year"),
}


@dataclass(frozen=True)
class LogSpec:
    """How to read one interaction log."""

    path: Path
    user_col: str | None = None
    item_col: str | None = None
    value_col: str | None = None
    time_col: str | None = None
    implicit: bool = False
    explicit: bool = False  # the value column holds ratings, whatever its name or values say
    sep: str | None = None  # None: by extension, or what the first line is split by (`sniff_sep`)
    header: bool = True
    names: tuple[str, ...] | None = None  # column names for a headerless file
    encoding: str = "utf-8"
    time_unit: str = "s"  # numeric timestamps: 's' or 'ms'
    fmt: str = "auto"  # csv, tsv, parquet or jsonl; auto: by extension (`file_kind`)
    event_weights: tuple[tuple[str, float], ...] = ()  # (event name, weight): the value column names events


@dataclass
class Chunk:
    """Validated rows of one chunk and the rows rejected from it."""

    valid: pd.DataFrame  # user, item, value, timestamp
    rejects: pd.DataFrame  # line, reason, then the raw columns
    rows_read: int = 0
    extra: dict = field(default_factory=dict)


def read_raw(spec: LogSpec, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Yield text frames indexed by file line number, chunk by chunk; memory stays bounded."""
    path = Path(spec.path)
    check_file(path)
    check_encoding(spec.encoding)
    kind = file_kind(path, spec.fmt)
    if kind == "parquet":
        yield from _read_parquet(path, chunk_rows)
        return
    check_text(path, spec.encoding)
    if kind == "json":
        from recmeta.ingest.json_log import read_json

        yield from read_json(path, COMPRESSED.get(path.suffix.lower(), open), spec.encoding, chunk_rows)
        return
    sep = spec.sep or sniff_sep(path, spec.encoding)
    first = 2 if spec.header else 1
    text = dict(
        sep=sep,
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,
        encoding=spec.encoding,
        engine="python" if len(sep) > 1 and sep != WHITESPACE else "c",
    )
    try:
        names = list(spec.names) if spec.names else None
        if spec.header and not names:  # pandas would rename a repeated name 'user.1'
            _check_header(path, pd.read_csv(path, header=None, nrows=1, **text))
        elif names and not spec.header:  # as many names as the first line has fields (3: no times)
            fields = pd.read_csv(path, header=None, nrows=1, **text).shape[1]
            names = names[:fields] + [f"column_{i + 1}" for i in range(len(names), fields)]
        reader = pd.read_csv(
            path,
            header=0 if spec.header else None,
            names=names,
            chunksize=chunk_rows,
            **text,
        )
        for frame in reader:
            frame.columns = [str(c).strip() for c in frame.columns]
            frame.index = pd.RangeIndex(first, first + len(frame))
            yield frame
            first += len(frame)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: {_parser_message(exc)}") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not {spec.encoding} text ({exc.reason}); pass --encoding") from exc
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:  # .gz/.bz2/.xz/.zip, read as it streams
        raise DataError(
            f"{path}: cannot be read to its end ({exc}); a compressed file that is damaged or cut short?"
        ) from exc


def _check_header(path: Path, head: pd.DataFrame) -> None:
    """A header that names one column twice is an error: which would be the user's?"""
    names = [str(c).strip() for c in (head.iloc[0] if len(head) else [])]
    twice = sorted({n for n in names if n and names.count(n) > 1})  # unnamed columns may repeat
    if twice:
        raise DataError(f"{path}:1: the header names {clipped(twice[0])} twice; rename one of the columns")


def _parser_message(exc: Exception) -> str:
    text = str(exc).strip()
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return f"line {m.group(2)}: expected {m.group(1)} fields, found {m.group(3)}"
    return text.replace("Error tokenizing data. C error: ", "")


def _read_parquet(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc

    nested = [f.name for f in pf.schema_arrow if pa.types.is_nested(f.type)]
    if nested:
        raise DataError(
            f"{path}: column(s) {nested} hold lists or structs, not single values; flatten them "
            "(one row per interaction) before ingesting"
        )
    first = 1
    for batch in pf.iter_batches(batch_size=chunk_rows):
        # timestamps of any unit and zone as whole unix seconds, in Arrow: pandas would refuse
        # sub-second nanoseconds and dates beyond its nanosecond range (year 2262)
        columns = [
            pc.cast(c, pa.timestamp("s", c.type.tz), safe=False).cast(pa.int64())
            if pa.types.is_timestamp(c.type)
            else c
            for c in batch.columns
        ]
        frame = pa.Table.from_arrays(columns, names=batch.schema.names).to_pandas()
        text = pd.DataFrame({str(c): column_text(frame[c]) for c in frame.columns})
        text.index = pd.RangeIndex(first, first + len(text))
        yield text
        first += len(text)


def _as_text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return str(v)


def column_text(col: pd.Series) -> pd.Series:
    """A Parquet column as the text a CSV would hold ('' where missing): ids and values that
    pandas stored as floats read 7, not 7.0; datetimes as unix seconds."""
    return col.map(_as_text) if col.dtype == object else _numeric_text(col)


def _numeric_text(col: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col):
        ts = col.dt.tz_localize("UTC") if col.dt.tz is None else col.dt.tz_convert("UTC")
        return unix_seconds(ts).astype("Int64").astype(str).where(col.notna(), "")
    text = col.astype(str)
    if pd.api.types.is_float_dtype(col):  # ids that pandas stored as floats (an int column with
        values = col.to_numpy(np.float64)  # a gap) read 1, as a CSV writes them, not 1.0
        whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**53)
        text[whole] = values[whole].astype(np.int64).astype(str)
    return text.where(col.notna(), "")


def to_float(text: pd.Series) -> pd.Series:
    """Numbers from text; NaN where a value is not a number. Arrow's cast does a clean chunk
    in one pass; a chunk with a bad value falls back to pandas, which marks it NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        values = pc.cast(pa.array(text, type=pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
        return pd.Series(values, index=text.index)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.to_numeric(text, errors="coerce").astype(np.float64)


def unix_seconds(ts: pd.Series) -> pd.Series:
    """Seconds since 1970 of tz-aware datetimes, whatever their unit; NaN where missing. The
    epoch takes the datetimes' unit: in nanoseconds, a year such as 1 (what "１" parses
    as) would overflow instead of coming out as an impossible timestamp."""
    return (ts - pd.Timestamp(0, tz="UTC").as_unit(ts.dt.unit)) / pd.Timedelta(seconds=1)


def parse_event_weights(given: str | Mapping[str, float] | None) -> tuple[tuple[str, float], ...]:
    """`view=1,cart=3,purchase=5` (or a mapping) as (event, weight) pairs; each weight a
    positive number within ±MAX_VALUE, each event named once."""
    if not given:
        return ()
    pairs = (
        list(given.items())
        if isinstance(given, Mapping)
        else [p.partition("=")[::2] for p in given.split(",")]
    )
    out: dict[str, float] = {}
    for name, weight in pairs:
        name = str(name).strip()
        try:
            value = float(weight)
        except (TypeError, ValueError):
            value = math.nan
        if not name or not 0 < value <= MAX_VALUE:
            raise DataError(
                f"--event-weights: {clipped(f'{name}={weight}')} is not EVENT=WEIGHT with a positive weight; "
                "give them as view=1,cart=3,purchase=5"
            )
        if name in out:
            raise DataError(f"--event-weights: {clipped(name)} is given twice")
        out[name] = value
    return tuple(out.items())


def resolve_columns(spec: LogSpec, columns: list[str]) -> dict[str, str | None]:
    """Map the roles user/item/value/time onto the file's column names. A name matches
    an alias, or a name given, whatever its case, spaces, hyphens and underscores
    (`artistID`, `Artist ID` and `artist_id` alike). With event weights, the value column
    is the one of event names (event, action, behavior_type, ...)."""
    given = {"user": spec.user_col, "item": spec.item_col, "value": spec.value_col, "time": spec.time_col}
    hint = _delimiter_hint(spec, columns)
    out = {
        role: find_column(
            columns, "event" if role == "value" and spec.event_weights else role, name, f"{spec.path}", hint
        )
        for role, name in given.items()
    }
    if spec.event_weights and out["value"] is None:
        raise DataError(
            f"{spec.path}:1: no column of event names for --event-weights; the file has "
            f"{shown_columns(columns)}. Pass --value-col NAME"
        )
    for role in ("user", "item"):
        if out[role] is None and spec.header and len(columns) > 1 and all(map(_numeric, columns)):
            raise DataError(
                f"{spec.path}:1: the first line looks like data, not column names "
                f"({shown_columns(columns)}); pass --no-header to read the columns as user, item, "
                "value, timestamp"
            )
        if out[role] is None:
            raise DataError(
                f"{spec.path}:1: no {role} column; the file has {shown_columns(columns)}. "
                f"Pass --{role}-col NAME{_delimiter_hint(spec, columns)}"
            )
    unused = [c for c in columns if c not in out.values()]
    if out["value"] is None and not spec.implicit and unused:
        events = find_column(unused, "event", None, "")
        weigh = f", or --event-weights view=1,purchase=5 to weigh the events of {events!r}" if events else ""
        raise DataError(
            f"{spec.path}:1: no value (rating) column; the file has {shown_columns(columns)}. "
            f"Pass --value-col NAME, or --implicit for a click or count log{weigh}"
        )
    return out  # no value column and nothing else in the file: a click log (see ingest_log)


def find_column(columns: list[str], role: str, name: str | None, where: str, hint: str = "") -> str | None:
    """The column for `role`: the one named `name` (an error when there is none), else the first
    of the role's usual names (ALIASES) the file has, else None. Names match whatever their
    case, spaces, hyphens and underscores."""
    plain: dict[str, str] = {}
    for c in columns:
        plain.setdefault(_plain(c), c)  # the first of two columns that read the same
    if name is None:
        return next((plain[_plain(a)] for a in ALIASES[role] if _plain(a) in plain), None)
    found = name if name in columns else plain.get(_plain(name))
    if found is None:
        raise DataError(
            f"{where}:1: no column {name!r} for the {role}; the file has {shown_columns(columns)}{hint}"
        )
    return found


def shown_columns(columns, most: int = 12, width: int = 40) -> str:
    """A file's column names for a message: all of a few, else the first ones and the count;
    each name cut to `width` characters (a header can be one long line)."""
    names = ", ".join(clipped(str(c), width) for c in list(columns)[:most])
    return f"[{names}]" if len(columns) <= most else f"{len(columns):,} columns, [{names}, ...]"


def _plain(name: str) -> str:
    """A column name without case, spaces, hyphens or underscores."""
    return re.sub(r"[\s_\-]", "", name.lower())


def is_count_column(name: str) -> bool:
    """Whether a value column's name says it holds counts (`COUNT_COLUMNS`, spelt any way)."""
    return _plain(name) in {_plain(c) for c in COUNT_COLUMNS}


def _delimiter_hint(spec: LogSpec, columns: list[str]) -> str:
    if len(columns) != 1:
        return ""
    for sep, name in SEPARATORS:
        if holds(columns[0], sep):
            shown = "\\t" if sep == "\t" else sep
            return f" (one column: the file looks {name}-separated; pass --sep '{shown}')"
    return ""


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def validate(raw: pd.DataFrame, cols: dict[str, str | None], spec: LogSpec) -> Chunk:
    """Turn a text chunk (indexed by line) into typed rows; every bad row gets its first reason.

    Blank lines are passed over.
    """
    raw = raw[~(raw == "").all(axis=1)]
    reason = pd.Series(pd.NA, index=raw.index, dtype="string")

    def flag(mask: pd.Series, text: str, shown: pd.Series | None = None) -> None:
        """Give the rows of `mask` that have no reason yet this one; `{}` in `text` becomes
        each row's value from `shown` (formatted only for the flagged rows)."""
        nonlocal reason
        mask = mask & reason.isna()
        if mask.any():
            msg = text if shown is None else shown[mask].map(lambda v: text.format(clipped(v)))
            reason = reason.mask(mask, msg)

    user = raw[cols["user"]].str.strip()
    item = raw[cols["item"]].str.strip()
    flag(user == "", f"column {cols['user']!r}: empty user id")
    flag(item == "", f"column {cols['item']!r}: empty item id")
    for role in ("user", "item"):
        ids = user if role == "user" else item
        flag(
            ids.str.len() > MAX_ID_LENGTH,
            f"column {cols[role]!r}: {role} id longer than {MAX_ID_LENGTH} characters",
        )
        flag(
            ids.str.contains(CONTROL, regex=True),
            f"column {cols[role]!r}: {role} id holds a control character",
        )

    if cols["value"] is not None and spec.event_weights:
        vtext = raw[cols["value"]].str.strip()
        weights = dict(spec.event_weights)
        value = vtext.map(weights)
        named = ", ".join(weights)
        flag(
            value.isna(),
            f"column {cols['value']!r}: event {{}} has no weight in --event-weights ({named})",
            vtext,
        )
    elif cols["value"] is not None:
        vtext = raw[cols["value"]].str.strip()
        value = to_float(vtext)
        flag(vtext == "", f"column {cols['value']!r}: missing value")
        flag(value.isna(), f"column {cols['value']!r}: {{}} is not a number", vtext)
        flag(~np.isfinite(value.fillna(0)), f"column {cols['value']!r}: not a finite number")
        flag(
            value.abs() > MAX_VALUE,
            f"column {cols['value']!r}: {{}} is beyond ±{MAX_VALUE:g}, larger than any rating or count",
            vtext,
        )
    else:
        value = pd.Series(1.0, index=raw.index)

    if cols["time"] is not None:
        timestamp = _parse_times(raw[cols["time"]].str.strip(), cols["time"], spec, flag)
    else:
        timestamp = pd.Series(0, index=raw.index, dtype=np.int64)

    bad = reason.notna()
    valid = pd.DataFrame(
        {
            "user": user[~bad].to_numpy(),
            "item": item[~bad].to_numpy(),
            "value": value[~bad].astype(np.float64).to_numpy(),
            "timestamp": timestamp[~bad].astype(np.int64).to_numpy(),
        },
        index=raw.index[~bad.to_numpy()],  # file line numbers, for messages about valid rows
    )
    rejects = raw[bad].copy()
    rejects.insert(0, "reason", reason[bad].astype(str).to_numpy())
    rejects.insert(0, "line", raw.index[bad.to_numpy()])
    return Chunk(valid=valid, rejects=rejects, rows_read=len(raw))


def _parse_times(text: pd.Series, col: str, spec: LogSpec, flag) -> pd.Series:
    flag(text == "", f"column {col!r}: missing timestamp")
    numeric = to_float(text)
    seconds = numeric / 1000.0 if spec.time_unit == "ms" else numeric
    needs_date = numeric.isna() & (text != "")
    if needs_date.any():
        parsed = pd.to_datetime(text[needs_date], errors="coerce", utc=True, format="mixed")
        secs = unix_seconds(parsed)
        seconds = seconds.astype(np.float64)
        seconds[needs_date] = secs.astype(np.float64)
    flag(seconds.isna(), f"column {col!r}: {{}} is not a timestamp", text)
    hint = "" if spec.time_unit == "ms" else "; milliseconds? pass --time-unit ms"
    flag(
        (seconds < 0) | (seconds > MAX_UNIX_SECONDS),
        f"column {col!r}: impossible timestamp {{}} (before 1970 or after 2100{hint})",
        text,
    )
    return seconds.where(np.isfinite(seconds), 0).astype(np.int64)  # flagged rows are rejected
