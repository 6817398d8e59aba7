"""Thread control: one call sets torch's and the BLAS libraries' threads; the CLI option."""

from __future__ import annotations

import os

import torch
from threadpoolctl import threadpool_info
from typer.testing import CliRunner

from recmeta.cli import app
from recmeta.threads import set_threads
from tests.conftest import empty_store


def test_set_threads_sets_torch_and_blas(monkeypatch):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        assert all(lib["num_threads"] == 1 for lib in threadpool_info() if lib["user_api"] == "blas")
        assert os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        set_threads(before)


def test_threads_option_is_checked(tmp_path):
    res = CliRunner().invoke(app, ["--threads", "0", "--db", str(tmp_path / "x.db"), "stats"])
    assert res.exit_code == 2 and "threads" in res.output.lower()
    res = CliRunner().invoke(
        app, ["--threads", "1", "--db", empty_store(tmp_path / "x.db"), "stats", "--json"]
    )
    assert res.exit_code == 0, res.output
