"""Data-parallel meta-training: tasks/s of 2 workers against 1, on ML-100K.

    python benchmarks/bench_workers.py [--batch 32 128 512] [--steps 40] [--rounds 3]

First, what summing a gradient costs: gloo's all_reduce against the pairwise exchange the
trainer uses, for 2 and for 150,000 floats (ML-100K's MAML has 123k parameters).

The `Trainer` meta-trains on ML-100K's users (every user a task, as `recmeta train` draws
them) in one process and in 2 gloo workers (`recmeta train --workers 2`'s code path), one
thread each, for the same seed and total meta-batch: the workers take the same steps.
A step's time is the steady state: a run of 5 + `--steps` steps minus a run of the same
first 5, after a first run of 5 that opens the connections (set-up and first allocations
cancel). 1 and 2 workers
alternate, `--rounds` times; the table gives the range over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from common import machine
from ml100k import ml100k_dir

from recmeta import snapshot
from recmeta.ingest.pipeline import ingest_file, ingest_movielens
from recmeta.learners import create
from recmeta.store import make_engine
from recmeta.threads import set_threads
from recmeta.training import Group, Trainer
from recmeta.training.distributed import Workers

WARMUP = 5


def step_ms(url: str, kind: str, batch: int, steps: int, group: Group) -> float:
    """Steady-state ms per step of this worker (the same on every worker: they step together)."""
    set_threads(1)
    data = snapshot.load(make_engine(url, migrate=False))
    params = {"device": "cpu", "batch_size": batch, "epochs": 10**6, "patience": 10**6}
    seconds = []
    for n in (WARMUP, WARMUP, WARMUP + steps):  # the first run also opens the workers' connections
        trainer = Trainer(create(kind, **params), seed=0, max_steps=n, group=group)
        trainer.fit(data)
        seconds.append(trainer.outcome.step_seconds)
    return 1000 * (seconds[2] - seconds[1]) / steps


def sum_us(n: int, group: Group) -> tuple[float, float]:
    """Microseconds to sum `n` floats over the workers: gloo's all_reduce, and the pairwise
    exchange `Group` uses (`Group._sum`)."""
    import torch
    import torch.distributed as dist

    set_threads(1)
    t = torch.randn(n)
    out = []
    for fn in (lambda: dist.all_reduce(t), lambda: group._sum(t)):
        for _ in range(30):
            fn()
        dist.barrier()
        start = time.perf_counter()
        for _ in range(300):
            fn()
        out.append((time.perf_counter() - start) / 300 * 1e6)
    return out[0], out[1]


def measure(url: str, kind: str, batch: int, steps: int, workers: int) -> float:
    if workers == 1:
        return step_ms(url, kind, batch, steps, Group.solo())
    return Workers(workers, step_ms, (url, kind, batch, steps)).run(step_ms, url, kind, batch, steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["maml", "protonet", "metalstm"])
    ap.add_argument("--batch", nargs="+", type=int, default=[32, 128, 512], help="tasks per meta-batch")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    set_threads(1)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}; 1 thread per worker", flush=True)
    for n in (2, 150_000):
        reduce_us, exchange_us = Workers(2, sum_us, (n,)).run(sum_us, n)
        print(f"sum of {n:,} floats, 2 workers: all_reduce {reduce_us:.0f} us, exchange {exchange_us:.0f} us")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ml100k.db'}"
        ingest_file(make_engine(url), lambda s: ingest_movielens(s, ml100k_dir(), "movielens-100k"))
        for kind in args.models:
            for batch in args.batch:
                one, two = [], []
                for _ in range(args.rounds):
                    one.append(measure(url, kind, batch, args.steps, 1))
                    two.append(measure(url, kind, batch, args.steps, 2))
                ratios = [a / b for a, b in zip(one, two, strict=True)]
                row = {
                    "model": kind,
                    "batch": batch,
                    "ms_1": one,
                    "ms_2": two,
                    "tasks_per_s_1": [batch * 1000 / m for m in one],
                    "tasks_per_s_2": [batch * 1000 / m for m in two],
                    "ratio": ratios,
                }
                rows.append(row)
                print(
                    f"{kind:9s} batch {batch:4d}: 1 worker {min(one):7.2f}-{max(one):7.2f} ms/step, "
                    f"2 workers {min(two):7.2f}-{max(two):7.2f} ms/step, "
                    f"tasks/s ratio {min(ratios):.2f}-{max(ratios):.2f}x",
                    flush=True,
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
