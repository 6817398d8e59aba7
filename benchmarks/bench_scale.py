"""An ML-25M-shaped run: every step of recmeta on 162k users, 62k items and 21.7M rows,
with the time and peak memory of each.

    python benchmarks/bench_scale.py [--pg URL] [--max-time 120] [--users 100000] [--work DIR]

Steps, each a `recmeta` command in a fresh process under /usr/bin/time (peak memory is that
process's; a batch with --workers 2 also has two worker processes, each with its own models):

1. `recmeta data synth --size ml-25m` (timestamps, ratings 1-5, planted taste groups);
2. `recmeta ingest interactions` into SQLite, and into PostgreSQL with --pg;
3. `recmeta stats` (a pass over the store);
4. `recmeta train --model M --max-time T --workers W` for each meta-learner, with 1 and 2
   workers (T bounds the meta-training; set-up, validation and checkpointing come on top of
   it; peak memory is rank 0's, and each worker holds about as much);
5. `recmeta recommend --users-file` for `--users` users, with --workers 1 and 2.

The snapshot is timed inside step 4. Work files go to --work (default: a temporary folder),
which needs about 3 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine

RECMETA = [sys.executable, "-m", "recmeta.cli"]


def step(name: str, *args: str, results: list) -> None:
    """Run one recmeta command under /usr/bin/time; record seconds and peak MiB."""
    cmd = ["/usr/bin/time", "-f", "TIME %e %M", *RECMETA, *args]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    timing = next((x for x in reversed(lines) if x.startswith("TIME ")), None)
    seconds, mib = (
        (float(timing.split()[1]), int(timing.split()[2]) / 1024)
        if timing
        else (time.perf_counter() - t0, 0.0)
    )
    row = {
        "step": name,
        "seconds": round(seconds, 1),
        "peak_mib": round(mib),
        "load_average": round(load, 2),
        "ok": done.returncode == 0,
    }
    if done.returncode:
        row["error"] = "\n".join(x for x in lines if not x.startswith("TIME "))[-500:]
    results.append(row)
    print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", help="a PostgreSQL URL whose public schema is emptied first")
    ap.add_argument("--max-time", type=int, default=120, help="meta-training seconds per meta-learner")
    ap.add_argument("--users", type=int, default=100_000, help="users to batch-recommend")
    ap.add_argument("--work", help="folder for the log, the store and the models")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    print(machine(), f"load average {os.getloadavg()[0]:.2f}", flush=True)
    tmp = tempfile.TemporaryDirectory(prefix="bench-scale-")
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    db, models, log = str(work / "scale.db"), work / "models", work / "synth"
    results: list[dict] = []
    step("synth ml-25m", "data", "synth", "--size", "ml-25m", "--out", str(log), results=results)
    step(
        "ingest SQLite", "--db", db, "ingest", "interactions", str(log / "interactions.csv"), results=results
    )
    if args.pg:
        from sqlalchemy import create_engine, text

        from recmeta.store import resolve_url

        engine = create_engine(resolve_url(args.pg))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        step(
            "ingest PostgreSQL",
            "--db",
            args.pg,
            "ingest",
            "interactions",
            str(log / "interactions.csv"),
            results=results,
        )
    step("stats", "--db", db, "stats", "--json", results=results)
    for model in ("maml", "protonet", "metalstm"):
        budget = ["--max-time", str(args.max_time), "--models-dir", str(models)]
        for workers in (1, 2):
            step(
                f"train {model} (--max-time {args.max_time}, --workers {workers})",
                "--db", db, "train", "--model", model, "--workers", str(workers), *budget,
                results=results,
            )  # fmt: skip
    ids = work / "users.txt"
    ids.write_text("".join(f"{u}\n" for u in range(1, args.users + 1)))
    for workers in (1, 2):
        out = work / f"recs-{workers}.parquet"
        step(
            f"recommend {args.users:,} users, --workers {workers}",
            "--db", db, "recommend", "--users-file", str(ids), "--out", str(out), "--workers", str(workers),
            results=results,
        )  # fmt: skip
    summary = {"machine": machine(), "max_time": args.max_time, "steps": results}
    print("\n| step | seconds | peak MiB | load average at start |\n|---|---:|---:|---:|")
    for r in results:
        name = r["step"] + ("" if r["ok"] else " (failed)")
        print(f"| {name} | {r['seconds']:,.1f} | {r['peak_mib']:,} | {r['load_average']} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
