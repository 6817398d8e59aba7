"""The SQL interaction store: tables, engines, migrations and bulk repository functions."""

from recmeta.store.engine import make_engine, new_store_undone, resolve_url, session_scope

__all__ = ["make_engine", "new_store_undone", "resolve_url", "session_scope"]
