"""Fuzzed input through the CLI (hypothesis, a bounded number of examples): any CSV or
Parquet log, and any --with value, ends in exit code 0 or 1 with no traceback, and a failed
ingest writes nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from recmeta.cli import app
from tests.conftest import stored_interactions

runner = CliRunner()
FUZZ = settings(
    max_examples=int(os.environ.get("RECMETA_FUZZ_EXAMPLES", "25")),  # CI: 25 a test
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
field = st.one_of(
    st.text(max_size=12),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "nan", "inf", "-inf", "1e308", "2020-01-01", "NULL", '"', ",", "\x00", "５"]),
)
header = st.one_of(
    st.just(["user", "item", "rating", "timestamp"]),
    st.just(["user_id", "item_id"]),
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=5),
)


def interactions(db: str) -> int:
    return stored_interactions(db)


def check(res, db: str, before: int) -> None:
    assert res.exit_code in (0, 1), res.output
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    if res.exit_code == 1:
        assert interactions(db) == before  # a failed ingest writes nothing


@FUZZ
@given(head=header, rows=st.lists(st.lists(field, min_size=1, max_size=6), max_size=8), skip=st.booleans())
def test_fuzzed_csv_logs(db_url, tmp_path_factory, head, rows, skip):
    folder = tmp_path_factory.mktemp("csv")
    path = folder / "log.csv"
    lines = [",".join(head)] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    before = interactions(db_url)
    extra = ["--on-error", "skip", "--rejects", str(folder / "rejects.csv")] if skip else []
    check(runner.invoke(app, ["--db", db_url, "ingest", "interactions", str(path), *extra]), db_url, before)


column = st.one_of(
    st.lists(st.integers(-5, 5), min_size=3, max_size=3),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3),
    st.lists(st.text(max_size=6), min_size=3, max_size=3),
    st.lists(st.one_of(st.none(), st.integers(0, 9)), min_size=3, max_size=3),
    st.lists(st.lists(st.integers(0, 3), max_size=2), min_size=3, max_size=3),
)


@FUZZ
@given(
    cols=st.dictionaries(st.sampled_from(["user", "item", "rating", "timestamp", "x"]), column, min_size=1)
)
def test_fuzzed_parquet_logs(db_url, tmp_path_factory, cols):
    path = tmp_path_factory.mktemp("pq") / "log.parquet"
    pq.write_table(pa.table(cols), path)
    before = interactions(db_url)
    check(runner.invoke(app, ["--db", db_url, "ingest", "interactions", str(path)]), db_url, before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("with")
    db = str(root / "r.db")
    assert (
        runner.invoke(
            app, ["data", "synth", "--out", str(root / "s"), "--users", "60", "--items", "30"]
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            app, ["--db", db, "ingest", "interactions", str(root / "s" / "interactions.csv")]
        ).exit_code
        == 0
    )
    res = runner.invoke(
        app, ["--db", db, "train", "--epochs", "1", "--model", "protonet", "--models-dir", str(root / "m")]
    )
    assert res.exit_code == 0, res.output
    return db


@FUZZ
@given(
    pairs=st.lists(
        st.one_of(
            st.text(max_size=8), st.sampled_from(["1:nan", "1:inf", "2:1e308", "3:-1", "1", ":", "4:5"])
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzzed_with_values(trained, pairs):
    res = runner.invoke(app, ["--db", trained, "recommend", "--model", "protonet", "--with", *pairs])
    assert res.exit_code in (0, 1, 2), res.output
    if res.exit_code == 2:  # a usage error from option parsing (e.g. a pair that looks like an option)
        assert "internal error" not in res.output
    assert "Traceback" not in res.output
