"""The Python API: README's example runs as written, and its frames hold what the CLI shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recmeta.errors import DataError
from recmeta.learners import REGISTRY

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    start = text.index("## Python API")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)  # our own README
    fitted, top, new, like, summary = (scope[k] for k in ("fitted", "top", "new", "like", "summary"))
    assert set(REGISTRY) == set(fitted.model)  # every model, ease and episodic included
    assert list(top.columns) == ["rank", "item", "title", "score"] and len(top) == 5 and top.attrs["route"]
    assert len(new) == 5 and not {"3", "12"} & set(new.item)
    assert len(like) == 5 and "3" not in set(like.item)
    wrote, after = scope["wrote"], scope["after"]
    assert wrote["inserted"] == 1 and wrote["users_created"] == 0
    assert top.item[0] not in set(after.item) and "reasons" in after.columns
    assert {"maml", "popular"} <= set(summary.model)
    rm = scope["rm"]
    with pytest.raises(DataError):
        rm.recommend()
    for n in (2.5, 0, True):  # was a TypeError from torch's topk
        with pytest.raises(DataError, match="n must be a whole number, 1 or more"):
            rm.recommend(user="7", n=n)
    assert rm.recommend(user="7", n=3, exclude=[top.item[0]]).item.tolist()[0] != top.item[0]


def test_ingest_takes_a_frame_or_a_path_and_says_which_row_is_bad(tmp_path):
    import pandas as pd

    from recmeta.api import Recmeta

    rm = Recmeta(str(tmp_path / "a.db"), models_dir=tmp_path / "m")
    bad = pd.DataFrame({"user": ["a", None], "item": ["x", "y"], "rating": [5, 4]})
    with pytest.raises(DataError, match=r"^frame\.iloc\[1\]: column 'user': empty user id"):
        rm.ingest(bad)
    log = tmp_path / "log.tsv"
    log.write_text("a\tx\t5\nb\tx\t4\n")  # no header
    assert rm.ingest(log, header=False)["inserted"] == 2
    assert rm.ingest(str(log), header=False)["duplicates"] == 2
    with pytest.raises(DataError, match="checkpoint id is a whole number"):
        rm.activate("latest")


def test_one_model_by_name_and_settings_out_of_range_are_taken_or_refused_plainly(tmp_path):
    import pandas as pd

    from recmeta.api import Recmeta

    rm = Recmeta(str(tmp_path / "a.db"), models_dir=tmp_path / "m")
    rows = [
        (f"u{u}", f"i{(u * 7 + k) % 30}", 1 + (u + k) % 5, 1000 + k) for u in range(60) for k in range(25)
    ]
    rm.ingest(pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]))
    assert rm.train("popular").model.tolist() == ["popular"]  # a name, not its letters
    summary = rm.evaluate(models="popular", seeds=0, shots=5)
    assert set(summary.model) >= {"popular"} and set(summary.shots) == {5}
    for bad in (-5, float("nan"), "10"):
        with pytest.raises(DataError, match="max_time must be seconds, 0 or more"):
            rm.evaluate(models="popular", seeds=0, max_time=bad)
        with pytest.raises(DataError, match="max_time must be seconds"):
            rm.train("popular", max_time=bad)
    with pytest.raises(DataError, match=r"\[maml\]: epochs must be a whole number from 1 to"):
        rm.train("maml", epochs=10**20)
