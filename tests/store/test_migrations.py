from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from recmeta.store import make_engine
from recmeta.store.migrate import current_revision, downgrade, head_revision, upgrade
from recmeta.store.models import Base


def test_first_use_migrates_an_empty_database(db_url):
    engine = make_engine(db_url)
    assert current_revision(engine) == head_revision()
    assert {"users", "items", "interactions", "ingest_batches", "models"} <= set(
        inspect(engine).get_table_names()
    )


def test_models_and_migrations_agree(db_url):
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_downgrade_and_upgrade_round_trip(db_url):
    engine = make_engine(db_url)
    downgrade(engine, "base")
    assert "interactions" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_sqlite_runs_in_wal_mode(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_migrations_ship_inside_the_package():
    import recmeta.migrations  # installed as package data from migrations/

    assert recmeta.migrations.__file__


def test_schema_head_constant_matches_the_migrations():
    from recmeta.store.engine import SCHEMA_HEAD

    assert head_revision() == SCHEMA_HEAD
