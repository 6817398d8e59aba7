"""The rule every user and item id follows, wherever it enters (a log, a metadata file,
`recommend --remember`): not empty, at most 255 characters, no control character. SQLite
would take more; PostgreSQL would not, and both backends must agree."""

from __future__ import annotations

import re

from recmeta.errors import DataError

MAX_ID_LENGTH = 255  # ids are stored as VARCHAR(255) on every backend
CONTROL = r"[\x00-\x1f\x7f]"  # NUL and other control characters: PostgreSQL refuses NUL, so both refuse all


def check_id(ext: str, where: str) -> str:
    """One id by the same rule as a log's ids: not empty, at most 255 characters, no control
    character."""
    if not ext:
        raise DataError(f"{where}: empty id")
    if len(ext) > MAX_ID_LENGTH:
        raise DataError(f"{where}: id longer than {MAX_ID_LENGTH} characters")
    if re.search(CONTROL, ext):
        raise DataError(f"{where}: id holds a control character")
    return ext


def clipped(text, width: int = 40) -> str:
    """`text`'s repr for a message, cut to about `width` characters (a field can be
    megabytes)."""
    shown = repr(text)
    return shown if len(shown) <= width else shown[: width - 4] + "...'"
