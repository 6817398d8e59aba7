"""Where `recmeta evaluate`'s time goes: the seconds of each stage (a model's fit, its test
scoring at each K, and the router's validation at the end of a seed), from the progress
events the evaluation emits; each stage's time runs to the next event.

python benchmarks/evaluate_stages.py amazon.db [--seeds 0] [--max-time SECONDS (default: evaluate's, 330)]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from recmeta import snapshot
from recmeta.evaluate.protocol import EvalConfig, evaluate
from recmeta.store import make_engine
from recmeta.training.budget import TRAIN_BUDGET


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--max-time", type=float, default=TRAIN_BUDGET, help="a seed's fitting budget")
    args = ap.parse_args()
    data = snapshot.load(make_engine(f"sqlite:///{args.db}", migrate=False))
    spent: dict[str, float] = defaultdict(float)
    last = {"at": time.perf_counter(), "stage": "set-up", "seed": args.seeds[0]}
    ROUTER = " (its last K) + router validation"

    def progress(event: dict) -> None:
        now = time.perf_counter()
        # a seed's last event runs on through the router's validation of every model
        spent[last["stage"] + (ROUTER if event["seed"] != last["seed"] else "")] += now - last["at"]
        stage = "fit" if event["stage"] == "fit" else "test scoring"
        last.update(at=now, stage=f"{event['model']} {stage}", seed=event["seed"])

    start = time.perf_counter()
    result = evaluate(data, EvalConfig(seeds=tuple(args.seeds), max_time=args.max_time), progress)
    spent[last["stage"] + ROUTER] += time.perf_counter() - last["at"]
    seeds = len(args.seeds)
    for stage, seconds in spent.items():
        print(f"{stage:52s} {seconds / seeds:7.1f} s a seed")
    print(f"total {time.perf_counter() - start:.0f} s ({result.seconds:.0f} s by the evaluation's clock)")


if __name__ == "__main__":
    main()
