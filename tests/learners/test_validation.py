"""Validation scoring: chunked, and over positive pairs, it gives what one dense pass gives."""

from __future__ import annotations

import numpy as np
import pytest

from recmeta.learners import base, create
from recmeta.tasks import Sequences, make_batch
from recmeta.training import Trainer
from tests.learners.conftest import split_views


def test_chunked_validation_over_pairs_equals_one_dense_pass(small, monkeypatch):
    _, train, val = split_views(small)
    model = Trainer(create("protonet", dim=8, epochs=1, device="cpu"), seed=0).fit(train, val)
    seq = Sequences.from_data(small)
    users = np.flatnonzero(small.counts_per_user() > 5)
    dense = make_batch(seq, users, 3, small.n_items, 4.0)
    pairs = make_batch(seq, users, 3, small.n_items, 4.0, dense=False)
    whole = base.validation_ndcg(model, dense)
    monkeypatch.setattr(base, "VAL_CHUNK", 7)
    assert base.validation_ndcg(model, pairs) == whole
    assert base.validation_ndcg(model, dense) == whole
    some = np.array([5, 0, 9, 3])
    assert np.array_equal(pairs.rows(some).positives(small.n_items), dense.rows(some).query_pos > 0)


@pytest.mark.parametrize("longer_gain", [1.1, 0.9])
def test_als_tuning_searches_factors_around_the_best_regularization(small, monkeypatch, longer_gain):
    """Regularization and alpha are searched at 32 factors, then 64 and 128 factors around
    the best regularization, all at 8 sweeps: a peak at (64, 10, 10) is found although
    regularization 100 is best at 32 factors. The winner is then taken on to 15 sweeps and
    kept at 15 only if that scores higher; the kept factors are those of the winning fit
    (a copy: implicit's further sweeps change a model's factors in place)."""
    from recmeta.learners.baselines import als as als_module
    from recmeta.learners.baselines import base as tuning

    _, train, val = split_views(small)
    tried = []

    class Fitted:
        def __init__(self, n_items, config):
            self.config, self.item_factors = config, np.zeros((n_items, config[0]), np.float32)

    def sweep(model, config):
        tried.append(config)
        model.config = config
        model.item_factors[:] = len(tried)
        return model

    def als_model(liked, factors, reg, alpha, iterations, seed):
        return sweep(
            Fitted(liked.shape[1], (factors, reg, alpha, iterations)), (factors, reg, alpha, iterations)
        )

    def als_continue(model, liked, iterations):
        return sweep(model, (*model.config[:3], model.config[3] + iterations))

    def ndcg(model, batch):
        f, r, a, it = tried[-1]
        peak = 2.0 if r == (100.0 if f == 32 else 10.0) else 1.0
        return {32: 0.1, 64: 0.2, 128: 0.15}[f] * peak * a * (longer_gain if it == 15 else 1.0)

    monkeypatch.setattr(als_module, "als_model", als_model)
    monkeypatch.setattr(als_module, "als_continue", als_continue)
    monkeypatch.setattr(tuning, "validation_ndcg", ndcg)
    model = create("als").fit(train, val)
    kept = (64, 10.0, 10.0, 15 if longer_gain > 1 else 8)
    assert tuple(model.params[k] for k in ("factors", "regularization", "alpha", "iterations")) == kept
    assert len(tried) == 8 + 2 * 3 + 1 and len(set(tried)) == len(tried)
    assert tried[-1] == (64, 10.0, 10.0, 15)
    assert model.item_factors_[0, 0] == tried.index(kept) + 1  # no refit after the search


def test_an_als_fit_taken_further_equals_one_fitted_for_all_its_sweeps(small):
    from recmeta.learners.baselines import als_continue, als_model, item_factors, liked_matrix

    liked = liked_matrix(small, 4.0)
    whole = item_factors(als_model(liked, 8, 1.0, 1.0, 5, seed=3))
    part = als_model(liked, 8, 1.0, 1.0, 2, seed=3)
    early = item_factors(part)
    np.testing.assert_allclose(item_factors(als_continue(part, liked, 3)), whole, rtol=1e-4, atol=1e-6)
    assert not np.allclose(early, whole)


def test_validation_tables_of_models_together_equal_each_alone(small, monkeypatch):
    """Scored together, each model's table is what it gets alone, and the ensemble combines
    the scores its members just gave: each member scores each chunk once."""
    from recmeta.learners import base, ensemble
    from recmeta.routing import validation_table, validation_tables
    from recmeta.training import fit

    _, train, val = split_views(small)
    small_model = {"dim": 8, "epochs": 1, "device": "cpu"}
    members = {
        k: fit(create(k, **small_model, **({"hidden": 8} if k == "metalstm" else {})), train, val)
        for k in ("maml", "protonet", "metalstm")
    }
    models = [*members.values(), ensemble.Ensemble().assemble(members), fit(create("popular"), train, val)]
    monkeypatch.setattr(base, "VAL_CHUNK", 16)
    alone = [validation_table(m, val, 4.0) for m in models]
    calls = []
    for m in members.values():
        monkeypatch.setattr(m, "score", lambda b, *a, m=m, f=m.score: calls.append(m) or f(b, *a))
    together = validation_tables(models, val, 4.0)
    assert together == alone and len(together[3]) >= 4
    chunks = sum(len(list(base.chunks(b))) for b in _batches(val, together[0]))
    assert len(calls) == 3 * chunks  # the ensemble asked none of its members again


def _batches(val, table):
    from recmeta.routing import MAX_VAL_USERS

    seq = Sequences.from_data(val)
    counts = val.counts_per_user()
    out = []
    for key in table:
        k = int(key[1:])
        users = np.flatnonzero(counts > k)
        assert len(users) <= MAX_VAL_USERS
        out.append(make_batch(seq, users, k, val.n_items, 4.0, dense=False))
    return out


def test_item_knn_tuning_keeps_the_best_neighbours_and_weighting_on_validation(small):
    """Neighbour counts x (cosine, bm25) are tried on the validation users; the fit kept is
    the best one, and its similarity is that configuration's own."""
    import pytest

    from recmeta.learners.baselines import KNN_NEIGHBOURS, KNN_WEIGHTING, ItemKNN, Tuning

    _, train, val = split_views(small)
    seen = []
    model = ItemKNN().fit(train, val, progress=seen.append)
    assert len(seen) == len(KNN_NEIGHBOURS) * len(KNN_WEIGHTING)
    best = max(seen, key=lambda r: r["val_ndcg@10"])
    assert (model.params["neighbours"], model.params["weighting"]) == best["config"]
    refit = ItemKNN(neighbours=best["config"][0], weighting=best["config"][1]).fit(train)
    assert (refit.similarity_ != model.similarity_).nnz == 0
    assert Tuning(val, model.params["threshold"], 0).score(model) == best["val_ndcg@10"]
    assert ItemKNN(neighbours=7).fit(train, val).params == {**ItemKNN(neighbours=7).params, "threshold": 4.0}
    with pytest.raises(ValueError, match="weighting"):
        ItemKNN(weighting="jaccard")


@pytest.mark.parametrize("kind", ["itemknn", "ease"])
def test_tuning_with_no_validation_user_to_score_keeps_a_configuration(small, kind):
    """Validation users too short to score (no one past 10 rows) make every configuration's
    figure NaN: the tuner keeps a configuration and the model scores, without a traceback."""
    from recmeta import snapshot

    split, train, _ = split_views(small)
    counts = small.counts_per_user()
    short = snapshot.restrict(small, np.flatnonzero(counts <= 10))
    assert short.values.nnz and not (short.counts_per_user() > 10).any()
    model = create(kind).fit(train, short)
    batch = make_batch(Sequences.from_data(small), split.test, 3, small.n_items, 4.0)
    assert np.isfinite(base.validation_ndcg(model, batch))
    assert model.params.get("neighbours") or model.params.get("regularization")
