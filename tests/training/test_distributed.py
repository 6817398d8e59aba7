"""Data-parallel meta-training: two gloo workers take the steps one process takes, through
the trainer, `recmeta train --workers 2` and torchrun."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from recmeta.cli import app
from recmeta.errors import DataError, WorkerError
from recmeta.learners import create
from recmeta.threads import set_threads
from recmeta.training import Group, Trainer
from recmeta.training.distributed import Workers
from tests.conftest import empty_store
from tests.learners.conftest import split_views, synth_data

STEPS = 6
# hold_epochs 0: the item tables learn from the first step, so that their summed gradients count
PARAMS = {"dim": 8, "epochs": 50, "patience": 50, "batch_size": 15, "device": "cpu", "hold_epochs": 0}
runner = CliRunner()


def _fit(kind: str, sampled: bool, group: Group):
    set_threads(1)
    _, train, val = split_views(synth_data())  # the same on every worker
    params = {**PARAMS, **({"sampled_above": 0, "negatives": 20} if sampled else {})}
    trainer = Trainer(create(kind, **params), seed=5, max_steps=STEPS, group=group)
    model = trainer.fit(train, val)
    return {k: v.clone() for k, v in model.state_dict().items()}, trainer.outcome


@pytest.mark.parametrize(
    "kind,sampled", [("maml", False), ("protonet", False), ("metalstm", False), ("maml", True)]
)
def test_two_workers_take_the_steps_one_process_takes(kind, sampled):
    alone, one = _fit(kind, sampled, Group.solo())
    together, two = Workers(2, _fit, (kind, sampled)).run(_fit, kind, sampled)
    assert two.steps == one.steps == STEPS and two.tasks == one.tasks == STEPS * PARAMS["batch_size"]
    start = create(kind, **PARAMS).setup(split_views(synth_data())[1])
    assert not torch.equal(alone["backbone.item_bias"], start.state_dict()["backbone.item_bias"])
    for name, value in alone.items():
        torch.testing.assert_close(together[name], value, rtol=1e-5, atol=1e-5, msg=name)


def _fail_on_rank_1(group: Group) -> None:
    if group.rank == 1:
        import atexit
        import time

        atexit.register(time.sleep, 1.5)  # a worker slow to exit, as on a loaded host
        raise DataError("rank 1 could not read the store")
    torch.distributed.all_reduce(torch.zeros(3))  # rank 0 waits for it


def test_a_failed_worker_stops_the_run_with_its_message(capfd):
    with pytest.raises(WorkerError, match=r"worker 1 \(exit code 1\) stopped"):
        Workers(2, _fail_on_rank_1, ()).run(_fail_on_rank_1)
    assert "training worker 1: rank 1 could not read the store" in capfd.readouterr().err


def _train(db: str, models: str, *extra: str) -> list[dict]:
    args = ["--db", db, "train", "--model", "maml", "--model", "als", "--epochs", "2", "--max-time", "0"]
    res = runner.invoke(app, [*args, "--models-dir", models, "--json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _store(tmp_path, users: int, items: int) -> str:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    syn = tmp_path / "syn"
    runner.invoke(
        app, ["--db", db, "data", "synth", "--out", str(syn), "--users", str(users), "--items", str(items)]
    )
    res = runner.invoke(app, ["--db", db, "ingest", "interactions", str(syn / "interactions.csv")])
    assert res.exit_code == 0, res.output
    return db


def test_train_with_two_workers_registers_what_one_process_trains(tmp_path):
    db = _store(tmp_path, 150, 60)
    one = _train(db, str(tmp_path / "one"))
    two = _train(db, str(tmp_path / "two"), "--workers", "2")
    assert [r["model"] for r in two] == ["maml", "als"]
    a, b = load_file(one[0]["path"]), load_file(two[0]["path"])
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-5, msg=name)
    listed = runner.invoke(app, ["--db", db, "models", "--json"])
    assert two[0]["path"] in listed.stdout


def test_torchrun_workers_train_and_rank_0_reports(tmp_path):
    db = _store(tmp_path, 120, 50)
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    res = subprocess.run(
        [
            *run,
            "-m",
            "recmeta",
            "--db",
            db,
            "--threads",
            "1",
            "train",
            "--model",
            "protonet",
            "--epochs",
            "1",
            "--models-dir",
            str(tmp_path / "models"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    reported = json.loads(res.stdout)  # one report: rank 0's
    assert [r["model"] for r in reported] == ["protonet"]


def test_continue_runs_in_one_process(tmp_path):
    res = runner.invoke(
        app, ["--db", f"sqlite:///{empty_store(tmp_path / 'r.db')}", "train", "--continue", "--workers", "2"]
    )
    assert res.exit_code != 0 and "--continue runs in one process" in res.output
