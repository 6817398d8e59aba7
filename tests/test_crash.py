"""kill -9 in the middle of work: an ingest is all or nothing, and a training run leaves
the checkpoints and the registry as they were (the previous models still load and serve)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import empty_store

ROOT = Path(__file__).resolve().parents[1]


def recmeta(db: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recmeta.cli", "--db", db, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        **kw,
    )


def start(db: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "recmeta.cli", "--db", db, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    """SIGKILL `proc` once `ready()` holds (or fail if it ends first)."""
    end = time.time() + timeout
    while not ready():
        assert proc.poll() is None, "the process ended before it could be killed"
        assert time.time() < end, "the process never reached the point to kill it at"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def stats(db: str) -> dict:
    res = recmeta(db, "stats", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def big_log(tmp_path: Path, n: int = 400_000) -> Path:
    rng = np.random.default_rng(0)
    log = tmp_path / "big.csv"
    rows = np.column_stack(
        [rng.integers(1, 5000, n), rng.integers(1, 3000, n), rng.integers(1, 6, n), np.arange(n)]
    )
    np.savetxt(log, rows, fmt="%d", delimiter=",", header="user,item,rating,timestamp", comments="")
    return log


@pytest.mark.slow
def test_kill_9_during_a_postgresql_copy_writes_nothing(tmp_path, pg_url):
    from sqlalchemy import create_engine, text

    log = big_log(tmp_path)
    stats(pg_url)
    watcher = create_engine(pg_url)

    def copying() -> bool:
        with watcher.connect() as conn:
            done = conn.execute(text("SELECT max(tuples_processed) FROM pg_stat_progress_copy")).scalar()
        return (done or 0) > 0

    proc = start(pg_url, "ingest", "interactions", str(log))
    kill_when(proc, copying)
    watcher.dispose()
    assert stats(pg_url)["interactions"] == 0


@pytest.mark.slow
def test_kill_9_during_an_ingest_writes_all_or_nothing(tmp_path):
    n = 400_000
    log = big_log(tmp_path, n)
    db = empty_store(tmp_path / "x.db")
    wal = Path(db + "-wal")
    proc = start(db, "ingest", "interactions", str(log))
    kill_when(proc, lambda: wal.exists() and wal.stat().st_size > 2_000_000)  # rows are being written
    assert stats(db)["interactions"] in (0, n)


@pytest.mark.slow
def test_kill_9_during_training_leaves_the_previous_checkpoints(tmp_path):
    db = str(tmp_path / "x.db")
    models = tmp_path / "models"
    assert (
        recmeta(
            db, "data", "synth", "--out", str(tmp_path / "s"), "--users", "300", "--items", "80"
        ).returncode
        == 0
    )
    assert recmeta(db, "ingest", "interactions", str(tmp_path / "s" / "interactions.csv")).returncode == 0
    first = recmeta(db, "train", "--model", "protonet", "--epochs", "2", "--models-dir", str(models))
    assert first.returncode == 0, first.stderr
    before = json.loads(recmeta(db, "models", "--json").stdout)
    files = set(models.iterdir())
    proc = start(
        db, "train", "--model", "maml", "--model", "protonet", "--epochs", "200", "--models-dir", str(models)
    )
    kill_when(proc, lambda: any(p.name.startswith("maml-") for p in models.iterdir()))  # mid-run
    assert json.loads(recmeta(db, "models", "--json").stdout)[-len(before) :] == before
    for path in files:
        assert path.exists()
    res = recmeta(db, "recommend", "--user", "1", "--model", "protonet", "--json")
    assert res.returncode == 0, res.stderr
