"""On the planted synthetic data every meta-learner beats popularity by a wide margin."""

from __future__ import annotations

import pytest

from recmeta.evaluate import EvalConfig, evaluate
from tests.learners.conftest import synth_data


@pytest.mark.slow
def test_meta_learners_beat_popularity_on_planted_groups():
    data = synth_data(users=400, items=100, seed=7)
    cfg = EvalConfig(
        models=("maml", "protonet", "metalstm", "popular"),
        shots=(3, 10),
        seeds=(0,),
        min_interactions=15,
        params={m: {"dim": 32, "max_time": 25} for m in ("maml", "protonet", "metalstm")},
    )
    table = evaluate(data, cfg).metric_table("ndcg@10")["mean"]
    for model in ("maml", "protonet", "metalstm"):
        for k in (3, 10):
            assert table.loc[model, k] > 1.15 * table.loc["popular", k], (model, k, table)
