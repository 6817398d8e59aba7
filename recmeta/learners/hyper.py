"""Models' hyper-parameters, checked where they enter: each takes the type of its default
and, where it has one, a range or a set of choices. A TOML `--config`, the Python API and a
checkpoint's config all pass through `check_hyper`."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

from recmeta.errors import ParameterError, is_whole
from recmeta.learners.backbone import RATE_LOSSES

INF = math.inf
WHOLE = {
    "dim": (1, 4096),
    "hidden": (1, 4096),
    "factors": (1, 4096),
    "epochs": (1, 10**6),
    "iterations": (1, 10**4),
    "batch_size": (1, 65_536),
    "max_support": (1, 10_000),
    "patience": (0, 10**6),
    "negatives": (1, 10**6),
    "max_val_users": (1, 10**8),
    "update_patience": (0, 10**6),
    "hold_epochs": (0, 10**6),
    "inner_steps": (0, 1000),
    "neighbours": (1, 10**6),
    "max_items": (1, 10**6),
    "tune_items": (1, 10**6),
}  # whole numbers: name -> (lowest, highest)
NUMBERS = {
    "sampled_above": (0, True),
    "max_time": (0, True),
    "lr": (0, False),
    "weight_decay": (0, True),
    "divergence": (0, False),
    "rate_weight": (0, True),
    "init_regularization": (0, False),
    "init_scale": (0, False),
    "init_alpha": (0, False),
    "inner_lr": (0, False),
    "inner_lr_rating": (0, False),
    "prior_strength": (0, False),
    "rating_ridge": (0, False),
    "pull": (0, False),
    "regularization": (0, False),
    "alpha": (0, True),
    "query_rows": (0, True),
}  # finite numbers: name -> (lowest, whether the lowest itself is allowed)
SHARES = ("replay_share",)  # from 0 to 1
CHOICES: dict[str, tuple[str, ...]] = {
    "support_sampling": ("log", "uniform"),
    "rate_loss": RATE_LOSSES,
    "item_init": ("tuned", "als", "random"),
    "inner_grad": ("closed", "autograd"),
}


def defaults_of(init: Callable) -> dict[str, Any]:
    """The keyword defaults of a constructor: what `check_hyper` takes the types from."""
    return {
        name: p.default
        for name, p in inspect.signature(init).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def check_hyper(params: dict[str, Any], defaults: dict[str, Any]) -> None:
    """A ValueError naming the first parameter of `params` whose value does not fit its
    range, its choices, or its default's type (true/false, text, a list of whole numbers,
    a finite number); None passes where the default is None (tuned, or no limit)."""
    for name, value in params.items():
        if name not in defaults or (value is None and defaults[name] is None):
            continue
        ok, want = _fits(name, value, defaults[name])
        if not ok:
            raise ParameterError(f"{name} must be {want}, not {value!r}")


def _fits(name: str, value: Any, default: Any) -> tuple[bool, str]:
    number = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if name in CHOICES:
        return value in CHOICES[name], f"one of {', '.join(CHOICES[name])}"
    if name in WHOLE:
        low, high = WHOLE[name]
        return is_whole(value) and low <= value <= high, f"a whole number from {low} to {high:,}"
    if name in NUMBERS:
        low, closed = NUMBERS[name]
        ok = number and (value >= low if closed else value > low)
        return ok, f"a number, {low:g} or more" if closed else f"a number above {low:g}"
    if name == "threshold":  # -inf: every row is positive (an implicit log's)
        ok = isinstance(value, Real) and not isinstance(value, bool) and -INF <= value < INF
        return ok, "a number (or -inf: every row positive)"
    if name in SHARES:
        return number and 0 <= value <= 1, "a share from 0 to 1"
    if isinstance(default, bool):
        return isinstance(value, bool), "true or false"
    if isinstance(default, list | tuple):
        ok = isinstance(value, list | tuple) and all(is_whole(v) and v >= 0 for v in value)
        return ok, "a list of whole numbers, 0 or more"
    if isinstance(default, str):
        return isinstance(value, str) and value != "", "a name"
    if isinstance(default, Integral):
        return is_whole(value), "a whole number"
    return number, "a finite number"  # a number without a range (user_power)
