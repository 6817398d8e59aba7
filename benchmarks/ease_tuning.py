"""EASE's penalty picked over its most liked items against over all of them: for each
seed of PROTOCOL.md's split, `EASE` fitted as `recmeta evaluate` fits it (the penalty
tuned on validation users over `--tune-items` items, then fitted over `--max-items`) and
with every penalty tried over all `--max-items` (what recmeta did before `tune_items`),
printing each one's pick, its seconds and the validation ndcg@10 of every penalty tried.
With `--model episodic`, the episodic weights' picks (query rows, penalty) and seconds at
each `--tune-items` (their climb over all `--max-items` would take hours, so it is left out).

OPENBLAS_NUM_THREADS=2 python benchmarks/ease_tuning.py amazon.db --seeds 0 1 2
OPENBLAS_NUM_THREADS=2 python benchmarks/ease_tuning.py amazon.db --model episodic --tune-items 2500 2000 1500
"""

from __future__ import annotations

import argparse
import time

from recmeta import snapshot
from recmeta.learners.baselines import EASE, Episodic
from recmeta.store import make_engine
from recmeta.tasks import split_users


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", help="a recmeta SQLite store")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-items", type=int, default=10_000)
    ap.add_argument("--tune-items", type=int, nargs="+", default=[2_500], help="sizes to compare")
    ap.add_argument("--model", choices=("ease", "episodic"), default="ease")
    a = ap.parse_args()
    data = snapshot.load(make_engine(f"sqlite:///{a.db}"))
    for seed in a.seeds:
        split = split_users(data, seed=seed)
        train, val = snapshot.restrict(data, split.train), snapshot.restrict(data, split.validation)
        if a.model == "episodic":
            for tune in a.tune_items:
                start = time.perf_counter()
                model = Episodic(max_items=a.max_items, tune_items=tune).fit(train, val, seed=seed)
                print(
                    f"seed {seed}, episodic tuned over {tune} items: query rows "
                    f"{model.params['query_rows']:.3g}, penalty {model.params['regularization']:.3g}, "
                    f"{time.perf_counter() - start:.1f} s",
                    flush=True,
                )
            continue
        for tune in [*a.tune_items, a.max_items]:
            rows: list[dict] = []
            start = time.perf_counter()
            model = EASE(max_items=a.max_items, tune_items=tune).fit(
                train, val, seed=seed, progress=rows.append
            )
            tried = [f"{r['config'][0]:.0f}: {r['val_ndcg@10']:.4f}" for r in rows]
            print(
                f"seed {seed}, penalty tried over {min(tune, a.max_items)} items: picked "
                f"{model.params['regularization']:.0f} in {time.perf_counter() - start:.1f} s "
                f"(validation ndcg@10 {'; '.join(tried)})",
                flush=True,
            )


if __name__ == "__main__":
    main()
