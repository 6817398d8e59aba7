"""Where recmeta writes (reports, checkpoints, recommendation files, rejects), checked
before the work that fills it: a run must not fail at its end for want of a folder."""

from __future__ import annotations

import os
from pathlib import Path

from recmeta.errors import DataError


def writable_folder(folder: Path, what: str, *, make: bool = False) -> Path:
    """`folder`, which takes new files (made first, with its parents, when `make`). Tried
    with a file written and removed: permission bits alone do not tell (a root user, or a
    system folder such as /proc). A DataError that starts with `what` says why not."""
    folder = Path(folder) if str(folder) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{what}: {folder} is a file, not a folder")
    if not folder.exists():
        if not make:
            raise DataError(f"{what}: the folder {folder} does not exist")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(
                f"{what}: cannot make the folder {folder} ({exc.strerror}); give one you can write"
            ) from None
    probe = folder / f".recmeta-probe-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise DataError(
            f"{what}: cannot write in {folder} ({exc.strerror}); give a folder you can write"
        ) from None
    return folder


def writable_file(path: Path, what: str) -> Path:
    """`path`, a file that can be written: not a folder, in a folder that takes new files."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what}: {path} is a folder; give a file name")
    writable_folder(path.parent, what)
    return path


def readable_file(path: Path, folder_hint: str = "give a file") -> Path:
    """`path`, a regular file this process may read; else a DataError that says what it is
    instead (no such file, a folder: `folder_hint` says what to give, a pipe or a device)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file; {folder_hint}")
    if path.exists() and not path.is_file():
        raise DataError(
            f"{path}: not a regular file (a pipe or a device); save it to a file and give its path"
        )
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: not readable for this user")
    return path
