"""Readers for the MovieLens layouts: ml-100k (u.data, u.item, u.user) and ml-latest (ratings.csv)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from recmeta.errors import DataError
from recmeta.ingest.readers import LogSpec

_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")
FORMATS = ("movielens-100k", "movielens")


def _need(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.is_file():
        raise DataError(f"{path}: missing; is {directory} a MovieLens folder?")
    return path


def ml100k_log(directory: Path) -> LogSpec:
    return LogSpec(
        path=_need(directory, "u.data"),
        sep="\t",
        header=False,
        names=("user", "item", "rating", "timestamp"),
        user_col="user",
        item_col="item",
        value_col="rating",
        time_col="timestamp",
    )


def ml100k_items(directory: Path) -> list[dict]:
    genre_path = directory / "u.genre"
    genres = []
    if genre_path.is_file():
        for line in genre_path.read_text(encoding="latin-1").splitlines():
            if line.strip():
                genres.append(line.split("|")[0])
    path = _need(directory, "u.item")
    frame = _read_pipe(path, encoding="latin-1")
    if frame.shape[1] < 5:
        raise DataError(f"{path}: expected at least 5 '|'-separated fields, found {frame.shape[1]}")
    flags = frame.iloc[:, 5:]
    if not genres or len(genres) != flags.shape[1]:
        genres = [f"genre{i}" for i in range(flags.shape[1])]
    records = []
    for row, flag_row in zip(frame.itertuples(index=False), flags.to_numpy(), strict=True):
        title = row[1]
        year = pd.to_datetime(row[2], format="%d-%b-%Y", errors="coerce")
        records.append(
            {
                "external_id": row[0].strip(),
                "title": title,
                "genres": "|".join(g for g, f in zip(genres, flag_row, strict=True) if f == "1") or None,
                "year": int(year.year) if pd.notna(year) else _year_from_title(title),
            }
        )
    return records


def ml100k_users(directory: Path) -> list[dict]:
    path = directory / "u.user"
    if not path.is_file():
        return []
    frame = _read_pipe(path, encoding="latin-1")
    records = []
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        age = pd.to_numeric(row[1], errors="coerce")
        if pd.isna(age):
            raise DataError(f"{path}:{i}: age {row[1]!r} is not a number")
        records.append(
            {
                "external_id": row[0].strip(),
                "features": {"age": int(age), "gender": row[2], "occupation": row[3]},
            }
        )
    return records


def latest_log(directory: Path) -> LogSpec:
    return LogSpec(
        path=_need(directory, "ratings.csv"),
        user_col="userId",
        item_col="movieId",
        value_col="rating",
        time_col="timestamp",
    )


def latest_items(directory: Path) -> list[dict]:
    path = directory / "movies.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"movieId", "title"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}:1: missing column(s) {sorted(missing)}")
    genres = frame["genres"] if "genres" in frame else pd.Series("", index=frame.index)
    return [
        {
            "external_id": mid.strip(),
            "title": title,
            "genres": None if g in ("", "(no genres listed)") else g,
            "year": _year_from_title(title),
        }
        for mid, title, g in zip(frame["movieId"], frame["title"], genres, strict=True)
    ]


def _year_from_title(title: str) -> int | None:
    m = _YEAR_IN_TITLE.search(title or "")
    return int(m.group(1)) if m else None


def _read_pipe(path: Path, encoding: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="|", header=None, dtype=str, keep_default_na=False, encoding=encoding)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: {exc}") from exc
