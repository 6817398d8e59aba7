"""Checkpoint housekeeping through the CLI: roll back with --activate, free disk with --prune."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from recmeta.cli import app

runner = CliRunner()


def cli(db, *args):
    return runner.invoke(app, ["--db", db, *args])


def test_activate_rolls_back_and_prune_deletes_only_old_inactive_checkpoints(db_url, tmp_path):
    db = db_url
    syn = tmp_path / "syn"
    assert cli(db, "data", "synth", "--out", str(syn), "--users", "80", "--items", "40").exit_code == 0
    assert cli(db, "ingest", "interactions", str(syn / "interactions.csv")).exit_code == 0
    train = ["train", "-m", "popular", "-m", "itemknn", "--models-dir", str(tmp_path / "models")]
    train += ["-m", "maml", "--epochs", "1"]  # a meta-learner: the run draws its learning curves
    for _ in range(3):
        res = cli(db, *train)
        assert res.exit_code == 0, res.output
    rows = json.loads(cli(db, "models", "--json").stdout)
    pops = [r for r in rows if r["name"] == "popular"]  # newest first
    assert len(pops) == 3 and pops[0]["active"]

    res = cli(db, "models", "--activate", str(pops[2]["id"]))  # back to the first run's
    assert res.exit_code == 0 and f"#{pops[2]['id']} is now the active popular" in res.output
    served = json.loads(cli(db, "recommend", "--user", "1", "-m", "popular", "--json").stdout)
    assert served["items"]
    for unknown in ("99999", "0", "9" * 30):  # past SQL's 64-bit integers: still "no checkpoint"
        res = cli(db, "models", "--activate", unknown)
        assert res.exit_code == 1 and f"no checkpoint #{unknown}" in res.stderr, res.output

    res = cli(db, "models", "--prune", "--keep", "1", "--dry-run", "--json")
    plan = json.loads(res.stdout)
    # the first run's popular is active again; of the two inactive ones the newer stays
    assert plan["dry_run"] and pops[1]["id"] in {r["id"] for r in plan["removed"]}
    assert all(Path(r["path"]).is_file() for r in plan["removed"])  # nothing deleted yet

    res = cli(db, "models", "--prune", "--keep", "1", "--json")
    done = json.loads(res.stdout)
    assert done["files"] == len(done["removed"]) == 4 and done["bytes"] > 0  # popular, itemknn, maml, router
    assert not any(Path(r["path"]).exists() for r in done["removed"])
    left = json.loads(cli(db, "models", "--json").stdout)
    by_id = {r["id"]: r for r in left}
    assert by_id[pops[2]["id"]]["active"] and pops[0]["id"] in by_id and pops[1]["id"] not in by_id
    assert len(left) == 8 and all(Path(r["path"]).is_file() for r in left)
    assert cli(db, "recommend", "--user", "1", "--json").exit_code == 0

    curves = sorted((tmp_path / "models").glob("curves-*.png"))
    assert len(curves) == 3  # each run's; none went, each run still has a checkpoint
    done = json.loads(cli(db, "models", "--prune", "--keep", "0", "--json").stdout)
    assert [c.exists() for c in curves] == [True, False, True]  # the second run is all gone;
    # the first run's popular is active again

    active = json.loads(cli(db, "models", "--active", "--json").stdout)
    assert {r["name"] for r in active} == {"popular", "itemknn", "maml", "router"} and all(
        r["active"] for r in active
    )
    res = cli(db, "models", "--keep", "0")
    assert res.exit_code == 1 and "--keep does nothing without --prune" in res.output
