"""Meta-training step time against catalogue size, full softmax and sampled candidates.

    python benchmarks/bench_step.py [--items 2000 20000 100000] [--threads 1 2] [--steps 30]

A synthetic implicit log (4,000 users, 40 rows each, long-tailed items over a catalogue of
N items with 20 feature columns) trained by the `Trainer` for a fixed number of steps of 32
tasks; the time per step is the loop's own (set-up and validation excluded). Each
meta-learner runs with the full softmax (`sampled_above` above N) and on sampled
candidates (`sampled_above=0`, 2,048 negatives), in one process, interleaved. A step's
time is the steady state: a run of 5 + `--steps` steps minus a run of the same first 5.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd
from common import machine

from recmeta import snapshot
from recmeta.learners import create
from recmeta.threads import set_threads
from recmeta.training import Trainer


def synthetic(n_items: int, users: int = 4000, per_user: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.9
    p /= p.sum()
    u = np.repeat(np.arange(users), per_user)
    i = rng.choice(n_items, len(u), p=p)
    log = pd.DataFrame({"user_id": u + 1, "item_id": i + 1, "value": 1.0, "timestamp": np.arange(len(u))})
    users_tab = pd.DataFrame({"id": np.arange(1, users + 1), "external_id": np.arange(users).astype(str)})
    feats = [{f"f{k}": float(v) for k, v in enumerate(row)} for row in rng.normal(size=(n_items, 20))]
    items_tab = pd.DataFrame(
        {"id": np.arange(1, n_items + 1), "external_id": np.arange(n_items).astype(str), "features": feats}
    )
    return snapshot.from_frames(
        log.drop_duplicates(["user_id", "item_id"]), users_tab, items_tab, implicit=True
    )


WARMUP = 5  # steps: the first ones allocate Adam's moments for whole tables, once


def step_ms(kind: str, data, sampled: bool, steps: int) -> float:
    """Steady-state ms per step: a run of WARMUP + `steps` steps minus a run of WARMUP steps
    from the same seed (the same first steps), over `steps`; one-time costs cancel."""
    params = {"device": "cpu", "sampled_above": 0 if sampled else 10**9, "epochs": 1}
    seconds = []
    for n in (WARMUP, WARMUP + steps):
        trainer = Trainer(create(kind, **params), seed=0, max_steps=n)
        trainer.fit(data)
        seconds.append(trainer.outcome.seconds)
    return 1000 * (seconds[1] - seconds[0]) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, nargs="+", default=[2000, 20000, 100000])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--kinds", nargs="+", default=["maml", "protonet", "metalstm"])
    args = ap.parse_args()
    print(machine(), f"load average {os.getloadavg()[0]:.2f}")
    rows = []
    for n in args.items:
        data = synthetic(n)
        for threads in args.threads:
            set_threads(threads)
            for kind in args.kinds:
                full = step_ms(kind, data, False, args.steps)
                sampled = step_ms(kind, data, True, args.steps)
                rows.append(
                    {"items": n, "threads": threads, "model": kind, "full_ms": full, "sampled_ms": sampled}
                )
                print(json.dumps(rows[-1]), flush=True)
    print("\n| items | threads | model | full softmax ms/step | sampled ms/step |\n|---:|---:|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['items']:,} | {r['threads']} | {r['model']} | {r['full_ms']:.1f} | {r['sampled_ms']:.1f} |"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
