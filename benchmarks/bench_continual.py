"""The continual-learning targets (issue 9): `recmeta evaluate --continual` with defaults on
ML-100K and on a drifting synthetic log, timed as whole commands, then checked target by
target from the two report.json files.

    python benchmarks/bench_continual.py [--out reports/continual] [--only-check]

Needs ML-100K at $RECMETA_ML100K or ../shared/data/ml-100k. Prints the machine, the load
average before and after each run, and a table of every target with its figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, machine

RECMETA = [sys.executable, "-m", "recmeta.cli"]
DRIFT = ["--users", "1000", "--items", "400", "--drift", "0.3", "--seed", "0"]


def run(args: list[str], db: Path) -> float:
    start = time.perf_counter()
    subprocess.run([*RECMETA, "--db", str(db), *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def prepare(out: Path) -> dict[str, Path]:
    ml = Path(os.environ.get("RECMETA_ML100K", ROOT.parent / "shared" / "data" / "ml-100k"))
    dbs = {"ml100k": out / "ml100k.db", "drift": out / "drift.db"}
    for db in dbs.values():
        db.unlink(missing_ok=True)
    run(["ingest", "interactions", "--format", "movielens-100k", str(ml)], dbs["ml100k"])
    run(["data", "synth", "--out", str(out / "drift-log"), *DRIFT], dbs["drift"])
    for kind in ("items", "users", "interactions"):
        run(["ingest", kind, str(out / "drift-log" / f"{kind}.csv")], dbs["drift"])
    return dbs


def continue_vs_train(out: Path) -> None:
    """`recmeta train` on ML-100K's first 90 % of rows (by time), then the last 10 % ingested:
    `train --continue` against `recmeta train` from scratch on everything, whole commands."""
    import pandas as pd

    ml = Path(os.environ.get("RECMETA_ML100K", ROOT.parent / "shared" / "data" / "ml-100k"))
    log = pd.read_csv(ml / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"])
    log = log.sort_values(["timestamp", "user", "item"], kind="stable")
    cut = int(0.9 * len(log))
    log.iloc[:cut].to_csv(out / "early.csv", index=False)
    log.iloc[cut:].to_csv(out / "late.csv", index=False)
    times = {}
    for name in ("continue", "scratch"):
        db = out / f"{name}.db"
        db.unlink(missing_ok=True)
        models = out / f"models-{name}"
        run(["ingest", "interactions", str(out / "early.csv")], db)
        if name == "continue":
            run(["train", "--models-dir", str(models)], db)
        run(["ingest", "interactions", str(out / "late.csv")], db)
        load = os.getloadavg()[0]
        args = ["train", "--continue"] if name == "continue" else ["train"]
        times[name] = run([*args, "--models-dir", str(models)], db)
        print(f"recmeta {' '.join(args)}: {times[name]:.1f} s (load {load:.2f} before)")
    print(f"train --continue / train: {times['continue'] / times['scratch']:.2f}")


def check(report: dict, log: str) -> list[tuple[str, str, str, bool]]:
    """(target, model, figure, met) for every target of issue 9."""
    rows = []
    by = {(r["model"], r["strategy"]): r for r in report["summary"]}
    recent = by["none", "recent-popular"]["next_ndcg@10_by_stage"]
    for model in report["config"]["models"]:
        retrain, replay, finetune = by[model, "retrain"], by[model, "replay"], by[model, "finetune"]
        ratio = replay["next_ndcg@10"] / retrain["next_ndcg@10"]
        rows.append(("replay next ndcg@10 >= 0.98 x retrain", model, f"{ratio:.3f}", ratio >= 0.98))
        cost = f"{replay['cost_ratio']:.2f} (after b {replay['cost_ratio_after_first']:.2f})"
        rows.append(("replay cost ratio <= 0.2", model, cost, replay["cost_ratio"] <= 0.2))
        if log == "drift":
            f_r, f_f = replay["forgetting"], finetune["forgetting"]
            met = f_r <= max(f_f, 0) / 3
            rows.append(("replay forgetting <= finetune's / 3", model, f"{f_r:.4f} vs {f_f:.4f}", met))
        else:
            b_r, b_t = replay["bwt"], retrain["bwt"]
            met = b_r >= b_t - 0.01
            rows.append(("replay BWT >= retrain BWT - 0.01", model, f"{b_r:.4f} vs {b_t:.4f}", met))
        for strategy in ("retrain", "finetune", "replay", "window"):
            per = by[model, strategy]["next_ndcg@10_by_stage"]
            below = [s for s in per if per[s] < recent[s]]
            figure = f"below at stages {below}" if below else "all stages"
            rows.append((f"{strategy} >= recent-popular at every stage", model, figure, not below))
    return rows


def summary_markdown(report: dict) -> str:
    """Every (model, strategy) row of a report: mean ± std over seeds."""
    cols = [
        ("next_ndcg@10", "next ndcg@10", 3),
        ("new_user_ndcg@10", "new users", 3),
        ("next_recall@20", "recall@20", 3),
        ("acc", "ACC", 3),
        ("bwt", "BWT", 4),
        ("forgetting", "forgetting", 4),
        ("fwt", "FWT", 4),
        ("seconds", "fit s", 1),
        ("cost_ratio", "cost", 2),
        ("cost_ratio_after_first", "cost after b", 2),
    ]
    head = "| model | strategy | " + " | ".join(c[1] for c in cols) + " |"
    lines = [head, "|---|---|" + "---:|" * len(cols)]
    for r in report["summary"]:
        cells = []
        for key, _, d in cols:
            if r[key] is None:
                cells.append("-")
            elif key.startswith("cost") or len(report["config"]["seeds"]) == 1:
                cells.append(f"{r[key]:.{d}f}")
            else:
                cells.append(f"{r[key]:.{d}f} ± {r[key + '_std']:.{d}f}")
        lines.append(f"| {r['model']} | {r['strategy']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "continual")
    parser.add_argument("--only-check", action="store_true", help="Check existing reports only.")
    parser.add_argument("--cli", action="store_true", help="Only time train --continue against train.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(machine(), f"torch threads: {os.environ.get('OMP_NUM_THREADS', 'default')}")
    if args.cli:
        continue_vs_train(args.out)
        return
    if not args.only_check:
        dbs = prepare(args.out)
        for log, db in dbs.items():
            load = os.getloadavg()
            seconds = run(["evaluate", "--continual", "--out", str(args.out / log)], db)
            after = os.getloadavg()[0]
            print(f"{log}: --continual {seconds:.0f} s (load {load[0]:.2f} before, {after:.2f} after)")
    for log in ("ml100k", "drift"):
        report = json.loads((args.out / log / "report.json").read_text())
        print(f"\n## {log} ({report['seconds']:.0f} s in-process)\n")
        print(summary_markdown(report) + "\n")
        print("| target | model | figure | met |\n|---|---|---|---|")
        for target, model, figure, met in check(report, log):
            print(f"| {target} | {model} | {figure} | {'yes' if met else '**no**'} |")


if __name__ == "__main__":
    main()
