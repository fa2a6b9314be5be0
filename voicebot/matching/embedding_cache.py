"""Sentence vectors of config texts, kept on disk so a restart does not encode them again.

Encoding costs ~35 ms per text on one core: a config with 10,000 imported examples would take
six minutes at every start, every ``voicebot eval`` and every reload. The vectors depend only on
the encoder and the text, so they are stored once per encoder in the data folder
(``$VOICEBOT_DATA_DIR``, else ``~/.local/share/voicebot``) under ``embeddings/<encoder id>.npz``
and looked up by a hash of the text; only texts not seen before are encoded. An encoder that
reads texts two ways (``encoder.TwoPrefixes``) keeps the second reading in a file of its own
beside the first (``passages``).

Only config texts (phrases, examples) are stored, never what callers said: caller utterances are
encoded on the fly and kept in memory only.

The file is replaced atomically (written beside it under a random name, then renamed:
``voicebot.atomic``), so a crash or two processes writing at once can lose the newest additions
but never leave a half-written file, and a symlink planted beside it is never written through.
A file that cannot be read all the same (truncated copy, wrong format, another encoder's size, a
header claiming more rows than the file holds) is set aside with a warning and rebuilt: a cache
never stops the bot from starting. Array headers are checked against the bytes the file really
has before anything is allocated (``voicebot.matching.npz_file``).
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from voicebot.atomic import write_atomic
from voicebot.calllog.db import data_dir
from voicebot.matching.encoder import Encoder, TwoPrefixes, default_encoder
from voicebot.matching.npz_file import ANY_ROWS, READ_ERRORS, Want, read_arrays

__all__ = ["Embeddings", "cache_file", "shared_embeddings", "use_shared_embeddings"]

F32 = npt.NDArray[np.float32]

KEY_BYTES = 16  # of the SHA-256 of the text: collisions are out of reach at any config size
CHUNK = 256  # texts encoded between two saves of the file, so a long first build is not lost
PROGRESS_FROM = 64  # texts to encode before a progress bar is worth drawing
ANNOUNCE_FROM = 500  # ... and before a line is worth printing when stderr is not a terminal
QUERY_MEMORY = 4096  # caller utterances kept in memory (repeats within a call, evals)


def cache_file(encoder_id: str, root: Path | None = None) -> Path:
    """Where the vectors of one encoder live."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder_id)
    return (root if root is not None else data_dir()) / "embeddings" / f"{safe}.npz"


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:KEY_BYTES]


class Embeddings:
    """An encoder with a disk cache for config texts and a small memory for utterances.

    ``warn`` receives the one-line warning about an unreadable cache file (default: stderr).
    """

    def __init__(
        self,
        encoder: Encoder,
        path: Path | None = None,
        *,
        warn: Callable[[str], None] | None = None,
        progress: TextIO | None = None,
        what: str = "config texts",
    ) -> None:
        self.encoder = encoder
        self._what = what  # in the progress line: "encoding 500 <what> once"
        self.path = path if path is not None else cache_file(encoder.id)
        self._warn = warn or (lambda msg: print(msg, file=sys.stderr))
        self._progress = progress
        self._lock = threading.Lock()  # config texts: held while a build encodes
        self._memory_lock = threading.Lock()  # utterances: never waits for a build
        self._index: dict[bytes, int] | None = None  # loaded on first use
        self._keys: list[bytes] = []
        self._rows: list[F32] = []  # blocks of vectors, in the order of _keys
        self._queries: OrderedDict[str, F32] = OrderedDict()
        self._passages: Embeddings | None = None

    @property
    def id(self) -> str:
        return self.encoder.id

    @property
    def dim(self) -> int:
        return self.encoder.dim

    # -- config texts: cached on disk ------------------------------------------------------

    def texts(self, texts: Sequence[str]) -> F32:
        """Vectors of config texts, encoding (and saving) only those never seen before."""
        with self._lock:
            index = self._load()
            missing = list(dict.fromkeys(t for t in texts if _key(t) not in index))
            if missing:
                self._add(missing, index)
            matrix = self._matrix()
            rows = np.fromiter((index[_key(t)] for t in texts), np.int64, len(texts))
        out: F32 = matrix[rows] if len(texts) else np.zeros((0, self.dim), np.float32)
        return out

    def passages(self) -> Embeddings | None:
        """The config texts' second reading (``TwoPrefixes``), cached beside these vectors in
        a file of its own; None when the encoder reads texts one way only."""
        if not isinstance(self.encoder, TwoPrefixes):
            return None
        with self._lock:
            if self._passages is None:
                view = self.encoder.passage_view()
                self._passages = Embeddings(
                    view,
                    self.path.with_name(cache_file(view.id, Path()).name),
                    warn=self._warn,
                    progress=self._progress,
                    what="config texts a second way (passage:)",
                )
            return self._passages

    def _matrix(self) -> F32:
        if len(self._rows) != 1:
            merged = (
                np.concatenate(self._rows) if self._rows else np.zeros((0, self.dim), np.float32)
            )
            self._rows = [merged]
        return self._rows[0]

    def _load(self) -> dict[bytes, int]:
        if self._index is not None:
            return self._index
        self._index = {}
        if not self.path.exists():
            return self._index
        want: Want = {
            "keys": (np.dtype(np.uint8), (ANY_ROWS, KEY_BYTES)),
            "vectors": (np.dtype(np.float32), (ANY_ROWS, self.dim)),
        }
        try:
            arrays = read_arrays(self.path, want)
        except READ_ERRORS as exc:
            self._warn(f"warning: embedding cache {self.path} is unreadable ({exc}); rebuilding it")
            self._set_aside()
            return self._index
        keys, vectors = arrays["keys"], arrays["vectors"]
        flat = keys.tobytes()  # bytes keys, not numpy "S": those drop trailing zero bytes
        self._keys = [flat[i : i + KEY_BYTES] for i in range(0, len(flat), KEY_BYTES)]
        self._rows = [vectors]
        self._index = {k: i for i, k in enumerate(self._keys)}
        return self._index

    def _set_aside(self) -> None:
        with contextlib.suppress(OSError):  # kept for a look; the next save replaces it anyway
            self.path.replace(self.path.with_suffix(".corrupt"))

    def _add(self, missing: list[str], index: dict[bytes, int]) -> None:
        bar = _Progress(len(missing), self.path, self._progress, self._what)
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            vectors = self.encoder.encode(chunk)
            for text in chunk:
                key = _key(text)
                index[key] = len(self._keys)
                self._keys.append(key)
            self._rows.append(np.asarray(vectors, np.float32))
            self._save()
            bar.update(start + len(chunk))
        bar.close()

    def _save(self) -> None:
        """Write the whole cache beside the old file, then rename over it (atomic)."""
        keys = np.frombuffer(b"".join(self._keys), np.uint8).reshape(-1, KEY_BYTES)
        vectors = self._matrix()
        try:
            write_atomic(self.path, lambda handle: np.savez(handle, keys=keys, vectors=vectors))
        except OSError as exc:  # read-only data folder: keep working, just without the cache
            self._warn(f"warning: cannot write embedding cache {self.path}: {exc}")

    # -- caller utterances: memory only ----------------------------------------------------

    def queries(self, texts: Sequence[str]) -> F32:
        """Vectors of caller utterances; never written to disk."""
        out = np.zeros((len(texts), self.dim), np.float32)
        todo: list[int] = []
        with self._memory_lock:
            for i, text in enumerate(texts):
                hit = self._queries.get(text)
                if hit is None:
                    todo.append(i)
                else:
                    self._queries.move_to_end(text)
                    out[i] = hit
        if todo:
            fresh = self.encoder.encode([texts[i] for i in todo])
            with self._memory_lock:
                for row, i in enumerate(todo):
                    out[i] = fresh[row]
                    self._queries[texts[i]] = fresh[row].copy()
                while len(self._queries) > QUERY_MEMORY:
                    self._queries.popitem(last=False)
        return out


class _Progress:
    """A progress bar on stderr for a long first build; quiet when it is short or not a TTY."""

    def __init__(self, total: int, path: Path, stream: TextIO | None, what: str) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.start = time.monotonic()
        tty = self.stream.isatty()
        self.bar = tty and total >= PROGRESS_FROM
        if self.bar or (not tty and total >= ANNOUNCE_FROM):
            print(
                f"encoding {total} {what} once (cached in {path})",
                file=self.stream,
                flush=True,
            )
        self.shown = self.bar

    def update(self, done: int) -> None:
        if not self.bar:
            return
        width = 30
        filled = width * done // self.total
        elapsed = time.monotonic() - self.start
        left = elapsed / done * (self.total - done) if done else 0.0
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} texts, "
            f"{left:.0f} s left "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.bar:
            self.stream.write("\n")
            self.stream.flush()


_SHARED: list[Embeddings] = []
_SHARED_LOCK = threading.Lock()


def shared_embeddings() -> Embeddings:
    """The process-wide encoder and cache every matcher uses unless given its own."""
    with _SHARED_LOCK:
        if not _SHARED:
            _SHARED.append(Embeddings(default_encoder()))
        return _SHARED[0]


def use_shared_embeddings(embeddings: Embeddings) -> None:
    """Make ``embeddings`` the process-wide one (tests point it at their own cache folder)."""
    with _SHARED_LOCK:
        _SHARED[:] = [embeddings]
