"""Training on sampled candidates (large catalogues): exact when every item is a candidate,
and still learns the planted groups with few negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recmeta.evaluate import EvalConfig, evaluate
from recmeta.learners import create
from recmeta.tasks import Sequences, make_batch
from recmeta.training import Trainer
from recmeta.training.loop import CandidateSampler, lazy_adam_
from tests.learners.conftest import rng_users, split_views, synth_data


@pytest.mark.parametrize("kind", ["maml", "protonet", "metalstm"])
def test_all_items_as_candidates_give_the_full_loss(kind, small):
    _, train, val = split_views(small)
    model = Trainer(create(kind, dim=8, epochs=1, device="cpu"), seed=0).fit(train, val)
    model.train()
    users = rng_users(small, 6)
    batch = make_batch(Sequences.from_data(small), users, np.array([0, 1, 3, 5, 8, 2]), small.n_items, 4.0)
    everything = np.arange(small.n_items)
    full = model.loss(model.episode(batch)).value()
    cand = model.loss(
        model.episode(batch.on_items(everything)), torch.as_tensor(everything), torch.zeros(small.n_items)
    ).value()
    torch.testing.assert_close(cand, full, rtol=1e-5, atol=1e-6)
    # and a strict subset holding the batch's items re-indexes it consistently
    some = np.union1d(batch.items_used(), everything[::3])
    sub = batch.on_items(some)
    assert np.array_equal(some[sub.support_items[sub.support_mask]], batch.support_items[batch.support_mask])
    assert np.array_equal(sub.query_pos, batch.query_pos[:, some])


def test_candidates_hold_the_batch_and_corrections_follow_popularity(small):
    _, train, _ = split_views(small)
    model = create("maml", dim=8, sampled_above=0, negatives=50).setup(train)
    sampler = CandidateSampler.of(model, train, np.random.default_rng(0))
    batch = make_batch(
        Sequences.from_data(train), np.flatnonzero(train.counts_per_user() > 3)[:8], 3, train.n_items, 4.0
    )
    state = sampler.rng.bit_generator.state
    items, logq = sampler.candidates([batch])
    assert np.array_equal(logq, sampler.logq[items])
    assert set(batch.items_used()) <= set(items)
    sampler.rng.bit_generator.state = state  # the same draws, found by np.unique instead
    drawn = np.searchsorted(sampler.cdf, sampler.rng.random(sampler.negatives), side="right")
    assert np.array_equal(items, np.unique(np.concatenate([drawn, batch.items_used()])))
    popular = np.argmax(np.bincount(train.values.indices, minlength=train.n_items))
    assert sampler.logq[popular] > np.median(sampler.logq)
    assert CandidateSampler.of(create("maml", dim=8).setup(train), train, np.random.default_rng(0)) is None


@pytest.mark.slow
def test_sampled_training_still_learns_the_planted_groups():
    data = synth_data(users=400, items=100, seed=7)
    sampled = {"dim": 32, "max_time": 20, "sampled_above": 0, "negatives": 20}
    cfg = EvalConfig(
        models=("maml", "protonet", "popular"),
        shots=(3, 10),
        seeds=(0,),
        min_interactions=15,
        params={"maml": sampled, "protonet": sampled},
    )
    table = evaluate(data, cfg).metric_table("ndcg@10")["mean"]
    for model in ("maml", "protonet"):
        for k in (3, 10):
            assert table.loc[model, k] > 1.15 * table.loc["popular", k], (model, k, table)


def test_a_sampled_step_updates_only_candidate_rows_and_keeps_their_moments(small):
    _, train, val = split_views(small)
    model = create(
        "protonet", dim=8, epochs=1, device="cpu", sampled_above=0, negatives=5, hold_epochs=0
    ).setup(train)  # the tables learn from the first step
    before = model.backbone.item_emb.weight.detach().clone()
    trainer = Trainer(model, seed=0, max_steps=1)
    trainer.fit(train, val)
    changed = (model.backbone.item_emb.weight.detach() != before).any(1)
    assert 0 < int(changed.sum()) < small.n_items  # a batch's items plus 5 draws, not all 80
    state = trainer.state_.tensors
    moments = state["optim/backbone.item_emb.weight/exp_avg"]
    assert torch.equal(moments.abs().sum(1) > 0, changed)


def test_lazy_adam_is_adam_on_the_rows_it_touches():
    torch.manual_seed(0)
    table = torch.randn(10, 4)
    ref, lazy = torch.nn.Parameter(table.clone()), torch.nn.Parameter(table.clone())
    adam = torch.optim.Adam([ref], lr=0.01, weight_decay=0.1)
    opt = torch.optim.Adam([lazy], lr=0.01, weight_decay=0.1)
    every = torch.arange(10)
    for _ in range(3):
        grad = torch.randn(10, 4)
        ref.grad = grad.clone()
        adam.step()
        with torch.no_grad():
            lazy_adam_(opt, lazy, every, lazy.detach().clone(), grad)
        torch.testing.assert_close(lazy.detach(), ref.detach())
    some, before = torch.tensor([1, 4, 7]), lazy.detach().clone()
    with torch.no_grad():
        lazy_adam_(opt, lazy, some, lazy.detach()[some], torch.randn(3, 4))
    rest = torch.tensor([i for i in range(10) if i not in (1, 4, 7)])
    assert torch.equal(lazy.detach()[rest], before[rest])
    assert not torch.equal(lazy.detach()[some], before[some])
