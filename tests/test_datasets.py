import urllib.error
import zipfile

import numpy as np
import pandas as pd
import pytest

from recmeta import datasets
from recmeta.errors import DataError


def test_synth_is_deterministic_and_has_planted_structure():
    cfg = datasets.SynthConfig(users=200, items=80, seed=5)
    log, items, users = datasets.synth(cfg)
    log2, _, _ = datasets.synth(cfg)
    pd.testing.assert_frame_equal(log, log2)
    assert log.groupby("user").size().min() >= cfg.min_interactions
    assert set(log["value"]) <= {1, 2, 3, 4, 5}
    # users of one segment share tastes: their mean rating per genre differs across segments
    merged = log.merge(users, on="user").merge(items, on="item")
    merged["first_genre"] = merged["genres"].str.split("|").str[0]
    table = merged.pivot_table(index="segment", columns="first_genre", values="value")
    assert float(np.nanmax(table.to_numpy() - np.nanmin(table.to_numpy(), axis=0))) > 1.0


def test_unpack_a_zip(tmp_path):
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t881250949\n")
        zf.writestr("ml-100k/u.item", "1|Toy Story (1995)|01-Jan-1995||x|0\n")
    folder = datasets.unpack(archive, tmp_path / "out")
    assert folder.name == "ml-100k" and (folder / "u.data").is_file()


def test_unpack_refuses_paths_outside(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(DataError, match="unsafe path"):
        datasets.unpack(archive, tmp_path / "out")


def test_download_offline_is_one_clear_line(tmp_path, monkeypatch):
    def refuse(*_a, **_k):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", refuse)
    with pytest.raises(DataError) as info:
        datasets.download("movielens-100k", tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "cannot download" in msg and "recmeta data unpack" in msg
    assert not (tmp_path / "ml-100k.zip").exists()


def test_bundled_sample_is_what_its_command_makes(tmp_path):
    from tests.conftest import ROOT

    datasets.write_synth(datasets.SynthConfig(), tmp_path)
    for name in ("interactions.csv", "items.csv", "users.csv"):
        assert (tmp_path / name).read_bytes() == (ROOT / "data" / "synth" / name).read_bytes(), name


def test_drift_moves_preferences_over_time():
    """Item rating means of the first and second half of the log agree less under drift."""
    from recmeta.datasets import SynthConfig, synth

    def agreement(drift: float) -> float:
        log, _, _ = synth(SynthConfig(users=600, items=120, seed=5, drift=drift))
        mid = log.timestamp.median()
        early = log[log.timestamp < mid].groupby("item").value.mean()
        late = log[log.timestamp >= mid].groupby("item").value.mean()
        both = early.index.intersection(late.index)
        return float(np.corrcoef(early[both], late[both])[0, 1])

    assert agreement(0.0) > 0.9
    assert agreement(0.6) < agreement(0.0) - 0.1


def test_a_large_synthetic_log_is_written_in_blocks(tmp_path, monkeypatch):
    """Above STREAM_ROWS the log is drawn per block of users: one row per (user, item), each
    user's rows in time order, ratings 1-5 that follow the planted groups."""
    import pandas as pd

    from recmeta import datasets

    monkeypatch.setattr(datasets, "STREAM_ROWS", 1000)
    seen = []
    paths = datasets.write_synth(
        datasets.SynthConfig(users=3000, items=500, seed=1), tmp_path, progress=seen.append
    )
    log = pd.read_csv(paths["interactions"])
    assert len(seen) == 1 and sum(seen) == len(log) and len(log) > 3000 * 25  # 40 drawn, repeats dropped
    assert not log.duplicated(["user", "item"]).any() and log.user.nunique() == 3000
    assert log.groupby("user").timestamp.apply(lambda t: t.is_monotonic_increasing).all()
    assert set(log.value) <= {1, 2, 3, 4, 5} and log.value.std() > 0.5
    assert len(pd.read_csv(paths["items"])) == 500 and len(pd.read_csv(paths["users"])) == 3000


@pytest.mark.parametrize("stream", [False, True])
def test_a_synthetic_implicit_log_ingests_as_implicit_untold(tmp_path, monkeypatch, stream):
    """`data synth --implicit` names its counts as a count column, so `recmeta ingest` needs
    no --implicit (a 'value' column of 1-10 read as ratings, most of them negatives)."""
    from recmeta import datasets
    from recmeta.ingest.pipeline import ingest_file, ingest_path
    from recmeta.store import make_engine, session_scope
    from recmeta.store.repository import stats

    if stream:
        monkeypatch.setattr(datasets, "STREAM_ROWS", 100)
    paths = datasets.write_synth(datasets.SynthConfig(users=60, items=30, implicit=True), tmp_path)
    assert paths["interactions"].read_text().splitlines()[0] == "user,item,count,timestamp"
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    ingest_file(engine, lambda s: ingest_path(s, paths["interactions"]))
    with session_scope(engine) as s:
        assert stats(s)["implicit"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("users", 1_000_000_000, "users: at most 10,000,000 in a synthetic log"),
        ("items", 10_000_001, "items: at most 10,000,000"),
        ("groups", 100_000_000, "groups: at most 10,000"),
        ("drift", 1.5, "drift is a share"),
    ],
)
def test_a_synthetic_log_past_what_memory_holds_is_refused_before_any_work(field, value, says):
    with pytest.raises(DataError, match=says):
        datasets.SynthConfig(**{field: value})
