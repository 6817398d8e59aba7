"""Repository functions over the store. Each takes the session first.

The bulk functions build pandas frames and import pandas themselves: the request path of
`recmeta recommend` (a user's rows, the catalogue, the registry) stays pandas-free so that
the command starts fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from recmeta.errors import UnknownCheckpointError
from recmeta.store.models import IngestBatch, Interaction, Item, Model, User

if TYPE_CHECKING:
    import pandas as pd

_IN_CHUNK = 5_000  # ids per IN (...) lookup: well under every backend's variable limit


def id_map(session: Session, entity: type[User] | type[Item]) -> dict[str, int]:
    """external id -> row id for every user (or item) in the store."""
    rows = session.execute(select(entity.external_id, entity.id))
    return dict(rows.all())


def ensure_entities(
    session: Session,
    entity: type[User] | type[Item],
    external_ids: Iterable[str],
    known: dict[str, int],
) -> dict[str, int]:
    """Create the users (or items) of `external_ids` not in `known`; update and return `known`."""
    import pandas as pd

    unique = pd.unique(
        pd.Series(
            list(external_ids) if not isinstance(external_ids, pd.Series) else external_ids, dtype=object
        )
    )
    new = [e for e in unique if e not in known]
    if not new:
        return known
    _insert_rows(session, entity.__table__.name, ["external_id"], [(e,) for e in new])
    for start in range(0, len(new), _IN_CHUNK):
        part = new[start : start + _IN_CHUNK]
        rows = session.execute(select(entity.external_id, entity.id).where(entity.external_id.in_(part)))
        known.update(rows.all())
    return known


def lookup(known: dict[str, int], external_ids: pd.Series) -> np.ndarray:
    """Row ids of `external_ids` (all must be in `known`), vectorised."""
    import pandas as pd

    index = pd.Index(list(known.keys()))
    ids = np.fromiter(known.values(), dtype=np.int64, count=len(known))
    return ids[index.get_indexer(external_ids)]


def upsert_metadata(
    session: Session, entity: type[User] | type[Item], records: Sequence[dict[str, Any]]
) -> int:
    """Insert or update users (or items) by external id; returns how many rows changed."""
    if not records:
        return 0
    known = id_map(session, entity)
    ensure_entities(session, entity, (r["external_id"] for r in records), known)
    params = [{**r, "id": known[r["external_id"]]} for r in records]
    columns = [k for k in params[0] if k not in ("id", "external_id")]
    if columns:
        session.execute(update(entity), [{k: p[k] for k in ("id", *columns)} for p in params])
    return len(params)


INTERACTION_COLUMNS = ["user_id", "item_id", "value", "timestamp", "batch_id"]


@contextmanager
def first_load(session: Session) -> Iterator[None]:
    """On PostgreSQL, while the first log goes into an empty store, the foreign keys of
    `interactions` are dropped and then added back, which checks every row in one join:
    checking each inserted row took three quarters of a load. PostgreSQL's own advice for
    bulk loads; the DDL is part of the caller's transaction, so a failed load rolls the
    constraints back with the rows. A store that holds rows (readers may be serving from
    it; the DDL would block them) and SQLite load as before."""
    conn = session.connection()
    if conn.dialect.name != "postgresql" or session.execute(select(Interaction.id).limit(1)).first():
        yield
        return
    keys = conn.exec_driver_sql(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'interactions'::regclass AND contype = 'f'"
    ).all()
    for name, _ in keys:
        conn.exec_driver_sql(f'ALTER TABLE interactions DROP CONSTRAINT "{name}"')
    yield
    for name, definition in keys:
        conn.exec_driver_sql(f'ALTER TABLE interactions ADD CONSTRAINT "{name}" {definition}')


def insert_interactions(session: Session, frame: pd.DataFrame, *, add_counts: bool = False) -> int:
    """Bulk insert rows (user_id, item_id, value, timestamp, batch_id); duplicates are skipped,
    or, with `add_counts` (an implicit log without timestamps, where a repeated row is another
    event), added to the stored count.

    Returns how many rows were new. Rows go in sorted by the unique key, so the index grows
    in order.
    """
    if frame.empty:
        return 0
    frame = frame.sort_values(["user_id", "item_id", "timestamp"], kind="stable")
    cols = frame[INTERACTION_COLUMNS]
    rows = list(zip(*(cols[c].tolist() for c in INTERACTION_COLUMNS), strict=True))
    if not add_counts:
        return _insert_rows(session, "interactions", INTERACTION_COLUMNS, rows)
    before = count_interactions(session)
    _insert_rows(
        session,
        "interactions",
        INTERACTION_COLUMNS,
        rows,
        conflict="(user_id, item_id, timestamp) DO UPDATE SET value = interactions.value + excluded.value",
    )
    return count_interactions(session) - before


_PG_TYPES = {
    "user_id": "int",
    "item_id": "int",
    "value": "float8",
    "timestamp": "bigint",
    "batch_id": "int",
    "external_id": "text",
}


def _insert_rows(
    session: Session, table: str, columns: list[str], rows: list[tuple], conflict: str = "DO NOTHING"
) -> int:
    """Insert plain tuples, skipping rows that break a unique rule (or applying `conflict`, an
    ON CONFLICT clause); returns how many rows the database reports written.

    SQLite: one `INSERT ... ON CONFLICT` executemany. PostgreSQL: COPY into a temporary table,
    then one `INSERT ... SELECT ... ON CONFLICT`.
    """
    names = ", ".join(columns)
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in columns)
        result = conn.exec_driver_sql(
            f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT {conflict}", rows
        )
        return max(result.rowcount, 0)
    raw = conn.connection.driver_connection  # psycopg
    staging = f"_recmeta_{table}"
    with raw.cursor() as cur:
        defs = ", ".join(f"{c} {_PG_TYPES[c]}" for c in columns)
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} ({defs}) ON COMMIT DROP")
        cur.execute(f"TRUNCATE {staging}")
        with cur.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ON CONFLICT {conflict}")
        return cur.rowcount


def value_conflicts(session: Session, frame: pd.DataFrame) -> int:
    """How many rows of `frame` (user_id, item_id, value, timestamp) have a stored row with the
    same (user, item, timestamp) but another value: duplicates that were not stored although
    their value differs. One temporary table and one join, on both backends."""
    if frame.empty:
        return 0
    cols = ["user_id", "item_id", "timestamp", "value"]
    rows = list(zip(*(frame[c].tolist() for c in cols), strict=True))
    conn = session.connection()
    names = ", ".join(cols)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS _recmeta_check "
            "(user_id INTEGER, item_id INTEGER, timestamp INTEGER, value REAL)"
        )
        conn.exec_driver_sql("DELETE FROM _recmeta_check")
        conn.exec_driver_sql(f"INSERT INTO _recmeta_check ({names}) VALUES (?, ?, ?, ?)", rows)
    else:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _recmeta_check "
                "(user_id int, item_id int, timestamp bigint, value float8) ON COMMIT DROP"
            )
            cur.execute("TRUNCATE _recmeta_check")
            with cur.copy(f"COPY _recmeta_check ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    found = conn.exec_driver_sql(
        "SELECT count(*) FROM _recmeta_check c JOIN interactions i ON i.user_id = c.user_id "
        "AND i.item_id = c.item_id AND i.timestamp = c.timestamp WHERE i.value <> c.value"
    ).scalar()
    return int(found or 0)


def count_interactions(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Interaction)) or 0


def start_batch(session: Session, *, source: str, kind: str, content_hash: str) -> IngestBatch:
    batch = IngestBatch(source=source, kind=kind, content_hash=content_hash)
    session.add(batch)
    session.flush()
    return batch


def batch_seen(session: Session, content_hash: str) -> bool:
    stmt = select(IngestBatch.id).where(IngestBatch.content_hash == content_hash).limit(1)
    return session.scalar(stmt) is not None


def finish_batch(session: Session, batch: IngestBatch, **counts: int) -> None:
    for key, value in counts.items():
        setattr(batch, key, value)
    session.flush()


def log_is_implicit(session: Session) -> bool:
    """True when every interaction log in the store was ingested as implicit."""
    kinds = set(session.scalars(select(IngestBatch.kind).distinct()))
    return kinds == {"implicit"}


def interaction_blocks(
    session: Session, block: int = 500_000, *, with_ids: bool = False, upto: int | None = None
) -> Iterator[list[np.ndarray]]:
    """Every interaction (rows up to id `upto` when given), in blocks of typed columns
    user_id (int64), item_id (int64), value (float32), timestamp (int64) and the row `id`:
    one query whose cursor is read `block` rows at a time, so memory is one block."""
    cursor = session.connection().connection.dbapi_connection.cursor()  # plain tuples, no Row objects
    where = f" WHERE id <= {int(upto)}" if upto is not None else ""
    try:
        cursor.execute(
            f"SELECT user_id, item_id, value, timestamp{', id' if with_ids else ''} FROM interactions{where}"
        )
        types = (np.int64, np.int64, np.float32, np.int64, np.int64)[: 5 if with_ids else 4]
        while rows := cursor.fetchmany(block):
            arr = np.array(rows, dtype=np.float64).reshape(len(rows), len(types))
            del rows
            with np.errstate(over="ignore"):  # a value past float32 becomes inf: snapshot rejects it
                block_cols = [arr[:, col].astype(kind) for col, kind in enumerate(types)]
            yield block_cols
    finally:
        cursor.close()


def user_row_counts(session: Session, upto: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(user row ids, their interaction counts), rows up to id `upto` when given (one
    GROUP BY, which the (user, item, time) key answers from its index)."""
    cursor = session.connection().connection.dbapi_connection.cursor()
    where = f" WHERE id <= {int(upto)}" if upto is not None else ""
    try:
        cursor.execute(f"SELECT user_id, COUNT(*) FROM interactions{where} GROUP BY user_id")
        pairs = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 2)
    finally:
        cursor.close()
    return pairs[:, 0], pairs[:, 1]


def entities_frame(session: Session, entity: type[User] | type[Item]) -> pd.DataFrame:
    """Every user (or item) with its metadata columns."""
    import pandas as pd

    cols = [c for c in entity.__table__.columns]
    rows = session.execute(select(*cols)).all()
    # plain tuples: pandas probes SQLAlchemy rows one attribute at a time, 3x slower
    return pd.DataFrame([tuple(r) for r in rows], columns=[c.name for c in cols])


def watermark(session: Session) -> dict[str, int]:
    """What a model was trained on: counts and the newest interaction row."""
    users, items = entity_counts(session)
    return {
        "interactions": count_interactions(session),
        "max_interaction_id": session.scalar(select(func.max(Interaction.id))) or 0,
        "users": users,
        "items": items,
    }


def register_model(session: Session, *, activate: bool = True, **fields: Any) -> Model:
    """Add a model row; the newest of a name becomes its active one."""
    model = Model(**fields, active=activate)
    if activate:
        session.execute(update(Model).where(Model.name == fields["name"]).values(active=False))
    session.add(model)
    session.flush()
    return model


def activate_model(session: Session, model_id: int) -> Model:
    """Make checkpoint `model_id` the active one of its name (a rollback, or a roll forward)."""
    model = session.get(Model, model_id) if 0 < model_id < 2**63 else None  # SQL's 64-bit integers
    if model is None:
        raise UnknownCheckpointError(f"no checkpoint #{model_id}; `recmeta models` lists them")
    session.execute(update(Model).where(Model.name == model.name).values(active=False))
    model.active = True
    session.flush()
    return model


def stale_models(session: Session, keep: int) -> list[Model]:
    """The inactive checkpoints of each name beyond the `keep` newest inactive ones."""
    seen: dict[str, int] = {}
    stale = []
    for m in list_models(session):
        if not m.active:
            seen[m.name] = seen.get(m.name, 0) + 1
            if seen[m.name] > keep:
                stale.append(m)
    return stale


def list_models(session: Session, *, active_only: bool = False) -> list[Model]:
    stmt = select(Model).order_by(Model.created_at.desc(), Model.id.desc())
    if active_only:
        stmt = stmt.where(Model.active.is_(True))
    return list(session.scalars(stmt))


def describe_models(session: Session, *, active_only: bool = False) -> list[dict[str, Any]]:
    """Registered checkpoints as plain dicts, newest first: id, name, kind, active, path,
    created, validation ndcg@10 by support size, lineage (parent, watermark range, new rows),
    config."""
    return [
        {
            "id": m.id,
            "name": m.name,
            "kind": m.kind,
            "active": m.active,
            "path": m.path,
            "created": m.created_at.isoformat(timespec="seconds"),
            "validation": m.metrics.get("validation_ndcg@10", {}),
            "parent_id": m.metrics.get("parent_id"),
            "watermark_range": m.metrics.get("watermark_range"),
            "new_rows": m.metrics.get("new_rows"),
            "config": m.config,
        }
        for m in list_models(session, active_only=active_only)
    ]


_ONE_USER = (
    "SELECT i.external_id, x.value, x.timestamp FROM users u "
    "JOIN interactions x ON x.user_id = u.id JOIN items i ON i.id = x.item_id "
    "WHERE u.external_id = {mark} ORDER BY x.timestamp, i.id"
)


def iter_user_ids(engine: Any, block: int = 65_536) -> Iterator[str]:
    """Every user id in the store, in blocks of `block` (keyset paging: memory stays flat and
    no transaction stays open while the caller works on a block)."""
    last = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(User.id, User.external_id).where(User.id > last).order_by(User.id).limit(block)
            ).all()
        if not rows:
            return
        last = rows[-1][0]
        yield from (r[1] for r in rows)


def user_interactions(session: Session | Connection, external_id: str) -> list[tuple[str, float, int]] | None:
    """One user's rows (item external id, value, timestamp) in time order, or None for an
    unknown user. One plain query on the driver's cursor: a server asks this per request,
    on a bare connection (a Session's set-up costs more than the query)."""
    conn = session.connection() if isinstance(session, Session) else session
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(_ONE_USER.format(mark="?" if conn.dialect.name == "sqlite" else "%s"), (external_id,))
        rows = [(str(item), float(value), int(ts)) for item, value, ts in cursor.fetchall()]
    finally:
        cursor.close()
    if not rows and conn.scalar(select(User.id).where(User.external_id == external_id)) is None:
        return None
    return rows


def user_histories(session: Session, external_ids: Sequence[str]) -> dict[str, list[tuple[str, float, int]]]:
    """The rows (item external id, value, timestamp) of every known user among
    `external_ids`, each in time order; unknown users are left out. One query per
    `_IN_CHUNK` users."""
    out: dict[str, list[tuple[str, float, int]]] = {}
    ids = list(dict.fromkeys(str(e) for e in external_ids))
    for start in range(0, len(ids), _IN_CHUNK):
        part = ids[start : start + _IN_CHUNK]
        users = session.execute(select(User.id, User.external_id).where(User.external_id.in_(part))).all()
        rows = {uid: out.setdefault(ext, []) for uid, ext in users}
        stmt = (
            select(Interaction.user_id, Item.external_id, Interaction.value, Interaction.timestamp)
            .join(Item, Item.id == Interaction.item_id)
            .where(Interaction.user_id.in_(list(rows)))
            .order_by(Interaction.user_id, Interaction.timestamp, Item.id)
        )
        for uid, item, value, ts in session.connection().execute(stmt).all():  # Core rows, no ORM
            rows[uid].append((item, value, ts))
    return out


COLD_THRESHOLDS = (1, 5, 10, 20)


def stats(session: Session) -> dict[str, Any]:
    """Counts, density, value and time ranges, and how many users are cold, from SQL aggregates."""
    n_users, n_items = entity_counts(session)
    agg = session.execute(
        select(
            func.count(),
            func.min(Interaction.value),
            func.max(Interaction.value),
            func.min(Interaction.timestamp),
            func.max(Interaction.timestamp),
        )
    ).one()
    per_user = session.execute(select(Interaction.user_id, func.count()).group_by(Interaction.user_id)).all()
    counts = np.zeros(n_users, dtype=np.int64)
    counts[: len(per_user)] = sorted((c for _, c in per_user), reverse=True)
    n = int(agg[0])
    return {
        "users": n_users,
        "items": n_items,
        "interactions": n,
        "density": n / (n_users * n_items) if n_users and n_items else 0.0,
        "implicit": log_is_implicit(session),
        "value_min": agg[1],
        "value_max": agg[2],
        "time_min": agg[3],
        "time_max": agg[4],
        "interactions_per_user": {
            "min": int(counts.min()) if n_users else 0,
            "median": float(np.median(counts)) if n_users else 0.0,
            "mean": float(counts.mean()) if n_users else 0.0,
            "max": int(counts.max()) if n_users else 0,
        },
        "users_with_at_most": {str(k): int((counts <= k).sum()) for k in COLD_THRESHOLDS},
    }


def active_models(session: Session) -> dict[str, Model]:
    """The active model of each name (the newest registered one)."""
    return {m.name: m for m in list_models(session, active_only=True)}


def serving_state(session: Session) -> tuple:
    """What a warm server was built from: the active model of each name and the number of
    items. When it changes, the server reloads."""
    models = session.execute(select(Model.name, Model.id).where(Model.active.is_(True))).all()
    return tuple(sorted(models)), entity_counts(session)[1]


def entity_counts(session: Session) -> tuple[int, int]:
    """How many users and items the store holds."""
    users = session.scalar(select(func.count()).select_from(User)) or 0
    return users, session.scalar(select(func.count()).select_from(Item)) or 0


def max_value(session: Session) -> float | None:
    return session.scalar(select(func.max(Interaction.value)))


def value_range(session: Session) -> tuple[float | None, float | None]:
    """The smallest and largest value in the store (None, None when it is empty)."""
    lo, hi = session.execute(select(func.min(Interaction.value), func.max(Interaction.value))).one()
    return lo, hi


def catalogue(session: Session) -> dict[str, str | None]:
    """Every item's external id -> title, in row-id order."""
    return dict(session.execute(select(Item.external_id, Item.title).order_by(Item.id)).all())


def add_user_interactions(session: Session, external_id: str, rows: Sequence[tuple[str, float, int]]) -> int:
    """Store rows (item external id, value, timestamp) for one user, creating the user if new."""
    import pandas as pd

    users = ensure_entities(session, User, [external_id], {})
    items = ensure_entities(session, Item, [r[0] for r in rows], {})
    frame = pd.DataFrame(
        {
            "user_id": users[external_id],
            "item_id": [items[r[0]] for r in rows],
            "value": [float(r[1]) for r in rows],
            "timestamp": [int(r[2]) for r in rows],
            "batch_id": None,
        }
    )
    return insert_interactions(session, frame)
