"""The ensemble: the mean of its members' per-user z-scores, from members fitted once."""

from __future__ import annotations

import numpy as np

from recmeta.learners import create
from recmeta.learners.ensemble import standardise
from recmeta.tasks import Sequences, make_batch
from recmeta.training import fit
from tests.learners.conftest import rng_users, split_views


def test_ensemble_of_fitted_members_is_the_mean_of_their_z_scores(small):
    _, train, val = split_views(small)
    members = {k: fit(create(k, epochs=1, dim=8), train, val) for k in ("maml", "protonet")}
    ensemble = fit(create("ensemble", members=["maml", "protonet"], fitted=members), train, val)
    assert all(ensemble.models[k] is members[k] for k in members)  # kept, not refitted
    batch = make_batch(Sequences.from_data(small), rng_users(small, 6), 3, small.n_items, 4.0).support_only()
    want = (standardise(members["maml"].score(batch)) + standardise(members["protonet"].score(batch))) / 2
    np.testing.assert_allclose(ensemble.score(batch), want, rtol=1e-6)
    z = standardise(ensemble.score(batch))
    np.testing.assert_allclose(z.mean(1), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(1), 1, rtol=1e-5)


def test_ensemble_refuses_unknown_members():
    import pytest

    with pytest.raises(ValueError, match="ensemble members"):
        create("ensemble", members=["als"])
