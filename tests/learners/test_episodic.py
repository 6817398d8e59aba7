"""The episodic item-item weights: the expected support -> query least squares they solve,
their bands by support size, their tuning and their checkpoint."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recmeta.learners import create
from recmeta.learners.baselines import Episodic, ease_weights
from recmeta.tasks import Sequences, make_batch
from tests.learners.conftest import rng_users, split_views


def expected_episode_solution(x: np.ndarray, q: float, mu: float) -> np.ndarray:
    """argmin_B E ||R - S B||^2 + mu ||B||^2 over every support mask of every user's row (each
    row in the support with probability q, the rest the query), by enumerating the masks."""
    n = x.shape[1]
    ss, sr = np.zeros((n, n)), np.zeros((n, n))
    for mask in itertools.product((0.0, 1.0), repeat=n):
        m = np.array(mask)
        weight = q ** m.sum() * (1 - q) ** (n - m.sum())
        s, r = x * m, x * (1 - m)
        ss += weight * s.T @ s
        sr += weight * s.T @ r
    return np.linalg.solve(ss + mu * np.eye(n), sr)


@pytest.mark.parametrize("share", [0.5, 3.0])
def test_weights_solve_the_expected_support_to_query_regression(share):
    """With query share r (support probability q = 1 / (1 + r)) and penalty lam, the
    weights are the enumerated solution with penalty lam q^2, divided by r."""
    x = (np.random.default_rng(4).random((40, 5)) < 0.4).astype(np.float64)
    lam, q = 2.0, 1.0 / (1.0 + share)
    b = ease_weights(x.T @ x, lam, query_share=share)
    expected = expected_episode_solution(x, q, lam * q**2) / share
    np.fill_diagonal(expected, 0.0)  # a support item is never ranked for its own user
    np.testing.assert_allclose(b, expected, atol=1e-10)


def test_each_support_size_is_scored_with_the_weights_of_its_band(small):
    _, train, _ = split_views(small)
    model = Episodic(regularization=20.0, query_rows=30.0, sizes=[1, 5], neighbours=small.n_items).fit(train)
    seq = Sequences.from_data(small)
    users = rng_users(small, 6)
    for k, band in ((1, 1), (3, 1), (5, 5), (8, 5)):
        one = Episodic(regularization=20.0, query_rows=30.0 * k / band, sizes=[k], neighbours=small.n_items)
        one.fit(train)  # the band's weights fitted for k rows: query share 30 / band
        batch = make_batch(seq, users, k, small.n_items, 4.0).support_only()
        np.testing.assert_allclose(model.score(batch), one.score(batch), rtol=1e-5, atol=1e-6)


def test_the_tuning_ends_where_no_neighbour_is_better(small):
    _, train, val = split_views(small)
    seen = []
    model = Episodic(sizes=[1, 3]).fit(train, val, progress=seen.append)
    scores = {tuple(round(np.log10(v) * 2) for v in r["config"]): r["val_ndcg@10"] for r in seen}
    best = tuple(round(np.log10(v) * 2) for v in (model.params["query_rows"], model.params["regularization"]))
    assert scores[best] == max(scores.values())
    for step in ((1, 0), (-1, 0), (0, 1), (0, -1)):  # every neighbour was tried, and none is better
        neighbour = (best[0] + step[0], best[1] + step[1])
        assert neighbour in scores and scores[neighbour] <= scores[best]


def test_a_given_setting_is_kept_and_the_other_tuned(small):
    _, train, val = split_views(small)
    seen = []
    model = Episodic(query_rows=7.0, sizes=[1, 3]).fit(train, val, progress=seen.append)
    assert model.params["query_rows"] == 7.0 and {r["config"][0] for r in seen} == {7.0}


def test_checkpoint_round_trip(small):
    _, train, _ = split_views(small)
    model = Episodic(regularization=20.0, query_rows=30.0).fit(train)
    config, tensors = model.state()
    again = Episodic.from_state(config, {k: v.clone() for k, v in tensors.items()})
    batch = make_batch(Sequences.from_data(small), rng_users(small, 5), 5, small.n_items, 4.0).support_only()
    np.testing.assert_array_equal(again.score(batch), model.score(batch))
    short = dict(tensors, indptr=tensors["indptr"][: small.n_items + 1])  # one band's rows only
    with pytest.raises(ValueError):
        Episodic.from_state(config, short)


@pytest.mark.parametrize(
    "bad",
    [
        {"query_rows": -1.0},
        {"query_rows": float("inf")},
        {"sizes": []},
        {"sizes": [3, 1]},
        {"sizes": [0, 2]},
        {"regularization": 0},
    ],
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        create("episodic", **bad)
