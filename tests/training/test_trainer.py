"""The trainer outside the models: resume, warm optimiser state, frozen rows, replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recmeta import checkpoint
from recmeta.learners import create
from recmeta.tasks import Sequences
from recmeta.training import Reservoir, Source, Trainer
from recmeta.training.loop import OPTIM
from tests.learners.conftest import split_views

FAST = {"dim": 8, "epochs": 2, "batch_size": 16, "device": "cpu"}


@pytest.mark.parametrize("kind", ["maml", "protonet", "metalstm"])
def test_resumed_run_equals_uninterrupted_run(kind, small):
    _, train, val = split_views(small)
    whole = Trainer(create(kind, **FAST), seed=3).fit(train, val)
    first = Trainer(create(kind, **FAST), seed=3, max_steps=7)
    first.fit(train, val)
    assert first.outcome.paused and first.state_ is not None
    resumed = Trainer(create(kind, **FAST), seed=3).fit(train, val, resume=first.state_)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_optimizer_state_travels_in_the_checkpoint(small, tmp_path):
    _, train, val = split_views(small)
    trainer = Trainer(create("maml", **FAST), seed=0)
    model = trainer.fit(train, val)
    assert any(k.startswith(OPTIM) for k in trainer.optimizer_)
    path = checkpoint.save(model, tmp_path / "m.safetensors", small, optimizer=trainer.optimizer_)
    loaded = checkpoint.load(path)
    assert set(loaded.optimizer) == set(trainer.optimizer_)
    for k, v in trainer.optimizer_.items():
        torch.testing.assert_close(loaded.optimizer[k], v)


def test_frozen_items_keep_their_rows(small):
    _, train, val = split_views(small)
    model = Trainer(create("protonet", **FAST), seed=0).fit(train, val)
    before = model.backbone.item_emb.weight.detach().clone()
    frozen = np.arange(0, small.n_items, 2)
    Trainer(model, seed=1, frozen_items=frozen).fit(train, val)
    after = model.backbone.item_emb.weight.detach()
    torch.testing.assert_close(after[frozen], before[frozen], rtol=0, atol=0)
    assert not torch.equal(after[1::2], before[1::2])


def test_grow_keeps_old_rows_and_initialises_new_ones(small):
    _, train, val = split_views(small)
    model = Trainer(create("maml", **FAST), seed=0).fit(train, val)
    bb = model.backbone
    old_emb, old_bias = bb.item_emb.weight.detach().clone(), bb.item_bias.detach().clone()
    index = np.concatenate([np.arange(small.n_items), [-1, -1]])
    item_x = np.concatenate([small.item_features, small.item_features[:2]])
    user_x = np.concatenate([small.user_features, small.user_features[:1]])
    model.grow(index, item_x, user_x)
    emb = model.backbone.item_emb.weight.detach()
    torch.testing.assert_close(emb[: small.n_items], old_emb, rtol=0, atol=0)
    torch.testing.assert_close(model.backbone.item_bias.detach()[: small.n_items], old_bias, rtol=0, atol=0)
    assert torch.all(emb[-2:] == 0)  # items with features: their embedding is the projected features
    assert torch.allclose(model.backbone.item_bias.detach()[-2:], old_bias.median())
    assert model.n_items == small.n_items + 2 and model.user_x_.shape[0] == small.n_users + 1
    e, _ = model.item_embeddings()
    torch.testing.assert_close(e[-2:], model.backbone.item_proj(model.backbone.item_x[-2:]))
    assert model.params["shapes"]["scale"] == [1.0, 5.0, 1.0]  # without values, the scale stays


def test_grow_takes_the_scale_of_the_grown_logs_values(small):
    _, train, val = split_views(small)
    model = Trainer(create("maml", **FAST), seed=0).fit(train, val)
    index = np.arange(small.n_items)
    half_stars = np.concatenate([small.values.data, [0.5, 4.5]])
    model.grow(index, small.item_features, small.user_features, half_stars)
    assert model.params["shapes"]["scale"] == [0.5, 5.0, 0.5]
    assert model.rating(np.array([[3.3, 0.1]])).tolist() == [[3.5, 0.5]]


def test_two_sources_mix_new_and_replayed_users(small):
    _, train, val = split_views(small)
    seq = Sequences.from_data(train)
    users = np.flatnonzero(train.counts_per_user() >= 2)
    new, old = users[:10], users[10:]
    model = create("protonet", **FAST)
    model.setup(train)
    trainer = Trainer(model, seed=0)
    trainer.fit(train, val, sources=[Source.of(seq, new, 4), Source.of(seq, old, 4)])
    # an epoch is a pass over the new users: 3 steps of 4 + 4 replayed users each
    assert trainer.outcome.steps == 3 * trainer.outcome.epochs
    assert trainer.outcome.tasks == (10 + 12) * trainer.outcome.epochs


def test_reservoir_is_seeded_and_uniform():
    a = Reservoir(5, seed=7).offer(np.arange(100)).offer(np.arange(100, 150))
    b = Reservoir(5, seed=7).offer(np.arange(150))
    assert a.seen == b.seen == 150 and len(a.sample) == 5
    assert np.array_equal(a.sample, b.sample)  # offered in two parts or at once: the same sample
    assert np.array_equal(Reservoir(5, seed=7).offer(np.arange(150)).sample, b.sample)
    counts = np.zeros(20)
    for seed in range(4000):
        counts[Reservoir(4, seed=seed).offer(np.arange(20)).sample.astype(int)] += 1
    # each of 20 items kept with probability 4/20: 800 of 4000 runs, binomial sd about 25
    assert np.all(np.abs(counts - 800) < 120), counts
    state, sample = a.state()
    again = Reservoir.from_state(state, sample).offer(np.arange(150, 160))
    assert np.array_equal(again.sample, Reservoir(5, seed=7).offer(np.arange(160)).sample)


def test_max_time_stops_within_the_epoch(small):
    _, train, val = split_views(small)
    trainer = Trainer(create("maml", **{**FAST, "epochs": 50, "max_time": 1e-9}), seed=0)
    trainer.fit(train, val)
    # out of time after the first step: one validation, then the best (only) epoch is kept
    assert trainer.outcome.steps == 1 and trainer.outcome.epochs == 1


def test_max_time_keeps_room_for_the_validation_that_ends_the_run(small, monkeypatch):
    """The run stops early enough for its last validation to end within max_time: a
    validation estimated to take longer than the whole budget leaves time for one step."""
    _, train, val = split_views(small)
    estimates = []

    def slow(self, batches):
        estimates.append(len(batches))
        return 1e6

    monkeypatch.setattr(Trainer, "_validation_seconds", slow)
    trainer = Trainer(create("maml", **{**FAST, "epochs": 50, "max_time": 3600}), seed=0)
    trainer.fit(train, val)
    assert estimates and trainer.outcome.steps == 1 and trainer.outcome.epochs == 1


def test_the_run_budget_is_shared_by_the_meta_learners_left(caplog):
    import time as clock

    from recmeta.train import Budget

    budget = Budget(("maml", "protonet", "metalstm", "ensemble", "als"), 90.0)
    first = budget.share("maml")
    assert 29 < first <= 30  # 90 s over three meta-learners
    clock.sleep(0.01)
    assert budget.share("protonet") <= 45  # what is left, over the two left
    assert budget.share("als") is None and budget.share("metalstm") <= 90
    assert budget.share("ensemble") is None  # its members all fitted: nothing left to fit
    alone = Budget(("ensemble", "als"), 90.0)  # an ensemble that fits its own members
    assert 89 < alone.share("ensemble") <= 90 and alone.share("maml") is None
    assert Budget(("maml",), None).share("maml") is None
    assert not caplog.records
    # the baselines fit first, inside the budget: what they take, the learners do not get
    slow = Budget(("maml", "protonet", "als"), 0.2)
    clock.sleep(0.18)
    assert slow.share("maml") <= 0.01
    assert (
        "the baselines took 0 s of the 0 s budget; the meta-learners share the 0 s left. Raise --max-time"
        in caplog.text
    )


@pytest.mark.parametrize("sampled", [{}, {"sampled_above": 0, "negatives": 20}], ids=["dense", "sampled"])
def test_the_first_epochs_hold_the_item_tables(small, sampled):
    """`hold_epochs` epochs of a fresh training leave the item tables at their start while
    the rest learns; with 0 the tables learn from the first step."""
    _, train, val = split_views(small)

    def one_epoch(hold_epochs: int):
        model = create("maml", **{**FAST, "epochs": 1, "hold_epochs": hold_epochs, **sampled})
        model.setup(train, seed=0)
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        Trainer(model, seed=0).fit(train, val)
        return model, start, dict(model.named_parameters())

    model, start, after = one_epoch(1)
    for name in model.item_tables:
        torch.testing.assert_close(after[name], start[name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(after[n], start[n]) for n in start if n not in model.item_tables)
    assert all(p.requires_grad for p in model.parameters())  # released once training ends
    model, start, after = one_epoch(0)
    assert all(not torch.equal(after[n], start[n]) for n in model.item_tables)


def test_hold_epochs_must_be_a_whole_number(small):
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="hold_epochs"):
            create("maml", **{**FAST, "hold_epochs": bad}).setup(small)


@pytest.mark.parametrize("sampled", [{}, {"sampled_above": 0, "negatives": 20}], ids=["dense", "sampled"])
def test_a_step_whose_loss_is_not_finite_is_skipped(small, sampled):
    """A meta-batch whose loss overflows leaves the weights as they were (the step is
    counted as skipped) instead of filling them with NaN; the steps after it learn."""
    _, train, val = split_views(small)
    model = create("maml", **{**FAST, **sampled})
    model.setup(train, seed=0)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    original, calls = model.logits, [0]

    def poisoned(theta, e, b):
        out = original(theta, e, b)
        if model.training:
            calls[0] += 1
            if calls[0] <= 3:
                return out * float("nan")
        return out

    model.logits = poisoned
    trainer = Trainer(model, seed=0)
    trainer.fit(train, val)
    assert 1 <= trainer.outcome.skipped_steps <= 3
    assert trainer.outcome.history[0]["skipped_steps"] == trainer.outcome.skipped_steps
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, start[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize(
    ("divergence", "hold", "epochs", "best"),
    [(0.05, 0, 4, 2), (1.0, 0, 10, 2), (0.05, 1, 4, 2), (0.05, 3, 6, 2)],
)
def test_an_epoch_far_below_the_best_stops_training(small, monkeypatch, divergence, hold, epochs, best):
    """A validation score more than `divergence` below the best stops at once (overfitting,
    not noise); small dips wait for `patience`. The best epoch is kept either way. The first
    epoch after the item tables' hold (`hold_epochs`) does not stop: its dip can recover."""
    _, train, val = split_views(small)
    curve = iter([0.30, 0.31, 0.30, 0.29, 0.30, 0.29, 0.30, 0.29, 0.30, 0.29])  # 0.29: 6.5 % below
    monkeypatch.setattr(Trainer, "validation_scores", lambda self, batches: {5: next(curve)})
    params = {"epochs": 20, "patience": 8, "divergence": divergence, "hold_epochs": hold}
    model = create("maml", **{**FAST, **params})
    trainer = Trainer(model, seed=0)
    trainer.fit(train, val)
    assert trainer.outcome.epochs == epochs and model.best_epoch_ == best


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), "much"])
def test_divergence_must_be_a_positive_number(small, bad):
    with pytest.raises(ValueError, match="divergence"):
        Trainer(create("maml", **{**FAST, "divergence": bad}))
