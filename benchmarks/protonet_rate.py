"""ProtoNet's training on a store, one seed of PROTOCOL.md's split: each epoch's loss,
validation ndcg@10 and tasks per second, from the tuned ALS start, for MAX_TIME seconds.

OPENBLAS_NUM_THREADS=2 python benchmarks/protonet_rate.py amazon.db 100
"""

from __future__ import annotations

import sys

from recmeta import snapshot
from recmeta.learners import create
from recmeta.store import make_engine
from recmeta.tasks import split_users
from recmeta.training import fit
from recmeta.training.loop import Trainer


def main() -> None:
    data = snapshot.load(make_engine(f"sqlite:///{sys.argv[1]}"))
    split = split_users(data, seed=0)
    train, val = snapshot.restrict(data, split.train), snapshot.restrict(data, split.validation)
    als = fit(create("als"), train, val, seed=0)
    model = create("protonet", fitted={"als": als}, max_time=float(sys.argv[2]))
    rows = []
    Trainer(model, seed=0, progress=rows.append).fit(train, val)
    for r in rows:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}, flush=True)


if __name__ == "__main__":
    main()
