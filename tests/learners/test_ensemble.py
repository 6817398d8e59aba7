"""The ensemble: the mean of its members' per-user z-scores, from members fitted once."""

from __future__ import annotations

import numpy as np
import pytest

from recmeta.learners import create
from recmeta.learners import ensemble as ensemble_module
from recmeta.learners.ensemble import BIAS_SHOTS, BIAS_WEIGHTS, Standardised
from recmeta.tasks import Sequences, make_batch
from recmeta.training import fit
from tests.learners.conftest import rng_users, split_views


def standardise(scores: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (rows that are constant stay 0)."""
    sd = scores.std(1, keepdims=True)
    return (scores - scores.mean(1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def test_standardised_shares_equal_standardising_each_member_again():
    """Any per-user bias share, from statistics taken once, is the mean of the members'
    z-scores computed directly; a constant row stays 0."""
    rng = np.random.default_rng(0)
    scores = [rng.normal(size=(5, 40)).astype(np.float32) * s + s for s in (1.0, 30.0, 0.01)]
    scores[0][2] = 7.0  # a constant row
    biases = [rng.normal(size=40) * s for s in (1.0, 3.0, 0.5)]
    shared = Standardised(scores, biases)
    for share in (np.zeros(5), np.full(5, 0.5), np.array([0.0, 0.25, 1.0, 0.75, 1.0])):
        want = np.mean(
            [standardise(s - share[:, None] * b) for s, b in zip(scores, biases, strict=True)], axis=0
        )
        got = shared.combine(share)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    flat = Standardised([np.full((2, 6), 3.0, dtype=np.float32)], None).combine(np.zeros(2))
    assert np.all(flat == 0)


def test_ensemble_of_fitted_members_is_the_mean_of_their_z_scores(small, monkeypatch):
    """Each member's item biases weighted by the weight validation picked for the user's
    support size, then the mean of the members' z-scores."""
    monkeypatch.setattr(ensemble_module, "BIAS_MIN_USERS", 10)  # the small log's validation users
    _, train, val = split_views(small)
    members = {k: fit(create(k, epochs=1, dim=8), train, val) for k in ("maml", "protonet")}
    ensemble = fit(create("ensemble", members=["maml", "protonet"], fitted=members), train, val)
    assert all(ensemble.models[k] is members[k] for k in members)  # kept, not refitted
    bands = ensemble.params["bias_weights"]
    assert [b[0] for b in bands] == list(BIAS_SHOTS[: len(bands)]) and len(bands) >= 3
    assert all(w in BIAS_WEIGHTS for _, w in bands)
    seq = Sequences.from_data(small)
    for rows in (0, 3, 10):
        batch = make_batch(seq, rng_users(small, 6), rows, small.n_items, 4.0).support_only()
        w = next((v for k, v in reversed(bands) if k <= rows), 1.0)  # the band the rows fall in

        def z(kind: str, weight: float = w, b=batch) -> np.ndarray:
            m = members[kind]
            return standardise(m.score(b) - (1 - weight) * m.backbone.item_bias.detach().numpy())

        np.testing.assert_allclose(
            ensemble.score(batch), (z("maml") + z("protonet")) / 2, rtol=1e-5, atol=1e-6
        )
    ensemble.params["bias_weights"] = None  # untuned: the plain mean of the z-scores
    batch = make_batch(seq, rng_users(small, 6), 3, small.n_items, 4.0).support_only()
    want = (standardise(members["maml"].score(batch)) + standardise(members["protonet"].score(batch))) / 2
    np.testing.assert_allclose(ensemble.score(batch), want, rtol=1e-6, atol=1e-6)  # float32 z-scores
    z = standardise(ensemble.score(batch))
    np.testing.assert_allclose(z.mean(1), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(1), 1, rtol=1e-5)


def test_ensemble_refuses_unknown_members():
    import pytest

    with pytest.raises(ValueError, match="ensemble members"):
        create("ensemble", members=["als"])


def test_the_bias_weight_of_a_size_is_the_one_validation_ranks_best(small, monkeypatch):
    from recmeta.learners.base import mask_support, ndcg_of

    _, train, val = split_views(small)
    members = {k: fit(create(k, epochs=1, dim=8), train, val) for k in ("maml", "protonet")}
    few = fit(create("ensemble", members=["maml", "protonet"], fitted=members), train, val)
    assert few.params["bias_weights"] == []  # too few validation users to tell weights apart
    assert np.all(few.bias_weight(np.array([0, 5, 50])) == 1.0)
    monkeypatch.setattr(ensemble_module, "BIAS_MIN_USERS", 10)
    ensemble = fit(create("ensemble", members=["maml", "protonet"], fitted=members), train, val)
    chosen = dict((k, w) for k, w in ensemble.params["bias_weights"])[3]
    users = np.flatnonzero(val.counts_per_user() > 3)
    batch = make_batch(Sequences.from_data(val), users, 3, val.n_items, 4.0, dense=False)
    scores = {}
    for w in BIAS_WEIGHTS:
        z = [
            standardise(m.score(batch.support_only()) - (1 - w) * m.backbone.item_bias.detach().numpy())
            for m in members.values()
        ]
        scores[w] = float(np.mean(ndcg_of(mask_support(np.mean(z, axis=0), batch), batch)))
    assert scores[chosen] == pytest.approx(max(scores.values()), abs=1e-6)


def test_the_bias_weights_travel_in_the_checkpoint(small, tmp_path):
    from recmeta import checkpoint

    _, train, val = split_views(small)
    members = {k: fit(create(k, epochs=1, dim=8), train, val) for k in ("maml", "protonet")}
    ensemble = create("ensemble", members=["maml", "protonet"], fitted=members).assemble(members)
    ensemble.params["bias_weights"] = [[1, 1.0], [3, 0.25]]
    loaded = checkpoint.load(checkpoint.save(ensemble, tmp_path / "e.safetensors", small)).model
    assert loaded.params["bias_weights"] == [[1, 1.0], [3, 0.25]]
    batch = make_batch(Sequences.from_data(small), rng_users(small, 6), 5, small.n_items, 4.0).support_only()
    np.testing.assert_allclose(loaded.score(batch), ensemble.score(batch), rtol=1e-5, atol=1e-6)
    ensemble.params["bias_weights"] = None
    assert not np.allclose(loaded.score(batch), ensemble.score(batch))  # the weights count at 5 rows


def test_parameters_for_the_members_are_checked_when_the_ensemble_is_made():
    """`[ensemble] dim = -3` in a --config, or a parameter one member does not take, is an
    error before anything trains, not when the members are fitted."""
    with pytest.raises(ValueError, match="dim must be a whole number"):
        create("ensemble", dim=-3)
    with pytest.raises(ValueError, match="protonet: unknown parameter"):
        create("ensemble", inner_steps=3)
    create("ensemble", members=["maml"], inner_steps=3, bias_weights=[[1, 0.5]])
