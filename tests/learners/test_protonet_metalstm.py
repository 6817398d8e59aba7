from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from recmeta.learners.backbone import weighted_sq_distances
from recmeta.learners.metalstm import MetaLSTM
from recmeta.learners.protonet import ProtoNet, rating_fit, softplus_inverse
from recmeta.tasks import history_batch
from recmeta.training import fit
from tests.learners.conftest import split_views


def test_weighted_sq_distances_match_cdist():
    gen = torch.Generator().manual_seed(0)
    e, p, q = (torch.randn(n, 8, generator=gen) for n in (50, 3, 3))
    got = weighted_sq_distances(e, (p, torch.tensor(-1.5)), (q, torch.tensor(0.5)))
    want = -1.5 * torch.cdist(p, e) ** 2 + 0.5 * torch.cdist(q, e) ** 2
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_rating_terms_regress_the_support_deviations_shrunk_toward_the_prior():
    """(bu, v) minimise the squared error of the support's rating deviations plus the pull
    toward the prior (the gradient of that objective is zero there); padded rows count for
    nothing, and a user without rows gets the prior."""
    gen = torch.Generator().manual_seed(0)
    es = torch.randn(3, 6, 4, generator=gen, dtype=torch.float64)
    dev = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    mask = torch.ones(3, 6, dtype=torch.float64)
    mask[1, 2:] = 0
    mask[2] = 0
    bu0, v0 = (
        torch.randn(3, generator=gen, dtype=torch.float64),
        torch.randn(3, 4, generator=gen, dtype=torch.float64),
    )
    strength, ridge = torch.tensor(2.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    bu, v = rating_fit(es, dev, mask, bu0, v0, strength, ridge)
    for b in range(3):
        w = torch.cat([bu[b : b + 1], v[b]]).requires_grad_()
        err = mask[b] * (dev[b] - w[0] - es[b] @ w[1:]) ** 2
        loss = err.sum() + strength * (w[0] - bu0[b]) ** 2 + ridge * ((w[1:] - v0[b]) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, w)
        assert grad.abs().max() < 1e-9
    torch.testing.assert_close((bu[2], v[2]), (bu0[2], v0[2]))


def test_prototypes_are_means_of_the_embedded_support(small):
    _, train, val = split_views(small)
    model = fit(ProtoNet(epochs=1, dim=16, device="cpu"), train, val)
    with torch.no_grad():
        model.raw_strength.fill_(-30.0)  # softplus ~ 0: no pull toward the population prototype
    items = [np.array([3, 5, 7, 11]), np.array([2])]
    values = [np.array([5, 4, 1, 2], np.float32), np.array([5], np.float32)]
    batch = history_batch(items, values, [np.arange(4), np.arange(1)])
    theta = model.prototypes(model.episode(batch))
    with torch.no_grad():
        e = model.backbone.items()
    torch.testing.assert_close(theta["like"][0], e[[3, 5]].mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(theta["dislike"][0], e[[7, 11]].mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(theta["like"][1], e[2], rtol=1e-4, atol=1e-5)


def test_empty_support_gets_the_population_prototypes(small):
    _, train, val = split_views(small)
    model = fit(ProtoNet(epochs=1, dim=16, device="cpu"), train, val)
    batch = history_batch([np.array([], np.int64)], [np.array([], np.float32)], [np.array([], np.int64)])
    ep = model.episode(batch)
    theta = model.prototypes(ep)
    with torch.no_grad():
        prior = model.backbone.theta0(model.backbone.context(ep))
    torch.testing.assert_close(theta["like"], prior["u"])


def test_metalstm_generates_per_support_weights(small):
    _, train, val = split_views(small)
    model = fit(MetaLSTM(epochs=1, dim=16, hidden=16, device="cpu"), train, val)
    a = (np.array([1, 2, 3]), np.array([5, 4, 5], np.float32), np.array([0, 60, 120]))
    b = (np.array([9, 8, 7]), np.array([1, 2, 1], np.float32), np.array([0, 60, 120]))
    batch = history_batch([a[0], a[0], b[0]], [a[1], a[1], b[1]], [a[2], a[2], b[2]])
    ep = model.episode(batch)
    with torch.no_grad():
        theta, _, _ = model.forward_episode(ep)
    torch.testing.assert_close(theta["u"][0], theta["u"][1])
    assert not torch.allclose(theta["u"][0], theta["u"][2])
    assert not torch.allclose(theta["bu"][0], theta["bu"][2])


def test_metalstm_reads_the_latest_rows_it_was_trained_on(small):
    _, train, val = split_views(small)
    model = fit(MetaLSTM(epochs=1, dim=16, hidden=16, max_support=4, device="cpu"), train, val)
    rng = np.random.default_rng(0)
    items, values, times = (
        rng.choice(small.n_items, 9, replace=False),
        rng.integers(1, 6, 9),
        np.arange(9) * 60,
    )
    batch = history_batch(
        [items, items[-4:], items[:3]],
        [values.astype(np.float32), values[-4:].astype(np.float32), values[:3].astype(np.float32)],
        [times, times[-4:], times[:3]],
    )
    with torch.no_grad():
        h = model.read(model.episode(batch), model.backbone.items())
        short = model.read(
            model.episode(history_batch([items[:3]], [values[:3].astype(np.float32)], [times[:3]])),
            model.backbone.items(),
        )
    torch.testing.assert_close(h[0], h[1])  # 9 rows read as their latest 4
    torch.testing.assert_close(h[2], short[0])  # a shorter support in the same batch is untouched


def test_rating_ridge_must_be_a_positive_number(small):
    _, train, _ = split_views(small)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="rating_ridge"):
            ProtoNet(dim=8, rating_ridge=bad, device="cpu").setup(train)


def test_the_liked_prototypes_pull_grows_with_the_liked_rows(small, tmp_path):
    _, train, val = split_views(small)
    model = fit(ProtoNet(epochs=1, dim=16, device="cpu"), train, val)
    with torch.no_grad():
        model.raw_growth.fill_(float(np.log(np.expm1(0.5))))  # g = 0.5
    items = [np.array([3, 5, 7]), np.array([3, 5, 7, 11, 13, 17, 19, 23])]
    values = [np.full(3, 5, np.float32), np.full(8, 5, np.float32)]
    batch = history_batch(items, values, [np.arange(3), np.arange(8)])
    ep = model.episode(batch)
    with torch.no_grad():
        theta, e, logits = model.forward_episode(ep)
        tau = torch.nn.functional.softplus(model.raw_tau)
        for row, n in ((0, 3), (1, 8)):
            pull = tau[0] * (1 + 0.5 * np.log1p(n))
            want = (
                model.backbone.item_bias
                - pull * torch.cdist(theta["like"][row : row + 1], e)[0] ** 2
                + tau[1] * torch.cdist(theta["dislike"][row : row + 1], e)[0] ** 2
            )
            torch.testing.assert_close(logits[row], want, rtol=1e-4, atol=1e-3)


def test_a_protonet_saved_before_the_growing_pull_scores_as_it_did(small):
    _, train, val = split_views(small)
    model = fit(ProtoNet(epochs=1, dim=16, device="cpu"), train, val)
    config, tensors = model.state()
    del tensors["raw_growth"]
    old = ProtoNet.from_state(config, tensors)
    batch = history_batch([np.array([3, 5, 7, 11])], [np.full(4, 5, np.float32)], [np.arange(4)])
    with torch.no_grad():
        model.raw_growth.fill_(-100.0)  # the pull as it was: tau_like alone
    np.testing.assert_allclose(old.score(batch), model.score(batch), rtol=1e-5, atol=1e-5)


def test_large_starting_values_do_not_overflow(small):
    """The pull, prior strength and rating ridge start as given, however large (their raw
    parameters are softplus inverses, which overflowed in float32 past about 88)."""
    assert softplus_inverse(1000.0) == 1000.0 and abs(softplus_inverse(0.5) - np.log(np.expm1(0.5))) < 1e-12
    _, train, _ = split_views(small)
    model = ProtoNet(pull=200.0, prior_strength=150.0, rating_ridge=300.0, dim=8, device="cpu").setup(train)
    torch.testing.assert_close(F.softplus(model.raw_tau)[0], torch.tensor(200.0))
    torch.testing.assert_close(F.softplus(model.raw_strength), torch.full((3,), 150.0))
    torch.testing.assert_close(F.softplus(model.raw_ridge), torch.tensor(300.0))


def test_starting_values_that_are_not_positive_finite_numbers_are_refused(small):
    import pytest

    _, train, _ = split_views(small)
    for name in ("pull", "prior_strength", "rating_ridge"):
        for bad in (0.0, -1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match=name):
                ProtoNet(dim=8, device="cpu", **{name: bad}).setup(train)


def test_protonet_skips_the_rating_regression_on_an_implicit_log(small_implicit, monkeypatch):
    """An implicit log has no ratings to predict: the support's rating regression (a solve
    per user, about a quarter of ProtoNet's time on Amazon Beauty) is not run, in training
    or scoring, and the rating terms are the population prior's."""

    def refuse(*args, **kwargs):
        raise AssertionError("rating_fit ran on an implicit log")

    monkeypatch.setattr("recmeta.learners.protonet.rating_fit", refuse)
    _, train, val = split_views(small_implicit)
    model = fit(ProtoNet(epochs=1, dim=8, device="cpu"), train, val)
    ones = [np.ones(3, np.float32), np.ones(1, np.float32)]
    batch = history_batch([np.array([3, 5, 7]), np.array([2])], ones, [np.arange(3), np.arange(1)])
    assert np.isfinite(model.score(batch)).all()
    ep = model.episode(batch)
    with torch.no_grad():
        theta = model.prototypes(ep)
        prior = model.backbone.theta0(model.backbone.context(ep))
    torch.testing.assert_close((theta["bu"], theta["v"]), (prior["bu"], prior["v"]))
