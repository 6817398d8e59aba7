"""Validation scoring: chunked, and over positive pairs, it gives what one dense pass gives."""

from __future__ import annotations

import numpy as np

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


def test_als_tuning_searches_factors_around_the_best_regularization(small, monkeypatch):
    """Regularization and alpha are searched at 32 factors, then 64 and 128 factors around
    the best regularization: a peak at (64, 10, 10) is found although regularization 100
    is best at 32 factors; the kept factors are those of the winning fit."""
    from recmeta.learners import baselines

    _, train, val = split_views(small)
    tried = []

    def fit_one(self, liked, seed):
        tried.append((self.params["factors"], self.params["regularization"], self.params["alpha"]))
        self.item_factors_ = np.full((liked.shape[1], self.params["factors"]), len(tried), np.float32)

    def ndcg(model, batch):
        f, r, a = tried[-1]
        return {32: 0.1, 64: 0.2, 128: 0.15}[f] * (2.0 if r == (100.0 if f == 32 else 10.0) else 1.0) * a

    monkeypatch.setattr(baselines.ALS, "_fit_one", fit_one)
    monkeypatch.setattr(baselines, "validation_ndcg", ndcg)
    model = create("als").fit(train, val)
    assert (model.params["factors"], model.params["regularization"], model.params["alpha"]) == (
        64,
        10.0,
        10.0,
    )
    assert len(tried) == 8 + 2 * 3 and len(set(tried)) == len(tried)
    assert model.item_factors_[0, 0] == tried.index((64, 10.0, 10.0)) + 1  # no refit after the search


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
