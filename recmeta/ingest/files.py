"""What a log file is before it is read: its kind (CSV/TSV, Parquet, JSON; compressed or
zipped), its field separator, and the checks that say what it is when it is not a log."""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import re
import zipfile
from pathlib import Path

from recmeta.errors import DataError
from recmeta.paths import readable_file

WHITESPACE = r"\s+"  # runs of spaces or tabs (pandas reads it without its slower Python engine)
SEPARATORS = (
    ("\t", "tab"),
    (",", "comma"),
    (";", "semicolon"),
    ("|", "pipe"),
    ("::", "double-colon"),
    (WHITESPACE, "whitespace"),
)


def zip_open(path: Path, mode: str = "rt", encoding: str | None = None, errors=None, newline=None):
    """The one file of a zip archive, as text (as pandas reads a .zip log)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip archive ({exc})") from None
    files = [i for i in archive.infolist() if not i.is_dir()]
    if len(files) != 1:
        raise DataError(
            f"{path}: a zip of {len(files)} files; recmeta reads a zip that holds one log: unzip it "
            "and ingest its files together (recmeta ingest interactions FOLDER/*.csv)"
        )
    return io.TextIOWrapper(archive.open(files[0]), encoding=encoding, errors=errors, newline=newline)


COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zip": zip_open}  # as pandas infers
SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")
BINARY_MAGIC = (  # Avro, Arrow/Feather, SQLite, Parquet, HDF5, pickle: files named as text logs
    b"Obj\x01",
    b"ARROW1",
    b"SQLite format 3",
    b"PAR1",
    b"\x89HDF",
    b"\x80\x04",
    b"\x80\x05",
)
BINARY_NULS = 0.1  # share of NUL bytes that makes a file binary


def default_sep(path: Path) -> str:
    """Tab for .tsv and .tab (also compressed: .tsv.gz), else comma."""
    name = path.with_suffix("") if path.suffix.lower() in COMPRESSED else path
    return "\t" if name.suffix.lower() in (".tsv", ".tab") else ","


def _open_text(path: Path, encoding: str):
    """The file as text, decompressed when its suffix says it is (as pandas reads it)."""
    opener = COMPRESSED.get(path.suffix.lower(), open)
    return opener(path, "rt", encoding=encoding, errors="replace", newline="")


def sniff_sep(path: Path, encoding: str = "utf-8") -> str:
    """The field separator of a text log not given one: the extension's (tab for .tsv and
    .tab, else comma) where the first line holds it, else the first of tab, semicolon,
    pipe, '::' and spaces that it holds (public logs such as Last.fm's user_artists.dat
    are tab-separated, MovieLens 1M's ratings.dat '::'), else the extension's."""
    fallback = default_sep(path)
    try:
        with _open_text(path, encoding) as f:
            line = f.readline(65536)
    except (OSError, EOFError, lzma.LZMAError):  # unreadable: the reader says why
        return fallback
    if holds(line, fallback):
        return fallback
    return next((sep for sep, _ in SEPARATORS if holds(line, sep)), fallback)


def holds(line: str, sep: str) -> bool:
    """Whether a line has fields split by `sep` (spaces: between words, not at its ends)."""
    return bool(re.search(sep, line.strip())) if sep == WHITESPACE else sep in line


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


def file_kind(path: Path, fmt: str = "auto") -> str:
    """'parquet', 'json' (JSON Lines, or an array of objects) or 'text' (CSV/TSV): what
    `fmt` says, else the extension (a compressed file by the one before .gz/.bz2/.xz)."""
    if fmt != "auto":
        return {"parquet": "parquet", "jsonl": "json"}.get(fmt, "text")
    if is_parquet(path):
        return "parquet"
    name = path.with_suffix("") if path.suffix.lower() in COMPRESSED else path
    return "json" if name.suffix.lower() in JSON_SUFFIXES else "text"


def check_file(path: Path) -> None:
    """A readable file, or a message that says what it is instead."""
    readable_file(path, "give the log file, or --format movielens-100k (or movielens) for a MovieLens folder")
    if path.suffix.lower() in SPREADSHEETS:
        raise DataError(
            f"{path}: a spreadsheet, not a log recmeta reads; save its sheet as CSV (one row per "
            "interaction) and ingest that"
        )
    if path.suffix.lower() == ".zip":
        zip_open(path).close()  # a damaged archive, or one of several files, said before reading


def check_text(path: Path, encoding: str) -> None:
    """A text log is text: a binary file (Avro, Arrow, ORC, a database, a pickle: known by
    its first bytes, or by NUL bytes in its first 8 KiB) is said to be one, where decoding
    it would blame the encoding. A NUL or two in a text log is a bad row's to report."""
    if path.suffix.lower() in COMPRESSED or encoding.lower().replace("-", "").startswith(("utf16", "utf32")):
        return
    with open(path, "rb") as f:
        head = f.read(8192)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"{path}: UTF-16 text; pass --encoding utf-16")
    if head.startswith(BINARY_MAGIC) or head.count(b"\x00") > BINARY_NULS * len(head):
        raise DataError(
            f"{path}: a binary file, not a text log; recmeta reads CSV/TSV, Parquet (.parquet) and "
            "JSON Lines (.jsonl), also gzip/bz2/xz/zip-compressed"
        )


def check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}; try utf-8, latin-1 or cp1252") from None
