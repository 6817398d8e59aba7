"""Logs for the benchmarks: ML-100K (`$RECMETA_ML100K` or ../shared/data/ml-100k) and Amazon
Beauty (../shared/data/amazon-beauty), each loaded through a temporary SQLite store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from common import ROOT

from recmeta import snapshot
from recmeta.ingest.pipeline import ingest_file, ingest_movielens
from recmeta.snapshot import Interactions
from recmeta.store import make_engine


def ml100k_dir() -> Path:
    for cand in (os.environ.get("RECMETA_ML100K"), ROOT.parent / "shared" / "data" / "ml-100k"):
        if cand and (Path(cand) / "u.data").is_file():
            return Path(cand)
    raise SystemExit("ML-100K not found: set $RECMETA_ML100K")


def load_log(name: str) -> Interactions:
    """'ml100k', or 'amazon-beauty' (../shared/data/amazon-beauty), loaded into a snapshot."""
    if name == "ml100k":
        return load_ml100k()
    from recmeta.ingest.pipeline import ingest_path

    path = ROOT.parent / "shared" / "data" / "amazon-beauty" / "interactions.csv"
    if not path.is_file():
        raise SystemExit(f"{path} not found")
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'a.db'}")
        ingest_file(engine, lambda s: ingest_path(s, path))
        data = snapshot.load(engine)
        engine.dispose()
    return data


def load_ml100k() -> Interactions:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'ml.db'}")
        ingest_file(engine, lambda s: ingest_movielens(s, ml100k_dir(), "movielens-100k"))
        data = snapshot.load(engine)
        engine.dispose()
    return data
