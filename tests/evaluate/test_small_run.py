"""CI's small evaluation: one seed, shots 1 and 5, on ML-100K when present, else synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recmeta import snapshot
from recmeta.evaluate import EvalConfig, evaluate
from recmeta.ingest.pipeline import ingest_file, ingest_movielens
from recmeta.store import make_engine
from tests.conftest import _ml100k
from tests.learners.conftest import synth_data


@pytest.mark.slow
def test_small_protocol_run(tmp_path: Path):
    folder = _ml100k()
    if folder is not None:
        engine = make_engine(f"sqlite:///{tmp_path / 'ml.db'}")
        ingest_file(engine, lambda s: ingest_movielens(s, folder, "movielens-100k"))
        data = snapshot.load(engine)
    else:
        data = synth_data(users=400, items=120, seed=5)
    metas = ("maml", "protonet", "metalstm")
    cfg = EvalConfig(shots=(1, 5), seeds=(0,), params={m: {"max_time": 20} for m in metas})
    result = evaluate(data, cfg)
    ndcg = result.metric_table("ndcg@10")["mean"]
    assert set(ndcg.index) == {*metas, "ensemble", "als", "itemknn", "popular", "ease", "episodic", "auto"}
    assert result.fit_seconds["ensemble"][0] < 1.0  # built from the members fitted above
    assert np.isfinite(ndcg.to_numpy()).all()
    from recmeta.routing import served_by

    route = result.config["routes"][0]  # chosen on validation users: a test user with K rows
    for k in (1, 5):  # gets the list of the model the router sends K rows to
        served = served_by(route, k)
        assert ndcg.loc["auto", k] == ndcg.loc[served, k]
    if folder is not None:  # the baselines reproduce the reference figures of PROTOCOL.md's run
        assert abs(ndcg.loc["popular", 1] - 0.36) < 0.03
        best_meta = max(ndcg.loc[m, 5] for m in metas)
        assert best_meta > ndcg.loc["popular", 5]


def test_report_records_each_models_fitted_configuration():
    from recmeta.evaluate import EvalConfig, evaluate
    from tests.learners.conftest import synth_data

    data = synth_data(users=150, items=50, seed=4)
    cfg = EvalConfig(models=("als", "popular"), shots=(1, 5), seeds=(0,), min_interactions=12)
    result = evaluate(data, cfg)
    als = result.config["fitted"][0]["als"]
    assert {"factors", "regularization", "alpha"} <= set(als) and als["factors"] in (32, 64, 128)
    assert result.config["routes"][0]["warm"] in ("als", "popular")


def test_each_seed_shares_the_meta_training_budget_as_train_does():
    """`max_time` is per seed, shared by the meta-learners still to fit (as in `train`); a
    model's own max_time parameter wins."""
    data = synth_data(users=150, items=50, seed=4)
    small = {"dim": 8, "epochs": 1}
    params = {"maml": small, "protonet": {**small, "max_time": 500.0}}
    cfg = EvalConfig(
        models=("maml", "protonet"), shots=(1,), seeds=(0, 1), min_interactions=12, params=params
    )
    result = evaluate(data, EvalConfig(**{**cfg.__dict__, "max_time": 90.0}))
    for fitted in result.config["fitted"].values():
        assert 40 < fitted["maml"]["max_time"] <= 45  # its share: 90 s over two meta-learners
        assert fitted["protonet"]["max_time"] == 500.0
    unlimited = evaluate(data, EvalConfig(**{**cfg.__dict__, "max_time": None}))
    assert unlimited.config["fitted"][0]["maml"].get("max_time") is None


def test_the_plot_measures_every_model_against_the_best_baseline_ease_included(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from recmeta.evaluate.report import plot

    means = {"maml": (0.30, 0.40), "als": (0.20, 0.25), "ease": (0.25, 0.20)}
    summary = pd.DataFrame(
        [
            {"metric": "ndcg@10", "model": m, "shots": k, "mean": v, "std": 0.0}
            for m, pair in means.items()
            for k, v in zip((1, 5), pair, strict=True)
        ]
    )
    result = SimpleNamespace(summary=summary, config={"models": list(means), "seeds": [0], "split": "random"})
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot(result, "ndcg@10", tmp_path / "ndcg.png")
    ratio_ax = figures[0].axes[1]
    curves = {line.get_label(): line.get_ydata() for line in ratio_ax.lines if line.get_label()[0] != "_"}
    assert set(curves) == {"maml"}  # the baselines, EASE among them, are the denominator
    np.testing.assert_allclose(curves["maml"], [0.30 / 0.25, 0.40 / 0.25])
    assert (tmp_path / "ndcg.png").exists()
