"""Helpers shared by the benchmarks: synthetic logs, child-process timing and peak memory."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def write_log(path: Path, rows: int, users: int = 50_000, items: int = 20_000, seed: int = 0) -> Path:
    """A CSV interaction log with long-tailed items, written in blocks (bounded memory)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, items + 1) ** 0.9
    p /= p.sum()
    with open(path, "w") as fh:
        fh.write("user,item,rating,timestamp\n")
        done = 0
        while done < rows:
            n = min(500_000, rows - done)
            u = rng.integers(1, users + 1, n)
            i = rng.choice(items, n, p=p) + 1
            r = rng.integers(1, 6, n)
            t = 1_500_000_000 + done + np.arange(n)  # unique times: every row is a new event
            np.savetxt(fh, np.column_stack([u, i, r, t]), fmt="%d", delimiter=",")
            done += n
    return path


PEAK = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def run_child(code: str, env: dict | None = None) -> tuple[dict, float]:
    """Run Python `code` in a fresh child process; returns (the JSON it printed, its own peak
    RSS in MiB)."""
    out = subprocess.run(
        [sys.executable, "-c", code + "\n" + PEAK],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-2]), int(lines[-1]) / 1024


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def protocol_split(db: str, seed: int) -> tuple:
    """A recmeta SQLite store's log under one seed of PROTOCOL.md: (data, positive threshold,
    its row order (the seeded shuffle without timestamps), the user split, the training
    users' log, the validation users' log)."""
    from recmeta import snapshot
    from recmeta.store import make_engine
    from recmeta.tasks import Sequences, positive_threshold, split_users

    data = snapshot.load(make_engine(f"sqlite:///{db}"))
    split = split_users(data, seed=seed)
    train, val = snapshot.restrict(data, split.train), snapshot.restrict(data, split.validation)
    return data, positive_threshold(data), Sequences.from_data(data, seed=seed), split, train, val


def learner_params(pairs: list[str]) -> dict:
    """`--set key=value` pairs as learner parameters: whole numbers, then numbers, else text."""
    out = {}
    for key, text in (pair.split("=", 1) for pair in pairs):
        for kind in (int, float):
            try:
                out[key] = kind(text)
                break
            except ValueError:
                continue
        else:
            out[key] = text
    return out


def fit_meta_learners(train, val, seed: int, max_time: float) -> tuple[dict, object]:
    """As `recmeta evaluate` fits them: the tuned ALS, MAML, ProtoNet and Meta-LSTM started
    from it (`max_time` seconds of meta-training each), the ensemble assembled from them and
    its bias weights tuned. Returns (the fitted models by kind, the ensemble)."""
    from recmeta.learners import create
    from recmeta.training import fit

    fitted = {"als": fit(create("als"), train, val, seed=seed)}
    for kind in ("maml", "protonet", "metalstm"):
        fitted[kind] = fit(create(kind, fitted=fitted, max_time=max_time), train, val, seed=seed)
    return fitted, fit(create("ensemble", fitted=fitted), train, val, seed=seed)


def one_seed_args(doc: str):
    """The arguments of a one-seed trial: the store, --seed and --max-time (seconds of
    meta-training per learner, 90 by default)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-time", type=float, default=90.0, help="seconds of meta-training per learner")
    return ap.parse_args()
