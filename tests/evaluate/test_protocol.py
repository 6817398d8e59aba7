"""The protocol: no leakage, reproducibility, splits, per-user records that recompute the table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recmeta.evaluate import EvalConfig, evaluate
from recmeta.evaluate.report import markdown, write_all
from recmeta.learners import REGISTRY
from recmeta.learners.baselines import Popular
from recmeta.metrics import graded_ndcg
from recmeta.tasks import Sequences, make_batch, split_users
from tests.learners.conftest import synth_data


@pytest.fixture(scope="module")
def data():
    return synth_data(users=200, items=60, seed=11)


class Spy(Popular):
    """Popularity that records everything it is given."""

    kind = "spy"
    seen: list = []  # noqa: RUF012

    def fit(self, train, validation=None, *, progress=None, seed=0):
        Spy.seen.append(("fit", train, validation))
        return super().fit(train, validation)

    def score(self, batch):
        Spy.seen.append(("score", batch))
        return super().score(batch)


def test_no_leakage(data, monkeypatch):
    monkeypatch.setitem(REGISTRY, "spy", Spy)
    Spy.seen = []
    cfg = EvalConfig(models=("spy",), shots=(0, 3), seeds=(5,), min_interactions=15)
    evaluate(data, cfg)
    split = split_users(data, seed=5, min_interactions=15)
    _, train, validation = Spy.seen[0]
    counts = train.counts_per_user()
    assert counts[split.test].sum() == 0 and counts[split.validation].sum() == 0
    assert (counts[split.train] == data.counts_per_user()[split.train]).all()
    assert set(np.flatnonzero(validation.counts_per_user())) <= set(split.validation)
    # popularity comes from training users only
    pop = Spy.seen[0][1].values.copy()
    pop.data = (pop.data >= 4).astype(np.float32)
    scorer = Popular()
    scorer.fit(train)
    np.testing.assert_array_equal(scorer.counts_, np.asarray(pop.sum(0)).ravel())
    scored_test = False
    for call in Spy.seen[1:]:
        batch = call[1]
        assert batch.query_pos is None and batch.query_items is None  # supports only
        users = set(batch.users)
        if users == set(split.test):
            scored_test = True
            assert batch.support_mask.sum(1).max() <= 3
        else:  # the validation table behind the routing: validation users only
            assert users <= set(split.validation)
    assert scored_test


def test_same_seed_same_numbers(data):
    cfg = EvalConfig(
        models=("popular", "itemknn", "protonet"),
        shots=(1, 5),
        seeds=(0,),
        min_interactions=15,
        params={"protonet": {"epochs": 2, "dim": 8}},
    )
    a, b = evaluate(data, cfg), evaluate(data, cfg)
    np.testing.assert_allclose(a.summary["mean"], b.summary["mean"])


def test_temporal_split_takes_the_newest_users_as_test(data):
    split = split_users(data, how="temporal", min_interactions=15)
    first = np.array(
        [data.times[u].data.min() if data.counts_per_user()[u] else 0 for u in range(data.n_users)]
    )
    assert first[split.test].min() >= first[split.validation].max()
    assert (
        first[split.validation].min() >= first[split.train][data.counts_per_user()[split.train] >= 15].max()
    )


def test_records_recompute_the_summary_and_report_files(data, tmp_path):
    cfg = EvalConfig(
        models=("popular", "als"),
        shots=(0, 1, 5),
        seeds=(0, 1),
        min_interactions=15,
        params={"als": {"factors": 8}},
    )
    result = evaluate(data, cfg)
    paths = write_all(result, tmp_path)
    report = json.loads(paths["json"].read_text())
    recs = [r for r in report["records"] if not r["skipped"]]
    for cell in report["summary"]:
        per_seed = [
            np.mean(
                [
                    r[cell["metric"]]
                    for r in recs
                    if r["model"] == cell["model"] and r["shots"] == cell["shots"] and r["seed"] == s
                ]
            )
            for s in (0, 1)
        ]
        assert np.isclose(cell["mean"], np.mean(per_seed)) and np.isclose(cell["std"], np.std(per_seed))
    assert not any(c["model"] == "als" and c["shots"] == 0 for c in report["summary"])  # needs support
    assert paths["ndcg"].stat().st_size > 1000 and paths["recall"].read_bytes()[:4] == b"\x89PNG"
    md = markdown(result.summary, ["popular", "als"], "ndcg@10")
    assert md.splitlines()[0] == "| ndcg@10 | K=0 | K=1 | K=5 |" and "| als | - |" in md


def test_users_without_positive_query_are_skipped_and_counted():
    data = synth_data(users=120, items=50, seed=3)
    cfg = EvalConfig(models=("popular",), shots=(20,), seeds=(0,), min_interactions=10)
    result = evaluate(data, cfg)
    skipped = result.records.skipped
    row = result.summary[result.summary.metric == "ndcg@10"].iloc[0]
    assert row.users + row.skipped == len(result.records) and row.skipped == skipped.sum()


def test_too_few_eligible_users_is_a_clear_error(data):
    from recmeta.errors import DataError

    with pytest.raises(DataError, match="lower --min-interactions"):
        evaluate(data, EvalConfig(models=("popular",), shots=(1,), seeds=(0,), min_interactions=10_000))


def test_a_log_without_timestamps_is_ordered_by_the_seeded_shuffle():
    """PROTOCOL.md: one permutation of all rows by a generator seeded with 10000 + seed, then
    a stable sort by user; not item-id order."""
    import numpy as np

    from recmeta.tasks import Sequences
    from tests.learners.conftest import synth_data

    data = synth_data(users=50, items=40, seed=3)
    data.times.data[:] = 0
    seq = Sequences.from_data(data)  # seed 0
    rows = np.repeat(np.arange(data.n_users), np.diff(data.values.indptr))
    perm = np.random.default_rng(10_000).permutation(len(rows))
    expected = data.values.indices[perm[np.argsort(rows[perm], kind="stable")]]
    assert np.array_equal(seq.items, expected)
    assert not np.array_equal(Sequences.from_data(data, seed=1).items, expected)
    data.times.data[0] = 1  # with timestamps: by (timestamp, item)
    sorted_by_item = Sequences.from_data(data)
    assert not np.array_equal(seq.items, sorted_by_item.items)
    for u in range(data.n_users):  # the same rows per user, in another order
        lo, hi = seq.indptr[u], seq.indptr[u + 1]
        assert sorted(seq.items[lo:hi]) == sorted(sorted_by_item.items[lo:hi])


class Rater(Popular):
    """Popularity that predicts 3.6 for the first query item and 3.4 for the rest, and
    rates them 4 and 3 (as a model predicting medians on a 1-5 scale would)."""

    kind = "rater"
    predicts_ratings = True

    def predict(self, batch, items):
        pred = np.full(items.shape, 3.4)
        pred[:, 0] = 3.6
        return pred

    def rating(self, pred):
        return np.round(pred)


def test_mae_and_rmse_measure_the_ratings_and_qndcg_the_predictions(data, monkeypatch):
    monkeypatch.setitem(REGISTRY, "rater", Rater)
    result = evaluate(data, EvalConfig(models=("rater",), shots=(3,), seeds=(0,)))
    rec = result.records[~result.records.skipped]
    split = split_users(data, seed=0)
    batch = make_batch(Sequences.from_data(data), split.test, 3, data.n_items, 4.0, max_query=None)
    rated = np.where(np.arange(batch.query_items.shape[1]) == 0, 4.0, 3.0)
    err = np.abs(rated - batch.query_values) * batch.query_mask
    mae = err.sum(1) / batch.query_mask.sum(1)
    keep = batch.query_pos.sum(1) > 0
    assert np.allclose(np.sort(rec["mae"].to_numpy()), np.sort(mae[keep]))
    pred = Rater().predict(batch, batch.query_items)
    qndcg = graded_ndcg(pred, batch.query_values, batch.query_mask, 3)
    assert np.allclose(np.sort(rec["qndcg@3"].to_numpy()), np.sort(qndcg[keep]))
