"""Meta-learners start from whitened ALS item factors of the training users."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recmeta.learners import create, fit_order
from recmeta.learners.baselines import ALS, liked_matrix
from recmeta.learners.meta import als_start, whiten
from recmeta.tasks import Sequences, make_batch
from tests.learners.conftest import synth_data


def test_one_liked_item_ranks_the_catalogue_as_als_folds_it_in():
    """With one support row ALS's fold-in is (Y'Y + y y' + reg)^-1 2y, by Sherman-Morrison a
    multiple of (Y'Y + reg)^-1 y: the whitened rows' dot products rank exactly as ALS does."""
    train = synth_data(implicit=True)
    liked = liked_matrix(train, 1.0)
    white = als_start(liked, 16, 10.0, 10.0, 1.0, seed=0)
    als = ALS(factors=16, regularization=10.0, alpha=10.0).fit(train, seed=0)
    batch = make_batch(Sequences.from_data(train), np.arange(30), 1, train.n_items, 1.0)
    ours = white[batch.support_items[:, 0]] @ white.T
    theirs = als.fold_in(batch) @ als.item_factors_.T
    for a, b in zip(ours, theirs, strict=True):
        assert np.corrcoef(a, b)[0, 1] > 0.9999
    assert np.isclose(np.linalg.norm(white, axis=1).mean(), 1.0)


def test_setup_starts_from_als_unless_asked_for_random():
    train = synth_data(implicit=True)
    als_init = (
        create("maml", dim=8, item_init="als").setup(train, seed=0).backbone.item_emb.weight.detach().numpy()
    )
    expected = als_start(liked_matrix(train, 1.0), 8, 10.0, 1.0, 0.1, seed=0)
    assert np.allclose(als_init, expected, atol=1e-6)
    torch.manual_seed(0)
    random = create("maml", dim=8, item_init="random").setup(train).backbone.item_emb.weight.detach()
    assert float(random.std()) < 0.05  # the small normal start
    with pytest.raises(ValueError, match="item_init"):
        create("maml", dim=8, item_init="svd").setup(train)
    strong = create("maml", dim=8, init_alpha=10.0).setup(train, seed=0).backbone.item_emb.weight.detach()
    assert np.allclose(strong, als_start(liked_matrix(train, 1.0), 8, 10.0, 10.0, 0.1, seed=0), atol=1e-6)
    assert not np.allclose(strong, als_init, atol=1e-3)  # the weight reaches the start
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="init_scale"):
            create("maml", dim=8, init_scale=bad).setup(train)
        with pytest.raises(ValueError, match="init_alpha"):
            create("maml", dim=8, init_alpha=bad).setup(train)


def test_a_tuned_als_fitted_first_sets_the_start_and_its_dimension():
    """`create` hands a meta-learner the run's fitted ALS: its factors, whitened, are the
    start, and its factors, regularization and alpha the learner's configuration."""
    train = synth_data(implicit=True)
    als = ALS(factors=16, regularization=1.0, alpha=10.0).fit(train, seed=0)
    model = create("protonet", fitted={"als": als}).setup(train, seed=0)
    assert (model.params["dim"], model.params["init_regularization"], model.params["init_alpha"]) == (
        16,
        1.0,
        10.0,
    )
    emb = model.backbone.item_emb.weight.detach().numpy()
    assert np.allclose(emb, whiten(als.item_factors_, 1.0, 0.1), atol=1e-6)
    assert model.start is None  # the factors are copied, the ALS let go
    liked = liked_matrix(train, 1.0)
    given = create("maml", fitted={"als": als}, dim=8).setup(train, seed=0)  # a dimension given wins
    assert given.params["dim"] == 8 and given.params["init_regularization"] == 10.0
    assert np.allclose(
        given.backbone.item_emb.weight.detach().numpy(), als_start(liked, 8, 10.0, 1.0, 0.1, 0), atol=1e-6
    )
    other = ALS(factors=16).fit(synth_data(items=60, implicit=True), seed=0)  # another catalogue
    own = create("maml", fitted={"als": other}).setup(train, seed=0)
    assert own.params["dim"] == 64 and own.backbone.item_emb.weight.shape == (train.n_items, 64)
    broken = ALS(factors=16).fit(train, seed=0)
    broken.item_factors_[3, 0] = np.nan  # factors that are not all numbers are not a start
    assert create("maml", fitted={"als": broken}).setup(train, seed=0).params["dim"] == 64
    from recmeta.training import fit

    alone = fit(create("ensemble", fitted={"als": als}, epochs=1), train, train)  # fits its members
    assert [m.params["dim"] for m in alone.models.values()] == [16, 16, 16] and alone.start is None
    order = fit_order(("maml", "ensemble", "als", "popular", "episodic"))
    assert order == ["als", "popular", "episodic", "maml", "ensemble"]  # baselines first
