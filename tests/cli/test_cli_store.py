import json

from typer.testing import CliRunner

from recmeta.cli import app
from tests.conftest import write

runner = CliRunner()


def invoke(db, *args):
    return runner.invoke(app, ["--db", db, *args])


def test_ingest_ml100k_then_stats_json(db_url, ml100k_dir):
    res = invoke(db_url, "ingest", "interactions", "--format", "movielens-100k", str(ml100k_dir))
    assert res.exit_code == 0, res.output
    res = invoke(db_url, "stats", "--json")
    s = json.loads(res.stdout)
    assert (s["users"], s["items"], s["interactions"]) == (943, 1682, 100_000)
    assert s["users_with_at_most"]["20"] == 32


def test_synth_ingest_and_stats(tmp_path):
    db = str(tmp_path / "s.db")
    res = runner.invoke(
        app, ["data", "synth", "--out", str(tmp_path / "syn"), "--users", "50", "--items", "40"]
    )
    assert res.exit_code == 0, res.output
    for kind in ("interactions", "items", "users"):
        res = invoke(db, "ingest", kind, str(tmp_path / "syn" / f"{kind}.csv"), "--json")
        assert res.exit_code == 0, res.output
    s = json.loads(invoke(db, "stats", "--json").stdout)
    assert s["users"] == 50 and s["items"] == 40
    assert "store" in invoke(db, "stats").stdout


def test_bad_row_exits_1_with_the_line(tmp_path):
    path = write(tmp_path / "bad.csv", "user,item,rating\na,x,5\nb,y,oops\n")
    res = invoke(str(tmp_path / "b.db"), "ingest", "interactions", str(path))
    assert res.exit_code == 1
    assert "bad.csv:3: column 'rating': 'oops' is not a number" in res.stderr
    assert "Traceback" not in res.output


def test_skip_mode_reports_rejects(tmp_path):
    path = write(tmp_path / "bad.csv", "user,item,rating\na,x,5\nb,y,oops\n")
    res = invoke(str(tmp_path / "b.db"), "ingest", "interactions", str(path), "--on-error", "skip", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)[0]
    assert report["inserted"] == 1 and report["rejected"] == 1
    assert report["rejects_path"].endswith("bad.csv.rejects.csv")


def test_db_upgrade_and_version(tmp_path):
    res = invoke(str(tmp_path / "x.db"), "db", "upgrade")
    assert res.exit_code == 0 and "revision" in res.stdout
    assert runner.invoke(app, ["--version"]).stdout.startswith("recmeta ")


def test_unreachable_database_is_a_clear_error():
    res = invoke("postgresql://nobody@127.0.0.1:1/none", "stats")
    assert res.exit_code == 1 and "cannot open the database" in res.stderr


def test_headerless_tsv_with_format(tmp_path):
    path = write(tmp_path / "log.txt", "u1\ti1\t5\t881250949\nu2\ti1\t4\t881250950\n")
    res = invoke(
        str(tmp_path / "h.db"),
        "ingest",
        "interactions",
        str(path),
        "--format",
        "tsv",
        "--no-header",
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["inserted"] == 2


def test_evaluate_a_log_with_its_own_column_names(tmp_path):
    import numpy as np

    rng = np.random.default_rng(1)
    rows = "\n".join(f"v{rng.integers(0, 60)},p{rng.integers(0, 30)}" for _ in range(3000))
    path = write(tmp_path / "clicks.csv", "who,what\n" + rows + "\n")
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--log",
            str(path),
            "--implicit",
            "--user-col",
            "who",
            "--item-col",
            "what",
            "-m",
            "popular",
            "--shots",
            "3",
            "--seeds",
            "0",
            "--out",
            str(tmp_path / "r"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["config"]["dataset"]["implicit"] is True


def test_evaluate_reads_a_headerless_semicolon_log_as_ingest_does(tmp_path):
    import numpy as np

    rng = np.random.default_rng(2)
    rows = "\n".join(f"{rng.integers(0, 60)};{rng.integers(0, 30)};1" for _ in range(3000))
    path = write(tmp_path / "plays.txt", rows + "\n")
    common = ["evaluate", "--log", str(path), "-m", "popular", "--shots", "3", "--seeds", "0"]
    res = runner.invoke(app, [*common, "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "pass --no-header" in res.output
    args = [*common, "--no-header", "--sep", ";", "--implicit", "--out", str(tmp_path / "r"), "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["config"]["dataset"]["users"] == 60
    res = runner.invoke(app, ["evaluate", "--no-header", "--seeds", "0"])  # no --log: nothing to read
    assert res.exit_code != 0 and "--no-header" in res.output


def test_evaluate_says_when_a_support_size_leaves_no_user(tmp_path):
    import numpy as np

    rng = np.random.default_rng(3)
    rows = "\n".join(f"u{rng.integers(0, 40)},i{rng.integers(0, 30)}" for _ in range(2000))
    path = write(tmp_path / "clicks.csv", "user,item\n" + rows + "\n")
    args = ["evaluate", "--log", str(path), "-m", "popular", "--seeds", "0", "--shots", "1", "--shots", "500"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "no user has a positive row left after K = 500 support rows" in res.output


def test_commands_that_read_a_store_refuse_a_sqlite_file_that_is_not_there(tmp_path):
    db = tmp_path / "typo.db"
    for args in (["stats"], ["train"], ["recommend", "--user", "1"], ["models"], ["db", "current"]):
        res = invoke(str(db), *args)
        assert res.exit_code == 1, (args, res.output)
        assert "no store at" in res.stderr and "recmeta ingest interactions" in res.stderr
    assert list(tmp_path.iterdir()) == []  # nothing made at the mistyped path


def test_a_failed_first_ingest_leaves_no_store_behind(tmp_path):
    bad = write(tmp_path / "bad.csv", "user,item,rating\na,x,5\nb,y,oops\n")
    db = tmp_path / "new.db"
    res = invoke(str(db), "ingest", "interactions", str(bad))
    assert res.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]
    good = write(tmp_path / "good.csv", "user,item,rating\na,x,5\n")
    assert invoke(str(db), "ingest", "interactions", str(good)).exit_code == 0
    assert invoke(str(db), "ingest", "interactions", str(bad)).exit_code == 1
    assert db.exists()  # a failed ingest into a store that was there keeps it, as it was
    assert json.loads(invoke(str(db), "stats", "--json").stdout)["interactions"] == 1


def test_a_json_lines_log_ingests_from_the_cli(tmp_path):
    path = write(tmp_path / "events.jsonl", '{"user": "u1", "item": "i1", "ts": 1700000000}\n')
    res = invoke(str(tmp_path / "j.db"), "ingest", "interactions", str(path), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["inserted"] == 1


def test_event_weights_from_ingest_and_evaluate(tmp_path):
    import numpy as np

    rng = np.random.default_rng(2)
    events = rng.choice(["view", "view", "view", "cart", "buy"], 3000)
    rows = "\n".join(
        f"{k},u{rng.integers(0, 60)},{e},p{rng.integers(0, 30)}" for k, e in enumerate(events)
    )  # RetailRocket's layout: time, visitor, event, item
    path = write(tmp_path / "events.csv", "timestamp,visitorid,event,itemid\n" + rows + "\n")
    db = str(tmp_path / "e.db")
    res = invoke(db, "ingest", "interactions", str(path), "--event-weights", "view=1,cart=2,buy=4", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["inserted"] == 3000
    assert json.loads(invoke(db, "stats", "--json").stdout)["value_max"] == 4.0
    args = ["--event-weights", "view=1,cart=2", "-m", "popular", "--seeds", "0", "--out", str(tmp_path / "r")]
    res = runner.invoke(app, ["evaluate", "--log", str(path), *args])
    assert res.exit_code == 1 and "event 'buy' has no weight in --event-weights (view, cart)" in res.stderr
    res = invoke(db, "evaluate", "--event-weights", "view=1")  # a layout option needs --log
    assert res.exit_code == 1 and "--event-weights" in res.stderr


def test_several_logs_ingest_together_all_or_nothing(tmp_path):
    days = [
        write(tmp_path / f"day{d}.csv", f"user,item,rating,timestamp\nu{d},i1,4,{1600000000 + d}\n")
        for d in (1, 2)
    ]
    bad = write(tmp_path / "bad.csv", "user,item,rating,timestamp\nu9,i1,oops,1\n")
    db = str(tmp_path / "d.db")
    res = invoke(db, "ingest", "interactions", *map(str, days), "--json")
    assert res.exit_code == 0, res.output
    assert [r["inserted"] for r in json.loads(res.stdout)] == [1, 1]
    more = write(tmp_path / "day3.csv", "user,item,rating,timestamp\nu3,i1,4,1600000003\n")
    res = invoke(db, "ingest", "interactions", str(more), str(bad))
    assert res.exit_code == 1 and "bad.csv:2: column 'rating'" in res.stderr
    assert json.loads(invoke(db, "stats", "--json").stdout)["interactions"] == 2  # day3 not written either
    res = invoke(
        db, "ingest", "interactions", str(more), str(bad), "--on-error", "skip", "--rejects", "r.csv"
    )
    assert res.exit_code == 1 and "--rejects names one file" in res.stderr


def test_the_api_ingests_several_logs(tmp_path):
    from recmeta.api import Recmeta

    days = [
        write(tmp_path / f"day{d}.csv", f"user,item,rating,timestamp\nu{d},i1,4,{1600000000 + d}\n")
        for d in (1, 2)
    ]
    out = Recmeta(str(tmp_path / "a.db")).ingest(days)
    assert [r["inserted"] for r in out["reports"]] == [1, 1]
