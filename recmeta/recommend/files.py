"""Files a recommendation run reads and writes: item lists (--exclude-file, --candidates),
user ids streamed from text, CSV or Parquet, and recommendations written as they come."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from recmeta.errors import DataError
from recmeta.paths import readable_file, writable_file

if TYPE_CHECKING:
    import pandas as pd


def read_item_list(path: Path) -> frozenset[str]:
    """Item ids, one per line (a --exclude-file or --candidates file)."""
    readable_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; give item ids one per line") from None
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def iter_users_file(path: Path, block: int = 65_536) -> Iterator[str]:
    """User ids, one at a time, from a text file (one per line) or a CSV/Parquet with a
    `user` column, read in blocks: memory does not grow with the file."""
    readable_file(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            source = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
            raise DataError(f"{path}: not a Parquet file ({exc})") from None
        from recmeta.ingest.readers import column_text

        col = _user_column(path, source.schema_arrow.names)
        for part in source.iter_batches(batch_size=block, columns=[col]):
            yield from (u for u in column_text(part.column(0).to_pandas()) if u)  # as ingest reads ids
        return
    if suffix in (".csv", ".tsv"):
        import pandas as pd

        reader = pd.read_csv(path, dtype=str, sep="\t" if suffix == ".tsv" else ",", chunksize=block)
        for k, frame in enumerate(reader):
            col = _user_column(path, list(frame.columns)) if k == 0 else col
            yield from frame[col].dropna().astype(str)
        return
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield line.strip()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; give user ids one per line, or a CSV/Parquet") from None


def _user_column(path: Path, columns: list[str]) -> str:
    """The user column, found by the usual names as ingest finds a log's (user_id, userID, ...)."""
    from recmeta.ingest.readers import find_column, shown_columns

    col = find_column(columns, "user", None, str(path))
    if col is None:
        raise DataError(f"{path}:1: no user column; the file has {shown_columns(columns)}")
    return col


OUT_SUFFIXES = (".parquet", ".pq", ".csv", ".jsonl", ".ndjson")
RECS_COLUMNS = ("user", "rank", "item", "title", "score", "model")


def check_out_path(path: Path) -> Path:
    """Where a `RecsWriter` will write, checked before any work is done."""
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise DataError(f"{path}: choose .parquet, .csv or .jsonl")
    return writable_file(path, f"--out {path}")


class RecsWriter:
    """Recommendation frames (user, rank, item, title, score, model) written chunk by chunk
    to .parquet, .csv or .jsonl. They go to a temporary file beside `path`, renamed over it
    when the writer closes without an error: a failed run leaves no half-written file."""

    def __init__(self, path: Path) -> None:
        self.path = check_out_path(Path(path))
        self.kind = {".pq": ".parquet", ".ndjson": ".jsonl"}.get(
            self.path.suffix.lower(), self.path.suffix.lower()
        )
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        self._fh = None
        self._parquet = None
        self.rows = 0

    def __enter__(self) -> RecsWriter:
        self._fh = open(self.tmp, "wb")
        if self.kind == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            text, whole, real = pa.string(), pa.int64(), pa.float64()
            types = (text, whole, text, text, real, text)
            self._schema = pa.schema(list(zip(RECS_COLUMNS, types, strict=True)))
            self._parquet = pq.ParquetWriter(self._fh, self._schema)
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        if self._parquet is not None:
            import pyarrow as pa

            table = pa.Table.from_pandas(frame[list(RECS_COLUMNS)], schema=self._schema, preserve_index=False)
            self._parquet.write_table(table)
        elif self.kind == ".csv":
            self._fh.write(frame.to_csv(index=False, header=self.rows == 0).encode())
        else:
            self._fh.write("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")).encode())
        self.rows += len(frame)

    def __exit__(self, kind, exc, tb) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self._fh.close()
        if kind is None:
            if self.kind == ".csv" and self.rows == 0:
                self.tmp.write_text(",".join(RECS_COLUMNS) + "\n")
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
