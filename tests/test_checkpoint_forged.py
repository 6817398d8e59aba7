"""Forged checkpoints are refused with a CheckpointError, never served: tensors whose header
gives another dtype or shape, manifests that are not JSON objects or lack what a model
needs, a kind that does not match the tensors. A model trained on a GPU serves on a CPU."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from recmeta import checkpoint
from recmeta.errors import CheckpointError
from recmeta.learners import create
from recmeta.training import fit
from tests.learners.conftest import small, split_views  # noqa: F401


@pytest.fixture(scope="module")
def saved(small, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("forged")
    _, train, val = split_views(small)
    paths = {}
    for kind, params in (("maml", {"epochs": 1, "dim": 8}), ("als", {"factors": 8}), ("itemknn", {})):
        model = fit(create(kind, **params), train, val)
        paths[kind] = checkpoint.save(model, root / f"{kind}.safetensors", small)
    return paths


def forge(path, out, tensors=None, manifest=None):
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        original = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    text = meta["manifest"] if manifest is None else manifest(json.loads(meta["manifest"]))
    save_file(tensors(original) if tensors else original, str(out), metadata={"manifest": text})
    return out


CASES = {
    "item_bias as int32": (
        "maml",
        lambda t: {**t, "backbone.item_bias": t["backbone.item_bias"].view(torch.int32)},
        None,
    ),
    "item_bias shorter": ("maml", lambda t: {**t, "backbone.item_bias": t["backbone.item_bias"][:-1]}, None),
    "a nan weight": (
        "maml",
        lambda t: {**t, "backbone.prior.bias": t["backbone.prior.bias"] * float("nan")},
        None,
    ),
    "an extra tensor": ("maml", lambda t: {**t, "evil": torch.zeros(1)}, None),
    "als factors as float64": ("als", lambda t: {**t, "item_factors": t["item_factors"].double()}, None),
    "knn indices out of range": ("itemknn", lambda t: {**t, "indices": t["indices"] + 10_000}, None),
    "manifest not JSON": ("maml", None, lambda m: "{not json"),
    "manifest nested past the recursion limit": ("maml", None, lambda m: "[" * 100_000 + "]" * 100_000),
    "manifest a list": ("maml", None, lambda m: json.dumps([m])),
    "manifest without item_ids": (
        "maml",
        None,
        lambda m: json.dumps({k: v for k, v in m.items() if k != "item_ids"}),
    ),
    "kind not matching the tensors": ("maml", None, lambda m: json.dumps({**m, "kind": "als"})),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forged_checkpoints_are_refused(saved, tmp_path, case):
    kind, tensors, manifest = CASES[case]
    path = forge(saved[kind], tmp_path / "forged.safetensors", tensors, manifest)
    with pytest.raises(CheckpointError):
        checkpoint.load(path)


def test_a_checkpoint_naming_a_missing_gpu_serves_on_the_cpu(saved, tmp_path):
    def on_gpu(m):
        return json.dumps({**m, "config": {**m["config"], "device": "cuda:7"}})

    loaded = checkpoint.load(forge(saved["maml"], tmp_path / "gpu.safetensors", None, on_gpu))
    assert loaded.model.device == torch.device("cpu") or torch.cuda.is_available()
