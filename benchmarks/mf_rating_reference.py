"""A classical reference for the rating error of new users: biased matrix factorisation
(alternating ridge regressions with user and item biases) fitted on PROTOCOL.md's training
users, and each test user's (bias, factors) solved by ridge regression on their K support
ratings, as one would fold a new user into a rating model. mae is macro-averaged over the
test users per seed, then over seeds, as `recmeta evaluate` does; of the predictions as
they are and on the log's stars (clipped to its range and rounded to the nearest star, as
recmeta's meta-learners give ratings: `on_scale`).

python benchmarks/mf_rating_reference.py recmeta.db          # a store holding ML-100K
"""

from __future__ import annotations

import sys

import numpy as np

from recmeta import snapshot
from recmeta.learners.backbone import on_scale, rating_scale
from recmeta.store import make_engine
from recmeta.tasks import Sequences, make_batch, positive_threshold, split_users

SETTINGS = ((8, 5.0), (16, 10.0), (32, 15.0))  # (factors, regularization) of the fit
FOLD_IN = (2.0, 5.0, 15.0)  # ridge penalties of a new user's fold-in
SHOTS = (0, 5, 10)


def ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """Least squares of y on x with `penalty` times the identity added."""
    return np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]), x.T @ y)


def biased_mf(ratings, factors: int, reg: float, sweeps: int = 15, seed: int = 0):
    """(mu, item biases, item factors) of ratings ~ mu + b_u + b_i + <p_u, q_i>."""
    by_user, by_item = ratings.tocsr(), ratings.tocsc()
    mu = float(by_user.data.mean())
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 0.1, (ratings.shape[0], factors))
    q = rng.normal(0, 0.1, (ratings.shape[1], factors))
    bu, bi = np.zeros(ratings.shape[0]), np.zeros(ratings.shape[1])
    for _ in range(sweeps):
        for mat, own_b, own_f, other_b, other_f in ((by_user, bu, p, bi, q), (by_item, bi, q, bu, p)):
            for r in range(len(mat.indptr) - 1):  # users of the CSR, items of the CSC
                lo, hi = mat.indptr[r], mat.indptr[r + 1]
                if lo == hi:
                    continue
                idx = mat.indices[lo:hi]
                x = np.hstack([np.ones((hi - lo, 1)), other_f[idx]])
                sol = ridge(x, mat.data[lo:hi] - mu - other_b[idx], reg)
                own_b[r], own_f[r] = sol[0], sol[1:]
    return mu, bi, q


def main() -> None:
    data = snapshot.load(make_engine(f"sqlite:///{sys.argv[1]}"))
    threshold = positive_threshold(data)
    mae: dict[tuple, list[float]] = {}
    scale = rating_scale(data.values.data)
    for seed in (0, 1, 2):
        seq, split = Sequences.from_data(data, seed=seed), split_users(data, seed=seed)
        train = snapshot.restrict(data, split.train)
        for factors, reg in SETTINGS:
            mu, bi, q = biased_mf(train.values, factors, reg, seed=seed)
            for k in SHOTS:
                batch = make_batch(seq, split.test, k, data.n_items, threshold, max_query=None)
                for penalty in FOLD_IN:
                    per_user, on_stars = [], []
                    for r in range(len(batch.users)):
                        m, qm = batch.support_mask[r] > 0, batch.query_mask[r] > 0
                        items, query = batch.support_items[r][m], batch.query_items[r][qm]
                        x = np.hstack([np.ones((len(items), 1)), q[items]])
                        w = ridge(x, batch.support_values[r][m] - mu - bi[items], penalty)
                        pred = mu + bi[query] + w[0] + q[query] @ w[1:]
                        truth = batch.query_values[r][qm]
                        per_user.append(np.abs(pred - truth).mean())
                        on_stars.append(np.abs(on_scale(pred, scale, median=True) - truth).mean())
                    mae.setdefault((factors, reg, penalty, k), []).append(float(np.mean(per_user)))
                    mae.setdefault((factors, reg, penalty, k, "stars"), []).append(float(np.mean(on_stars)))
        print(f"seed {seed} done", file=sys.stderr)
    heads = [f"mae K={k}" for k in SHOTS] + [f"on stars K={k}" for k in SHOTS]
    print("| factors, regularization | fold-in penalty | " + " | ".join(heads) + " |")
    print("|---|---:|" + "---:|" * len(heads))
    for factors, reg in SETTINGS:
        for penalty in FOLD_IN:
            keys = [(k,) for k in SHOTS] + [(k, "stars") for k in SHOTS]
            cells = " | ".join(f"{np.mean(mae[(factors, reg, penalty, *key)]):.3f}" for key in keys)
            print(f"| {factors}, {reg:g} | {penalty:g} | {cells} |")


if __name__ == "__main__":
    main()
