"""MAML: the vmap inner loop equals a plain per-task loop, the closed-form inner gradient used
when recommending equals torch.func's, and adaptation lowers the support loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recmeta.learners.backbone import Episode
from recmeta.learners.maml import MAML, maml_update, support_grad, support_loss
from recmeta.tasks import Sequences, make_batch
from recmeta.training import fit
from tests.learners.conftest import rng_users, split_views


@pytest.fixture(scope="module")
def maml_and_episode(small):
    _, train, val = split_views(small)
    model = fit(MAML(epochs=1, inner_steps=3, dim=16, device="cpu"), train, val, seed=0)
    seq = Sequences.from_data(small)
    users = rng_users(small, 6)
    batch = make_batch(seq, users, np.array([0, 1, 3, 5, 8, 10]), small.n_items, model.threshold)
    return model, model.episode(batch)


def looped_theta(model: MAML, ep: Episode, first_order: bool):
    """The learn2learn way: one user at a time, autograd.grad with create_graph."""
    bb = model.backbone
    e = bb.items()
    theta0 = bb.theta0(bb.context(ep))
    lrs = model.inner_rates()
    out = []
    for b in range(ep.items.shape[0]):
        theta = {k: v[b] for k, v in theta0.items()}
        for _ in range(model.params["inner_steps"]):
            loss = support_loss(
                theta,
                e,
                bb.item_bias,
                bb.rate_bias,
                bb.mu,
                ep.items[b],
                ep.values[b],
                ep.mask[b],
                ep.liked[b],
                model.params["rate_weight"],
            )
            grads = torch.autograd.grad(loss, list(theta.values()), create_graph=not first_order)
            theta = maml_update(theta, dict(zip(theta, grads, strict=True)), lrs, first_order)
        out.append(theta)
    return {k: torch.stack([t[k] for t in out]) for k in out[0]}


@pytest.mark.parametrize("inner_grad", ["closed", "autograd"])
@pytest.mark.parametrize("first_order", [False, True])
def test_batched_meta_gradient_equals_the_per_task_loop(maml_and_episode, first_order, inner_grad):
    """Both inner gradients (closed form, vmap of grad) give learn2learn's meta-gradients."""
    model, ep = maml_and_episode
    model.params["first_order"] = first_order
    model.params["inner_grad"] = inner_grad
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]

    def meta_grads(theta):
        e = model.backbone.items()
        target = (
            model.logits(theta, e, model.backbone.item_bias).log_softmax(1)[:, :7].sum()
            + theta["v"].pow(2).sum()
            + theta["bu"].sum()
        )
        return torch.autograd.grad(target, params, allow_unused=True)

    batched = model.theta(ep, model.backbone.items(), model.backbone.context(ep))
    looped = looped_theta(model, ep, first_order)
    for k in batched:
        torch.testing.assert_close(batched[k], looped[k], rtol=1e-4, atol=1e-5)
    for gb, gl in zip(meta_grads(batched), meta_grads(looped), strict=True):
        if gb is None or gl is None:
            assert gb is None and gl is None
        else:
            torch.testing.assert_close(gb, gl, rtol=1e-3, atol=1e-5)
    model.params["first_order"] = False
    model.params["inner_grad"] = "closed"


def test_second_order_differs_from_first_order(maml_and_episode):
    model, ep = maml_and_episode
    model.train()
    grads = {}
    for fo in (False, True):
        model.params["first_order"] = fo
        theta = model.theta(ep, model.backbone.items(), model.backbone.context(ep))
        (g,) = torch.autograd.grad(theta["u"].sum(), [model.backbone.item_emb.weight], allow_unused=True)
        grads[fo] = g
    model.params["first_order"] = False
    # u reaches the item embeddings only through the inner gradients: second order only
    assert grads[True] is None
    assert grads[False] is not None and grads[False].abs().sum() > 0


def test_adaptation_lowers_the_support_loss(maml_and_episode):
    model, ep = maml_and_episode
    bb = model.backbone
    with torch.no_grad():
        e = bb.items()
        theta0 = bb.theta0(bb.context(ep))
    adapted = model.theta(ep, e, bb.context(ep))
    has = ep.mask.sum(1) > 0
    for b in torch.nonzero(has).flatten().tolist():
        args = (e, bb.item_bias, bb.rate_bias, bb.mu, ep.items[b], ep.values[b], ep.mask[b], ep.liked[b], 0.5)
        before = support_loss({k: v[b] for k, v in theta0.items()}, *args)
        after = support_loss({k: v[b] for k, v in adapted.items()}, *args)
        assert after < before


def test_meta_sgd_learns_per_element_rates(small):
    _, train, val = split_views(small)
    model = fit(MAML(epochs=1, meta_sgd=True, dim=8, device="cpu"), train, val)
    assert model.log_lr["u"].shape == (8,)
    assert model.inner_rates()["u"].shape == (8,)


@pytest.mark.parametrize("rate_weight", [0.0, 0.5])
def test_closed_form_inner_gradient_equals_torch_func(maml_and_episode, rate_weight):
    model, ep = maml_and_episode
    bb = model.backbone
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        e = bb.items()
        theta = {
            k: v + 0.3 * torch.randn(v.shape, generator=gen) for k, v in bb.theta0(bb.context(ep)).items()
        }
    args = (e, bb.item_bias, bb.rate_bias, bb.mu, ep.items, ep.values, ep.mask, ep.liked, rate_weight)
    auto = torch.func.vmap(
        torch.func.grad(support_loss), in_dims=(0, None, None, None, None, 0, 0, 0, 0, None)
    )(theta, *args)
    closed = support_grad(theta, *args)
    assert ep.mask.sum(1).min() == 0  # an empty support is among the users: its gradient is 0
    for k in theta:
        torch.testing.assert_close(closed[k], auto[k], rtol=1e-4, atol=1e-6)


def test_recommending_adapts_exactly_as_training_does(maml_and_episode):
    """score() (no gradient, closed form) gives the theta of the torch.func inner loop."""
    model, ep = maml_and_episode
    model.eval()
    bb = model.backbone
    with torch.enable_grad():
        trained = model.theta(ep, bb._encode(), bb.context(ep))
    with torch.inference_mode():
        served = model.theta(ep, bb.items(), bb.context(ep))
    for k in trained:
        torch.testing.assert_close(served[k], trained[k].detach(), rtol=1e-4, atol=1e-5)
