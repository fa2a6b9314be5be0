"""Vosk speech recognition for one caller at a time, with one shared model per language.

Endpointing. Vosk 0.3.45 (the current PyPI release) has no ``SetEndpointerDelays``: its
endpoint rules are fixed per model in ``conf/model.conf`` (Kaldi's rules: 0.5 s of trailing
silence when the decoder is confident, 1.0 s when less so, 2.0 s always), and in open mode it
can miss trailing silence altogether (seen on digital zeros). Its partial word timings are no
substitute: the incremental lattice they come from lags the audio by up to ~1.8 s. So, over
sample counts, while the (current, best-path) partial result has words:

- end of speech: ``end_of_speech_s`` of trailing silence by an energy VAD
  (``audio.EnergyVad``), or Vosk's own endpoint flag held for ``end_of_speech_s - rule2``
  without new words (the flag alone means >= rule2 of silence; this covers noisy lines where
  energy never drops). Vosk's flag cannot be had earlier than rule2 (0.5 s here).
- max length: ``max_utterance_s`` after the first word appeared (the model's rule5, 20 s by
  default, also ends an utterance).

and without words, no speech: ``no_speech_timeout_s`` since listening began.

All times come from the number of samples fed, never the wall clock, so replaying the same audio
gives the same events. Audio goes to Vosk in fixed blocks of ``BLOCK_S`` whatever the caller's
chunking, because Vosk's incremental decoder gives slightly different words when results are
requested at different points: fixed blocks make results independent of how the telephony layer
slices the stream.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import os
import struct
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from voicebot.audio import EnergyVad, Resampler

__all__ = [
    "BLOCK_S",
    "UNK",
    "Alternative",
    "Endpointing",
    "Final",
    "GrammarError",
    "ModelError",
    "ModelInfo",
    "ModelRegistry",
    "NoSpeech",
    "Partial",
    "Recognizer",
    "RecognizerEvent",
    "SpeechModel",
    "Word",
    "decode_executor",
    "inspect_model",
    "known_words",
    "load_model",
    "unknown_words",
]

UNK = "[unk]"
"""How an out-of-vocabulary stretch is spelled in every event, whatever the model calls it."""

_UNK_SPELLINGS = ("[unk]", "<unk>", "<UNK>")
_NOT_WORDS = frozenset({"<eps>", "<s>", "</s>", "!SIL", "<SIL>"})
_EPS = 1e-9  # float slack when comparing sample-derived times
BLOCK_S = 0.1
"""Decoding granularity: endpoint decisions and partials happen on these boundaries."""

Mode = Literal["open", "grammar"]
EndReason = Literal["end_of_speech", "max_length", "end_of_stream"]


class ModelError(RuntimeError):
    """A speech model directory that cannot be used (missing, incomplete, unreadable)."""


class GrammarError(ValueError):
    """A grammar the model cannot honour (no grammar support, or words it would drop)."""


# --------------------------------------------------------------------------------------------
# Model facts (no Vosk needed)
# --------------------------------------------------------------------------------------------


class ModelInfo:
    """What a model directory offers, read from its files without loading the 500 MB model.

    The config checker needs the vocabulary and grammar support; the loader needs the rate.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sample_rate = _read_sample_rate(path)
        hclr = _first_existing(path, "graph/HCLr.fst", "HCLr.fst")
        gr = _first_existing(path, "graph/Gr.fst", "Gr.fst")
        self.supports_grammar = hclr is not None and gr is not None
        rules = _read_endpoint_rules(path)
        self.endpoint_min_silence_s = min(
            rules[f"rule{i}.min-trailing-silence"] for i in range(1, 5)
        )
        self.endpoint_max_utterance_s = rules["rule5.min-utterance-length"]
        self._vocabulary: frozenset[str] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ModelInfo({str(self.path)!r}, rate={self.sample_rate})"

    @property
    def vocabulary(self) -> frozenset[str]:
        """Every word symbol the model's graph can output, as spelled in the model."""
        with self._lock:
            if self._vocabulary is None:
                self._vocabulary = _read_vocabulary(self.path)
            return self._vocabulary

    @property
    def unk_word(self) -> str | None:
        """The model's own spelling of the unknown-word token, if it has one."""
        vocab = self.vocabulary
        return next((w for w in _UNK_SPELLINGS if w in vocab), None)

    def has_word(self, word: str) -> bool:
        return word in self.vocabulary


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Check that ``path`` holds a Vosk model and read its static facts."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelError(f"speech model directory {p} does not exist")
    if _first_existing(p, "am/final.mdl", "final.mdl") is None:
        raise ModelError(f"{p} is not a Vosk model directory (no am/final.mdl)")
    return ModelInfo(p.resolve())


def _first_existing(root: Path, *names: str) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def _read_sample_rate(path: Path) -> int:
    conf = _first_existing(path, "conf/mfcc.conf", "mfcc.conf")
    if conf is not None:
        for line in conf.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.strip().partition("=")
            if key == "--sample-frequency":
                try:
                    return int(float(value))
                except ValueError as exc:
                    raise ModelError(f"{conf}: bad --sample-frequency {value!r}") from exc
    return 16000  # Kaldi's default, and what every small Vosk model uses


# Kaldi's OnlineEndpointConfig defaults, which model.conf may override.
_ENDPOINT_DEFAULTS = {
    "rule1.min-trailing-silence": 5.0,
    "rule2.min-trailing-silence": 0.5,
    "rule3.min-trailing-silence": 1.0,
    "rule4.min-trailing-silence": 2.0,
    "rule5.min-utterance-length": 20.0,
}


def _read_endpoint_rules(path: Path) -> dict[str, float]:
    rules = dict(_ENDPOINT_DEFAULTS)
    conf = _first_existing(path, "conf/model.conf", "model.conf")
    if conf is not None:
        for line in conf.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.strip().removeprefix("--endpoint.").partition("=")
            if key in rules:
                try:
                    rules[key] = float(value)
                except ValueError as exc:
                    raise ModelError(f"{conf}: bad endpoint setting {line.strip()!r}") from exc
    return rules


def _read_vocabulary(path: Path) -> frozenset[str]:
    words_txt = _first_existing(path, "graph/words.txt", "words.txt")
    if words_txt is not None:
        with words_txt.open(encoding="utf-8") as f:
            return frozenset(line.split()[0] for line in f if line.strip())
    # Small models ship no words.txt; the symbol table is embedded in the grammar FST header.
    for name in ("graph/Gr.fst", "Gr.fst", "graph/HCLG.fst", "HCLG.fst"):
        fst = path / name
        if fst.is_file():
            words = _fst_output_symbols(fst)
            if words is not None:
                return words
    raise ModelError(f"{path}: cannot find the model's vocabulary (no words.txt, no FST symbols)")


_FST_MAGIC = 2125659606
_SYMTAB_MAGIC = 2125658996
_FST_HAS_ISYMBOLS, _FST_HAS_OSYMBOLS = 0x1, 0x2


def _fst_output_symbols(fst: Path) -> frozenset[str] | None:
    """Read the output symbol table from an OpenFst binary file's header, if it carries one."""
    with fst.open("rb") as f:
        reader = _Reader(f)
        if reader.i32() != _FST_MAGIC:
            return None
        reader.string()  # fst type
        reader.string()  # arc type
        reader.i32()  # version
        flags = reader.i32()
        reader.skip(8 * 4)  # properties, start, num states, num arcs
        tables = []
        for bit in (_FST_HAS_ISYMBOLS, _FST_HAS_OSYMBOLS):
            if flags & bit:
                tables.append(_read_symbol_table(reader))
        return tables[-1] if tables else None


def _read_symbol_table(reader: _Reader) -> frozenset[str]:
    if reader.i32() != _SYMTAB_MAGIC:
        raise ModelError("corrupt symbol table in FST header")
    reader.string()  # name
    reader.skip(8)  # available key
    (size,) = struct.unpack("<q", reader.read(8))
    words = set()
    for _ in range(size):
        word = reader.string()
        reader.skip(8)  # key
        if word not in _NOT_WORDS and not word.startswith("#"):
            words.add(word)
    return frozenset(words)


class _Reader:
    def __init__(self, f: Any) -> None:
        self._f = f

    def read(self, n: int) -> bytes:
        data = cast(bytes, self._f.read(n))
        if len(data) != n:
            raise ModelError("truncated FST header")
        return data

    def skip(self, n: int) -> None:
        self.read(n)

    def i32(self) -> int:
        return cast(int, struct.unpack("<i", self.read(4))[0])

    def string(self) -> str:
        n = self.i32()
        if not 0 <= n < 1 << 20:
            raise ModelError("corrupt string in FST header")
        return self.read(n).decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# Loaded models
# --------------------------------------------------------------------------------------------


class _VoskModel(Protocol):
    def vosk_model_find_word(self, word: str) -> int: ...


class _VoskRecognizer(Protocol):
    def SetMaxAlternatives(self, n: int) -> None: ...
    def SetWords(self, enabled: bool) -> None: ...
    def SetPartialWords(self, enabled: bool) -> None: ...
    def AcceptWaveform(self, data: bytes) -> int: ...
    def PartialResult(self) -> str: ...
    def Result(self) -> str: ...
    def FinalResult(self) -> str: ...
    def Reset(self) -> None: ...


def _vosk() -> Any:
    """Import vosk lazily: it is an optional extra, and text-only tools must work without it."""
    try:
        return importlib.import_module("vosk")
    except ImportError as exc:
        raise ModelError(
            "speech recognition needs the vosk package: pip install 'voicebot[speech]'"
        ) from exc


class SpeechModel:
    """A loaded Vosk model; shared by every call in the language (Vosk models are thread-safe)."""

    def __init__(self, info: ModelInfo, vosk_model: _VoskModel) -> None:
        self.info = info
        self._model = vosk_model
        self.unk_word = next((w for w in _UNK_SPELLINGS if self.has_word(w)), None)

    def __repr__(self) -> str:
        return f"SpeechModel({str(self.path)!r}, rate={self.sample_rate})"

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def supports_grammar(self) -> bool:
        return self.info.supports_grammar

    def has_word(self, word: str) -> bool:
        """Ask Vosk itself, which is the authority on what a grammar would keep."""
        return bool(word) and self._model.vosk_model_find_word(word) >= 0


class ModelRegistry:
    """One loaded model per directory per process: a model costs seconds and ~0.5 GB each."""

    def __init__(self) -> None:
        self._models: dict[Path, SpeechModel] = {}
        self._loading: dict[Path, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, path: str | os.PathLike[str]) -> SpeechModel:
        info = inspect_model(path)
        key = info.path
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                return model
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:  # other models keep loading in parallel; this one loads once
            with self._lock:
                model = self._models.get(key)
            if model is None:
                model = self._load(info)
                with self._lock:
                    self._models[key] = model
                    self._loading.pop(key, None)
            return model

    def loaded(self) -> list[Path]:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        """Forget loaded models (they are freed once no recogniser uses them)."""
        with self._lock:
            self._models.clear()

    @staticmethod
    def _load(info: ModelInfo) -> SpeechModel:
        vosk = _vosk()
        if "VOICEBOT_VOSK_LOG" not in os.environ:
            vosk.SetLogLevel(-1)  # we report dropped grammar words ourselves
        try:
            model = vosk.Model(str(info.path))
        except Exception as exc:  # vosk raises a bare Exception
            raise ModelError(f"Vosk could not load the model in {info.path}: {exc}") from exc
        return SpeechModel(info, cast(_VoskModel, model))


_REGISTRY = ModelRegistry()


def load_model(path: str | os.PathLike[str]) -> SpeechModel:
    """Load (or reuse) the model in ``path`` from the process-wide registry."""
    return _REGISTRY.get(path)


# --------------------------------------------------------------------------------------------
# Vocabulary checks
# --------------------------------------------------------------------------------------------


def known_words(model: SpeechModel | ModelInfo) -> frozenset[str]:
    """Words a grammar may use with this model; includes ``[unk]`` when the model has one."""
    info = model.info if isinstance(model, SpeechModel) else model
    vocab = info.vocabulary
    unk = info.unk_word
    if unk is None:
        return vocab
    return (vocab - {unk}) | {UNK}


def unknown_words(model: SpeechModel | ModelInfo, phrases: Iterable[str]) -> list[str]:
    """Grammar words Vosk would silently drop, in first-seen order, without duplicates."""
    unk = model.unk_word
    missing: dict[str, None] = {}
    for phrase in phrases:
        for word in phrase.split():
            ok = unk is not None if word == UNK else model.has_word(word)
            if not ok:
                missing[word] = None
    return list(missing)


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    conf: float | None  # None in n-best mode, where Vosk gives no per-word confidence


@dataclass(frozen=True)
class Alternative:
    """One hypothesis. ``confidence`` is in [0, 1]: the mean word posterior with a single
    hypothesis, the share of the n-best probability mass with several. Grammar mode forces
    out-of-grammar speech onto grammar words, so do not reject on this number alone."""

    text: str
    confidence: float
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Partial:
    text: str
    time: float  # stream time (s since call start) when this hypothesis was current


@dataclass(frozen=True)
class Final:
    alternatives: tuple[Alternative, ...]  # best first, never empty
    start: float  # first word start, s since call start
    end: float  # last word end
    time: float  # stream time when the utterance was closed
    reason: EndReason

    @property
    def text(self) -> str:
        return self.alternatives[0].text

    @property
    def confidence(self) -> float:
        return self.alternatives[0].confidence


@dataclass(frozen=True)
class NoSpeech:
    """Nothing was said for ``no_speech_timeout_s``; the clock restarts after this."""

    start: float
    time: float


RecognizerEvent = Partial | Final | NoSpeech


@dataclass(frozen=True)
class Endpointing:
    end_of_speech_s: float = 0.7
    no_speech_timeout_s: float = 5.0
    max_utterance_s: float = 20.0

    def __post_init__(self) -> None:
        for name in ("end_of_speech_s", "no_speech_timeout_s", "max_utterance_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


# --------------------------------------------------------------------------------------------
# Recogniser
# --------------------------------------------------------------------------------------------


@dataclass
class _Segment:
    """State of the utterance being listened to."""

    start: float  # when listening for it began
    speech_start: float | None = None  # when the partial result first had a word
    endpoint_since: float | None = None  # when Vosk's endpoint flag rose with no word since
    partial: str = ""


class Recognizer:
    """One call's recogniser. Not thread-safe across concurrent feeds (a lock serialises them);
    create one per call and feed it in order."""

    def __init__(
        self,
        model: SpeechModel,
        *,
        mode: Mode = "open",
        phrases: Sequence[str] = (),
        endpointing: Endpointing | None = None,
        call_rate: int = 8000,
        max_alternatives: int = 1,
        partials: bool = True,
        allow_unknown_words: bool = False,
    ) -> None:
        if max_alternatives < 1:
            raise ValueError("max_alternatives must be at least 1")
        if call_rate <= 0:
            raise ValueError("call_rate must be positive")
        self.model = model
        self.mode: Mode = mode
        self.endpointing = endpointing or Endpointing()
        self.call_rate = call_rate
        self.max_alternatives = max_alternatives
        self._emit_partials = partials
        self._rate = model.sample_rate
        self._block = max(1, round(self._rate * BLOCK_S))
        self._resampler = Resampler(call_rate, self._rate) if call_rate != self._rate else None
        self._pending: NDArray[np.int16] = np.zeros(0, dtype=np.int16)
        self._fed = 0  # samples handed to Vosk, at the model rate
        self._segment = _Segment(start=0.0)
        self._vad = EnergyVad(self._rate)
        self._finished = False
        self._lock = threading.Lock()
        self._unk = model.unk_word

        vosk = _vosk()
        if mode == "grammar":
            self.grammar: list[str] | None = _build_grammar(model, phrases, allow_unknown_words)
            rec = vosk.KaldiRecognizer(
                model._model, float(self._rate), json.dumps(self.grammar, ensure_ascii=False)
            )
        elif mode == "open":
            if phrases:
                raise ValueError("phrases are only used in grammar mode")
            self.grammar = None
            rec = vosk.KaldiRecognizer(model._model, float(self._rate))
        else:
            raise ValueError(f"unknown recogniser mode {mode!r}")
        self._rec = cast(_VoskRecognizer, rec)
        # 0 alternatives = Vosk's MBR path, the only one with per-word confidences.
        self._rec.SetMaxAlternatives(0 if max_alternatives == 1 else max_alternatives)
        self._rec.SetWords(True)
        # How long Vosk's endpoint flag must hold beyond its own minimum trailing silence.
        self._hold = max(0.0, self.endpointing.end_of_speech_s - model.info.endpoint_min_silence_s)

    @property
    def time(self) -> float:
        """Seconds of audio decoded so far (the recogniser's clock)."""
        return self._fed / self._rate

    def feed(self, pcm: bytes | NDArray[np.int16]) -> list[RecognizerEvent]:
        """Decode the next chunk of 16-bit PCM at ``call_rate``; returns what it settled."""
        samples = _as_int16(pcm)
        with self._lock:
            if self._finished:
                raise RuntimeError("recogniser already flushed; create a new one per call")
            if self._resampler is not None:
                samples = cast(NDArray[np.int16], self._resampler.process(samples))
            self._pending = np.concatenate([self._pending, samples])
            return self._drain()

    def flush(self) -> list[RecognizerEvent]:
        """End of stream: decode what is buffered and close the open utterance."""
        with self._lock:
            if self._finished:
                return []
            self._finished = True
            if self._resampler is not None:
                tail = cast(NDArray[np.int16], self._resampler.flush(np.int16))
                self._pending = np.concatenate([self._pending, tail])
            events = self._drain()
            if len(self._pending):
                self._accept(self._pending)
                self._fed += len(self._pending)
                self._pending = self._pending[:0]
            events += self._close("end_of_stream", self._rec.FinalResult())
            return events

    async def feed_async(self, pcm: bytes | NDArray[np.int16]) -> list[RecognizerEvent]:
        """``feed`` on the shared decoding pool, so many calls use all cores (Vosk drops the GIL).
        Await each call before the next one for the same recogniser."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(decode_executor(), self.feed, pcm)

    async def flush_async(self) -> list[RecognizerEvent]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(decode_executor(), self.flush)

    def _drain(self) -> list[RecognizerEvent]:
        events: list[RecognizerEvent] = []
        n_blocks = len(self._pending) // self._block
        for i in range(n_blocks):
            block = self._pending[i * self._block : (i + 1) * self._block]
            events += self._step(block)
        self._pending = self._pending[n_blocks * self._block :]
        return events

    def _accept(self, block: NDArray[np.int16]) -> bool:
        self._vad.process(block)
        return bool(self._rec.AcceptWaveform(block.astype("<i2").tobytes()))

    def _step(self, block: NDArray[np.int16]) -> list[RecognizerEvent]:
        vosk_endpoint = self._accept(block)
        self._fed += len(block)
        now = self.time
        seg = self._segment
        events: list[RecognizerEvent] = []
        # The cheap best-path partial: current, unlike the word-timed one.
        text = _normalise_text(json.loads(self._rec.PartialResult()).get("partial", ""), self._unk)
        if text != seg.partial:
            seg.partial = text
            seg.endpoint_since = None  # new or revised words: the silence so far does not count
            if self._emit_partials:
                events.append(Partial(text, now))
        ep = self.endpointing
        if text:
            if seg.speech_start is None:
                seg.speech_start = now
            if vosk_endpoint and seg.endpoint_since is None:
                seg.endpoint_since = now
            quiet = self._vad.trailing_silence(now) >= ep.end_of_speech_s - _EPS
            vosk_quiet = (
                seg.endpoint_since is not None and now - seg.endpoint_since >= self._hold - _EPS
            )
            if quiet or vosk_quiet:
                events += self._close("end_of_speech", self._rec.Result())
            elif now - seg.speech_start >= ep.max_utterance_s - _EPS:
                events += self._close("max_length", self._rec.Result())
        elif now - seg.start >= ep.no_speech_timeout_s - _EPS:
            self._rec.Reset()
            events.append(NoSpeech(seg.start, now))
            self._segment = _Segment(start=now)
        return events

    def _close(self, reason: EndReason, raw: str) -> list[RecognizerEvent]:
        now = self.time
        self._segment = _Segment(start=now)
        alternatives = _parse_result(json.loads(raw), self._unk)
        if not alternatives:
            return []
        words = alternatives[0].words
        start = words[0].start if words else now
        end = words[-1].end if words else now
        return [Final(alternatives, start, end, now, reason)]


def _build_grammar(model: SpeechModel, phrases: Sequence[str], allow_unknown: bool) -> list[str]:
    if not model.supports_grammar:
        raise GrammarError(
            f"the model in {model.path} does not support grammars (no graph/HCLr.fst and "
            "graph/Gr.fst); use open mode or a small Vosk model"
        )
    missing = unknown_words(model, phrases)
    if missing and not allow_unknown:
        raise GrammarError(
            f"the model in {model.path} does not know these grammar words, which Vosk would "
            f"silently drop: {', '.join(missing)}"
        )
    unk = model.unk_word
    out: dict[str, None] = {}  # ordered set: Vosk builds its bigram model from these lines
    for phrase in phrases:
        kept = []
        for w in phrase.split():
            if w == UNK:
                if unk is not None:
                    kept.append(unk)
            elif w not in missing:
                kept.append(w)
        if kept:
            out[" ".join(kept)] = None
    if not any(p != unk for p in out):
        raise GrammarError("the grammar has no phrase with a word the model knows")
    if unk is not None:
        out[unk] = None  # lets out-of-grammar speech land somewhere visible
    return list(out)


def _normalise_text(text: str, unk_word: str | None) -> str:
    if unk_word is None or unk_word == UNK or unk_word not in text:
        return text
    return " ".join(UNK if w == unk_word else w for w in text.split())


def _parse_result(obj: dict[str, Any], unk_word: str | None) -> tuple[Alternative, ...]:
    def words_of(items: list[dict[str, Any]]) -> tuple[Word, ...]:
        return tuple(
            Word(
                UNK if w["word"] == unk_word else str(w["word"]),
                float(w["start"]),
                float(w["end"]),
                float(w["conf"]) if "conf" in w else None,
            )
            for w in items
        )

    if "alternatives" not in obj:  # single best, with word posteriors
        words = words_of(obj.get("result") or [])
        text = _normalise_text(obj.get("text", ""), unk_word)
        if not text:
            return ()
        conf = sum(w.conf or 0.0 for w in words) / len(words) if words else 0.0
        return (Alternative(text, conf, words),)

    # n-best: Vosk gives total log-likelihoods; turn them into shares of the listed mass and
    # merge hypotheses that differ only in timing.
    alts = obj["alternatives"]
    if not alts:
        return ()
    scores = np.array([float(a.get("confidence", 0.0)) for a in alts])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    merged: dict[str, tuple[float, tuple[Word, ...]]] = {}
    for a, p in zip(alts, probs, strict=True):
        text = _normalise_text(a.get("text", ""), unk_word)
        if not text:
            continue
        if text in merged:
            merged[text] = (merged[text][0] + float(p), merged[text][1])
        else:
            merged[text] = (float(p), words_of(a.get("result") or []))
    ranked = sorted(merged.items(), key=lambda kv: -kv[1][0])
    return tuple(Alternative(t, p, w) for t, (p, w) in ranked)


def _as_int16(pcm: bytes | bytearray | memoryview | NDArray[np.int16]) -> NDArray[np.int16]:
    if isinstance(pcm, bytes | bytearray | memoryview):
        if len(pcm) % 2:
            raise ValueError("16-bit PCM chunk has an odd number of bytes")
        return np.frombuffer(pcm, dtype="<i2").astype(np.int16)
    arr = np.asarray(pcm)
    if arr.dtype != np.int16 or arr.ndim != 1:
        raise TypeError(f"expected 1-D int16 samples, got {arr.dtype} with shape {arr.shape}")
    return arr


_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def decode_executor() -> ThreadPoolExecutor:
    """The process-wide decoding pool, one thread per core (decoding is CPU-bound)."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="vosk-decode"
            )
        return _EXECUTOR
