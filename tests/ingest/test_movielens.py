"""The MovieLens readers, on the real ML-100K when present and on small written fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from recmeta.errors import DataError
from recmeta.ingest.pipeline import ingest_file, ingest_movielens
from recmeta.store import make_engine, session_scope
from recmeta.store.models import Item, User
from recmeta.store.repository import entities_frame, stats
from tests.conftest import write


def load(engine, directory: Path, fmt: str):
    return ingest_file(engine, lambda s: ingest_movielens(s, directory, fmt))


def store_stats(engine) -> dict:
    with session_scope(engine) as s:
        return stats(s)


def test_ml100k_counts_and_idempotence(db_url, ml100k_dir):
    engine = make_engine(db_url)
    load(engine, ml100k_dir, "movielens-100k")
    s = store_stats(engine)
    assert (s["users"], s["items"], s["interactions"]) == (943, 1682, 100_000)
    reports = load(engine, ml100k_dir, "movielens-100k")
    assert reports[0].inserted == 0
    s2 = store_stats(engine)
    assert (s2["users"], s2["items"], s2["interactions"]) == (943, 1682, 100_000)
    with session_scope(engine) as session:
        items = entities_frame(session, Item).set_index("external_id")
        users = entities_frame(session, User).set_index("external_id")
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "genres"] == "Animation|Children's|Comedy" and items.loc["1", "year"] == 1995
    assert users.loc["1", "features"] == {"age": 24, "gender": "M", "occupation": "technician"}


def test_ml100k_corrupted_line_is_refused_and_nothing_written(sqlite_url, ml100k_dir, tmp_path):
    copy = tmp_path / "ml-100k"
    shutil.copytree(ml100k_dir, copy)
    lines = (copy / "u.data").read_text().splitlines()
    lines[41_999] = "196\t242\tthree\t881250949"
    (copy / "u.data").write_text("\n".join(lines) + "\n")
    engine = make_engine(sqlite_url)
    with pytest.raises(DataError, match=r"u\.data:42000: column 'rating': 'three' is not a number"):
        load(engine, copy, "movielens-100k")
    s = store_stats(engine)
    assert (s["users"], s["items"], s["interactions"]) == (0, 0, 0)


def _small_ml100k(d: Path) -> Path:
    d.mkdir()
    write(d / "u.data", "1\t10\t5\t881250949\n1\t11\t3\t881250950\n2\t10\t4\t881250951\n")
    write(d / "u.genre", "unknown|0\nAction|1\nComedy|2\n\n")
    write(d / "u.item", "10|Heat (1995)|15-Dec-1995||http://x|0|1|0\n11|Clerks (1994)|||http://y|0|0|1\n")
    write(d / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    return d


def test_small_ml100k_fixture(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    load(engine, _small_ml100k(tmp_path / "ml"), "movielens-100k")
    with session_scope(engine) as session:
        items = entities_frame(session, Item).set_index("external_id")
    assert items.loc["10", "genres"] == "Action" and items.loc["10", "year"] == 1995
    assert items.loc["11", "year"] == 1994  # no release date: the title's year
    assert store_stats(engine)["interactions"] == 3


def test_ml_latest_layout(db_url, tmp_path):
    d = tmp_path / "ml-latest-small"
    d.mkdir()
    write(
        d / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,2.5,964982224\n",
    )
    write(
        d / "movies.csv",
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
        '3,"Grumpier Old Men, The (1995)",(no genres listed)\n',
    )
    engine = make_engine(db_url)
    load(engine, d, "movielens")
    with session_scope(engine) as session:
        items = entities_frame(session, Item).set_index("external_id")
    assert items.loc["3", "title"] == "Grumpier Old Men, The (1995)"
    assert pd.isna(items.loc["3", "genres"]) and items.loc["1", "year"] == 1995
    s = store_stats(engine)
    assert (s["users"], s["items"], s["interactions"], s["value_max"]) == (2, 2, 3, 4.5)


def test_not_a_movielens_folder(sqlite_url, tmp_path):
    with pytest.raises(DataError, match="u.data: missing; is .* a MovieLens folder"):
        load(make_engine(sqlite_url), tmp_path, "movielens-100k")


def test_a_rating_of_an_item_the_folder_does_not_list_is_refused(sqlite_url, tmp_path):
    d = _small_ml100k(tmp_path / "ml")
    write(d / "u.data", "1\t10\t5\t881250949\n1\tabc\t3\t881250950\n")
    engine = make_engine(sqlite_url)
    with pytest.raises(DataError, match=r"u.data:2: item 'abc' is not in the folder's item file"):
        load(engine, d, "movielens-100k")
    assert store_stats(engine)["interactions"] == 0
