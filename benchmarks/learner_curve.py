"""One meta-learner's training on a store, one seed of PROTOCOL.md's split, from the tuned
ALS start as `recmeta evaluate` fits it: the ALS configuration and a checksum of its
factors, then each epoch's loss, validation ndcg@10 and tasks per second. `--threads`
sets torch's threads, `--deterministic` turns on torch's deterministic algorithms (two
runs then give the same curve; BENCHMARKS.md section 1); `--set key=value` passes a
learner parameter (`--set lr=0.003`).

OPENBLAS_NUM_THREADS=2 python benchmarks/learner_curve.py amazon.db --model protonet --max-time 100
OPENBLAS_NUM_THREADS=2 python benchmarks/learner_curve.py ml100k.db --model metalstm --seed 1 --max-time 280
"""

from __future__ import annotations

import argparse
import hashlib

import torch
from common import learner_params, protocol_split

from recmeta.learners import create
from recmeta.training import fit
from recmeta.training.loop import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", help="a recmeta SQLite store")
    ap.add_argument("--model", default="protonet", choices=("maml", "protonet", "metalstm"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-time", type=float, default=100.0, help="seconds of meta-training")
    ap.add_argument("--threads", type=int, default=None, help="torch's threads (default: torch's own)")
    ap.add_argument("--deterministic", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a learner parameter")
    a = ap.parse_args()
    params = learner_params(a.set)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(a.deterministic)
    print(f"torch threads {torch.get_num_threads()}, deterministic {a.deterministic}", flush=True)
    train, val = protocol_split(a.db, a.seed)[4:]
    als = fit(create("als"), train, val, seed=a.seed)
    digest = hashlib.md5(als.item_factors_.tobytes()).hexdigest()
    print(f"tuned ALS {als.params}, factors md5 {digest}", flush=True)
    model = create(a.model, fitted={"als": als}, max_time=a.max_time, **params)
    rows: list[dict] = []
    Trainer(model, seed=a.seed, progress=rows.append).fit(train, val)
    for r in rows:
        print({k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()}, flush=True)


if __name__ == "__main__":
    main()
