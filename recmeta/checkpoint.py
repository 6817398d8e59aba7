"""Checkpoints: safetensors tensors plus a JSON manifest in the same file, written atomically.

Loading never unpickles code: tensors come from safetensors and everything else is JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from recmeta import __version__
from recmeta.errors import CheckpointError, parse_failure
from recmeta.learners import REGISTRY, Recommender
from recmeta.learners.meta import OPTIM
from recmeta.snapshot import Interactions

SCHEMA = 1


def catalogue_hash(item_ids: np.ndarray) -> str:
    return hashlib.sha256("\x1f".join(map(str, item_ids)).encode()).hexdigest()


@dataclass
class Loaded:
    """A model and its manifest."""

    model: Recommender
    manifest: dict[str, Any]
    optimizer: dict[str, torch.Tensor] = field(default_factory=dict)  # optimiser state, if saved

    @property
    def item_ids(self) -> list[str]:
        return self.manifest["item_ids"]

    @property
    def user_ids(self) -> list[str]:
        return self.manifest["user_ids"]


def versions() -> dict[str, str]:
    import implicit
    import scipy

    return {
        "recmeta": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "implicit": implicit.__version__,
        "python": platform.python_version(),
    }


def save(
    model: Recommender,
    path: Path,
    data: Interactions,
    *,
    optimizer: dict[str, torch.Tensor] | None = None,
    **extra: Any,
) -> Path:
    """Write `model` to `path` atomically (temporary file, then rename); `optimizer` (named
    tensors under "optim/") lets `recmeta train --continue` start where training stopped."""
    config, tensors = model.state()
    tensors = {**tensors, **(optimizer or {})}
    manifest = {
        "schema": SCHEMA,
        "kind": model.kind,
        "config": config,
        "item_ids": [str(i) for i in data.item_ids],
        "user_ids": [str(u) for u in data.user_ids],
        "catalogue_sha256": catalogue_hash(data.item_ids),
        "implicit": data.implicit,
        "item_feature_spec": data.item_feature_spec,
        "user_feature_spec": data.user_feature_spec,
        "watermark": data.watermark,
        "versions": versions(),
        **extra,
    }
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"manifest": json.dumps(manifest, default=_json)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _json(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def read_manifest(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; run `recmeta train` first")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for a broken header
        raise CheckpointError(
            f"{path}: not a recmeta checkpoint ({exc}); retrain with `recmeta train`"
        ) from exc
    if "manifest" not in meta:
        raise CheckpointError(f"{path}: has no recmeta manifest; retrain with `recmeta train`")
    try:
        manifest = json.loads(meta["manifest"])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(
            f"{path}: its manifest is not JSON ({parse_failure(exc)}); retrain with `recmeta train`"
        ) from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}: its manifest is not a JSON object; retrain with `recmeta train`")
    if manifest.get("schema") != SCHEMA:
        raise CheckpointError(
            f"{path}: checkpoint schema {manifest.get('schema')} but this recmeta reads schema "
            f"{SCHEMA}; retrain with `recmeta train`"
        )
    if manifest.get("kind") not in REGISTRY:
        raise CheckpointError(f"{path}: unknown model kind {manifest.get('kind')!r}")
    for key, kind in (("config", dict), ("item_ids", list), ("user_ids", list)):
        if not isinstance(manifest.get(key), kind):
            raise CheckpointError(f"{path}: its manifest has no valid {key!r}; retrain with `recmeta train`")
    return manifest


def load(path: Path, catalogue: Collection[str] | None = None) -> Loaded:
    """Load a checkpoint; with the store's item ids, refuse one whose items the store no
    longer holds."""
    manifest = read_manifest(path)
    if catalogue is not None:
        check_catalogue(manifest, catalogue, path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        optimizer = {k: tensors.pop(k) for k in [k for k in tensors if k.startswith(OPTIM)]}
        model = REGISTRY[manifest["kind"]].from_state(dict(manifest["config"]), tensors)
    except Exception as exc:  # an untrusted file: any failure to rebuild the model is a refusal
        raise CheckpointError(
            f"{path}: does not match this version of {manifest['kind']} ({exc}); retrain with `recmeta train`"
        ) from exc
    return Loaded(model=model, manifest=manifest, optimizer=optimizer)


def check_catalogue(manifest: dict[str, Any], known: Collection[str], path: Path) -> None:
    """Items the model knows must still be in the store (new items may have been added)."""
    missing = [i for i in manifest["item_ids"] if i not in known]
    if missing:
        raise CheckpointError(
            f"{path}: trained on a catalogue that the store does not hold ({len(missing)} item(s) "
            f"missing, e.g. {missing[0]!r}); point --db at the store it was trained on, or "
            "retrain with `recmeta train`"
        )
