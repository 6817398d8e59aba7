"""A blend of a meta-learner with the episodic item-item weights: does ranking by
(1 - w) z(learner) + w z(episodic), each score standardised per user, or by reciprocal-rank
fusion (1 / (60 + rank) summed), beat the better of the two? One seed of PROTOCOL.md:
ALS, the episodic weights and the three learners fitted as `recmeta evaluate` fits them
(`--max-time` seconds of meta-training each), the ensemble assembled and its bias weights
tuned. For each support size, w is picked on the validation users (at most 1,000, as the
ensemble's bias tuning draws them) and scored on the test users.

OPENBLAS_NUM_THREADS=2 python benchmarks/episodic_blend.py amazon.db --max-time 90
"""

from __future__ import annotations

import numpy as np
from common import fit_meta_learners, one_seed_args, protocol_split

from recmeta.learners import create
from recmeta.learners.base import chunks, mask_support, ndcg_of, size_batches
from recmeta.learners.ensemble import BIAS_SHOTS, BIAS_USERS
from recmeta.tasks import make_batch
from recmeta.training import fit

WEIGHTS = (0.0, 0.03, 0.06, 0.1, 0.15, 0.25, 0.5, 1.0)  # the episodic weights' share
SOURCES = ("ensemble", "protonet")


def standardised(scores: np.ndarray) -> np.ndarray:
    centred = scores - scores.mean(1, keepdims=True)
    sd = centred.std(1, keepdims=True)
    return centred / np.where(sd > 0, sd, 1.0)


def reciprocal_rank(*scores: np.ndarray) -> np.ndarray:
    return sum(1.0 / (60.0 + (-s).argsort(1).argsort(1)) for s in scores)


def per_user(ensemble, episodic, batch) -> dict[tuple[str, object], np.ndarray]:
    """Each user's ndcg@10 for every (source, blend): blend a weight of WEIGHTS or "rrf"."""
    out: dict[tuple[str, object], list[np.ndarray]] = {}
    for part in chunks(batch):
        visible = part.support_only()
        member_scores = [m.score(visible) for m in ensemble.members]
        own = {
            "ensemble": standardised(ensemble.combine(member_scores, visible)),
            "protonet": standardised(member_scores[[m.kind for m in ensemble.members].index("protonet")]),
        }
        weights = standardised(episodic.score(visible))
        for source, z in own.items():
            blends = {w: (1 - w) * z + w * weights for w in WEIGHTS}
            blends["rrf"] = reciprocal_rank(z, weights)
            for blend, scores in blends.items():
                out.setdefault((source, blend), []).append(ndcg_of(mask_support(scores, part), part))
    return {key: np.concatenate(v) for key, v in out.items()}


def main() -> None:
    a = one_seed_args(__doc__)
    data, threshold, seq, split, train, val = protocol_split(a.db, a.seed)
    episodic = fit(create("episodic"), train, val, seed=a.seed)
    _, ensemble = fit_meta_learners(train, val, a.seed, a.max_time)
    validation = size_batches(val, BIAS_SHOTS, threshold, a.seed, BIAS_USERS)
    print(
        "| rows | test users | episodic | "
        + " | ".join(f"{s} | {s} + weights (w on validation: val gain) | {s} rrf" for s in SOURCES)
        + " |"
    )
    print("|---:|---:|---:|" + "---:|---|---:|" * len(SOURCES))
    for k, batch in validation.items():
        val_scores = per_user(ensemble, episodic, batch)
        test = make_batch(seq, split.test, k, data.n_items, threshold, max_query=None, dense=False)
        test_scores = per_user(ensemble, episodic, test)
        cells = [str(k), str(len(test.users)), f"{test_scores[(SOURCES[0], 1.0)].mean():.4f}"]
        for s in SOURCES:
            best = max(WEIGHTS, key=lambda w: val_scores[(s, w)].mean())
            ends = max(val_scores[(s, 0.0)].mean(), val_scores[(s, 1.0)].mean())
            gain = val_scores[(s, best)].mean() / ends - 1
            cells += [
                f"{test_scores[(s, 0.0)].mean():.4f}",
                f"{test_scores[(s, best)].mean():.4f} ({best}: {gain:+.1%})",
                f"{test_scores[(s, 'rrf')].mean():.4f}",
            ]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
