"""Engines, sessions and the default database URL."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from recmeta.errors import StoreError, env_number

DEFAULT_DB_FILE = "recmeta.db"
BUSY_MS = 30_000  # how long a SQLite writer waits for another one ($RECMETA_SQLITE_BUSY_MS)
SCHEMA_HEAD = "0001"  # the newest migration in migrations/versions (a test keeps them equal)


def resolve_url(url: str | None = None) -> str:
    """`url`, else `$RECMETA_DB`, else a SQLite file `recmeta.db` in the working directory.

    A bare path is taken as a SQLite file.
    """
    url = url or os.environ.get("RECMETA_DB") or DEFAULT_DB_FILE
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///file:"):
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _check_exists(url: str) -> None:
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise StoreError(
            f"no store at {str(path)!r}: nothing has been ingested there. Load a log first "
            "(`recmeta ingest interactions LOG`), or point --db / $RECMETA_DB at your store"
        )


@contextmanager
def new_store_undone(url: str | None = None) -> Iterator[None]:
    """Around a first write to a SQLite store: when the file did not exist before and the
    block fails, the file it made (and SQLite's side files) is removed, so that a failed
    first ingest leaves nothing behind."""
    path = sqlite_path(resolve_url(url))
    fresh = path is not None and not path.exists()
    try:
        yield
    except BaseException:
        if fresh:
            for side in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{side}").unlink(missing_ok=True)
        raise


def _read_only_url(url: str) -> str | None:
    """For a SQLite file this process may not write (or whose folder it may not write, where
    WAL keeps its side files), a read-only URL; None when it can write."""
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = Path(url[len("sqlite:///") :])
    if not path.is_file():
        return None
    folder_ok = os.access(path.parent, os.W_OK)
    if os.access(path, os.W_OK) and folder_ok:
        return None
    # with no WAL file beside it, nothing is pending: SQLite may then read it as immutable,
    # which needs no side files in a folder it cannot write
    wal = Path(f"{path}-wal")
    flags = "mode=ro" if folder_ok or wal.exists() else "mode=ro&immutable=1"
    return f"sqlite:///file:{path.resolve()}?{flags}&uri=true"


def _sqlite_pragmas(busy_ms: int):
    """The connect hook that sets every SQLite connection's pragmas."""

    def connect(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:  # a read-only store keeps the journal it has
            if "readonly" not in str(exc) and "read-only" not in str(exc):
                raise
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.execute("PRAGMA cache_size=-131072")  # 128 MiB page cache: bulk inserts touch big indexes
        cur.close()

    return connect


def make_engine(url: str | None = None, *, migrate: bool = True, create: bool = True) -> Engine:
    """An engine for `url`; an empty database is brought to the newest schema first. With
    `create` False, a SQLite file that does not exist is an error rather than a new, empty
    store (a command that only reads would otherwise make one at a mistyped path)."""
    url = resolve_url(url)
    if not create:
        _check_exists(url)
    url = _read_only_url(url) or url
    try:
        engine = create_engine(url)
    except NoSuchModuleError:
        scheme = url.split("://", 1)[0]
        raise StoreError(
            f"unknown database kind {scheme!r} in --db; recmeta stores in SQLite (a file path or "
            "sqlite:///PATH) or PostgreSQL (postgresql://user@host/dbname)"
        ) from None
    except (ImportError, ArgumentError) as exc:
        raise StoreError(
            f"cannot use --db {url.split('://', 1)[0]}://...: {exc}; recmeta stores in SQLite or PostgreSQL"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(
            engine, "connect", _sqlite_pragmas(int(env_number("RECMETA_SQLITE_BUSY_MS", BUSY_MS, 0)))
        )
    try:
        with engine.connect():
            pass
    except (OperationalError, DatabaseError) as exc:
        hint = _sqlite_hint(engine.url.database) if engine.dialect.name == "sqlite" else ""
        raise StoreError(
            f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}{hint}. Check --db / $RECMETA_DB."
        ) from exc
    stored = _stored_revision(engine) if migrate else SCHEMA_HEAD
    if stored != SCHEMA_HEAD:
        if stored is None and _has_foreign_tables(engine):
            raise StoreError(
                "the database holds tables that recmeta did not create; "
                "point --db at a new or recmeta database"
            )
        from recmeta.store.migrate import upgrade  # Alembic is imported only when needed

        upgrade(engine)
    return engine


def _stored_revision(engine: Engine) -> str | None:
    """The database's Alembic revision, read without importing Alembic (fast start-up)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _has_foreign_tables(engine: Engine) -> bool:
    """True when the database holds tables but no Alembic version (not ours to touch)."""
    names = set(inspect(engine).get_table_names())
    return bool(names) and "alembic_version" not in names


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back everything on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        with factory() as session, session.begin():
            yield session
    except OperationalError as exc:
        if "readonly" in str(exc.orig):
            raise StoreError(
                "this SQLite store is read-only for this user: reading works, writing does not; "
                "run as its owner or copy the file somewhere writable"
            ) from None
        if "locked" not in str(exc.orig):
            raise
        raise StoreError(
            "another process is writing to this SQLite store and did not finish in time; nothing "
            "was written. Run again when it is done (SQLite takes one writer at a time; "
            "PostgreSQL takes many)"
        ) from None


def _sqlite_hint(database: str | None) -> str:
    """Why a SQLite file would not open: a folder that does not exist, or not a database."""
    folder = Path(database or "").expanduser().parent
    if database and database != ":memory:" and not folder.is_dir():
        return f" (the folder {str(folder)!r} does not exist; create it or pick another path)"
    return " (it is not a SQLite database?)"
