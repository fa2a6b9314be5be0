"""Vosk speech recognition for one caller at a time, with one shared model per language.

Endpointing. Vosk 0.3.45 (the current PyPI release) has no ``SetEndpointerDelays``: its rules
are fixed per model in ``conf/model.conf`` (trailing silence of 0.5 s when the decoder is
confident, 1.0 s when less so, 2.0 s always), and in open mode it can miss trailing silence
altogether (seen on digital zeros). So the recogniser decides itself, over sample counts, while
the current best-path partial result has words:

- end of speech: ``end_of_speech_s`` of trailing silence by an energy VAD (``audio.EnergyVad``)
  that heard speech in this utterance, or Vosk's own endpoint flag held for the rest of
  ``end_of_speech_s`` without new words (covers noisy lines where the energy never drops);
- max length: ``max_utterance_s`` after the first word appeared in the partial result (which
  lags the speech by up to about a second);

and, without words, no speech: ``no_speech_timeout_s`` since the no-speech clock was armed. It
is armed from the start and restarts at each closed utterance, unless the shell holds it
(``disarm_no_speech``) while its prompt plays and arms it when the prompt has finished
(``arm_no_speech``): a caller must not time out while the bot is still talking.

Times come from the number of samples fed, never the wall clock, so the same words give the
same endpoint decisions on replay. (Vosk 0.3.45 itself is not deterministic: in open mode the
same audio can give different words run to run, and word confidences vary in every mode.)
Audio goes to Vosk in fixed blocks of ``BLOCK_S`` whatever the caller's chunking, because
Vosk's incremental decoder gives different words when results are requested at different points.

Dither. Kaldi adds Gaussian noise to every sample before its features (``--dither``, 1.0 by
default, which the small Vosk models leave on), drawn from a generator seeded from the
process-wide ``rand()``. So the same audio decoded twice in one process, or decoded while other
calls decode, gets different noise, and audio near a decision boundary (a mu-law telephone
rendering of a short word) came out as different words depending on what the process had
decoded before: 5 of 15 identical decodes in a row heard the escape word, the rest did not.
The model is therefore loaded with ``--dither=0`` (from a shadow directory whose ``conf/`` is a
patched copy) and the recogniser adds the same amount of noise itself, from a fixed table
indexed by the sample's position in the call: the noise a sample gets depends only on when it
was said, so the same audio gives the same words at 1 or 50 concurrent calls.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import json
import math
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from voicebot.core.config import LanguageConfig
from voicebot.speech.audio import EnergyVad, Resampler, as_int16
from voicebot.speech.model_store import ModelError  # one error for every model problem

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
    "PartialTranscript",
    "Recognizer",
    "RecognizerEvent",
    "SpeechModel",
    "Word",
    "decode_executor",
    "grammar_phrases",
    "grammar_text",
    "inspect_model",
    "load_model",
    "unknown_words",
    "usable_cpus",
]

UNK = "[unk]"
"""How an out-of-vocabulary stretch is spelled in every event, whatever the model calls it."""

_UNK_SPELLINGS = ("[unk]", "<unk>", "<UNK>")
_FEATURE_CONFS = ("mfcc.conf", "fbank.conf")
KALDI_DITHER = 1.0
"""Kaldi's default ``--dither``: standard deviation of the noise, in 16-bit sample units."""
_DITHER_TABLE_SIZE = 1 << 16
_EPS = 1e-9  # float slack when comparing sample-derived times
_PARTIAL_LAG_S = 0.15  # how far a real word's partial may trail the VAD's last voiced frame
BLOCK_S = 0.1
"""Decoding granularity: endpoint decisions and partials happen on these boundaries."""

Mode = Literal["open", "grammar"]
EndReason = Literal["end_of_speech", "early_end", "max_length", "end_of_stream"]


class GrammarError(ValueError):
    """A grammar the model cannot honour (no grammar support, or words it would drop)."""


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """What a model directory offers, read from its small config files."""

    path: Path
    sample_rate: int
    supports_grammar: bool  # only models with graph/HCLr.fst + Gr.fst take a grammar
    endpoint_min_silence_s: float  # the earliest Vosk's own endpoint flag can rise
    dither: float = KALDI_DITHER  # the feature config's --dither (Kaldi's default when absent)
    features_conf: str | None = None  # conf/mfcc.conf or conf/fbank.conf, relative to path


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Check that ``path`` holds a Vosk model and read its static facts."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelError(f"speech model directory {p} does not exist")
    if _first_existing(p, "am/final.mdl", "final.mdl") is None:
        raise ModelError(f"{p} is not a Vosk model directory (no am/final.mdl)")
    grammar = all(_first_existing(p, f"graph/{n}", n) for n in ("HCLr.fst", "Gr.fst"))
    rate = _conf_value(p, "mfcc.conf", "--sample-frequency", 16000.0)  # Kaldi's default
    silence = min(
        _conf_value(p, "model.conf", f"--endpoint.rule{i}.min-trailing-silence", default)
        for i, default in ((1, 5.0), (2, 0.5), (3, 1.0), (4, 2.0))  # Kaldi's defaults
    )
    features = next((f"conf/{n}" for n in _FEATURE_CONFS if (p / "conf" / n).is_file()), None)
    dither = KALDI_DITHER
    if features is not None:
        dither = _conf_value(p, Path(features).name, "--dither", KALDI_DITHER)
    return ModelInfo(p.resolve(), int(rate), grammar, silence, dither, features)


def _first_existing(root: Path, *names: str) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def _conf_value(model: Path, name: str, key: str, default: float) -> float:
    conf = _first_existing(model, f"conf/{name}", name)
    if conf is None:
        return default
    for line in conf.read_text(encoding="utf-8", errors="replace").splitlines():
        k, _, value = line.strip().partition("=")
        if k == key:
            try:
                return float(value)
            except ValueError:
                raise ModelError(f"{conf}: bad setting {line.strip()!r}") from None
    return default


def _vosk() -> Any:
    """Import vosk lazily: text-only tools (chat, eval, check) must start fast without it."""
    try:
        return importlib.import_module("vosk")
    except ImportError as exc:
        raise ModelError("speech recognition needs the vosk package: pip install vosk") from exc


class SpeechModel:
    """A loaded Vosk model, shared by every call in its language (Vosk models are thread-safe;
    recognisers are not)."""

    def __init__(self, info: ModelInfo, vosk_model: Any, *, dither: float = 0.0) -> None:
        self.info = info
        self.vosk_model = vosk_model
        self.dither = dither  # noise the recogniser adds (Kaldi's own is off), sample units
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
        """Ask Vosk itself, the authority on what a grammar would keep."""
        return bool(word) and int(self.vosk_model.vosk_model_find_word(word)) >= 0


class ModelRegistry:
    """One loaded model per directory per process: each costs seconds and ~0.5 GB."""

    def __init__(self) -> None:
        self._models: dict[Path, SpeechModel] = {}
        self._lock = threading.Lock()

    def get(self, path: str | os.PathLike[str]) -> SpeechModel:
        info = inspect_model(path)
        with self._lock:  # held while loading, so concurrent first calls load once
            model = self._models.get(info.path)
            if model is None:
                model = self._models[info.path] = _load(info)
            return model

    def for_language(self, lang: str) -> SpeechModel:
        """The model for a language tag; ``models.MissingModelError`` says how to get it."""
        from voicebot.speech import model_store as models

        return self.get(models.require(lang))

    def loaded(self) -> list[Path]:
        with self._lock:
            return list(self._models)


def _load(info: ModelInfo) -> SpeechModel:
    vosk = _vosk()
    if "VOICEBOT_VOSK_LOG" not in os.environ:
        vosk.SetLogLevel(-1)  # we report dropped grammar words ourselves
    # Without a feature config to patch, Kaldi dithers as it likes and we add nothing.
    patch = info.dither != 0 and info.features_conf is not None
    try:
        model = vosk.Model(str(_without_dither(info) if patch else info.path))
    except Exception as exc:  # vosk raises a bare Exception
        raise ModelError(f"Vosk could not load the model in {info.path}: {exc}") from exc
    return SpeechModel(info, model, dither=info.dither if patch else 0.0)


def _without_dither(info: ModelInfo) -> Path:
    """A shadow of the model directory whose feature config says ``--dither=0``: symlinks to
    everything but ``conf/``, which is copied and patched. Kaldi's own dither is not
    reproducible (see the module docstring); the recogniser adds the same noise itself."""
    shadow = Path(tempfile.mkdtemp(prefix="voicebot-model-"))
    atexit.register(shutil.rmtree, shadow, ignore_errors=True)
    for entry in info.path.iterdir():
        if entry.name != "conf":
            (shadow / entry.name).symlink_to(entry.resolve())
    conf = shadow / "conf"
    shutil.copytree(info.path / "conf", conf, symlinks=False)
    assert info.features_conf is not None
    features = shadow / info.features_conf
    kept = [
        line
        for line in features.read_text(encoding="utf-8", errors="replace").splitlines()
        if not line.strip().startswith("--dither")
    ]
    features.write_text("\n".join([*kept, "--dither=0", ""]), encoding="utf-8")
    return shadow


def _dither_table() -> NDArray[np.float32]:
    """Unit Gaussian noise, the same in every process (fixed seed)."""
    return np.random.default_rng(0x766F736B).standard_normal(_DITHER_TABLE_SIZE).astype(np.float32)


_DITHER = _dither_table()


REGISTRY = ModelRegistry()
"""The process-wide registry that ``load_model`` uses."""


def load_model(path: str | os.PathLike[str]) -> SpeechModel:
    """Load (or reuse) the model in ``path`` from the process-wide registry."""
    return REGISTRY.get(path)


# --------------------------------------------------------------------------------------------
# Grammars
# --------------------------------------------------------------------------------------------


_NON_GRAMMAR = re.compile(r"[^\w']+|_")


def grammar_phrases(config: LanguageConfig) -> list[str]:
    """Everything a caller may usefully say in this language, for a grammar-mode recogniser:
    intent phrases, examples and labels, and the escape/yes/no words; deduplicated and sorted
    so the built grammar is reproducible."""
    texts: list[str] = [*config.words.escape, *config.words.yes, *config.words.no]
    for intent in config.intents.values():
        texts += [*intent.phrases, *intent.examples, intent.label]
    return sorted({n for n in map(grammar_text, texts) if n})


def grammar_text(text: str) -> str:
    """Lower-case words without punctuation, spelled as Vosk vocabularies spell them.

    Unlike ``text.normalize`` this keeps apostrophes inside words: the models know "that's",
    not "thats". The matcher normalises the recogniser's output again, so both agree.
    """
    text = unicodedata.normalize("NFC", text).casefold()
    words = (w.strip("'") for w in _NON_GRAMMAR.split(text))
    return " ".join(w for w in words if w)


def unknown_words(model: SpeechModel, phrases: Iterable[str]) -> list[str]:
    """Grammar words Vosk would silently drop, in first-seen order, without duplicates."""
    missing: dict[str, None] = {}
    for phrase in phrases:
        for word in phrase.split():
            known = model.unk_word is not None if word == UNK else model.has_word(word)
            if not known:
                missing[word] = None
    return list(missing)


def _build_grammar(model: SpeechModel, phrases: Sequence[str], allow_unknown: bool) -> list[str]:
    if not model.supports_grammar:
        raise GrammarError(
            f"the model in {model.path} does not support grammars (no graph/HCLr.fst and "
            "graph/Gr.fst); use open mode or a small Vosk model"
        )
    missing = set(unknown_words(model, phrases))
    if missing and not allow_unknown:
        raise GrammarError(
            f"the model in {model.path} does not know these grammar words, which Vosk would "
            f"silently drop: {', '.join(unknown_words(model, phrases))}"
        )
    unk = model.unk_word
    out: dict[str, None] = {}  # ordered set: Vosk builds its bigram model from these lines
    for phrase in phrases:
        kept = [(unk or w) if w == UNK else w for w in phrase.split() if w not in missing]
        if kept:
            out[" ".join(kept)] = None
    if not any(p != unk for p in out):
        raise GrammarError("the grammar has no phrase with a word the model knows")
    if unk is not None:
        out[unk] = None  # lets out-of-grammar speech land somewhere visible
    return list(out)


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
class PartialTranscript:
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


RecognizerEvent = PartialTranscript | Final | NoSpeech


@dataclass(frozen=True)
class Endpointing:
    end_of_speech_s: float = 0.7
    no_speech_timeout_s: float = 5.0
    max_utterance_s: float = 20.0
    # After this much energy silence (0: never) the recogniser asks its ``end_turn`` predicate
    # whether the words so far are a complete answer; yes closes the utterance at once.
    early_end_pause_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("end_of_speech_s", "no_speech_timeout_s", "max_utterance_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not (math.isfinite(self.early_end_pause_s) and self.early_end_pause_s >= 0):
            raise ValueError(f"early_end_pause_s must be >= 0, got {self.early_end_pause_s!r}")


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
    asked: str | None = None  # the partial the end_turn predicate last judged
    changed_at: float = 0.0  # when the partial last changed
    # After an early end: until then, words without new voiced audio are the closed turn's
    # tail (the decoder restarted mid-word), not a new utterance.
    settle_until: float | None = None


class Recognizer:
    """One call's recogniser: create one per call and feed it in order (a lock serialises
    feeds, but interleaving two streams into one recogniser makes no sense).

    ``phrases`` (grammar mode only) restrict what can be recognised; words the model lacks raise
    ``GrammarError`` unless ``allow_unknown_words``, when they are dropped and listed in
    ``dropped_words``.
    """

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
        end_turn: Callable[[str], bool] | None = None,
    ) -> None:
        if max_alternatives < 1:
            raise ValueError("max_alternatives must be at least 1")
        if call_rate <= 0:
            raise ValueError("call_rate must be positive")
        self.model = model
        self.mode: Mode = mode
        self.endpointing = endpointing or Endpointing()
        self.call_rate = call_rate
        self._emit_partials = partials
        self._end_turn = end_turn  # is this partial a complete answer? (intent-aware end)
        self._rate = model.sample_rate
        self._block = max(1, round(self._rate * BLOCK_S))
        self._resampler = Resampler(call_rate, self._rate) if call_rate != self._rate else None
        # Samples at the model rate as float32: Vosk takes floats (in 16-bit units), so the
        # resampler's output needs no rounding and the dither can be added without clipping.
        self._pending: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._fed = 0  # samples handed to Vosk, at the model rate
        self._segment = _Segment(start=0.0)
        self._listen_from: float | None = 0.0  # start of the no-speech clock; None: held
        self._vad = EnergyVad(self._rate)
        self._finished = False
        self._lock = threading.Lock()
        self._unk = model.unk_word

        vosk = _vosk()
        self.grammar: list[str] | None = None
        self.dropped_words: list[str] = []
        if mode == "grammar":
            self.grammar = _build_grammar(model, phrases, allow_unknown_words)
            self.dropped_words = unknown_words(model, phrases)
            # ensure_ascii=False matters: Vosk does not decode \uXXXX escapes and would drop
            # every non-ASCII word as unknown.
            grammar_json = json.dumps(self.grammar, ensure_ascii=False)
            self._rec = vosk.KaldiRecognizer(model.vosk_model, float(self._rate), grammar_json)
        elif mode == "open":
            if phrases:
                raise ValueError("phrases are only used in grammar mode")
            self._rec = vosk.KaldiRecognizer(model.vosk_model, float(self._rate))
        else:
            raise ValueError(f"unknown recogniser mode {mode!r}")
        # 0 alternatives = Vosk's MBR path, the only one with per-word confidences.
        self._rec.SetMaxAlternatives(0 if max_alternatives == 1 else max_alternatives)
        self._rec.SetWords(True)
        c_api = getattr(vosk, "_c", None)
        self._accept_f = getattr(c_api, "vosk_recognizer_accept_waveform_f", None)
        self._ffi = getattr(vosk, "_ffi", None)
        self._dither = float(model.dither)
        # How long Vosk's endpoint flag must hold beyond its own minimum trailing silence.
        self._hold = max(0.0, self.endpointing.end_of_speech_s - model.info.endpoint_min_silence_s)

    @property
    def time(self) -> float:
        """Seconds of audio decoded so far (the recogniser's clock)."""
        return self._fed / self._rate

    @property
    def no_speech_armed(self) -> bool:
        return self._listen_from is not None

    def arm_no_speech(self, at: float | None = None) -> None:
        """(Re)start the no-speech clock at stream time ``at`` (default: now), e.g. when the
        prompt before a question has finished playing; ``at`` may lie ahead of the audio fed."""
        with self._lock:
            self._listen_from = self.time if at is None else at

    def disarm_no_speech(self) -> None:
        """Hold the no-speech clock (no ``NoSpeech``) until ``arm_no_speech``; speech is still
        heard."""
        with self._lock:
            self._listen_from = None

    def feed(self, pcm: bytes | NDArray[np.int16]) -> list[RecognizerEvent]:
        """Decode the next chunk of 16-bit PCM at ``call_rate``; returns what it settled."""
        samples = as_int16(pcm).astype(np.float32)
        with self._lock:
            if self._finished:
                raise RuntimeError("recogniser already flushed; create a new one per call")
            if self._resampler is not None:
                samples = cast(NDArray[np.float32], self._resampler.process(samples))
            if len(self._pending):
                samples = np.concatenate([self._pending, samples])
            self._pending = samples
            return self._drain()

    def flush(self) -> list[RecognizerEvent]:
        """End of stream: decode what is buffered and close the open utterance."""
        with self._lock:
            if self._finished:
                return []
            self._finished = True
            if self._resampler is not None:
                tail = cast(NDArray[np.float32], self._resampler.flush(np.float32))
                self._pending = np.concatenate([self._pending, tail])
            events = self._drain()
            if len(self._pending):
                self._accept(self._pending)
                self._fed += len(self._pending)
                self._pending = self._pending[:0]
            return events + self._close("end_of_stream", self._rec.FinalResult())

    async def feed_async(self, pcm: bytes | NDArray[np.int16]) -> list[RecognizerEvent]:
        """``feed`` on the shared decoding pool, so many calls use all cores (Vosk drops the
        GIL). Await each call before the next one for the same recogniser."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(decode_executor(), self.feed, pcm)

    async def flush_async(self) -> list[RecognizerEvent]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(decode_executor(), self.flush)

    def _drain(self) -> list[RecognizerEvent]:
        events: list[RecognizerEvent] = []
        n_blocks = len(self._pending) // self._block
        for i in range(n_blocks):
            events += self._step(self._pending[i * self._block : (i + 1) * self._block])
        self._pending = self._pending[n_blocks * self._block :]
        return events

    def _accept(self, block: NDArray[np.float32]) -> bool:
        self._vad.process(block)
        if self._dither:
            at = (self._fed + np.arange(len(block))) % _DITHER_TABLE_SIZE
            block = block + self._dither * _DITHER[at]
        if self._accept_f is None or self._ffi is None:  # an older vosk without the float API
            pcm = np.clip(np.rint(block), -32768, 32767).astype("<i2")
            return bool(self._rec.AcceptWaveform(pcm.tobytes()))
        data = np.ascontiguousarray(block, dtype=np.float32)
        buffer = self._ffi.from_buffer("float[]", data)
        result = int(self._accept_f(self._rec._handle, buffer, len(data)))
        if result < 0:
            raise RuntimeError("Vosk failed to process the waveform")
        return bool(result)

    def _step(self, block: NDArray[np.float32]) -> list[RecognizerEvent]:
        vosk_endpoint = self._accept(block)
        self._fed += len(block)
        now = self.time
        seg = self._segment
        events: list[RecognizerEvent] = []
        if seg.settle_until is not None:
            if (self._vad.last_speech_end or -1.0) > seg.start:
                seg.settle_until = None  # the caller went on talking: a new utterance
            elif now >= seg.settle_until - _EPS:
                self._rec.Reset()  # drop the tail; the next words start afresh
                self._segment = seg = _Segment(start=now)
            else:
                return events
        # The cheap best-path partial: current, unlike the word-timed one, which lags.
        text = _normalise_text(json.loads(self._rec.PartialResult()).get("partial", ""), self._unk)
        if text != seg.partial:
            seg.partial = text
            seg.changed_at = now
            seg.endpoint_since = None  # new or revised words: the silence so far does not count
            if self._emit_partials:
                events.append(PartialTranscript(text, now))
        ep = self.endpointing
        if text:
            if seg.speech_start is None:
                seg.speech_start = now
            if vosk_endpoint and seg.endpoint_since is None:
                seg.endpoint_since = now
            # Energy silence only counts once the VAD heard this utterance: speech too quiet
            # for it must not be cut at its first word.
            heard = (self._vad.last_speech_end or -1.0) > seg.start
            quiet = heard and self._vad.trailing_silence(now) >= ep.end_of_speech_s - _EPS
            # Vosk's flag alone once cut "요금 ... 청구서" in the middle of the second word (its
            # best path had turned the unfamiliar sound into silence): while the VAD hears a
            # voice, the flag needs half the end-of-speech silence by the VAD as well.
            vosk_quiet = (
                seg.endpoint_since is not None
                and now - seg.endpoint_since >= self._hold - _EPS
                and (not heard or self._vad.trailing_silence(now) >= ep.end_of_speech_s / 2 - _EPS)
            )
            if quiet or vosk_quiet:
                events += self._close("end_of_speech", self._rec.Result())
            elif heard and self._complete(seg, text):
                events += self._close("early_end", self._rec.Result())
                settle = ep.end_of_speech_s - self._vad.trailing_silence(now)
                self._segment.settle_until = now + max(0.0, settle)
            elif now - seg.speech_start >= ep.max_utterance_s - _EPS:
                events += self._close("max_length", self._rec.Result())
        elif (
            self._listen_from is not None
            and now - self._listen_from >= ep.no_speech_timeout_s - _EPS
        ):
            self._rec.Reset()
            events.append(NoSpeech(self._listen_from, now))
            self._segment = _Segment(start=now)
            self._listen_from = now
        elif now - seg.start >= ep.no_speech_timeout_s - _EPS:
            # Nothing said for a while with the clock held (a prompt playing): start the decoder
            # afresh, as a timeout would, so line noise meanwhile never prefixes the next words.
            self._rec.Reset()
            self._segment = _Segment(start=now)
        return events

    def _complete(self, seg: _Segment, text: str) -> bool:
        """The caller has paused for ``early_end_pause_s`` after words the ``end_turn``
        predicate takes as a complete answer (asked once per distinct partial)."""
        pause = self.endpointing.early_end_pause_s
        if self._end_turn is None or pause <= 0 or seg.asked == text:
            return False
        if self._vad.trailing_silence(self.time) < pause - _EPS:
            return False
        seg.asked = text
        # In grammar mode the best-path partial goes on "hearing" words in the silence: after
        # "영업" and a pause it reads "영업 시간" half a second later, the second word aligned to
        # nothing. Only words that were there when the voice stopped count as said.
        last_voiced = self._vad.last_speech_end
        if last_voiced is None or seg.changed_at > last_voiced + _PARTIAL_LAG_S + _EPS:
            return False
        return self._end_turn(text)

    def _close(self, reason: EndReason, raw: str) -> list[RecognizerEvent]:
        now = self.time
        self._segment = _Segment(start=now)
        if self._listen_from is not None:  # a held clock stays held until the shell arms it
            self._listen_from = max(now, self._listen_from)
        alternatives = _parse_result(json.loads(raw), self._unk)
        if not alternatives:
            return []
        words = alternatives[0].words
        start = words[0].start if words else now
        end = words[-1].end if words else now
        return [Final(alternatives, start, end, now, reason)]


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
    for a, p in zip(alts, probs.tolist(), strict=True):
        text = _normalise_text(a.get("text", ""), unk_word)
        if not text:  # "nothing said" keeps its share of the mass, but is no alternative
            continue
        share, words = merged.get(text, (0.0, words_of(a.get("result") or [])))
        merged[text] = (share + p, words)
    ranked = sorted(merged.items(), key=lambda kv: -kv[1][0])
    return tuple(Alternative(t, p, w) for t, (p, w) in ranked)


def usable_cpus() -> int:
    """Cores this process may run on (its affinity), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def decode_executor() -> ThreadPoolExecutor:
    """The process-wide decoding pool, one thread per core this process may run on (decoding
    is CPU-bound; a server pinned to one core gains nothing from a second thread)."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(
                max_workers=usable_cpus(), thread_name_prefix="vosk-decode"
            )
        return _EXECUTOR
