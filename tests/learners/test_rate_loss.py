"""The query's rating error: absolute by default (its minimiser is the median rating, what
mae rewards), squared on request (the mean, what rmse rewards); other names are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recmeta.learners import create
from recmeta.learners.backbone import ratings
from recmeta.tasks import Sequences, make_batch
from tests.learners.conftest import rng_users


@pytest.mark.parametrize("rate_loss", ["absolute", "squared"])
def test_the_rate_term_is_the_chosen_error_of_the_query_ratings(small, rate_loss):
    model = create("maml", dim=8, device="cpu", rate_loss=rate_loss).setup(small, seed=0)
    batch = make_batch(Sequences.from_data(small), rng_users(small, 5), 3, small.n_items, model.threshold)
    ep = model.episode(batch)
    with torch.no_grad():
        terms = model.loss(ep)
        bb = model.backbone
        theta = model.theta(ep, bb.items(), bb.context(ep))
        err = (
            ratings(theta, bb.items(), bb.rate_bias, bb.mu, ep.query_items) - ep.query_values
        ) * ep.query_mask
    expected = err.abs().sum() if rate_loss == "absolute" else (err**2).sum()
    assert float(ep.query_mask.sum()) > 0
    assert np.isclose(float(terms.rate), float(expected), rtol=1e-5)
    assert terms.rate_weight == model.params["rate_weight"]


def test_the_default_is_absolute_and_an_unknown_error_is_refused(small):
    assert create("maml").params["rate_loss"] == "absolute"
    with pytest.raises(ValueError, match="rate_loss must be one of absolute, squared"):
        create("protonet", dim=8, rate_loss="huber").setup(small)
