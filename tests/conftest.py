"""Shared fixtures: temporary SQLite and PostgreSQL stores, the ML-100K folder, a synthetic log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]


def _ml100k() -> Path | None:
    for cand in (os.environ.get("RECMETA_ML100K"), ROOT.parent / "shared" / "data" / "ml-100k"):
        if cand and (Path(cand) / "u.data").is_file():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    path = _ml100k()
    if path is None:
        pytest.skip("ML-100K not found: set $RECMETA_ML100K or put it at ../shared/data/ml-100k")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


def _pg_url() -> str | None:
    url = os.environ.get("RECMETA_TEST_PG_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but RECMETA_TEST_PG_URL is not set: .ci/run must provide PostgreSQL")
        pytest.skip("PostgreSQL tests need RECMETA_TEST_PG_URL")
    return url


@pytest.fixture
def pg_url() -> str:
    """A PostgreSQL database emptied before the test."""
    from recmeta.store import resolve_url

    url = resolve_url(_pg_url())
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """Each test that takes it runs once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic log with planted taste groups (interactions, items, users)."""
    from recmeta.datasets import SynthConfig, write_synth

    out = tmp_path_factory.mktemp("synth")
    write_synth(SynthConfig(users=300, items=120, seed=3), out)
    return out


def write(path: Path, text_: str) -> Path:
    path.write_text(text_)
    return path


def empty_store(path: Path | str) -> str:
    """A store at `path` with the schema and nothing in it (`recmeta ingest` makes one; the
    other commands refuse a SQLite file that is not there)."""
    from recmeta.store import make_engine

    make_engine(str(path)).dispose()
    return str(path)


def stored_interactions(db: str) -> int:
    """How many interactions the store at `db` holds: 0 where a SQLite file is not there (a
    failed first ingest removes the one it made)."""
    from recmeta.store import make_engine, resolve_url, session_scope
    from recmeta.store.engine import sqlite_path
    from recmeta.store.repository import stats

    path = sqlite_path(resolve_url(db))
    if path is not None and not path.exists():
        return 0
    engine = make_engine(db)
    try:
        with session_scope(engine) as session:
            return stats(session)["interactions"]
    finally:
        engine.dispose()
