"""Hostile and mistaken input through the CLI. The one error boundary: recmeta's errors
exit 1 with a line, anything else exits 2 with an 'internal error' line (the traceback only
with --debug), and nothing is written."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from recmeta.cli import app
from tests.conftest import empty_store, stored_interactions, write

runner = CliRunner()


def synth_store(tmp_path, users: int, items: int) -> str:
    """A SQLite store holding a small synthetic log; returns its path."""
    db = str(tmp_path / "x.db")
    args = ["data", "synth", "--out", str(tmp_path / "s"), "--users", str(users), "--items", str(items)]
    assert runner.invoke(app, args).exit_code == 0
    assert (
        runner.invoke(
            app, ["--db", db, "ingest", "interactions", str(tmp_path / "s" / "interactions.csv")]
        ).exit_code
        == 0
    )
    return db


def boom(*args, **kwargs):
    raise RuntimeError("something nobody foresaw")


def test_an_unexpected_error_is_one_line_and_exit_code_2(tmp_path, monkeypatch):
    monkeypatch.setattr("recmeta.store.repository.stats", boom)
    res = runner.invoke(app, ["--db", empty_store(tmp_path / "x.db"), "stats"])
    assert res.exit_code == 2
    assert "internal error" in res.output and "--debug" in res.output
    assert "Traceback" not in res.output


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr("recmeta.store.repository.stats", boom)
    res = runner.invoke(app, ["--debug", "--db", empty_store(tmp_path / "x.db"), "stats"])
    assert res.exit_code != 0 and isinstance(res.exception, RuntimeError)


def test_a_failed_ingest_writes_nothing_on_an_internal_error(tmp_path, monkeypatch):
    log = tmp_path / "log.csv"
    log.write_text("user,item,rating,timestamp\n1,2,5,100\n3,4,2,200\n")
    db = str(tmp_path / "x.db")
    monkeypatch.setattr("recmeta.store.repository.insert_interactions", boom)
    res = runner.invoke(app, ["--db", db, "ingest", "interactions", str(log)])
    assert res.exit_code == 2
    monkeypatch.undo()
    assert stored_interactions(db) == 0


@pytest.mark.parametrize("args", [["stats", "--bogus"], ["evaluate", "--periods", "1", "--continual"]])
def test_usage_errors_stay_usage_errors(tmp_path, args):
    res = runner.invoke(app, ["--db", str(tmp_path / "x.db"), *args])
    assert res.exit_code == 2 and "internal error" not in res.output


def test_infinite_timestamps_are_rejected_rows_not_a_traceback(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("user,item,rating,timestamp\n1,2,5,100\n3,4,2,inf\n5,6,4,-inf\n")
    db = str(tmp_path / "x.db")
    res = runner.invoke(app, ["--db", db, "ingest", "interactions", str(log)])
    assert res.exit_code == 1 and "timestamp" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        app,
        [
            "--db",
            db,
            "ingest",
            "interactions",
            str(log),
            "--on-error",
            "skip",
            "--rejects",
            str(tmp_path / "r.csv"),
        ],
    )
    assert res.exit_code == 0 and (tmp_path / "r.csv").read_text().count("\n") == 3  # header + 2 rows


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "interactions", "x.csv", "--time-unit", "hours"],
        ["train", "--epochs", "0"],
        ["train", "--epochs", "-3"],
        ["train", "--max-time", "-1"],
        ["evaluate", "--epochs", "0"],
        ["train", "--seed", "-1"],
        ["evaluate", "--seeds", "0", "--seeds", "-1"],
        ["evaluate", "--shots", "-1"],
        ["evaluate", "--min-interactions", "0"],
        ["data", "synth", "--seed", "-1"],
        ["data", "synth", "--users", "0"],
        ["data", "synth", "--items", "-5"],
        ["data", "synth", "--groups", "0"],
    ],
)
def test_option_values_out_of_range_are_usage_errors(tmp_path, args):
    res = runner.invoke(app, ["--db", str(tmp_path / "x.db"), *args])
    assert res.exit_code == 2 and "Invalid value" in res.output


def test_the_python_api_checks_the_same_settings():
    """What the CLI's option ranges refuse, the functions it calls refuse too (a DataError
    naming the setting), for a script that calls them directly."""
    from recmeta.datasets import SynthConfig
    from recmeta.errors import DataError
    from recmeta.evaluate.protocol import EvalConfig, check_config

    for bad, says in [
        (dict(shots=(1, -1)), "shots must be whole numbers, 0 or more, not [-1]"),
        (dict(seeds=()), "seeds must be whole numbers, 0 or more, not none"),
        (dict(min_interactions=0), "min_interactions must be a whole number, 1 or more"),
    ]:
        with pytest.raises(DataError, match=re.escape(says)):
            check_config(EvalConfig(**bad))
    for bad, says in [
        (dict(users=0), "users must"),
        (dict(seed=-1), "seed must"),
        (dict(drift=1.5), "drift"),
    ]:
        with pytest.raises(DataError, match=says):
            SynthConfig(**bad)


@pytest.mark.parametrize(
    ("user", "says"),
    [("u" * 256, "longer than 255"), ("a\x00b", "control character"), ("a\tb\x01", "control character")],
)
def test_ids_follow_one_rule_on_every_backend(db_url, tmp_path, user, says):
    log = tmp_path / "log.csv"
    log.write_text(f'user,item,rating,timestamp\n1,2,5,100\n"{user}",4,2,200\n', encoding="utf-8")
    res = runner.invoke(app, ["--db", db_url, "ingest", "interactions", str(log)])
    assert res.exit_code == 1 and says in res.output and "Traceback" not in res.output
    assert stored_interactions(db_url) == 0


def test_ingest_inputs_that_are_not_a_log_are_clear_errors(tmp_path):
    db = str(tmp_path / "x.db")
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating,timestamp\n1,2,5,100\n3,4,x,200\n")
    header_only = tmp_path / "h.csv"
    header_only.write_text("user,item,rating,timestamp\n")
    (tmp_path / "folder").mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user": [1, 2], "item": [[1], [2]], "rating": [5, 4]}), tmp_path / "l.parquet")
    cases = [
        (
            ["--on-error", "skip", "--rejects", str(tmp_path / "no" / "dir" / "r.csv"), str(bad)],
            "the folder",
        ),
        (["--encoding", "nosuch-enc", str(bad)], "unknown text encoding"),
        ([str(tmp_path / "folder")], "is a folder"),
        ([str(header_only)], "header but no rows"),
        ([str(tmp_path / "l.parquet")], "lists or structs"),
    ]
    for args, says in cases:
        res = runner.invoke(app, ["--db", db, "ingest", "interactions", *args])
        assert res.exit_code == 1 and says in res.output, (args, res.output)
    assert stored_interactions(db) == 0
    res = runner.invoke(app, ["--db", empty_store(db), "stats"])
    assert "None" not in res.stdout


def test_db_urls_that_cannot_work_are_clear_errors(tmp_path):
    not_db = tmp_path / "notes.db"
    not_db.write_text("hello, I am a text file")
    for db, says in (
        (str(not_db), "not a SQLite database"),
        (str(tmp_path / "no" / "such" / "x.db"), "no store at"),
        ("foo://bar", "unknown database kind 'foo'"),
        ("mysql://user@localhost/x", "SQLite or PostgreSQL"),
    ):
        res = runner.invoke(app, ["--db", db, "stats"])
        assert res.exit_code == 1 and says in res.output, (db, res.output)
    log = write(tmp_path / "log.csv", "user,item\n1,2\n")
    res = runner.invoke(app, ["--db", str(tmp_path / "no" / "x.db"), "ingest", "interactions", str(log)])
    assert res.exit_code == 1 and "does not exist; create it" in res.output, res.output
    assert not_db.read_text() == "hello, I am a text file"


def test_recommend_and_train_arguments_are_checked_before_any_work(tmp_path):
    db = str(tmp_path / "x.db")
    binary = tmp_path / "ids.txt"
    binary.write_bytes(bytes(range(128, 256)))
    users = tmp_path / "users.txt"
    users.write_text("1\n2\n")
    a_file = tmp_path / "file"
    a_file.write_text("")
    log = tmp_path / "log.csv"
    log.write_text("user,item,rating,timestamp\n1,2,5,100\n1,3,4,200\n2,2,3,300\n")
    assert runner.invoke(app, ["--db", db, "ingest", "interactions", str(log)]).exit_code == 0
    cases = [
        (["recommend", "--users-file", str(binary), "--out", str(tmp_path / "r.csv")], "not UTF-8"),
        (
            ["recommend", "--users-file", str(users), "--out", str(tmp_path / "no" / "r.csv")],
            "does not exist",
        ),
        (["train", "--models-dir", str(a_file)], "is a file"),
        # an --out that cannot be written is said before the run, not after it (was internal)
        (["evaluate", "-m", "popular", "--out", str(a_file)], f"--out {a_file}: {a_file} is a file"),
        (["evaluate", "-m", "popular", "--out", "/proc/recmeta"], "cannot make the folder /proc/recmeta"),
        (["recommend", "--all-users", "--out", "/proc/r.csv"], "cannot write in /proc"),
        (["train", "-m", "popular", "--models-dir", "/proc/m"], "cannot make the folder /proc/m"),
        (["recommend", "--users-file", "/dev/null", "--out", str(tmp_path / "r.csv")], "not a regular file"),
        (["recommend", "--user", "1", "--candidates", str(tmp_path)], "is a folder, not a file"),
        (["train", "--config", "/dev/null"], "/dev/null: not a regular file"),
        (["train", "-m", "nosuch"], "unknown model(s) ['nosuch']; choose from maml"),
        (["evaluate", "-m", "nosuch"], "unknown model(s) ['nosuch']; choose from maml"),  # was exit 2
        # a typo's worth of processes or threads would have been started, and held the machine
        (["train", "-m", "popular", "--workers", "100000"], "--workers 100,000: at most"),
        (["recommend", "--all-users", "--out", str(tmp_path / "r.csv"), "--workers", "1000"], "at most"),
        (["serve", "--workers", "100000"], "--workers 100,000: at most"),
        (["evaluate", "--cutoff", "9" * 20], "the cutoff N of ndcg@N is at most 100,000"),  # was internal
        (["train", "-m", "protonet", "--epochs", "9" * 20], "epochs must be a whole number from 1 to"),
        (["evaluate", "-m", "maml", "--epochs", "9" * 20], "epochs must be a whole number from 1 to"),
        (
            ["evaluate", "--continual", "--periods", "1000000000"],
            "more periods than the log's 3 rows",
        ),  # a hang
    ]
    for args, says in cases:
        res = runner.invoke(app, ["--db", db, *args])
        assert res.exit_code == 1 and says in res.output, (args, res.output)
    res = runner.invoke(app, ["--db", db, "evaluate", "--split", "bogus"])
    assert res.exit_code == 2 and "temporal" in res.output
    res = runner.invoke(app, ["--threads", "100000", "--db", db, "stats"])
    assert res.exit_code == 2 and "at most" in res.output and "Traceback" not in res.output


def test_a_second_sqlite_writer_is_told_about_the_first(tmp_path, monkeypatch):
    import sqlite3

    db = tmp_path / "x.db"
    log = tmp_path / "log.csv"
    log.write_text("user,item,rating,timestamp\n1,2,5,100\n")
    empty_store(db)
    holder = sqlite3.connect(db)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        monkeypatch.setenv("RECMETA_SQLITE_BUSY_MS", "200")
        res = runner.invoke(app, ["--db", str(db), "ingest", "interactions", str(log)])
        assert res.exit_code == 1 and "another process is writing" in res.output, res.output
    finally:
        holder.rollback()
        holder.close()
    res = runner.invoke(app, ["--db", str(db), "ingest", "interactions", str(log)])
    assert res.exit_code == 0


def test_checkpoints_resolve_from_any_working_folder(tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    db = str(tmp_path / "x.db")
    assert (
        runner.invoke(app, ["data", "synth", "--out", "syn", "--users", "60", "--items", "30"]).exit_code == 0
    )
    assert runner.invoke(app, ["--db", db, "ingest", "interactions", "syn/interactions.csv"]).exit_code == 0
    res = runner.invoke(
        app, ["--db", db, "train", "--epochs", "1", "--model", "protonet", "--models-dir", "models"]
    )
    assert res.exit_code == 0, res.output
    monkeypatch.chdir(elsewhere)  # a cron job, a service, a notebook started somewhere else
    res = runner.invoke(app, ["--db", db, "recommend", "--user", "1", "--model", "protonet", "--json"])
    assert res.exit_code == 0, res.output


def test_a_sqlite_store_this_user_cannot_write_can_still_be_read(tmp_path, monkeypatch):
    db = tmp_path / "x.db"
    log = tmp_path / "log.csv"
    log.write_text("user,item,rating,timestamp\n1,2,5,100\n2,3,4,200\n")
    assert runner.invoke(app, ["--db", str(db), "ingest", "interactions", str(log)]).exit_code == 0
    import os

    real = os.access
    monkeypatch.setattr(  # as if the file and its folder belonged to someone else (tests run as root)
        "recmeta.store.engine.os.access", lambda p, mode: False if mode == os.W_OK else real(p, mode)
    )
    res = runner.invoke(app, ["--db", str(db), "stats", "--json"])
    assert res.exit_code == 0 and '"interactions": 2' in res.stdout, res.output
    more = tmp_path / "more.csv"
    more.write_text("user,item,rating,timestamp\n3,2,5,300\n")
    res = runner.invoke(app, ["--db", str(db), "ingest", "interactions", str(more)])
    assert res.exit_code == 1 and "read-only" in res.output, res.output


def test_repeated_clicks_without_time_are_counted_across_files(db_url, tmp_path):
    monday, tuesday = tmp_path / "mon.csv", tmp_path / "tue.csv"
    monday.write_text("user,item\n1,2\n1,2\n2,3\n")
    tuesday.write_text("user,item\n1,2\n3,3\n")
    assert runner.invoke(app, ["--db", db_url, "ingest", "interactions", str(monday)]).exit_code == 0
    res = runner.invoke(app, ["--db", db_url, "ingest", "interactions", str(tuesday)])
    assert res.exit_code == 0 and "added to the counts" in res.output
    res = runner.invoke(app, ["--db", db_url, "ingest", "interactions", str(tuesday)])  # the same file again
    assert res.exit_code == 0 and "skipped" in res.output
    stats = json.loads(runner.invoke(app, ["--db", db_url, "stats", "--json"]).stdout)
    assert stats["interactions"] == 3 and stats["value_max"] == 3  # (1, 2) clicked three times


def test_re_ingesting_metadata_reports_no_new_rows(tmp_path):
    db = str(tmp_path / "x.db")
    items = tmp_path / "items.csv"
    items.write_text("item,title\n1,One\n2,Two\n")
    first = json.loads(runner.invoke(app, ["--db", db, "ingest", "items", str(items), "--json"]).stdout)
    again = json.loads(runner.invoke(app, ["--db", db, "ingest", "items", str(items), "--json"]).stdout)
    assert first[0]["inserted"] == 2 and first[0]["items_created"] == 2
    assert again[0]["inserted"] == 0 and again[0]["items_created"] == 0
    assert "updated" in again[0]["notes"][0]


def test_one_option_vocabulary(tmp_path):
    """--model (or --models) on train and evaluate; long forms for -n."""
    for command in (["train"], ["evaluate"]):
        res = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert "--model" in res.output and "--models" in res.output
    assert "--cutoff" in runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"}).output
    assert "--top" in runner.invoke(app, ["recommend", "--help"], env={"COLUMNS": "200"}).output
    # the TOML tables are named in the help, not eaten as markup
    assert (
        "[maml] table, [als], ... or [all]"
        in runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    )


def test_train_config_file(tmp_path):
    db = synth_store(tmp_path, users=60, items=30)
    good = tmp_path / "good.toml"
    good.write_text("[all]\ndim = 8\nepochs = 1\n\n[maml]\ninner_steps = 2\n\n[als]\nfactors = 4\n")
    args = ["--db", db, "train", "--model", "maml", "--model", "protonet", "--model", "als"]
    res = runner.invoke(app, [*args, "--config", str(good), "--json", "--models-dir", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    configs = {r["model"]: r["config"] for r in json.loads(res.stdout)}
    assert (
        configs["maml"]["inner_steps"] == 2
        and configs["maml"]["dim"] == 8
        and configs["protonet"]["dim"] == 8
    )
    assert configs["als"]["factors"] == 4
    for text, says in (
        ("[mamal]\ndim = 8\n", "unknown section"),
        ("[maml]\ninner_stepz = 2\n", "[maml]: unknown parameter(s) ['inner_stepz']; maml takes "),
        ("[als]\nfactor = 2\n", "[als]: unknown parameter(s) ['factor']; als takes alpha, factors, "),
        ("dim = [", "not a TOML"),
        ("dim = " + "[" * 100_000 + "]" * 100_000, "not a TOML file (nested too deeply)"),
        ("all = 3\n", "`all = ...` stands outside a table"),
        # every value is checked where it enters, with the section in the message (rich
        # markup would take "[maml]" for a style tag and drop it)
        ("[maml]\ndim = -3\n", "[maml]: dim must be a whole number from 1 to 4,096, not -3"),
        ("[maml]\nlr = nan\n", "[maml]: lr must be a number above 0, not nan"),
        ('[maml]\nitem_init = "zeros"\n', "item_init must be one of tuned, als, random"),
        ("[protonet]\ndim = 100000000\n", "dim must be a whole number from 1 to 4,096"),
        ("[all]\nepochs = 1e9\n", "epochs must be a whole number"),
        ("[maml]\nfirst_order = 1\n", "first_order must be true or false"),
        ("[als]\nfactors = 0\n", "[als]: factors must be a whole number"),
        ("[als]\nalpha = inf\n", "alpha must be a number, 0 or more, not inf"),
        ("[itemknn]\nneighbours = -1\n", "neighbours must be a whole number"),
        ("[ease]\nregularization = -5\n", "[ease]: regularization must be a number above 0"),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        res = runner.invoke(app, [*args, "--config", str(bad)])
        assert res.exit_code == 1 and says in res.output, res.output


def test_progress_into_a_pipe_is_plain_lines(tmp_path):
    db = synth_store(tmp_path, users=80, items=30)
    res = runner.invoke(
        app,
        ["--db", db, "train", "--model", "protonet", "--epochs", "2", "--models-dir", str(tmp_path / "m")],
    )
    assert (
        res.exit_code == 0
        and "train protonet: epoch 1" in res.output
        and "train protonet: epoch 2" in res.output
    )
    assert "…" not in res.output  # nothing clipped
    res = runner.invoke(
        app,
        [
            "--db",
            db,
            "evaluate",
            "--model",
            "popular",
            "--seeds",
            "0",
            "--min-interactions",
            "10",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0 and "evaluate 1/" in res.output and "seed 0 popular fitting" in res.output


def test_validation_cells_with_too_few_users_print_a_dash_and_the_counts(tmp_path):
    db = synth_store(tmp_path, users=40, items=30)
    res = runner.invoke(app, ["--db", db, "train", "--model", "popular", "--models-dir", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "validation users per size: K=0 4" in res.output and "too few to read" in res.output
    row = next(line for line in res.output.splitlines() if line.strip().startswith("popular"))
    assert "0." not in row.split()[1]  # a dash, not a figure from 4 users


def test_help_reads_plainly():
    import os
    import subprocess
    import sys

    def help_of(*args: str) -> str:
        env = {**os.environ, "COLUMNS": "200"}
        res = subprocess.run(
            [sys.executable, "-m", "recmeta.cli", *args, "--help"], capture_output=True, text=True, env=env
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    text = help_of("ingest", "interactions")
    assert "<bool>" not in text and "{path}" not in text
    assert "FORMAT" in text and "movielens-100k or movielens" in text
    text = help_of("recommend")
    assert "popular, ease or episodic" in text and "<bool>" not in text


def test_one_seed_tables_print_no_spread_and_write_both_plots(tmp_path):
    db = synth_store(tmp_path, users=120, items=40)
    out = tmp_path / "r"
    res = runner.invoke(
        app,
        [
            "--db",
            db,
            "evaluate",
            "--model",
            "popular",
            "--model",
            "als",
            "--seeds",
            "0",
            "--min-interactions",
            "10",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "±" not in res.stdout and "(seed 0," in res.stdout
    assert (out / "ndcg.png").stat().st_size > 0 and (out / "recall.png").stat().st_size > 0


def test_max_time_bounds_the_whole_train_run(tmp_path, caplog):
    db = synth_store(tmp_path, users=120, items=40)
    patient = tmp_path / "patient.toml"
    patient.write_text("[all]\npatience = 1000\ndivergence = 1000\n")  # only time can end the run
    args = [
        "--db",
        db,
        "train",
        "--model",
        "maml",
        "--model",
        "protonet",
        "--model",
        "als",
        "--epochs",
        "200",
    ]
    res = runner.invoke(
        app,
        [
            *args,
            "--json",
            "--config",
            str(patient),
            "--max-time",
            "0.001",
            "--models-dir",
            str(tmp_path / "m"),
        ],
    )
    assert res.exit_code == 0, res.output
    steps = {r["model"]: r["steps"] for r in json.loads(res.stdout)}
    assert steps == {"maml": 1, "protonet": 1, "als": 0}  # each stopped within a step of its share
    assert "the meta-learners share the 0 s left. Raise --max-time" in caplog.text  # ALS took it


def test_an_ensemble_that_fits_its_own_members_keeps_to_the_budget(tmp_path):
    from recmeta import snapshot
    from recmeta.learners import create
    from recmeta.store import make_engine
    from recmeta.training import fit

    data = snapshot.load(make_engine(f"sqlite:///{synth_store(tmp_path, users=120, items=40)}"))
    patient = {"patience": 1000, "divergence": 1000, "epochs": 200}  # only time can end it
    ensemble = fit(create("ensemble", max_time=0.001, **patient), data, data)
    for member in ensemble.models.values():  # each its share of 0.001 s: one step, one epoch
        assert member.params["max_time"] <= 0.001 and member.best_epoch_ == 1


@pytest.mark.parametrize("kind", ["ease", "episodic"])
def test_item_item_models_train_serve_and_evaluate_alone(tmp_path, kind):
    db = synth_store(tmp_path, users=120, items=40)
    models = str(tmp_path / "m")
    res = runner.invoke(app, ["--db", db, "train", "--model", kind, "--models-dir", models, "--json"])
    assert res.exit_code == 0, res.output
    assert [r["model"] for r in json.loads(res.stdout)] == [kind]
    for rows in (["--user", "5"], ["--with", "3", "--with", "7"]):
        res = runner.invoke(app, ["--db", db, "recommend", *rows, "--model", kind, "--json", "-n", "3"])
        assert res.exit_code == 0, res.output
        assert len(json.loads(res.stdout)["items"]) == 3
    res = runner.invoke(app, ["--db", db, "similar", "5", "--model", kind, "--json", "-n", "3"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert "item-item weights" in out["route"] and len(out["items"]) == 3
    args = ["--db", db, "evaluate", "--models", kind, "--models", "popular", "--seeds", "0", "--shots", "3"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "r"), "--json"])
    assert res.exit_code == 0, res.output
    assert kind in res.output and "maml" not in res.output


def test_all_names_every_model_ease_included():
    from recmeta.cli.common import model_list
    from recmeta.learners import REGISTRY
    from recmeta.train import ALL

    assert set(ALL) == set(REGISTRY) and "ease" in ALL
    assert model_list([]) == ALL and model_list(["all"]) == ALL == model_list(["all", "ease"])
    assert model_list(["ease", "als"]) == ("ease", "als")


def test_tables_show_small_scores_instead_of_zeros():
    from recmeta.cli.recommend import _score

    assert [_score(v) for v in (0.0, 0.1234, -1.5, 12.0)] == ["0.000", "0.123", "-1.500", "12.000"]
    assert _score(3.2e-5) == "3.20e-05" and _score(-2e-6) == "-2.00e-06"  # EASE under a large penalty


@pytest.mark.parametrize(
    ("name", "value", "args"),
    [
        ("RECMETA_SQLITE_BUSY_MS", "abc", ["stats"]),
        ("RECMETA_SQLITE_BUSY_MS", "-5", ["stats"]),
        ("WORLD_SIZE", "two", ["train", "--model", "popular"]),
    ],
)
def test_environment_settings_that_are_not_numbers_are_clear_errors(tmp_path, monkeypatch, name, value, args):
    db = empty_store(tmp_path / "x.db")
    monkeypatch.setenv(name, value)
    res = runner.invoke(app, ["--db", db, *args])
    assert res.exit_code == 1 and f"${name}={value!r}: give a whole number" in res.output, res.output


def test_a_worker_without_its_rank_is_told_what_torchrun_sets(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    db = synth_store(tmp_path, users=30, items=20)
    res = runner.invoke(app, ["--db", db, "train", "--model", "popular", "--models-dir", str(tmp_path / "m")])
    assert res.exit_code == 1 and "$RANK must be set" in res.output, res.output


def test_messages_cut_a_huge_value_short(tmp_path):
    """A field or an id of megabytes is echoed in an error cut to a few dozen characters."""
    log = tmp_path / "big.csv"
    log.write_text("user,item,rating\nu,i," + "x" * 1_000_000 + "\n")
    db = str(tmp_path / "x.db")
    res = runner.invoke(app, ["--db", db, "ingest", "interactions", str(log)])
    assert res.exit_code == 1 and "'xxxx" in res.output and "...' is not a number" in res.output
    assert len(res.output) < 1000
    db = synth_store(tmp_path, users=30, items=20)
    for args in (["--user", "u" * 100_000], ["--with", "i" * 100_000]):
        res = runner.invoke(app, ["--db", db, "recommend", *args])
        assert res.exit_code == 1 and len(res.output) < 1000, res.output[:300]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["evaluate", "--continual", "--max-time", "5", "--cutoff", "5"],
            "--cutoff and --max-time do nothing with --continual; drop them",
        ),
        (
            ["evaluate", "--periods", "5"],
            "--periods does nothing without --continual; drop it or add --continual",
        ),
        (["evaluate", "--implicit"], "--implicit does nothing without --log; drop it or add --log"),
        (["data", "synth", "--size", "ml-25m", "--users", "50"], "--users does nothing with --size; drop it"),
        (
            ["ingest", "interactions", "--format", "movielens-100k", "ml", "--sep", ";"],
            "--sep does nothing with --format movielens-100k; drop it",
        ),
        (
            ["ingest", "interactions", "x.csv", "--rejects", "r.csv"],
            "--rejects does nothing without --on-error skip",
        ),
        (["recommend", "--user", "1", "--with", "5:4"], "--user does nothing with --with; drop it"),
        (["recommend", "--user", "1", "--remember", "bob"], "--remember does nothing without --with"),
        (["recommend", "--user", "1", "--out", "x.csv"], "--out does nothing without --users-file"),
        (
            ["recommend", "--users-file", "u.txt", "--out", "x.csv", "--explain", "--with", "1"],
            "--with and --explain do nothing with --users-file; drop them",
        ),
    ],
)
def test_options_the_chosen_mode_ignores_are_refused(tmp_path, args, message):
    res = runner.invoke(app, ["--db", str(tmp_path / "x.db"), *args])
    assert res.exit_code == 1 and message in res.output  # one line, before anything is read


def test_rows_progress_prints_plain_lines_into_a_file(capsys):
    """Long row-by-row work (ingest, --users-file, synth) says how far it is in a log file too."""
    from recmeta.cli.common import rows_progress

    with rows_progress("recommending", "users", total=3, every=0) as count:
        count(2)
        count(done=3)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("recommending: 2 of 3 users (") and lines[1].startswith("recommending: 3 of 3")
    assert lines[-1] == "recommending: 3 users, done"


def test_a_model_size_or_seed_given_twice_is_run_once():
    from recmeta.evaluate import EvalConfig
    from recmeta.train import TrainConfig

    cfg = EvalConfig(models=("popular", "maml", "popular"), shots=(3, 1, 3), seeds=(0, 0))
    assert (cfg.models, cfg.shots, cfg.seeds) == (("popular", "maml"), (3, 1), (0,))
    assert TrainConfig(models=("als", "als", "maml")).models == ("als", "maml")
    from recmeta.evaluate.continual import ContinualConfig

    assert ContinualConfig(models=("maml", "maml"), seeds=(1, 1)).seeds == (1,)


def test_serve_says_when_it_cannot_listen_before_loading_anything(tmp_path):
    import socket

    db = empty_store(tmp_path / "x.db")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = runner.invoke(app, ["--db", db, "serve", "--port", str(port)])
    assert res.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in res.output, res.output
    res = runner.invoke(app, ["--db", db, "serve", "--host", "999.1.1.1"])
    assert res.exit_code == 1 and "cannot listen on 999.1.1.1:8000" in res.output
