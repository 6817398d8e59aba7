"""The exceptions recmeta raises (the CLI turns each into a message and exit code 1), and
the checks of settings that raise them: whole-number options, numeric environment variables."""

import math
import os
from numbers import Integral


class RecmetaError(Exception):
    """Base class of every error recmeta raises on purpose."""


class DataError(RecmetaError):
    """Input that cannot be ingested: names its file, line, column and reason."""


class ParameterError(DataError, ValueError):
    """A model parameter outside its range, choices or type: the user's input (a clean
    error, exit 1), and a ValueError, as Python's own argument checks raise."""


class NotFittedError(RecmetaError):
    """A model was used before `fit`."""


class UnknownUserError(RecmetaError):
    """A user id that the store does not hold."""


class UnknownItemError(RecmetaError):
    """An item id that the store does not hold."""


class UnknownCheckpointError(RecmetaError):
    """A registry id that names no checkpoint."""


class CheckpointError(RecmetaError):
    """A checkpoint that is missing, corrupt or does not match the store or the code."""


class StoreError(RecmetaError):
    """The database cannot be reached or is in a state recmeta cannot use."""


class WorkerError(RecmetaError):
    """A worker of a data-parallel run stopped, so the run cannot go on."""


def is_whole(value) -> bool:
    """A whole number (numpy's too), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_whole(name: str, values, low: int) -> None:
    """A DataError unless every one of `values` (a number or a sequence of them; a sequence
    holds at least one) is a whole number, `low` or more."""
    many = isinstance(values, list | tuple)
    bad = [v for v in (values if many else [values]) if not is_whole(v) or v < low]
    if bad or (many and not values):
        shown = (bad or "none") if many else repr(values)
        raise DataError(
            f"{name} must be {'whole numbers' if many else 'a whole number'}, {low} or more, not {shown}"
        )


def env_number(name: str, default: float, low: float, whole: bool = True) -> float:
    """The environment variable `name` as a number, `low` or more (a whole number unless
    `whole` is False); `default` when it is unset or empty. Anything else is a StoreError
    naming the variable (it is read where the process starts, before any work)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < low:
        kind = "a whole number" if whole else "a number"
        raise StoreError(f"${name}={raw!r}: give {kind}, {low:g} or more (or unset it)")
    return value


def parse_failure(exc: Exception) -> str:
    """Why a JSON or TOML text did not parse, said plainly: a RecursionError (arrays or
    objects nested thousands deep, which Python's parsers cannot follow) as such."""
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def distinct(values) -> tuple:
    """`values` as a tuple, each once, in their order; one name or number on its own (the
    API's models="maml", shots=5) is a tuple of one."""
    if isinstance(values, str | Integral) or not hasattr(values, "__iter__"):
        values = (values,)
    return tuple(dict.fromkeys(values))
