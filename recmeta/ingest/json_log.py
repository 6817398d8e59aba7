"""JSON logs: JSON Lines (one object a line) or one array of objects, read as the text
frames a CSV gives (indexed by line), chunk by chunk, memory bounded."""

from __future__ import annotations

import json
import lzma
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from recmeta.errors import DataError, parse_failure

EXAMPLE_OBJECT = '{"user": 7, "item": 42, "rating": 4}'
JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "true/false"}


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # Python's json reads NaN and Infinity; JSON has neither


DECODER = json.JSONDecoder(parse_constant=_no_constant)


def read_json(path: Path, opener, encoding: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """JSON Lines (one object per line; blank lines skipped), or one array of objects, as
    text frames indexed by line (where each object starts, in an array). The columns are
    the keys of the first chunk's objects; a key an object lacks reads as missing. `opener`
    opens the file as text (`open`, or gzip's, bz2's, lzma's for a compressed one)."""
    try:
        with opener(path, "rt", encoding=encoding) as f:
            records = _json_records(path, f)
            columns: list[str] | None = None
            while True:
                batch = [r for _, r in zip(range(chunk_rows), records, strict=False)]
                if not batch:
                    return
                if columns is None:
                    columns = list(dict.fromkeys(k for _, obj in batch for k in obj))
                index = pd.Index([n for n, _ in batch])
                yield pd.DataFrame(
                    {c: [_json_text(obj.get(c)) for _, obj in batch] for c in columns}, index=index, dtype=str
                )
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not {encoding} text ({exc.reason}); pass --encoding") from exc
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise DataError(
            f"{path}: cannot be read to its end ({exc}); a compressed file that is damaged or cut short?"
        ) from exc


def _json_records(path: Path, f) -> Iterator[tuple[int, dict]]:
    """(line, object) of a JSON Lines file, or of a JSON array's objects (the line each
    starts on)."""
    first = True
    for n, line in enumerate(f, 1):
        text = line.strip().lstrip("\ufeff") if first else line.strip()
        if not text:
            continue
        if first and text.startswith("["):  # the whole file is one array
            yield from _json_array(path, f, n, line.lstrip().lstrip("\ufeff"))
            return
        first = False
        try:
            obj = DECODER.decode(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{n}: not JSON ({exc.msg}, column {exc.colno}); a JSON Lines log holds one "
                f"object per line, such as {EXAMPLE_OBJECT}"
            ) from None
        except (ValueError, RecursionError) as exc:
            raise DataError(f"{path}:{n}: not JSON ({parse_failure(exc)})") from None
        yield n, _json_object(path, n, obj)


JSON_BLOCK = 1 << 20  # characters of a JSON array read at a time
_SPACE = re.compile(r"[ \t\n\r]*")


def _json_array(path: Path, f, line: int, text: str) -> Iterator[tuple[int, dict]]:
    """The objects of a JSON array that starts `text` (the file's first line, from '['),
    decoded one at a time from blocks of the file: memory holds a block, not the file."""
    buf, pos, count = text, 1, 0

    def more() -> bool:
        nonlocal buf, pos
        block = f.read(JSON_BLOCK)
        if block:
            buf, pos = buf[pos:] + block, 0
        return bool(block)

    def skip_space() -> None:
        nonlocal pos, line
        while True:
            end = _SPACE.match(buf, pos).end()
            line += buf.count("\n", pos, end)
            pos = end
            if pos < len(buf) or not more():
                return

    def fail(what: str) -> DataError:
        return DataError(f"{path}:{line}: not a JSON array of objects ({what})")

    while True:
        skip_space()
        if pos == len(buf):
            raise fail("the file ends before the array's closing ']'")
        if buf[pos] == "]" and count == 0:
            return
        while True:  # an object may run past the block: read on until it decodes or the file ends
            try:
                obj, end = DECODER.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                if not more():
                    line += buf.count("\n", pos, exc.pos)
                    raise fail(f"{exc.msg}, column {exc.pos - buf.rfind(chr(10), 0, exc.pos)}") from None
            except (ValueError, RecursionError) as exc:
                raise fail(parse_failure(exc)) from None
        count += 1
        yield line, _json_object(path, line, obj)
        line += buf.count("\n", pos, end)
        pos = end
        skip_space()
        if pos < len(buf) and buf[pos] == "]":
            return
        if pos == len(buf):
            raise fail("the file ends before the array's closing ']'")
        if buf[pos] != ",":
            raise fail(f"expected ',' or ']' after an object, found {buf[pos]!r}")
        pos += 1


def _json_object(path: Path, n: int, obj) -> dict:
    if not isinstance(obj, dict):
        raise DataError(
            f"{path}:{n}: a JSON {JSON_TYPES.get(type(obj), 'value')}, not an object; each "
            f"interaction is one object, such as {EXAMPLE_OBJECT}"
        )
    return obj


def _json_text(v) -> str:
    """A JSON value as the text a CSV would hold: 7.0 as 7, null as missing, a list of plain
    values joined by '|' (genres ["Drama", "Comedy"] as Drama|Comedy, as MovieLens writes
    them), other lists and objects as their JSON."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    if isinstance(v, list) and not any(isinstance(x, (dict, list)) for x in v):
        return "|".join(_json_text(x) for x in v if x is not None)
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)
