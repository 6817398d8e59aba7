"""Training time and peak memory per model with the defaults `recmeta train` uses, on ML-100K
and (with --amazon) the implicit Amazon Beauty log; and `recmeta train` as a whole command.

    python benchmarks/bench_train.py                 # ML-100K, one child process per model
    python benchmarks/bench_train.py --amazon        # also ../shared/data/amazon-beauty (about 35 min)
    python benchmarks/bench_train.py --command       # `recmeta train` as a whole, timed, per log

Each model trains in a fresh child process (90% of users train, 10% validate), so the peak
RSS is that model's own. The load average is printed before and after each log.
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

from common import ROOT, machine, run_child

CODE = """
import json, sys, time
sys.path.insert(0, "benchmarks")
from ml100k import load_log
from recmeta import snapshot
from recmeta.learners import create
from recmeta.tasks import split_users
from recmeta.training import fit
data = load_log({log!r})
split = split_users(data, seed=0, fractions=(0.1, 0.0), min_interactions=6)
train, val = snapshot.restrict(data, split.train), snapshot.restrict(data, split.validation)
t = time.perf_counter()
model = fit(create({kind!r}), train, val, seed=0)
print(json.dumps({{"seconds": time.perf_counter() - t, "best_epoch": getattr(model, "best_epoch_", None)}}))
"""
AMAZON = ROOT.parent / "shared" / "data" / "amazon-beauty" / "interactions.csv"


def whole_command(log: str) -> None:
    """`recmeta ingest` then `/usr/bin/time -v recmeta train` in a temporary store."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "t.db")
        ingest = ["ingest", "interactions"]
        ingest += (
            ["--format", "movielens-100k", str(ROOT.parent / "shared" / "data" / "ml-100k")]
            if log == "ml100k"
            else [str(AMAZON)]
        )
        subprocess.run(
            [sys.executable, "-m", "recmeta.cli", "--db", db, *ingest],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        load = os.getloadavg()[0]
        start = time.perf_counter()
        out = subprocess.run(
            [
                "/usr/bin/time",
                "-v",
                sys.executable,
                "-m",
                "recmeta.cli",
                "--db",
                db,
                "train",
                "--models-dir",
                str(Path(tmp) / "m"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        peak = next(int(x.split()[-1]) for x in out.stderr.splitlines() if "Maximum resident" in x) / 2**20
        seconds, after = time.perf_counter() - start, os.getloadavg()[0]
        print(
            f"{log}: recmeta train {seconds:.0f} s, peak RSS {peak:.1f} GiB, load {load:.2f} then {after:.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--amazon", action="store_true", help="Also the Amazon Beauty log.")
    ap.add_argument("--command", action="store_true", help="Time `recmeta train` as a whole instead.")
    args = ap.parse_args()
    logs = ["ml100k", *(["amazon-beauty"] if args.amazon else [])]
    print(machine())
    for log in logs:
        if args.command:
            whole_command(log)
            continue
        results = {}
        print(f"{log}: load average {os.getloadavg()[0]:.2f}", flush=True)
        for kind in ("maml", "protonet", "metalstm", "als", "itemknn", "popular"):
            res, peak = run_child(CODE.format(kind=kind, log=log))
            results[kind] = {**res, "peak_mib": peak}
            print(log, kind, json.dumps(results[kind]), flush=True)
        print(f"{log}: load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
