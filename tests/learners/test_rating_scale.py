"""Predicted ratings as a user is told them: on the log's scale, and on its stars when the
model predicts medians (the absolute rating error, the default); mae and rmse measure
these, qndcg@3 ranks by the predictions themselves."""

from __future__ import annotations

import numpy as np
import pytest

from recmeta import checkpoint
from recmeta.learners import create
from recmeta.learners.backbone import on_scale, rating_scale
from recmeta.learners.meta import check_scale
from recmeta.tasks import Sequences, make_batch
from recmeta.training import fit
from tests.learners.conftest import rng_users


@pytest.mark.parametrize(
    ("values", "scale"),
    [
        ([1, 2, 3, 4, 5, 3, 4], [1.0, 5.0, 1.0]),
        ([0.5, 1.0, 2.5, 5.0], [0.5, 5.0, 0.5]),  # MovieLens' half stars
        ([1, 3, 5], [1.0, 5.0, 2.0]),
        ([0.1, 0.35, 0.9], [0.1, 0.9, None]),  # no grid: continuous values
        (np.arange(1, 101), [1.0, 100.0, None]),  # too many levels for stars
        ([4, 4, 4], [4.0, 4.0, None]),
    ],
)
def test_the_scale_of_a_log(values, scale):
    assert rating_scale(np.asarray(values, dtype=np.float32)) == pytest.approx(scale)


def test_medians_go_to_the_nearest_star_and_means_stay_within_the_scale():
    pred = np.array([[0.2, 1.4, 3.6, 4.74, 6.3]])
    assert on_scale(pred, [1.0, 5.0, 1.0], median=True).tolist() == [[1, 1, 4, 5, 5]]
    assert on_scale(pred, [0.5, 5.0, 0.5], median=True).tolist() == [[0.5, 1.5, 3.5, 4.5, 5]]
    assert on_scale(pred, [1.0, 5.0, 1.0], median=False).tolist() == [[1, 1.4, 3.6, 4.74, 5]]
    assert on_scale(pred, [1.0, 5.0, None], median=True).tolist() == [[1, 1.4, 3.6, 4.74, 5]]


@pytest.mark.parametrize("scale", [[1, 5], [5, 1, 1], [1, 5, 0], [1, float("nan"), 1], [1, 5, True], "1-5"])
def test_a_forged_scale_is_refused(scale):
    with pytest.raises(ValueError, match="rating scale"):
        check_scale(scale)


@pytest.mark.parametrize(
    ("kind", "rate_loss"), [("maml", "absolute"), ("ensemble", "absolute"), ("protonet", "squared")]
)
def test_a_fitted_model_rates_on_its_logs_scale_and_keeps_it_in_its_checkpoint(
    small, tmp_path, kind, rate_loss
):
    params = {"dim": 8, "epochs": 2, "device": "cpu", "rate_loss": rate_loss}
    model = fit(create(kind, **params), small, small, seed=0)
    batch = make_batch(Sequences.from_data(small), rng_users(small, 5), 3, small.n_items, 4.0)
    items = np.tile(np.arange(small.n_items), (5, 1))
    pred = model.predict(batch.support_only(), items)
    rated = model.rating(pred)
    lo, hi = float(small.values.data.min()), float(small.values.data.max())
    assert rated.min() >= lo and rated.max() <= hi
    on_stars = np.allclose(rated, np.round(rated))
    assert on_stars == (rate_loss == "absolute")
    assert not np.allclose(pred, np.round(pred))  # the ranking keeps the predictions' order
    path = checkpoint.save(model, tmp_path / "m.safetensors", small)
    again = checkpoint.load(path, set(small.item_ids))
    assert np.array_equal(again.model.rating(pred), rated)
