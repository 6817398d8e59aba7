"""Where the meta-learners' ranking comes from on an implicit log: one seed of PROTOCOL.md's
test users, ndcg@10 at each support size of

- `als`: implicit's ALS at the given configuration, each user folded in (`recalculate_user`);
- `start sum`: no learning at all: a user's support rows of the meta-learners' ALS start
  (whitened ALS factors, `als_start`, at the same configuration) summed, the catalogue
  scored by its dot product with that sum;
- `<model>`: the meta-learner trained from that start for `--max-time` seconds, its item
  tables learning from the first step (`hold_epochs` 0; the trainer's default now holds
  them for the first epoch);
- `<model>, tables held`: the same with its item tables (embeddings, biases) held at the
  start while everything else learns (`Trainer(frozen_items=...)`);
- `<model>, tables held, no bias`: that model's scores less its item biases.

python benchmarks/start_probe.py recmeta.db --factors 128 --regularization 10 --alpha 10
"""

from __future__ import annotations

import argparse

import numpy as np
from common import protocol_split

from recmeta.learners import create
from recmeta.learners.base import mask_support
from recmeta.learners.baselines import ALS, liked_matrix
from recmeta.learners.meta import als_start
from recmeta.metrics import ranking_metrics, top_n
from recmeta.tasks import make_batch
from recmeta.training import Trainer

SHOTS = (1, 3, 5, 10, 20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--regularization", type=float, default=10.0)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--model", default="maml")
    ap.add_argument("--max-time", type=float, default=120.0)
    a = ap.parse_args()
    data, threshold, seq, split, train, val = protocol_split(a.db, a.seed)
    batches = {k: make_batch(seq, split.test, k, data.n_items, threshold, max_query=None) for k in SHOTS}

    def ndcg(scores_of) -> list[float]:
        out = []
        for b in batches.values():
            has = b.query_pos.sum(1) > 0
            top = top_n(mask_support(scores_of(b.support_only()), b), 10)
            out.append(float(ranking_metrics(top, b.query_pos > 0, 10)["ndcg@10"][has].mean()))
        return out

    def summed(rows: np.ndarray):
        return lambda b: (
            np.einsum("bs,bsd->bd", b.support_mask.astype(np.float64), rows[b.support_items]) @ rows.T
        )

    table = {}
    als = ALS(factors=a.factors, regularization=a.regularization, alpha=a.alpha).fit(train, seed=a.seed)
    table["als"] = ndcg(als.score)
    start = als_start(liked_matrix(train, threshold), a.factors, a.regularization, a.alpha, 0.1, a.seed)
    table["start sum"] = ndcg(summed(start.astype(np.float64)))
    params = {
        "dim": a.factors,
        "init_regularization": a.regularization,
        "init_alpha": a.alpha,
        "max_time": a.max_time,
        "hold_epochs": 0,
    }
    trained = Trainer(create(a.model, **params), seed=a.seed).fit(train, val)
    table[a.model] = ndcg(trained.score)
    held = Trainer(create(a.model, **params), seed=a.seed, frozen_items=np.arange(data.n_items)).fit(
        train, val
    )
    bias = held.backbone.item_bias.detach().numpy()
    table[f"{a.model}, tables held"] = ndcg(held.score)
    table[f"{a.model}, tables held, no bias"] = ndcg(lambda b: held.score(b) - bias)
    print(
        f"seed {a.seed}; ALS start and ALS at {a.factors} factors, regularization {a.regularization:g}, "
        f"alpha {a.alpha:g}; {a.model} trained for {a.max_time:g} s"
    )
    print("| ndcg@10 | " + " | ".join(f"K={k}" for k in SHOTS) + " |")
    print("|---|" + "---:|" * len(SHOTS))
    for name, values in table.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")


if __name__ == "__main__":
    main()
