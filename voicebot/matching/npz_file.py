"""Read a cache file of numpy arrays (``np.savez``) without trusting its headers.

Why: the matcher keeps what it computed from a config on disk (sentence vectors, the large-history
regression's weights), and a cache must never stop the bot from starting. An array's shape is a
line of text in its header: believed, a 468-byte file claiming (4e9, 16) made numpy ask for
59.6 GiB and stopped ``serve`` and ``eval``. So every member's dtype and shape are checked against
what the caller expects and against the bytes the file really holds before anything is allocated.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ANY_ROWS", "READ_ERRORS", "Want", "check_sizes", "read_arrays"]

ANY_ROWS = -1  # in an expected shape: any number of rows, the same in every array that says so
# What reading a damaged file can raise; callers set the file aside and rebuild on these.
READ_ERRORS = (OSError, ValueError, KeyError, EOFError, MemoryError, zipfile.BadZipFile)

Want = Mapping[str, tuple[np.dtype[Any], tuple[int, ...]]]


def read_arrays(path: Path, want: Want) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays of ``path``, which must hold exactly the members of ``want`` (name -> dtype
    and shape, ``ANY_ROWS`` for a free first dimension), all finite. Raises one of READ_ERRORS
    otherwise."""
    check_sizes(path, want)
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: np.asarray(data[name]) for name in want}
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"{name} holds values that are not finite")
    return arrays


def check_sizes(path: Path, want: Want) -> None:
    """Raise ``ValueError`` unless the file holds exactly the arrays of ``want``, each with the
    dtype and shape expected and a size that fits the bytes it really has."""
    size = path.stat().st_size
    rows = set()
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: info for info in archive.infolist()}
        expected = {f"{name}.npy" for name in want}
        if set(members) != expected:
            raise ValueError(f"holds {sorted(members)[:4]}, not {sorted(expected)}")
        for name, (dtype, shape_wanted) in want.items():
            info = members[f"{name}.npy"]
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
                raise ValueError(f"{name} claims {info.file_size} bytes in a {size}-byte file")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, fortran, found = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, fortran, found = np.lib.format.read_array_header_2_0(member)
                else:
                    raise ValueError(f"{name} has an unknown header version {version}")
                data_bytes = info.file_size - member.tell()
            free = len(shape) == len(shape_wanted) and shape_wanted[:1] == (ANY_ROWS,)
            want_shape = (shape[0], *shape_wanted[1:]) if free else shape_wanted
            if found != dtype or fortran or tuple(shape) != want_shape:
                raise ValueError(f"{name} is {found} {shape}, not {dtype} {shape_wanted}")
            if int(np.prod(shape)) * dtype.itemsize != data_bytes:
                raise ValueError(f"{name} claims {shape} but holds {data_bytes} bytes")
            if free:
                rows.add(shape[0])
    if len(rows) > 1:
        raise ValueError("arrays differ in length")
