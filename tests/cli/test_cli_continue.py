"""Keeping a model current through the CLI: `train --continue` absorbs new users, items and
rows from the store; a stored user's new interactions count at once, with no training."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from recmeta.cli import app

runner = CliRunner()


def cli(db, *args):
    res = runner.invoke(app, ["--db", db, *args])
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A store trained on the first 70 % of a log (by time), then given the rest: new rows
    of known users, new users and one new item with features."""
    root = tmp_path_factory.mktemp("continue")
    syn = root / "syn"
    cli(str(root / "x.db"), "data", "synth", "--out", str(syn), "--users", "150", "--items", "60")
    log = pd.read_csv(syn / "interactions.csv").sort_values(["timestamp", "user", "item"])
    cut = int(0.7 * len(log))
    log.iloc[:cut].to_csv(root / "early.csv", index=False)
    late = log.iloc[cut:].copy()
    late.loc[late.index[:3], "item"] = 999  # an item the first training never saw
    late.to_csv(root / "late.csv", index=False)
    items = pd.read_csv(syn / "items.csv")
    extra = pd.DataFrame([{"item": 999, "title": "Brand new", "genres": "drama", "year": 2024}])
    pd.concat([items, extra]).to_csv(root / "items.csv", index=False)
    db = str(root / "r.db")
    cli(db, "ingest", "items", str(syn / "items.csv"))
    cli(db, "ingest", "users", str(syn / "users.csv"))
    cli(db, "ingest", "interactions", str(root / "early.csv"))
    models = str(root / "models")
    first = json.loads(cli(db, "train", "--epochs", "2", "--models-dir", models, "--json").stdout)
    return db, root, models, first, set(log.iloc[:cut].user.astype(str))


def test_continue_with_nothing_new_changes_nothing(grown):
    db, _, models, _, _ = grown
    before = json.loads(cli(db, "models", "--json").stdout)
    res = cli(db, "train", "--continue", "--models-dir", models, "--json")
    assert json.loads(res.stdout)["changed"] is False
    assert json.loads(cli(db, "models", "--json").stdout) == before


def test_continue_absorbs_new_users_items_and_rows(grown):
    db, root, models, first, early_users = grown
    cli(db, "ingest", "items", str(root / "items.csv"))
    cli(db, "ingest", "interactions", str(root / "late.csv"))
    res = cli(db, "train", "--continue", "--replay", "300", "--models-dir", models, "--json")
    done = {r["model"]: r for r in json.loads(res.stdout)}
    assert set(done) == {r["model"] for r in first}
    parents = {r["name"]: r for r in json.loads(cli(db, "models", "--json").stdout) if not r["active"]}
    for kind in ("maml", "protonet", "metalstm"):
        r = done[kind]
        assert r["parent_id"] == parents[kind]["id"] and r["new_rows"] > 0 and r["steps"] > 0
        with safe_open(r["path"], framework="pt") as fh:
            manifest = json.loads(fh.metadata()["manifest"])
            assert "999" in manifest["item_ids"]
            assert fh.get_tensor("backbone.item_emb.weight").shape[0] == len(manifest["item_ids"])
            assert any(k.startswith("optim/") for k in fh.keys())  # noqa: SIM118
        assert manifest["replay"]["size"] == 300 and len(manifest["replay"]["sample"]) == 300
        assert manifest["watermark_range"][0] < manifest["watermark_range"][1]
        assert set(manifest["user_ids"]) > early_users
    listed = cli(db, "models").stdout
    assert "+" in listed and "rows" in listed
    # the continued models serve, new item included
    res = cli(db, "recommend", "--with", "999:5", "1:4", "--model", "maml", "--json")
    assert json.loads(res.stdout)["items"]


def test_a_stored_users_new_interactions_count_at_once(grown):
    db, root, _, _, _ = grown
    before = json.loads(
        cli(db, "recommend", "--user", "5", "-n", "5", "--model", "protonet", "--json").stdout
    )
    top = [it["item"] for it in before["items"][:3]]
    pd.DataFrame({"user": 5, "item": top, "value": 5, "timestamp": 1_900_000_000}).to_csv(
        root / "more.csv", index=False
    )
    cli(db, "ingest", "interactions", str(root / "more.csv"))
    after = json.loads(cli(db, "recommend", "--user", "5", "-n", "5", "--model", "protonet", "--json").stdout)
    assert after["interactions"] == before["interactions"] + 3
    assert not set(top) & {it["item"] for it in after["items"]}
    assert [it["item"] for it in after["items"]] != [it["item"] for it in before["items"]]


def test_continue_spends_this_runs_budget_and_epoch_cap(grown, caplog):
    db, root, models, _, _ = grown
    pd.DataFrame({"user": 7, "item": [2, 3, 4], "value": 4, "timestamp": 1_900_000_100}).to_csv(
        root / "again.csv", index=False
    )
    cli(db, "ingest", "interactions", str(root / "again.csv"))
    args = [
        "train",
        "--continue",
        "--model",
        "maml",
        "--model",
        "als",
        "--epochs",
        "3",
        "--max-time",
        "0.001",
    ]
    res = cli(db, *args, "--models-dir", models, "--json")
    done = {r["model"]: r for r in json.loads(res.stdout)}
    assert list(done) == ["maml", "als"]  # as asked for; ALS was refitted first, inside the budget
    assert done["maml"]["config"]["epochs"] == 3 and done["maml"]["config"]["max_time"] <= 0.001
    assert "Raise --max-time" in caplog.text


def test_continue_with_only_baselines_says_what_to_do(grown):
    db, _, models, _, _ = grown
    res = runner.invoke(app, ["--db", db, "train", "--continue", "--model", "als", "--models-dir", models])
    assert res.exit_code == 1 and "meta-learners" in res.output
