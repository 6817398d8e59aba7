"""Batch recommendations from a users file: time, users/s and peak memory against the number
of users and of worker processes.

    python benchmarks/bench_batch.py --store ml100k.db [--users 10000 100000] [--workers 1 2]

Runs `recmeta --threads T recommend --users-file F --out recs.parquet -n 10 --workers W` as
a child process under /usr/bin/time, where F lists the store's users over and over up to
`--users` ids (every id is a real user with its whole history), and T is the cores divided
by W. Peak memory is the main process's (each worker holds one copy of the models beside it).
Each configuration runs `--repeat` times, interleaved; the table gives the range.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine

RECMETA = [sys.executable, "-m", "recmeta.cli"]


def store_users(db: str) -> list[str]:
    from recmeta.store import make_engine, session_scope
    from recmeta.store.models import User
    from recmeta.store.repository import entities_frame

    with session_scope(make_engine(db)) as session:
        return entities_frame(session, User).external_id.astype(str).tolist()


def run(db: str, ids: Path, out: Path, workers: int) -> tuple[float, float]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    cmd = ["/usr/bin/time", "-f", "TIME %e %M", *RECMETA, "--db", db, "--threads", str(threads)]
    cmd += ["recommend", "--users-file", str(ids), "--out", str(out), "-n", "10", "--workers", str(workers)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(x for x in done.stderr.splitlines() if x.startswith("TIME "))
    seconds, kib = line.split()[1:]
    return float(seconds), int(kib) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True, help="a store with trained models")
    ap.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    print(machine(), f"load average {os.getloadavg()[0]:.2f}", flush=True)
    users = store_users(args.store)
    results: dict[tuple[int, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for n in args.users:
            files[n] = Path(tmp) / f"users-{n}.txt"
            files[n].write_text("\n".join(itertools.islice(itertools.cycle(users), n)) + "\n")
        for _ in range(args.repeat):
            for n, w in itertools.product(args.users, args.workers):
                seconds, mib = run(args.store, files[n], Path(tmp) / "recs.parquet", w)
                results.setdefault((n, w), []).append((seconds, mib))
                rate = n / seconds
                print(
                    f"{n:>8,} users  {w} worker(s)  {seconds:6.1f} s  {rate:8,.0f} users/s  {mib:,.0f} MiB",
                    flush=True,
                )
    print(f"load average after {os.getloadavg()[0]:.2f}")
    print("\n| users | workers | seconds | users/s | peak MiB (main process) |\n|---:|---:|---:|---:|---:|")
    for (n, w), runs in sorted(results.items()):
        s = [r[0] for r in runs]
        m = [r[1] for r in runs]
        print(
            f"| {n:,} | {w} | {min(s):.1f}-{max(s):.1f} | {n / max(s):,.0f}-{n / min(s):,.0f} "
            f"| {min(m):,.0f}-{max(m):,.0f} |"
        )


if __name__ == "__main__":
    main()
