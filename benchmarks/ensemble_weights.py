"""Member weights for the ensemble, picked per support size on validation users: does
weighing MAML, ProtoNet and Meta-LSTM unequally (each 0, 1 or 2; the ensemble weighs them
1, 1, 1) rank better than the equal mean? One seed of PROTOCOL.md: the tuned ALS, the
three learners fitted from it for `--max-time` seconds each and the ensemble's bias
weights tuned, as `recmeta evaluate` fits them. For each support size the protocol's
validation users (at most 1,000, as the bias tuning draws them) are split in two halves
at random: the weights best on one half are scored on the other (both ways), against the equal
weights; then the weights best on all validation users are scored on the test users
(users without a positive query row count as 0 there).

OPENBLAS_NUM_THREADS=2 python benchmarks/ensemble_weights.py amazon.db --max-time 90
"""

from __future__ import annotations

import itertools

import numpy as np
from common import fit_meta_learners, one_seed_args, protocol_split

from recmeta.learners.base import chunks, mask_support, ndcg_of, size_batches
from recmeta.learners.ensemble import BIAS_SHOTS, BIAS_USERS, Standardised
from recmeta.tasks import make_batch

GRID = [w for w in itertools.product((0, 1, 2), repeat=3) if any(w)]


def per_user(ensemble, batch) -> dict[tuple[int, ...], np.ndarray]:
    """Each user's ndcg@10 under every member weighting of GRID (the ensemble's tuned bias
    weight for the user's support size)."""
    members = ensemble.members
    out: dict[tuple[int, ...], list[np.ndarray]] = {w: [] for w in GRID}
    for part in chunks(batch):
        visible = part.support_only()
        share = 1.0 - ensemble.bias_weight(visible.support_mask.sum(1))
        z = []
        for m in members:
            scores = m.score(visible)
            z.append(Standardised([scores], [ensemble._bias(m, scores.shape[1])]).combine(share))
        for w in GRID:
            combined = sum(wi * zi for wi, zi in zip(w, z, strict=True) if wi)
            out[w].append(ndcg_of(mask_support(combined, part), part))
    return {w: np.concatenate(v) for w, v in out.items()}


def main() -> None:
    a = one_seed_args(__doc__)
    data, threshold, seq, split, train, val = protocol_split(a.db, a.seed)
    _, ensemble = fit_meta_learners(train, val, a.seed, a.max_time)
    print(f"members maml, protonet, metalstm; bias weights {ensemble.params['bias_weights']}", flush=True)
    batches = size_batches(val, BIAS_SHOTS, threshold, a.seed, BIAS_USERS)
    rng = np.random.default_rng(a.seed)
    picks = {}
    print("| rows | users | equal, other half | picked, other half | picks (A / B) | picked on all |")
    print("|---:|---:|---:|---:|---|---|")
    for k, batch in batches.items():
        scores = per_user(ensemble, batch)
        half = rng.permutation(len(batch.users)) < len(batch.users) // 2
        equal, picked, chosen = [], [], []
        for pick_on, score_on in ((half, ~half), (~half, half)):
            best = max(GRID, key=lambda w: scores[w][pick_on].mean())
            chosen.append(best)
            equal.append(scores[(1, 1, 1)][score_on].mean())
            picked.append(scores[best][score_on].mean())
        picks[k] = max(GRID, key=lambda w: scores[w].mean())
        print(
            f"| {k} | {len(batch.users)} | {np.mean(equal):.4f} | {np.mean(picked):.4f} | "
            f"{chosen[0]} / {chosen[1]} | {picks[k]} |",
            flush=True,
        )
    print("| test rows | users | equal | picked on validation |")
    print("|---:|---:|---:|---:|")
    for k, w in picks.items():
        batch = make_batch(seq, split.test, k, data.n_items, threshold, max_query=None, dense=False)
        scores = per_user(ensemble, batch)
        print(
            f"| {k} | {len(batch.users)} | {scores[(1, 1, 1)].mean():.4f} | {scores[w].mean():.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
