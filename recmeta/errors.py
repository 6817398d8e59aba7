"""The exceptions recmeta raises; the CLI turns each into a message and exit code 1."""


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
