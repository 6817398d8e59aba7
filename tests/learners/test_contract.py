"""One contract every model meets, meta-learner or baseline (like implicit's shared test mixin)."""

from __future__ import annotations

import numpy as np
import pytest

from recmeta import checkpoint
from recmeta.errors import CheckpointError, NotFittedError
from recmeta.learners import REGISTRY, create
from recmeta.tasks import Sequences, make_batch
from recmeta.training import fit
from tests.learners.conftest import rng_users, split_views

FAST = {
    "maml": {"epochs": 3, "dim": 16},
    "protonet": {"epochs": 3, "dim": 16},
    "metalstm": {"epochs": 3, "dim": 16, "hidden": 16},
    "als": {"factors": 8},
}
KINDS = sorted(REGISTRY)


def fitted(kind, data, seed=0):
    _, train, val = split_views(data)
    return fit(create(kind, **FAST.get(kind, {})), train, val, seed=seed)


def batch_of(data, k, n=5):
    return make_batch(Sequences.from_data(data), rng_users(data, n), k, data.n_items, 4.0).support_only()


@pytest.mark.parametrize("kind", KINDS)
def test_unfitted_model_refuses_to_score(kind, small):
    with pytest.raises(NotFittedError):
        create(kind).score(batch_of(small, 3))


@pytest.mark.parametrize("kind", KINDS)
def test_fit_returns_self_and_scores_the_whole_catalogue(kind, small):
    model = create(kind, **FAST.get(kind, {}))
    _, train, val = split_views(small)
    assert fit(model, train, val) is model
    for k in (0, 1, 5):
        if k == 0 and model.needs_support:
            continue
        scores = model.score(batch_of(small, k))
        assert scores.shape == (5, small.n_items)
        assert np.isfinite(scores).all()


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trip_gives_identical_scores(kind, small, tmp_path):
    model = fitted(kind, small)
    path = checkpoint.save(model, tmp_path / f"{kind}.safetensors", small)
    loaded = checkpoint.load(path, set(small.item_ids))
    assert loaded.manifest["kind"] == kind
    batch = batch_of(small, 4)
    np.testing.assert_allclose(loaded.model.score(batch), model.score(batch), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_scores(kind, small):
    batch = batch_of(small, 3)
    np.testing.assert_allclose(
        fitted(kind, small, seed=4).score(batch),
        fitted(kind, small, seed=4).score(batch),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_implicit_logs_work(kind, small_implicit):
    model = fitted(kind, small_implicit)
    scores = model.score(batch_of(small_implicit, 3))
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("kind", ["maml", "protonet", "metalstm", "ensemble"])
def test_meta_learners_predict_ratings_on_the_scale(kind, small):
    model = fitted(kind, small)
    batch = batch_of(small, 5)
    pred = model.predict(batch, np.tile(np.arange(6), (5, 1)))
    assert pred.shape == (5, 6) and np.all((pred > -1) & (pred < 7))


def test_checkpoint_refuses_a_different_catalogue(small, tmp_path):
    path = checkpoint.save(fitted("popular", small), tmp_path / "p.safetensors", small)
    with pytest.raises(CheckpointError, match="retrain"):
        checkpoint.load(path, {"other"})


def test_checkpoint_refuses_garbage(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a recmeta checkpoint"):
        checkpoint.load(path)


def test_checkpoint_write_is_atomic(small, tmp_path, monkeypatch):
    """A write that dies half-way leaves the previous checkpoint intact and no temp file."""
    import recmeta.checkpoint as ck

    path = ck.save(fitted("popular", small), tmp_path / "m.safetensors", small)
    before = path.read_bytes()

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        ck.save(fitted("popular", small), path, small)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


@pytest.mark.parametrize("kind", ["maml", "protonet", "metalstm"])
def test_meta_learners_without_item_features(kind):
    """A bare click log (no metadata, no timestamps): validation during fit and the state
    hold only learned tensors (regression: a cached embedding once became a parameter)."""
    import pandas as pd

    from recmeta import snapshot

    rng = np.random.default_rng(0)
    n = 3000
    log = pd.DataFrame(
        {"user_id": rng.integers(1, 121, n), "item_id": rng.integers(1, 41, n), "value": 1.0, "timestamp": 0}
    )
    users = pd.DataFrame({"id": range(1, 121), "external_id": [str(u) for u in range(1, 121)]})
    items = pd.DataFrame({"id": range(1, 41), "external_id": [str(i) for i in range(1, 41)]})
    data = snapshot.from_frames(log, users, items, implicit=True)
    assert data.item_features.shape == (40, 0)
    model = fitted(kind, data)
    config, tensors = model.state()
    assert not any("_items" in k or "cache" in k for k in tensors)
    rebuilt = type(model).from_state(config, tensors)
    batch = batch_of(data, 3)
    np.testing.assert_allclose(rebuilt.score(batch), model.score(batch), rtol=1e-5, atol=1e-5)
