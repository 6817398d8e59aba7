"""The exceptions recmeta raises; the CLI turns each into a message and exit code 1."""

from numbers import Integral


class RecmetaError(Exception):
    """Base class of every error recmeta raises on purpose."""


class DataError(RecmetaError):
    """Input that cannot be ingested: names its file, line, column and reason."""


class NotFittedError(RecmetaError):
    """A model was used before `fit`."""


class UnknownUserError(RecmetaError):
    """A user id that the store does not hold."""


class UnknownItemError(RecmetaError):
    """An item id that the store does not hold."""


class CheckpointError(RecmetaError):
    """A checkpoint that is missing, corrupt or does not match the store or the code."""


class StoreError(RecmetaError):
    """The database cannot be reached or is in a state recmeta cannot use."""


class WorkerError(RecmetaError):
    """A worker of a data-parallel run stopped, so the run cannot go on."""


def check_whole(name: str, values, low: int) -> None:
    """A DataError unless every one of `values` (a number or a sequence of them; a sequence
    holds at least one) is a whole number, `low` or more."""
    many = isinstance(values, list | tuple)
    bad = [
        v
        for v in (values if many else [values])
        if isinstance(v, bool) or not isinstance(v, Integral) or v < low
    ]
    if bad or (many and not values):
        shown = (bad or "none") if many else repr(values)
        raise DataError(
            f"{name} must be {'whole numbers' if many else 'a whole number'}, {low} or more, not {shown}"
        )
