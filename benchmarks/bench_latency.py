"""Recommendation latency for one cold user with 5 support interactions, batch throughput,
and the wall time of `recmeta recommend` as a whole process.

    python benchmarks/bench_latency.py [--repeat 200] [--process-only]

Catalogues: ML-100K (1,682 items) and a synthetic one of 100,000 items. Latency is
in-process `model.score(batch)` for a one-user batch: adaptation (MAML inner steps,
ProtoNet prototypes, Meta-LSTM generation, ALS fold-in) plus scoring the whole catalogue.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import ROOT, machine
from ml100k import load_ml100k, ml100k_dir

from recmeta import snapshot
from recmeta.learners import create
from recmeta.snapshot import Interactions
from recmeta.tasks import history_batch, split_users
from recmeta.training import fit

MODELS = {
    "maml": {"epochs": 1},
    "protonet": {"epochs": 1},
    "metalstm": {"epochs": 1},
    "ensemble": {"epochs": 1},
    "als": {"factors": 64},
}


def synthetic_catalogue(n_items: int = 100_000, n_users: int = 3_000, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    p /= p.sum()
    rows = 60 * n_users
    log = pd.DataFrame(
        {
            "user_id": rng.integers(1, n_users + 1, rows),
            "item_id": rng.choice(n_items, rows, p=p) + 1,
            "value": rng.integers(1, 6, rows).astype(float),
            "timestamp": np.arange(rows),
        }
    )
    users = pd.DataFrame(
        {
            "id": np.arange(1, n_users + 1),
            "external_id": np.arange(1, n_users + 1).astype(str),
            "features": [None] * n_users,
        }
    )
    items = pd.DataFrame(
        {
            "id": np.arange(1, n_items + 1),
            "external_id": np.arange(1, n_items + 1).astype(str),
            "title": None,
            "genres": None,
            "year": None,
            "features": [None] * n_items,
        }
    )
    return snapshot.from_frames(log, users, items, implicit=False)


def one_user(n_items: int, k: int = 5, users: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    return history_batch(
        [rng.choice(n_items, k, replace=False) for _ in range(users)],
        [rng.integers(1, 6, k).astype(np.float32) for _ in range(users)],
        [np.arange(k) * 60 for _ in range(users)],
        np.full(users, -1),
    )


def latency(data: Interactions, repeat: int) -> dict:
    split = split_users(data, seed=0, min_interactions=10)
    train = snapshot.restrict(data, split.train)
    out = {}
    for kind, params in MODELS.items():
        model = fit(create(kind, **params), train, seed=0)
        batch = one_user(data.n_items)
        model.score(batch)  # warm-up (first-call imports and allocations)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            model.score(batch)
            times.append((time.perf_counter() - t) * 1000)
        many = one_user(data.n_items, users=256, seed=1)
        model.score(many)
        t = time.perf_counter()
        for _ in range(5):
            model.score(many)
        users_per_s = 5 * 256 / (time.perf_counter() - t)
        out[kind] = {
            "p50_ms": statistics.median(times),
            "p95_ms": float(np.percentile(times, 95)),
            "batch_users_per_s": users_per_s,
        }
        print(kind, data.n_items, json.dumps(out[kind]), flush=True)
    return out


def inner_step(data: Interactions, repeat: int) -> dict:
    """One MAML inner step for one cold user: `vmap(grad(support_loss))` (training's way)
    against the closed-form `support_grad` that serving uses, in the same run."""
    from torch.func import grad, vmap

    from recmeta.learners.maml import support_grad, support_loss

    split = split_users(data, seed=0, min_interactions=10)
    model = fit(create("maml", epochs=1), snapshot.restrict(data, split.train), seed=0)
    bb, ep = model.backbone, model.episode(one_user(data.n_items))
    with torch.inference_mode():
        theta = bb.theta0(bb.context(ep))
        args = (bb.items(), bb.item_bias, bb.rate_bias, bb.mu, ep.items, ep.values, ep.mask, ep.liked, 0.5)
        ways = {
            "vmap_grad": vmap(grad(support_loss), in_dims=(0, None, None, None, None, 0, 0, 0, 0, None)),
            "closed_form": support_grad,
        }
        out = {}
        for name, step in ways.items():
            step(theta, *args)
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                step(theta, *args)
                times.append((time.perf_counter() - t) * 1000)
            out[f"{name}_p50_ms"] = statistics.median(times)
    out["speedup"] = out["vmap_grad_p50_ms"] / out["closed_form_p50_ms"]
    print("inner step", json.dumps(out), flush=True)
    return out


def process_wall(repeat: int = 5) -> dict:
    """`recmeta recommend` as a whole process (median of `repeat` runs) after training on
    ML-100K: each model for user 1, the routed defaults, and `import torch` alone as the floor."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "ml.db")
        cli = [sys.executable, str(ROOT / "cli.py"), "--db", db]
        subprocess.run(
            [*cli, "ingest", "interactions", "--format", "movielens-100k", str(ml100k_dir())],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *cli,
                "train",
                "--epochs",
                "2",
                "--models-dir",
                str(Path(tmp) / "models"),
            ],
            check=True,
            capture_output=True,
        )
        commands = {
            **{kind: ["recommend", "--user", "1", "--model", kind] for kind in MODELS},
            "auto --user 1 --json": ["recommend", "--user", "1", "--json"],
            "auto --with 50:5 181:5 172:4 --explain": [
                "recommend",
                "--with",
                "50:5",
                "181:5",
                "172:4",
                "--explain",
            ],
        }
        runs = {
            "python -c 'import torch' (floor)": [sys.executable, "-c", "import torch"],
            **{k: [*cli, *v] for k, v in commands.items()},
        }
        walls: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(repeat):  # interleaved, so that a slow spell of the machine hits every command
            for name, args in runs.items():
                t = time.perf_counter()
                subprocess.run(args, check=True, capture_output=True)
                walls[name].append(time.perf_counter() - t)
        floor = statistics.median(walls[next(iter(runs))])
        for name, w in walls.items():
            out[name] = {
                "median_s": statistics.median(w),
                "max_s": max(w),
                "above_floor_s": statistics.median(w) - floor,
            }
            print("process", name, json.dumps(out[name]), flush=True)
        out["service_batch"] = service_batch(db)
    return out


def service_batch(db: str) -> dict:
    """`RecommendationService.batch_users` (what `recommend --users-file` runs) over all 943
    ML-100K users with their whole histories, in-process: store reads, routing, adaptation
    in batches of 256, top-10 and the output frame."""
    from recmeta.recommend import RecommendationService
    from recmeta.store import make_engine

    service = RecommendationService(make_engine(db))
    users = [str(u) for u in range(1, 944)]
    out = {}
    for model in ("auto", *MODELS):
        service.batch_users(users[:10], model=model)  # loads the checkpoint
        t = time.perf_counter()
        frame, _ = service.batch_users(users, model=model)
        wall = time.perf_counter() - t
        out[model] = {"seconds": wall, "users_per_s": frame.user.nunique() / wall}
        print("service batch", model, json.dumps(out[model]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--process-only", action="store_true", help="only the whole-process wall times")
    args = ap.parse_args()
    results = {"machine": machine(), "torch_threads": torch.get_num_threads()}
    if not args.process_only:
        results["maml_inner_step"] = inner_step(load_ml100k(), args.repeat)
        results["ml100k_1682_items"] = latency(load_ml100k(), args.repeat)
        results["synthetic_100k_items"] = latency(synthetic_catalogue(), max(20, args.repeat // 10))
    results["process_wall"] = process_wall()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
