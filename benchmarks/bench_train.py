"""Training time and peak memory of each model on ML-100K, with the defaults `recmeta train` uses.

    python benchmarks/bench_train.py

Each model trains in a fresh child process (90% of users train, 10% validate), so the peak
RSS is that model's own.
"""

from __future__ import annotations

import json

from common import machine, run_child

CODE = """
import json, sys, time
sys.path.insert(0, "benchmarks")
from ml100k import load_ml100k
from recmeta import snapshot
from recmeta.learners import create
from recmeta.tasks import split_users
from recmeta.training import fit
data = load_ml100k()
split = split_users(data, seed=0, fractions=(0.1, 0.0), min_interactions=6)
train, val = snapshot.restrict(data, split.train), snapshot.restrict(data, split.validation)
t = time.perf_counter()
model = fit(create({kind!r}), train, val, seed=0)
print(json.dumps({{"seconds": time.perf_counter() - t, "best_epoch": getattr(model, "best_epoch_", None)}}))
"""


def main() -> None:
    results = {"machine": machine()}
    for kind in ("maml", "protonet", "metalstm", "als", "itemknn", "popular"):
        res, peak = run_child(CODE.format(kind=kind))
        results[kind] = {**res, "peak_mib": peak}
        print(kind, json.dumps(results[kind]), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
