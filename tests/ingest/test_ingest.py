"""Every input format, every bad-input case (message + nothing written), idempotence."""

from __future__ import annotations

import os
import re

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from recmeta.errors import DataError
from recmeta.ingest.pipeline import ingest_file, ingest_log, ingest_path
from recmeta.ingest.readers import LogSpec
from recmeta.store import make_engine, session_scope
from recmeta.store.repository import stats
from tests.conftest import write

GOOD = "user,item,rating,timestamp\nu1,i1,5,881250949\nu1,i2,3,881250950\nu2,i1,4,881250951\n"


def counts(engine) -> tuple[int, int, int]:
    with session_scope(engine) as s:
        st_ = stats(s)
    return st_["users"], st_["items"], st_["interactions"]


def run(engine, spec: LogSpec, **kw):
    return ingest_file(engine, lambda s: ingest_log(s, spec, **kw))


def test_csv_with_matching_header(db_url, tmp_path):
    engine = make_engine(db_url)
    report = run(engine, LogSpec(path=write(tmp_path / "log.csv", GOOD)))
    assert (report.rows_read, report.inserted, report.users_created, report.items_created) == (3, 3, 2, 2)
    assert counts(engine) == (2, 2, 3)


def test_reingest_and_overlap_add_nothing(db_url, tmp_path):
    engine = make_engine(db_url)
    path = write(tmp_path / "log.csv", GOOD)
    run(engine, LogSpec(path=path))
    again = run(engine, LogSpec(path=path))
    assert again.inserted == 0 and again.seen_before and again.duplicates == 3
    overlap = write(tmp_path / "more.csv", GOOD + "u3,i3,2,881250999\n")
    assert run(engine, LogSpec(path=overlap)).inserted == 1
    assert counts(engine) == (3, 3, 4)


def test_tsv_with_named_columns_and_iso_dates(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    path = write(
        tmp_path / "log.tsv", "who\twhat\tstars\twhen\na\tx\t4\t2024-01-02T10:00:00Z\na\ty\t2\t2024-01-03\n"
    )
    run(engine, LogSpec(path=path, user_col="who", item_col="what", value_col="stars", time_col="when"))
    assert counts(engine) == (1, 2, 2)


def test_headerless_file_and_millisecond_times(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    path = write(tmp_path / "log.csv", "1,10,1,1700000000000\n2,10,1,1700000001000\n")
    spec = LogSpec(path=path, header=False, names=("user", "item", "value", "timestamp"), time_unit="ms")
    run(engine, spec)
    with session_scope(engine) as s:
        assert stats(s)["time_max"] == 1_700_000_001


def test_parquet(db_url, tmp_path):
    engine = make_engine(db_url)
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 2],
            "item_id": [7, 8, 7],
            "rating": [4.0, 5.0, 1.0],
            "timestamp": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"]),
        }
    )
    path = tmp_path / "log.parquet"
    frame.to_parquet(path)
    report = run(engine, LogSpec(path=path))
    assert report.inserted == 3
    with session_scope(engine) as s:
        assert stats(s)["time_min"] == 1_577_836_800


def test_parquet_ids_stored_as_floats_read_as_a_csv_writes_them(sqlite_url, tmp_path):
    """pandas stores an int column with a gap as float64: item 7.0 is the CSV's item 7."""
    from recmeta.store.models import Item

    engine = make_engine(sqlite_url)
    write(tmp_path / "a.csv", "user,item,rating\n1,7,4\n")
    run(engine, LogSpec(path=tmp_path / "a.csv"))
    frame = pd.DataFrame({"user": [2.0, 3.0], "item": [7.0, 2.5], "rating": [5.0, 3.0]})
    frame.to_parquet(tmp_path / "b.parquet")
    run(engine, LogSpec(path=tmp_path / "b.parquet"))
    with session_scope(engine) as s:
        assert sorted(s.scalars(select(Item.external_id))) == ["2.5", "7"]


def test_implicit_log_without_values_or_times(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    path = write(tmp_path / "clicks.csv", "user,item\na,x\na,x\na,y\nb,x\n")
    report = run(engine, LogSpec(path=path, implicit=True))
    assert report.inserted == 3  # a's two clicks on x fold into one count of 2
    with session_scope(engine) as s:
        st_ = stats(s)
    assert st_["implicit"] and st_["value_max"] == 2.0


BAD = [
    ("missing column", "user,rating,timestamp\nu1,5,1\n", "1: no item column"),
    ("non-numeric value", GOOD + "u3,i3,five,881250999\n", "5: column 'rating': 'five' is not a number"),
    (
        "unparseable time",
        GOOD + "u3,i3,4,yesterday-ish\n",
        "5: column 'timestamp': 'yesterday-ish' is not a timestamp",
    ),
    ("impossible time", GOOD + "u3,i3,4,99999999999\n", "5: column 'timestamp': impossible timestamp"),
    ("negative time", GOOD + "u3,i3,4,-5\n", "5: column 'timestamp': impossible timestamp"),
    ("year 1 as a date", GOOD + "u3,i3,4,\uff11\n", "5: column 'timestamp': impossible timestamp"),
    ("repeated column", "user,user,item,rating\nu1,u2,i1,5\n", "1: the header names 'user' twice"),
    ("no header", "196,242,3,881250949\n186,302,3,891717742\n", "1: the first line looks like data"),
    ("value past float32", GOOD + "u3,i3,1e300,881250999\n", "5: column 'rating': '1e300' is beyond ±1e+12"),
    ("empty user id", GOOD + ",i3,4,881250999\n", "5: column 'user': empty user id"),
    ("empty item id", GOOD + "u4, ,4,881250999\n", "5: column 'item': empty item id"),
    ("ragged row", GOOD + "u3,i3,4,881250999,extra\n", "line 5: expected 4 fields, found 5"),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_line_and_reason_and_writes_nothing(db_url, tmp_path, case, body, message):
    engine = make_engine(db_url)
    path = write(tmp_path / "bad.csv", body)
    with pytest.raises(DataError) as info:
        run(engine, LogSpec(path=path))
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert counts(engine) == (0, 0, 0)


def test_skip_writes_valid_rows_and_a_rejects_file(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    body = GOOD + "u3,i3,five,881250999\n,i3,4,881250999\nu4,i4,4,881251000\n"
    path = write(tmp_path / "mixed.csv", body)
    report = run(engine, LogSpec(path=path), on_error="skip")
    assert (report.inserted, report.rejected) == (4, 2)
    rejects = pd.read_csv(report.rejects_path, dtype=str, keep_default_na=False)
    assert rejects["line"].tolist() == ["5", "6"]
    assert "is not a number" in rejects["reason"][0] and "empty user id" in rejects["reason"][1]
    assert rejects["rating"][0] == "five"
    assert counts(engine) == (3, 3, 4)  # rejected rows create no users or items


def test_bad_row_in_a_later_chunk_rolls_back_earlier_chunks(sqlite_url, tmp_path, monkeypatch):
    import recmeta.ingest.readers as readers

    monkeypatch.setattr(readers, "CHUNK_ROWS", 2)
    monkeypatch.setattr(readers.read_raw, "__defaults__", (2,))
    engine = make_engine(sqlite_url)
    path = write(tmp_path / "late.csv", GOOD + "u3,i3,4,881250999\nu3,i4,x,881250999\n")
    with pytest.raises(DataError, match=r"late.csv:6:"):
        run(engine, LogSpec(path=path))
    assert counts(engine) == (0, 0, 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(st.integers(1, 50), st.integers(1, 50), st.integers(1, 5), st.integers(0, 2_000_000_000)),
        min_size=1,
        max_size=30,
    ),
    garbage=st.text(alphabet="abcxyz!?", min_size=1, max_size=6),
    where=st.integers(0, 29),
)
def test_property_any_garbage_value_is_reported_on_its_line(tmp_path, rows, garbage, where):
    """A valid log plus one garbage rating: the error names exactly that line."""
    where = where % len(rows)
    lines = ["user,item,rating,timestamp"]
    for k, (u, i, r, t) in enumerate(rows):
        lines.append(f"{u},{i},{garbage if k == where else r},{t}")
    path = write(tmp_path / "prop.csv", "\n".join(lines) + "\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'prop.db'}")
    with pytest.raises(DataError, match=rf"prop.csv:{where + 2}: column 'rating'"):
        run(engine, LogSpec(path=path))
    engine.dispose()
    (tmp_path / "prop.db").unlink()


def test_missing_file_is_a_clear_error(sqlite_url, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        run(make_engine(sqlite_url), LogSpec(path=tmp_path / "nope.csv"))
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # a pipe cannot be read twice (the separator is sniffed first)
    with pytest.raises(DataError, match="not a regular file .a pipe or a device.; save it to a file"):
        run(make_engine(sqlite_url), LogSpec(path=fifo))


def test_a_log_of_only_users_items_and_times_is_read_as_clicks(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    path = write(tmp_path / "clicks.csv", "user,item,timestamp\na,x,1\na,y,2\nb,x,3\n")
    report = run(engine, LogSpec(path=path))
    assert report.inserted == 3 and "implicit" in report.notes[0]
    with session_scope(engine) as s:
        assert stats(s)["implicit"]


def test_a_count_column_makes_an_implicit_log_unless_named_as_the_value(sqlite_url, tmp_path):
    path = write(tmp_path / "plays.csv", "user_id,artist_id,plays\na,x,120\na,y,3\nb,x,40\n")
    engine = make_engine(sqlite_url)
    report = run(engine, LogSpec(path=path))
    assert "'plays' holds counts" in report.notes[0]
    with session_scope(engine) as s:
        assert stats(s)["implicit"] and stats(s)["value_max"] == 120
    engine = make_engine(f"sqlite:///{tmp_path / 'explicit.db'}")
    assert not run(engine, LogSpec(path=path, value_col="plays")).notes
    with session_scope(engine) as s:
        assert not stats(s)["implicit"]


def test_an_unrecognised_extra_column_asks_for_the_value_column(sqlite_url, tmp_path):
    path = write(tmp_path / "log.csv", "user,item,grade\na,x,5\n")
    with pytest.raises(DataError, match="--value-col NAME, or --implicit"):
        run(make_engine(sqlite_url), LogSpec(path=path))


def test_items_and_users_metadata(sqlite_url, tmp_path):
    from recmeta.ingest.pipeline import ingest_metadata, read_metadata
    from recmeta.store.models import Item, User
    from recmeta.store.repository import entities_frame

    engine = make_engine(sqlite_url)
    items = write(
        tmp_path / "items.csv", "item,title,genres,year,price\nx,X Film,a|b,1999,9.5\ny,Y Film,,,\n"
    )
    users = write(tmp_path / "users.csv", "user,age,city\na,30,Oslo\n")
    recs = read_metadata(items, id_col="item", title_col="title", genres_col="genres", year_col="year")
    ingest_file(engine, lambda s: ingest_metadata(s, Item, recs, str(items)))
    urecs = read_metadata(users, id_col="user", for_items=False)
    ingest_file(engine, lambda s: ingest_metadata(s, User, urecs, str(users)))
    with session_scope(engine) as s:
        it = entities_frame(s, Item).set_index("external_id")
        us = entities_frame(s, User).set_index("external_id")
    assert it.loc["x", "title"] == "X Film" and it.loc["x", "genres"] == "a|b"
    assert it.loc["x", "year"] == 1999 and it.loc["x", "features"] == {"price": 9.5}
    assert us.loc["a", "features"] == {"age": 30.0, "city": "Oslo"}


def test_metadata_columns_are_found_by_their_usual_names(tmp_path):
    """As a log's: `Item ID`, `name`, `category` without naming them; a name given must exist."""
    from recmeta.ingest.pipeline import read_metadata

    path = write(tmp_path / "items.csv", "Item ID,name,category,Release-Year,price\nx,X,a,1999,2\n")
    (rec,) = read_metadata(path)
    assert rec == {"external_id": "x", "title": "X", "genres": "a", "year": 1999, "features": {"price": 2.0}}
    (rec,) = read_metadata(write(tmp_path / "users.csv", "userId,age\nu1,30\n"), for_items=False)
    assert rec == {"external_id": "u1", "features": {"age": 30.0}}
    jsonl = write(
        tmp_path / "items.jsonl",
        '{"asin": "x", "title": "X", "categories": ["a", "b"], "year": 1999.0, "details": {"k": 1}}\n',
    )
    (rec,) = read_metadata(jsonl)  # a list of genres as MovieLens writes them; an object as JSON
    assert rec == {
        "external_id": "x",
        "title": "X",
        "genres": "a|b",
        "year": 1999,
        "features": {"details": '{"k": 1}'},
    }
    with pytest.raises(DataError, match="no column 'nope' for the item; the file has"):
        read_metadata(path, id_col="nope")
    with pytest.raises(DataError, match="no item id column; the file has"):
        read_metadata(write(tmp_path / "t.csv", "title,price\nX,2\n"))


@pytest.mark.parametrize("year", ["19x9", "1e400", "99999999999"])
def test_bad_year_in_item_metadata(tmp_path, year):
    from recmeta.ingest.pipeline import read_metadata

    path = write(tmp_path / "items.csv", f"item,title,year\nx,X,{year}\n")
    with pytest.raises(DataError, match=rf"items.csv:2: column 'year': '{year}' is not a year"):
        read_metadata(path, id_col="item", title_col="title", year_col="year")


def test_a_numeric_feature_past_float_range_is_a_bad_row(tmp_path):
    """A feature enters the math as a standardised number: inf would make every user's NaN."""
    from recmeta.ingest.pipeline import read_metadata

    path = write(tmp_path / "users.csv", "user,age\nu1,30\nu2,1e400\n")
    with pytest.raises(DataError, match=r"users.csv:3: column 'age': '1e400' is not a finite number"):
        read_metadata(path, id_col="user", for_items=False)


def test_parquet_timestamps_of_any_unit_are_read(sqlite_url, tmp_path):
    """Sub-second parts (a timestamp[ns] column made pandas refuse the cast) are dropped,
    and a date beyond pandas' nanosecond range is a rejected row, not a traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recmeta.store import make_engine, session_scope
    from recmeta.store.repository import interaction_blocks

    ts = [1577836800, 1580515200]
    for unit in ("s", "ms", "us", "ns"):
        scale = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
        table = pa.table(
            {
                "user": [1, 2],
                "item": [3, 4],
                "rating": [5, 4],
                "timestamp": pa.array([t * scale + scale - 1 for t in ts], pa.timestamp(unit)),
            }
        )
        pq.write_table(table, tmp_path / f"{unit}.parquet")
        engine = make_engine(f"sqlite:///{tmp_path / (unit + '.db')}")
        ingest_file(engine, lambda s, u=unit: ingest_path(s, tmp_path / f"{u}.parquet"))
        with session_scope(engine) as session:
            assert sorted(t for b in interaction_blocks(session) for t in b[3]) == ts, unit
    far = pa.array([253402300799000000, ts[0] * 1_000_000], pa.timestamp("us"))  # 9999-12-31
    pq.write_table(
        pa.table({"user": [1, 2], "item": [3, 4], "rating": [5, 4], "timestamp": far}),
        tmp_path / "far.parquet",
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'far.db'}")
    with pytest.raises(DataError, match="impossible timestamp"):
        ingest_file(engine, lambda s: ingest_path(s, tmp_path / "far.parquet"))


@pytest.mark.parametrize("name", ["weight", "plays", "listens", "playcount", "Play Count", "purchases"])
def test_count_named_value_columns_read_as_implicit_unless_explicit(sqlite_url, tmp_path, name):
    path = tmp_path / "log.csv"
    path.write_text(f"userID,itemID,{name}\n1,2,3\n1,3,1\n2,2,7\n")
    engine = make_engine(sqlite_url)
    (report,) = ingest_file(engine, lambda s: ingest_path(s, path))
    assert any("implicit" in n for n in report.notes)
    assert stats_of(engine)["implicit"] is True
    engine2 = make_engine(f"sqlite:///{tmp_path / 'e.db'}")
    (report,) = ingest_file(engine2, lambda s: ingest_path(s, path, explicit=True))
    assert not report.notes and stats_of(engine2)["implicit"] is False


def test_long_tailed_whole_numbers_read_as_counts(sqlite_url, tmp_path):
    rows = [
        f"{u},{i},{v}"
        for u, (i, v) in enumerate(zip(range(40), [1] * 30 + [2] * 5 + [40, 55, 80, 120, 300], strict=True))
    ]
    path = tmp_path / "log.csv"
    path.write_text("user,item,value\n" + "\n".join(rows) + "\n")
    engine = make_engine(sqlite_url)
    (report,) = ingest_file(engine, lambda s: ingest_path(s, path))
    assert any("long tail" in n for n in report.notes)
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user,item,value\n" + "\n".join(f"{u},{u % 7},{1 + u % 5}" for u in range(40)) + "\n")
    engine2 = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    (report,) = ingest_file(engine2, lambda s: ingest_path(s, ratings))
    assert not report.notes and stats_of(engine2)["implicit"] is False


def test_the_separator_is_read_from_the_first_line_with_a_note(sqlite_url, tmp_path):
    # Last.fm's user_artists.dat as published: tab-separated, camelCase ids, play counts
    path = write(
        tmp_path / "user_artists.dat", "userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n3\t51\t5\n"
    )
    engine = make_engine(sqlite_url)
    report = run(engine, LogSpec(path=path))
    assert report.inserted == 3 and counts(engine) == (2, 2, 3)
    assert report.notes[0] == "its first line is tab-separated: read as such (--sep sets it)"
    assert stats_of(engine)["implicit"] is True  # 'weight' holds counts
    semicolons = write(tmp_path / "excel.csv", GOOD.replace(",", ";"))
    engine2 = make_engine(f"sqlite:///{tmp_path / 'e.db'}")
    report = run(engine2, LogSpec(path=semicolons))
    assert counts(engine2) == (2, 2, 3) and "semicolon-separated" in report.notes[0]
    spaced = write(tmp_path / "ratings.txt", "user item rating\nu1 i1  5\nu1\ti2 3 \nu2 i1 4\n")
    engine3 = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    report = run(engine3, LogSpec(path=spaced))
    assert counts(engine3) == (2, 2, 3) and "whitespace-separated" in report.notes[0]
    # a comma-separated .csv reads as before, without a note
    assert not run(
        make_engine(f"sqlite:///{tmp_path / 'g.db'}"), LogSpec(path=write(tmp_path / "g.csv", GOOD))
    ).notes


def test_a_separator_given_that_the_file_lacks_gets_a_hint_and_writes_nothing(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    path = write(tmp_path / "log.dat", GOOD.replace(",", "\t"))
    with pytest.raises(DataError, match=r"looks tab-separated; pass --sep '\\t'"):
        run(engine, LogSpec(path=path, sep=","))
    assert counts(engine) == (0, 0, 0)


@pytest.mark.parametrize(
    "header", ["User ID,Artist-ID,Rating", "USER_ID,artistId,rating", "userId,itemID,rating"]
)
def test_column_names_match_whatever_their_case_spaces_hyphens_and_underscores(sqlite_url, tmp_path, header):
    path = write(tmp_path / "log.csv", header + "\nu1,i1,5\nu2,i1,3\n")
    engine = make_engine(sqlite_url)
    assert run(engine, LogSpec(path=path)).inserted == 2
    assert counts(engine) == (2, 1, 2)


def test_a_column_given_matches_whatever_its_spelling(sqlite_url, tmp_path):
    path = write(tmp_path / "log.csv", "Listener ID,Artist-ID,Plays\nu1,a1,5\nu2,a1,3\n")
    engine = make_engine(sqlite_url)
    spec = LogSpec(path=path, user_col="listener_id", item_col="artist id", value_col="PLAYS", implicit=True)
    assert run(engine, spec).inserted == 2
    with pytest.raises(DataError, match="no column 'listener' for the user"):
        run(make_engine(f"sqlite:///{tmp_path / 'e.db'}"), LogSpec(path=path, user_col="listener"))


def stats_of(engine):
    with session_scope(engine) as session:
        return stats(session)


def test_a_first_load_into_postgresql_keeps_every_foreign_key(pg_url, tmp_path):
    """The first load into an empty store drops the foreign keys of `interactions` while it
    writes and adds them back (validated) before it commits; a failed first load rolls the
    drop back with the rows; a later load keeps them all along."""
    from sqlalchemy import text

    engine = make_engine(pg_url)
    keys_sql = text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'interactions'::regclass AND contype = 'f' ORDER BY conname"
    )

    def keys():
        with engine.connect() as conn:
            return conn.execute(keys_sql).all()

    before = keys()
    assert len(before) == 3  # user, item, ingest batch
    bad = write(tmp_path / "bad.csv", GOOD + "u3,i3,not-a-number,881250999\n")
    with pytest.raises(DataError):
        run(engine, LogSpec(path=bad))
    assert keys() == before and counts(engine) == (0, 0, 0)
    run(engine, LogSpec(path=write(tmp_path / "log.csv", GOOD)))
    assert keys() == before and counts(engine) == (2, 2, 3)
    with engine.begin() as conn, pytest.raises(Exception, match="foreign key"):
        conn.execute(
            text("INSERT INTO interactions (user_id, item_id, value, timestamp) VALUES (999, 1, 1, 1)")
        )
    run(engine, LogSpec(path=write(tmp_path / "more.csv", GOOD + "u3,i3,2,881250999\n")))
    assert keys() == before and counts(engine) == (3, 3, 4)


def test_a_file_of_many_or_long_columns_gets_a_short_message(tmp_path):
    """The missing-column message lists a few names, each cut short, and the count: not
    200,000 names, nor a header line of megabytes."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    wide = write(tmp_path / "wide.csv", ",".join(f"c{i}" for i in range(5000)) + "\n" + "1," * 4999 + "1\n")
    long = write(tmp_path / "long.csv", "a" * 100_000 + ",b\n1,2\n")
    for path, says in ((wide, "5,000 columns, ['c0', 'c1'"), (long, "['aaaa")):
        with pytest.raises(DataError, match=re.escape(says)) as info:
            run(engine, LogSpec(path=path))
        assert len(str(info.value)) < 500


def test_a_compressed_log_cut_short_is_a_clear_error_and_writes_nothing(tmp_path):
    import gzip

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    body = gzip.compress((GOOD + "".join(f"u{i},i{i % 7},4,88125{i:04d}\n" for i in range(3000))).encode())
    whole, cut = tmp_path / "log.csv.gz", tmp_path / "cut.csv.gz"
    whole.write_bytes(body)
    cut.write_bytes(body[: len(body) // 2])
    with pytest.raises(DataError, match="cannot be read to its end .* damaged or cut short"):
        run(engine, LogSpec(path=cut))
    assert counts(engine) == (0, 0, 0)
    assert run(engine, LogSpec(path=whole)).inserted == 3003


def test_metadata_of_too_many_columns_is_refused_before_it_becomes_features(tmp_path):
    from recmeta.ingest.pipeline import MAX_FEATURES, read_metadata

    cols = [f"f{i}" for i in range(MAX_FEATURES + 1)]
    path = write(
        tmp_path / "users.csv", "user," + ",".join(cols) + "\nu1," + ",".join("1" for _ in cols) + "\n"
    )
    with pytest.raises(
        DataError, match=rf"{MAX_FEATURES + 1} columns besides the id would each become a feature"
    ):
        read_metadata(path, id_col="user", for_items=False)
    ok = write(
        tmp_path / "ok.csv", "user," + ",".join(cols[:-1]) + "\nu1," + ",".join("1" for _ in cols[:-1]) + "\n"
    )
    assert len(read_metadata(ok, id_col="user", for_items=False)[0]["features"]) == MAX_FEATURES


def test_unnamed_trailing_columns_of_a_spreadsheet_export_still_ingest(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    path = write(tmp_path / "export.csv", "user,item,rating,,\nu1,i1,5,,\nu2,i1,4,,\n")
    assert run(engine, LogSpec(path=path)).inserted == 2


@pytest.mark.parametrize(
    ("name", "sep"), [("log.csv.gz", ","), ("log.tsv.gz", "\t"), ("log.csv.bz2", ";"), ("log.csv.xz", ",")]
)
def test_compressed_logs_are_sniffed_through_their_compression(tmp_path, name, sep):
    """The separator is read from the decompressed first line, and `.tsv.gz` means tab (the
    compressed bytes used to be sniffed: three of these four failed)."""
    import bz2
    import gzip
    import lzma

    opener = {".gz": gzip, ".bz2": bz2, ".xz": lzma}[name[name.rindex(".") :]]
    body = GOOD.replace(",", sep) + "".join(f"u{i}{sep}i{i % 5}{sep}4{sep}88126{i:04d}\n" for i in range(200))
    path = tmp_path / name
    path.write_bytes(opener.compress(body.encode()))
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert run(engine, LogSpec(path=path)).inserted == 203


AMAZON_REVIEWS = [  # as the Amazon review dumps publish them: one JSON object a line
    {
        "reviewerID": "A1",
        "asin": "B01",
        "overall": 5.0,
        "unixReviewTime": 1400000000,
        "style": {"Size:": "M"},
    },
    {"reviewerID": "A2", "asin": "B01", "overall": 3.0, "unixReviewTime": 1400000100, "image": ["x.jpg"]},
    {"reviewerID": "A1", "asin": "B02", "overall": 4.0, "unixReviewTime": 1400000200, "vote": "2"},
]


@pytest.mark.parametrize("name", ["reviews.jsonl", "reviews.json", "reviews.ndjson.gz", "array.json"])
def test_json_lines_and_json_arrays_ingest_with_their_own_column_names(db_url, tmp_path, name):
    import gzip
    import json

    if name.startswith("array"):
        text = json.dumps(AMAZON_REVIEWS, indent=1)
    else:  # a blank line anywhere is skipped; line numbers stay the file's
        text = (
            "\n".join(json.dumps(r) for r in AMAZON_REVIEWS[:2])
            + "\n\n"
            + json.dumps(AMAZON_REVIEWS[2])
            + "\n"
        )
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    engine = make_engine(db_url)
    (report,) = ingest_file(engine, lambda s: ingest_path(s, path))
    assert (report.inserted, report.users_created, report.items_created) == (3, 2, 2)
    with session_scope(engine) as s:
        st_ = stats(s)
    assert (st_["value_min"], st_["value_max"], st_["time_min"]) == (3.0, 5.0, 1_400_000_000)


BAD_JSON_LINES = [  # (body, message) of a log.jsonl
    ('{"user": 1, "item": 2, "rating": 4}\n{"user": 1, item: 3}\n', "log.jsonl:2: not JSON"),
    ('{"user": 1, "item": 2, "rating": 4}\n[1, 2]\n', "log.jsonl:2: a JSON array, not an object"),
    ('"user,item,rating"\n', "log.jsonl:1: a JSON string, not an object"),
    ('{"user": 1, "item": 2, "rating": NaN}\n', "log.jsonl:1: not JSON (NaN is not JSON)"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "log.jsonl:1: not JSON (nested too deeply)"),
    (
        '{"user": 1, "item": 2, "rating": 4}\n\n{"user": 2, "item": 2, "rating": "x"}\n',
        "log.jsonl:3: column",
    ),
    ('{"user": 1, "item": 2, "rating": 4}\n{"item": 2, "rating": 4}\n', "log.jsonl:2:"),
]


def test_layout_options_of_text_logs_are_refused_for_json_and_parquet(tmp_path):
    path = write(tmp_path / "log.jsonl", '{"user": 1, "item": 2, "rating": 4}\n')
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(DataError, match="--sep applies to CSV/TSV logs, not to log.jsonl"):
        ingest_file(engine, lambda s: ingest_path(s, path, sep=";"))
    txt = write(tmp_path / "log.txt", '{"user": 1, "item": 2, "rating": 4}\n')
    (report,) = ingest_file(engine, lambda s: ingest_path(s, txt, "jsonl"))  # --format jsonl
    assert report.inserted == 1


@pytest.mark.parametrize(
    ("header", "implicit"),
    [("customer,product,qty", True), ("reviewerID,asin,overall", False)],
)
def test_shop_and_review_column_names_are_recognised(sqlite_url, tmp_path, header, implicit):
    engine = make_engine(sqlite_url)
    path = write(tmp_path / "log.csv", f"{header}\nc1,p1,2\nc2,p1,1\n")
    run(engine, LogSpec(path=path))
    with session_scope(engine) as s:
        assert stats(s)["implicit"] is implicit


@pytest.mark.parametrize("block", [1, 7, 1 << 20])
def test_a_json_array_is_read_a_block_at_a_time_with_each_objects_line(tmp_path, monkeypatch, block):
    import json

    from recmeta.ingest import json_log, readers

    monkeypatch.setattr(json_log, "JSON_BLOCK", block)  # objects and spaces cut at every place
    rows = [{"user": f"u{k % 7}", "item": k % 5, "rating": 1 + k % 5, "note": "a,\n]}"} for k in range(40)]
    path = tmp_path / "log.json"
    path.write_text(json.dumps(rows, indent=1))
    frames = list(readers.read_raw(LogSpec(path=path), chunk_rows=16))
    assert [len(f) for f in frames] == [16, 16, 8]
    assert list(frames[0].index[:3]) == [2, 8, 14]  # the line each object starts on
    assert frames[-1]["note"].iloc[-1] == "a,\n]}" and frames[-1]["user"].iloc[-1] == "u4"


BAD_JSON_ARRAYS = [  # (body, message) of a log.json
    ('[{"user": 1, "item": 2, "rating": 4},\n {"user": 1, item: 3}]', "log.json:2: not a JSON array"),
    (
        '[{"user": 1, "item": 2, "rating": 4}\n {"user": 2}]',
        "log.json:2: not a JSON array of objects (expected",
    ),
    ('[{"user": 1, "item": 2, "rating": 4},\n', "the file ends before the array's closing ']'"),
    ('[{"user": 1, "item": 2, "rating": 4},\n 5]', "log.json:2: a JSON number, not an object"),
    (
        "[" + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "]",
        "log.json:1: not a JSON array of objects (nested",
    ),
    (
        '[{"user": 1, "item": 2, "rating": -Infinity}]',
        "log.json:1: not a JSON array of objects (-Infinity is not",
    ),
    (
        '[{"user": 1, "item": 2, "rating": 4},\n\n {"user": 1, "item": 2, "rating": "x"}]',
        "log.json:3: column",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [("log.jsonl", *case) for case in BAD_JSON_LINES] + [("log.json", *case) for case in BAD_JSON_ARRAYS],
)
def test_bad_json_logs_name_their_line_and_write_nothing(sqlite_url, tmp_path, name, body, message):
    engine = make_engine(sqlite_url)
    path = write(tmp_path / name, body)
    with pytest.raises(DataError, match=re.escape(message)):
        ingest_file(engine, lambda s: ingest_path(s, path))
    assert counts(engine) == (0, 0, 0)


EVENTS = (  # as RetailRocket publishes its events: milliseconds, an event name a row
    "timestamp,visitorid,event,itemid,transactionid\n"
    "1433221332117,1,view,10,\n1433221333118,1,addtocart,10,\n1433221334119,1,transaction,10,4\n"
    "1433221335120,2,view,11,\n"
)


def test_event_weights_weigh_a_column_of_event_names(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    path = write(tmp_path / "events.csv", EVENTS)
    (report,) = ingest_file(
        engine,
        lambda s: ingest_path(s, path, event_weights="view=1, addtocart=3,transaction=5", time_unit="ms"),
    )
    assert report.inserted == 4 and "weighed view 1, addtocart 3, transaction 5" in report.notes[0]
    with session_scope(engine) as s:
        st_ = stats(s)
    assert st_["implicit"] and (st_["value_min"], st_["value_max"]) == (1.0, 5.0)


def test_an_event_without_a_weight_is_a_bad_row(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    path = write(tmp_path / "events.csv", EVENTS)
    with pytest.raises(DataError, match=r"events.csv:4: column 'event': event 'transaction' has no weight"):
        ingest_file(
            engine, lambda s: ingest_path(s, path, event_weights={"view": 1, "addtocart": 2}, time_unit="ms")
        )
    (report,) = ingest_file(  # skipped into the rejects file: only the events named are kept
        engine,
        lambda s: ingest_path(s, path, event_weights="transaction=1", time_unit="ms", on_error="skip"),
    )
    assert (report.inserted, report.rejected) == (1, 3)


@pytest.mark.parametrize(
    ("weights", "extra", "message"),
    [
        ("view=1,cart", {}, "'cart=' is not EVENT=WEIGHT"),
        ("view=0", {}, "'view=0' is not EVENT=WEIGHT with a positive weight"),
        ("view=nan", {}, "is not EVENT=WEIGHT"),
        ("view=1,view=2", {}, "'view' is given twice"),
        ("view=1", {"explicit": True}, "cannot go with --explicit"),
        ("view=1", {"value_col": "nope"}, "no column 'nope'"),
    ],
)
def test_event_weights_that_cannot_work_are_clear_errors(sqlite_url, tmp_path, weights, extra, message):
    engine = make_engine(sqlite_url)
    path = write(tmp_path / "events.csv", EVENTS)
    with pytest.raises(DataError, match=re.escape(message)):
        ingest_file(engine, lambda s: ingest_path(s, path, event_weights=weights, time_unit="ms", **extra))
    assert counts(engine) == (0, 0, 0)


def test_a_column_of_event_names_is_pointed_out(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    path = write(tmp_path / "events.csv", EVENTS)
    with pytest.raises(
        DataError, match="or --event-weights view=1,purchase=5 to weigh the events of 'event'"
    ):
        ingest_file(engine, lambda s: ingest_path(s, path, time_unit="ms"))
    (report,) = ingest_file(engine, lambda s: ingest_path(s, path, time_unit="ms", implicit=True))
    assert "column 'event' names events ('view', " in report.notes[0]
    assert "--event-weights view=1,addtocart=1,transaction=1 weighs them" in report.notes[0]


def test_names_read_a_headerless_log_of_any_column_order(sqlite_url, tmp_path):
    """Taobao's UserBehavior.csv: no header; user, item, category, behavior, seconds."""
    engine = make_engine(sqlite_url)
    path = write(
        tmp_path / "UserBehavior.csv", "1,10,7,pv,1511544070\n1,11,7,buy,1511544071\n2,10,7,cart,1511544072\n"
    )
    names = "user_id,item_id,category_id,behavior_type,timestamp"
    (report,) = ingest_file(
        engine, lambda s: ingest_path(s, path, names=names, event_weights="pv=1,cart=3,buy=5")
    )
    assert report.inserted == 3 and "column 'behavior_type' names events" in report.notes[0]
    with session_scope(engine) as s:
        st_ = stats(s)
    assert (st_["value_max"], st_["time_min"], st_["users"]) == (5.0, 1511544070, 2)


@pytest.mark.parametrize(
    ("file", "names", "message"),
    [
        ("log.csv", "user,,item", "--names user,,item: give each column a name once"),
        ("log.csv", ["user", "user"], "--names user,user: give each column a name once"),
        ("log.jsonl", "user,item", "--names applies to CSV/TSV logs, not to log.jsonl"),
    ],
)
def test_names_that_cannot_work_are_clear_errors(tmp_path, file, names, message):
    path = write(tmp_path / file, "1,2,3\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(DataError, match=re.escape(message)):
        ingest_file(engine, lambda s: ingest_path(s, path, names=names))


def test_files_that_are_not_text_logs_say_what_they_are(sqlite_url, tmp_path):
    import zipfile

    engine = make_engine(sqlite_url)
    (tmp_path / "book.xlsx").write_bytes(b"PK\x03\x04 a workbook")
    (tmp_path / "data.avro").write_bytes(b"Obj\x01" + bytes(range(256)))
    (tmp_path / "u16.csv").write_text("user,item,rating\n1,2,5\n", encoding="utf-16")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04junk")
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as z:
        z.writestr("a.csv", "user,item,rating\n1,2,5\n")
        z.writestr("b.csv", "user,item,rating\n1,2,5\n")
    for name, says in (
        ("book.xlsx", "a spreadsheet, not a log recmeta reads; save its sheet as CSV"),
        ("data.avro", "a binary file, not a text log"),
        ("u16.csv", "UTF-16 text; pass --encoding utf-16"),
        ("broken.zip", "not a readable zip archive"),  # was an internal BadZipFile
        ("two.zip", "a zip of 2 files; recmeta reads a zip that holds one log"),  # was internal
    ):
        with pytest.raises(DataError, match=re.escape(says)):
            ingest_file(engine, lambda s, name=name: ingest_path(s, tmp_path / name))
    assert counts(engine) == (0, 0, 0)
    (report,) = ingest_file(engine, lambda s: ingest_path(s, tmp_path / "u16.csv", encoding="utf-16"))
    assert report.inserted == 1
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as z:  # a zip of one log: its log
        z.writestr("log.jsonl", '{"user": 3, "item": 4, "rating": 2}\n')
    (report,) = ingest_file(engine, lambda s: ingest_path(s, tmp_path / "one.zip", "jsonl"))
    assert report.inserted == 1
