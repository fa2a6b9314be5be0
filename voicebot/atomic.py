"""Write a file so that readers see the old or the new version, never half of one, and so that
nobody can make us write somewhere else.

A fixed temporary name beside the target (``grammar.json.tmp``, ``x.npz.<pid>.tmp``) can be
planted in advance as a symlink by anyone who can write to that folder (a shared data folder, a
config repository): opening it for writing then overwrites the symlink's target, with the
permissions of whoever runs voicebot. So the temporary file is made by ``tempfile.mkstemp`` in
the target's folder: a random name, created with ``O_CREAT | O_EXCL`` (an existing name, a
symlink included, is never opened), then renamed over the target. ``os.replace`` replaces a
symlink at the target itself, not what it points to.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomic", "write_bytes_atomic"]

NEW_FILE_MODE = 0o644  # what a plain open() gives with the usual umask; mkstemp gives 0600


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create ``path`` (and its folder) with what ``write`` writes into the handle it is given.
    A replaced file keeps its permissions. On any error nothing is left behind and the error
    (``OSError`` for the file system) propagates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = NEW_FILE_MODE
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``write_atomic`` of a ready byte string."""

    def write(handle: BinaryIO) -> None:
        handle.write(data)

    write_atomic(path, write)
