"""The continual protocol (PROTOCOL.md): periods, held-out users, the new-user rule, the
transfer figures, and a small run through the CLI whose summary recomputes from its report."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recmeta import snapshot
from recmeta.cli import app
from recmeta.evaluate.continual import HOLDOUT, build_log, cut_periods, held_out_users, make_group
from recmeta.evaluate.continual_run import FIELDS, transfer


def test_periods_have_equal_rows_and_ties_join_the_earlier_period():
    times = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert cut_periods(times, 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    tied = np.array([1, 2, 2, 2, 5, 6, 7, 8, 9, 10])  # cut after row 2 lands inside a tie
    assert cut_periods(tied, 5).tolist() == [0, 0, 0, 0, 2, 2, 3, 3, 4, 4]


def hand_made_log():
    """Users a..f over 4 periods of 6 rows; user f first appears in period 3."""
    rows = [
        # period 0
        ("a", "i1", 5, 1),
        ("a", "i2", 4, 2),
        ("b", "i1", 5, 3),
        ("b", "i3", 2, 4),
        ("c", "i2", 5, 5),
        ("c", "i4", 4, 6),
        # period 1
        ("a", "i3", 4, 7),
        ("b", "i2", 5, 8),
        ("c", "i1", 1, 9),
        ("d", "i1", 5, 10),
        ("d", "i2", 4, 11),
        ("e", "i4", 5, 12),
        # period 2
        ("a", "i4", 5, 13),
        ("b", "i4", 4, 14),
        ("d", "i3", 5, 15),
        ("e", "i1", 4, 16),
        ("e", "i2", 2, 17),
        ("c", "i3", 5, 18),
        # period 3
        ("f", "i1", 5, 19),
        ("f", "i2", 4, 20),
        ("f", "i3", 5, 21),
        ("a", "i5", 5, 22),
        ("b", "i5", 4, 23),
        ("d", "i4", 1, 24),
    ]
    frame = pd.DataFrame(rows, columns=["user", "item", "value", "timestamp"])
    users = sorted(frame.user.unique())
    items = sorted(frame["item"].unique())
    log = pd.DataFrame(
        {
            "user_id": [users.index(u) + 1 for u in frame.user],
            "item_id": [items.index(i) + 1 for i in frame["item"]],
            "value": frame.value.astype(float),
            "timestamp": frame.timestamp,
        }
    )
    users_tab = pd.DataFrame({"id": range(1, len(users) + 1), "external_id": users})
    items_tab = pd.DataFrame({"id": range(1, len(items) + 1), "external_id": items})
    data = snapshot.from_frames(log, users_tab, items_tab, implicit=False)
    u, i = snapshot.dense_rows(log, users_tab, items_tab)
    return build_log(data, u, i, log.value.to_numpy(), log.timestamp.to_numpy(), 4, threshold=4)


def test_held_out_users_are_a_seeded_fifth_of_each_periods_active_users():
    log = hand_made_log()
    for seed in (0, 1):
        held = held_out_users(log, seed)
        assert [len(h) for h in held] == [
            round(HOLDOUT * 3),
            round(HOLDOUT * 4),
            round(HOLDOUT * 5),
            round(HOLDOUT * 3),
        ]
        for i, h in enumerate(held):
            active = set(log.user[(log.period == i) & log.positive])
            assert set(h) <= active
        again = held_out_users(log, seed)
        assert all(np.array_equal(a, b) for a, b in zip(held, again, strict=True))


def test_support_is_every_earlier_row_and_a_new_user_gets_five_or_fewer_rows_of_the_period():
    log = hand_made_log()
    uid = {u: k for k, u in enumerate(log.data.user_ids)}
    iid = {i: k for k, i in enumerate(log.data.item_ids)}
    group = make_group(log, np.array([uid["a"], uid["f"], uid["d"]]), 3)
    by_user = dict(zip(group.users.tolist(), range(len(group.users)), strict=True))
    # a: support = a's rows of periods 0-2 in time order, query = i5
    a = by_user[uid["a"]]
    assert log.item[group.supports[a]].tolist() == [iid[x] for x in ("i1", "i2", "i3", "i4")]
    assert group.relevant[a].tolist() == [iid["i5"]] and not group.new[a]
    # f is new in period 3 with 3 rows: support = the first min(5, 3 - 1) = 2, query = the last
    f = by_user[uid["f"]]
    assert group.new[f] and log.item[group.supports[f]].tolist() == [iid["i1"], iid["i2"]]
    assert group.relevant[f].tolist() == [iid["i3"]]
    # d's only period-3 row is a dislike: no positive query row, skipped and counted
    assert uid["d"] not in by_user and group.skipped == 1


def test_transfer_figures_on_a_hand_made_matrix():
    b, T = 1, 3
    R = {1: {1: 0.5, 2: 0.3}, 2: {1: 0.4, 2: 0.6, 3: 0.2}, 3: {1: 0.45, 2: 0.5, 3: 0.7, 4: 0.1}}
    recent = {1: {2: 0.25}, 2: {3: 0.1}, 3: {4: 0.05}}
    got = transfer(R, recent, b, T)
    assert got["acc"] == pytest.approx((0.45 + 0.5 + 0.7 + 0.1) / 4)
    assert got["bwt"] == pytest.approx(((0.45 - 0.5) + (0.5 - 0.6)) / 2)
    assert got["forgetting"] == pytest.approx(((0.5 - 0.45) + (0.6 - 0.5)) / 2)
    assert got["fwt"] == pytest.approx(((0.3 - 0.25) + (0.2 - 0.1) + (0.1 - 0.05)) / 3)


@pytest.mark.slow
def test_continual_run_through_the_cli_writes_a_report_whose_summary_recomputes(tmp_path):
    runner = CliRunner()
    syn, db, out = tmp_path / "syn", str(tmp_path / "d.db"), tmp_path / "rep"
    args = ["data", "synth", "--out", str(syn), "--users", "200", "--items", "60", "--drift", "0.3"]
    assert runner.invoke(app, args).exit_code == 0
    for kind in ("items", "users", "interactions"):
        assert runner.invoke(app, ["--db", db, "ingest", kind, str(syn / f"{kind}.csv")]).exit_code == 0
    res = runner.invoke(
        app,
        [
            "--db",
            db,
            "evaluate",
            "--continual",
            "--periods",
            "5",
            "--first-stage",
            "1",
            "--seeds",
            "0",
            "--epochs",
            "2",
            "--replay",
            "200",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "recent-popular" in res.stdout and "replay" in res.stdout and "ACC" in res.stdout
    assert (out / "continual_R.png").stat().st_size > 0 and (out / "continual_next.png").stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    strategies = {(r["model"], r["strategy"]) for r in report["strategies"]}
    for model in ("maml", "protonet", "metalstm", "ensemble"):
        assert {(model, s) for s in ("retrain", "finetune", "replay", "window")} <= strategies
    assert {("none", "recent-popular"), ("none", "popular")} <= strategies
    for row in report["summary"]:
        mine = [
            r for r in report["strategies"] if (r["model"], r["strategy"]) == (row["model"], row["strategy"])
        ]
        for f in FIELDS:
            values = [r[f] for r in mine if r[f] is not None and not math.isnan(r[f])]
            if values:
                assert row[f] == pytest.approx(np.mean(values)), (row["model"], row["strategy"], f)
        for r in mine:  # every figure recomputes from R and the per-stage rows
            assert r["acc"] == pytest.approx(np.mean(list(r["R"]["3"].values())))
            assert r["next_ndcg@10"] == pytest.approx(np.mean([s["ndcg@10"] for s in r["stages"]]))
    ratios = {r["strategy"]: r["cost_ratio"] for r in report["strategies"] if r["model"] == "maml"}
    assert ratios["retrain"] == pytest.approx(1.0)


def test_periods_too_small_to_learn_from_stop_before_any_training():
    """24 rows in 4 periods: each period needs MIN_PERIOD_ROWS rows, so the run stops at once
    with the largest --periods the log takes (it used to fail stages later, after minutes)."""
    from recmeta.errors import DataError
    from recmeta.evaluate.continual import ContinualConfig
    from recmeta.evaluate.continual_run import evaluate_continual

    with pytest.raises(
        DataError, match=r"--periods 4 cuts the log's 24 rows into periods of about 6.*--periods 3 or fewer"
    ):
        evaluate_continual(hand_made_log(), ContinualConfig(models=("maml",), first_stage=1))
