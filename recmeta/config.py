"""`recmeta train --config FILE`: every model's hyperparameters from a TOML file.

    [all]            # every meta-learner
    dim = 32
    [maml]
    inner_steps = 3
    [als]
    factors = 64

Sections are model names (or `all` for the meta-learners); each key must be a parameter the
model takes. The file is checked as a whole before anything trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recmeta.errors import DataError, parse_failure
from recmeta.learners import META_LEARNERS, REGISTRY, check_params
from recmeta.paths import readable_file


def read_config(path: Path) -> dict[str, dict[str, Any]]:
    """{model: {parameter: value}} from a TOML file, each model's parameters checked."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise DataError("--config needs Python 3.11 or newer (tomllib)") from None
    readable_file(Path(path))
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: not a TOML file ({parse_failure(exc)})") from None
    flat = [k for k, v in raw.items() if not isinstance(v, dict)]
    if flat:
        raise DataError(
            f"{path}: `{flat[0]} = ...` stands outside a table; put it under a model's [name] or [all]"
        )
    unknown = [k for k in raw if k != "all" and k not in REGISTRY]
    if unknown:
        raise DataError(
            f"{path}: unknown section(s) {unknown}; use model names ({', '.join(REGISTRY)}) or all"
        )
    shared = raw.get("all", {})
    out: dict[str, dict[str, Any]] = {}
    for kind in REGISTRY:
        params = {**(shared if kind in META_LEARNERS and kind != "ensemble" else {}), **raw.get(kind, {})}
        if params:
            check_params({kind: params}, f"{path}: ")
            out[kind] = params
    return out
