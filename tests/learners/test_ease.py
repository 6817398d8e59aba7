"""EASE: the closed form, its item cap and neighbour lists, and the tuning of its penalty."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recmeta.learners import create
from recmeta.learners.baselines import Tuning, liked_matrix
from recmeta.learners.baselines.ease import (
    EASE,
    EASE_BEYOND,
    EASE_LAMBDAS,
    ease_weights,
    gram_matrix,
    mirror_lower,
    top_per_row,
)
from recmeta.tasks import Sequences, make_batch
from tests.learners.conftest import rng_users, split_views


def closed_form(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck's B for a dense users x items matrix, written out as the paper does."""
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def test_weights_are_steck_closed_form_when_nothing_is_cut(small):
    _, train, _ = split_views(small)
    model = EASE(regularization=50.0, max_items=10**6, neighbours=small.n_items).fit(train)
    x = liked_matrix(train, model.params["threshold"]).toarray().astype(np.float64)
    kept = np.flatnonzero(x.sum(0) > 0)
    expected = np.zeros((small.n_items, small.n_items))
    expected[np.ix_(kept, kept)] = closed_form(x[:, kept], 50.0)
    np.testing.assert_allclose(model.similarity_.toarray(), expected, atol=2e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cholesky_inverse_is_the_general_one(dtype):
    x = (np.random.default_rng(0).random((300, 40)) < 0.2).astype(dtype)
    gram = x.T @ x
    b = ease_weights(gram, 3.0)
    assert b.dtype == dtype and np.array_equal(gram, x.T @ x)  # gram left as it was
    np.testing.assert_allclose(
        b, closed_form(x.astype(np.float64), 3.0), atol=1e-4 if dtype == np.float32 else 1e-10
    )


def test_with_rebuild_the_gram_matrix_becomes_the_weights_in_place():
    x = (np.random.default_rng(3).random((200, 30)) < 0.2).astype(np.float32)
    built = []
    b = ease_weights(x.T @ x, 3.0)
    gram = x.T @ x
    in_place = ease_weights(gram, 3.0, rebuild=lambda: built.append(1) or x.T @ x)
    assert np.shares_memory(in_place, gram) and not built  # no second matrix, no rebuild
    np.testing.assert_array_equal(in_place, b)


@pytest.mark.parametrize("rebuild", [False, True])
def test_a_gram_that_is_not_positive_definite_falls_back_to_the_general_inverse(rebuild):
    gram = np.diag([-5.0, 1.0, 2.0]) + 0.1  # with a penalty of 1, the first pivot is negative
    original = gram.copy()
    b = ease_weights(gram, 1.0, rebuild=original.copy if rebuild else None)
    p = np.linalg.inv(original + np.eye(3))
    expected = np.eye(3) - p / np.diag(p)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(b, expected, atol=1e-12)


def test_blocked_helpers_match_their_whole_matrix_forms():
    a = np.random.default_rng(1).normal(size=(11, 11))
    mirrored = a.copy()
    mirror_lower(mirrored, block=4)
    np.testing.assert_array_equal(mirrored, np.tril(a) + np.tril(a, -1).T)
    for layout in (a, np.asfortranarray(a.astype(np.float32))):  # the weights come Fortran-ordered
        cols, values = top_per_row(layout, 3, block=4)
        assert values.dtype == layout.dtype
        np.testing.assert_array_equal(np.sort(values, 1), np.sort(layout, 1)[:, -3:])
        np.testing.assert_array_equal(values, np.take_along_axis(layout, cols, 1))


def test_the_gram_matrix_in_column_blocks_is_x_transpose_x():
    x = sp.random(50, 13, density=0.3, format="csr", random_state=2, dtype=np.float32)
    gram = gram_matrix(x, block=4)
    assert gram.dtype == np.float32
    np.testing.assert_allclose(gram, (x.T @ x).toarray(), rtol=1e-6)


def test_the_penalty_is_picked_over_the_most_liked_items_then_fitted_over_all(small):
    """Tuned over the `tune_items` most liked items, the picked penalty is fitted once more
    over `max_items`: the weights are those of that penalty over them all."""
    _, train, val = split_views(small)
    seen = []
    model = EASE(max_items=30, tune_items=10, neighbours=29).fit(train, val, progress=seen.append)
    best = max(seen, key=lambda r: r["val_ndcg@10"])["config"][0]
    assert model.params["regularization"] == best
    whole = EASE(regularization=best, max_items=30, neighbours=29).fit(train)
    assert abs(whole.similarity_ - model.similarity_).max() == 0
    assert len(set(model.similarity_.tocoo().row)) > 10  # not the tuning's 10 items
    head = set(np.argsort(-model.counts_, kind="stable")[:10])
    seen_head = []  # what the tuning scored: EASE over those 10 items alone
    for r in seen:
        alone = EASE(regularization=r["config"][0], max_items=10, neighbours=29).fit(train)
        assert set(alone.similarity_.tocoo().row) <= head
        seen_head.append(Tuning(val, model.params["threshold"], 0).score(alone))
    np.testing.assert_allclose(seen_head, [r["val_ndcg@10"] for r in seen])


def test_the_item_cap_and_the_neighbour_lists(small):
    _, train, _ = split_views(small)
    model = EASE(regularization=50.0, max_items=20, neighbours=5).fit(train)
    counts = model.counts_
    top = set(np.argsort(-counts, kind="stable")[:20])
    s = model.similarity_.tocoo()
    assert set(s.row) <= top and set(s.col) <= top  # items past the cap: popularity alone
    assert np.diff(model.similarity_.indptr).max() <= 5
    full = EASE(regularization=50.0, max_items=20, neighbours=19).fit(train).similarity_.toarray()
    for row in set(s.row):  # each item keeps its largest weights
        kept = model.similarity_[row].toarray().ravel()
        assert np.sort(kept[kept != 0])[0] >= np.sort(full[row])[-5] - 1e-6
    batch = make_batch(Sequences.from_data(small), rng_users(small, 5), 3, small.n_items, 4.0)
    assert model.score(batch.support_only()).shape == (5, small.n_items)


def test_tuning_keeps_the_best_penalty_on_validation(small):
    """The grid, then the geometric midpoints around its best; the fit kept is the best of
    all, with that penalty's own weights."""
    _, train, val = split_views(small)
    seen = []
    model = EASE().fit(train, val, progress=seen.append)
    tried = [r["config"][0] for r in seen]
    n = len(EASE_LAMBDAS)
    assert tried[:n] == list(EASE_LAMBDAS)
    grid_best = max(seen[:n], key=lambda r: r["val_ndcg@10"])["config"][0]
    np.testing.assert_allclose(tried[n : n + 2], [grid_best / 10**0.5, grid_best * 10**0.5])
    for i in range(n + 2, len(tried)):  # a step past an end only while that end was the best
        leader = max(seen[:i], key=lambda r: r["val_ndcg@10"])["config"][0]
        assert leader in (min(tried[:i]), max(tried[:i]))
    best = max(seen, key=lambda r: r["val_ndcg@10"])
    assert model.params["regularization"] == best["config"][0]
    refit = EASE(regularization=best["config"][0]).fit(train)
    assert abs(refit.similarity_ - model.similarity_).max() == 0
    assert Tuning(val, model.params["threshold"], 0).score(model) == best["val_ndcg@10"]


@pytest.mark.parametrize("rising", [True, False])
def test_tuning_goes_on_past_the_end_of_the_grid_while_the_end_is_best(small, monkeypatch, rising):
    _, train, val = split_views(small)
    sign = 1.0 if rising else -1.0
    monkeypatch.setattr(
        Tuning, "score", lambda self, model: 0.5 + sign * 0.01 * np.log(model.params["regularization"])
    )
    seen = []
    model = EASE().fit(train, val, progress=seen.append)
    tried = [r["config"][0] for r in seen]
    end = EASE_LAMBDAS[-1] if rising else EASE_LAMBDAS[0]
    expected = [end * 10 ** (sign * 0.5 * step) for step in range(1, 2 + EASE_BEYOND)]
    assert len(tried) == len(EASE_LAMBDAS) + 2 + EASE_BEYOND
    beyond = sorted((r for r in tried if (r > end if rising else r < end)), reverse=not rising)
    np.testing.assert_allclose(beyond, expected)
    assert model.params["regularization"] == tried[-1]


@pytest.mark.parametrize(
    "bad",
    [
        {"regularization": 0},
        {"regularization": float("nan")},
        {"regularization": True},
        {"max_items": 0},
        {"neighbours": 2.5},
        {"tune_items": 0},
    ],
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        create("ease", **bad)


def test_similar_items_are_the_item_item_weights_and_items_past_the_cap_are_refused(small):
    from recmeta.errors import DataError
    from recmeta.recommend import item_similarities

    _, train, _ = split_views(small)
    model = EASE(regularization=50.0, max_items=5).fit(train)
    inside = int(np.argmax(model.counts_))
    np.testing.assert_allclose(item_similarities(model, inside), model.similarity_[inside].toarray().ravel())
    outside = int(np.argmin(model.counts_))
    with pytest.raises(DataError, match="no weights for this item"):
        item_similarities(model, outside)
