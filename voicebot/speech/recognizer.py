"""Vosk speech recognition for one caller at a time, over a model shared by its language.

The recogniser feeds Vosk and decides when each utterance ends by the rules ``endpointing``
describes; its events are the values in ``transcripts``, the grammar it may be given is built by
``grammar``, the model it decodes with comes from ``vosk_model``, and the noise it adds in place
of Kaldi's is ``dither``'s.

Times come from the number of samples fed, never the wall clock, so the same words give the
same endpoint decisions on replay. (Vosk 0.3.45 itself is not deterministic: in open mode the
same audio can give different words run to run, and word confidences vary in every mode.)
Audio goes to Vosk in fixed blocks of ``BLOCK_S`` whatever the caller's chunking, because
Vosk's incremental decoder gives different words when results are requested at different points.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from voicebot.speech.audio import as_int16
from voicebot.speech.dither import dithered
from voicebot.speech.endpointing import PREROLL_S, Endpointing, EnergyVad
from voicebot.speech.grammar import build_grammar, unknown_words
from voicebot.speech.resample import Resampler
from voicebot.speech.transcripts import (
    EndReason,
    Final,
    NoSpeech,
    PartialTranscript,
    RecognizerEvent,
    normalise_text,
    parse_result,
)
from voicebot.speech.vosk_model import SpeechModel, import_vosk

__all__ = [
    "BLOCK_S",
    "Recognizer",
    # Re-exported: voicebot/telephony/app.py imports it from here (that tree is another
    # engineer's just now); its home is ``vosk_model``.
    "SpeechModel",
    "decode_executor",
    "usable_cpus",
]

_EPS = 1e-9  # float slack when comparing sample-derived times
_PARTIAL_LAG_S = 0.15  # how far a real word's partial may trail the VAD's last voiced frame
BLOCK_S = 0.1
"""Decoding granularity: endpoint decisions and partials happen on these boundaries (each one
as soon as the call's audio up to it has arrived: see ``Recognizer._drain``)."""

Mode = Literal["open", "grammar"]


@lru_cache(maxsize=32)
def _compiled_grammar(
    model: SpeechModel, phrases: tuple[str, ...], allow_unknown: bool
) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """A grammar as Vosk takes it (the phrases it keeps, the words it dropped, its JSON), once
    per model and phrase list: every call of a configuration has the same, and checking each
    word against the model costs microseconds a word, per call, on the server's event loop."""
    grammar = build_grammar(model, phrases, allow_unknown)
    # ensure_ascii=False matters: Vosk does not decode \uXXXX escapes and would drop every
    # non-ASCII word as unknown.
    text = json.dumps(grammar, ensure_ascii=False)
    return tuple(grammar), tuple(unknown_words(model, phrases)), text


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
        # Where the next block ends, in samples of the stream at the model rate. The resampler
        # holds back a few milliseconds of look-ahead, so 100 ms of phone audio yields 4.6 ms
        # less than a block: on a grid of whole blocks each would wait for the next chunk, and
        # every decision came 100 ms late (the caller's wait p50 592 -> 503 ms on asyncio's
        # plain loop, docs/benchmarks.md). So the grid is shifted by that look-ahead
        # (``_lead``): each block ends where 100 ms of the call's audio has been resampled, and
        # the clock counts the look-ahead too, so decisions still fall on the call's 100 ms marks.
        call_block = round(call_rate * BLOCK_S)
        ready = self._resampler.ready_after(call_block) if self._resampler else self._block
        self._next_cut = min(self._block, max(1, ready))
        self._lead = self._block - self._next_cut
        # Samples at the model rate as float32: Vosk takes floats (in 16-bit units), so the
        # resampler's output needs no rounding and the dither can be added without clipping.
        self._pending: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._fed = 0  # samples of the stream so far, at the model rate (the call's clock)
        self._vosk_fed = 0  # of which handed to Vosk (silence may be skipped)
        # Skipped blocks kept as pre-roll: (stream position, samples), the newest PREROLL_S.
        self._held: deque[tuple[int, NDArray[np.float32]]] = deque(
            maxlen=max(1, round(PREROLL_S / BLOCK_S))
        )
        self._segment = _Segment(start=0.0)
        self._listen_from: float | None = 0.0  # start of the no-speech clock; None: held
        self._vad = EnergyVad(self._rate)
        self._finished = False
        self._lock = threading.Lock()
        self._unk = model.unk_word

        vosk = import_vosk()
        self.grammar: list[str] | None = None
        self.dropped_words: list[str] = []
        grammar_json: str | None = None
        if mode == "grammar":
            grammar, dropped, grammar_json = _compiled_grammar(
                model, tuple(phrases), allow_unknown_words
            )
            self.grammar, self.dropped_words = list(grammar), list(dropped)
        elif mode == "open":
            if phrases:
                raise ValueError("phrases are only used in grammar mode")
        else:
            raise ValueError(f"unknown recogniser mode {mode!r}")
        # Vosk's own recogniser is made when the first audio comes, in the thread that decodes
        # it: a phone call's pipeline is built on the server's event loop (twice: the webhook
        # builds one for the call's first words, the stream's instance another), where making
        # it took about 0.3 ms a call and a large grammar much more, and the webhook's copy
        # never hears a sound.
        self._rec: Any = None
        self._grammar_json = grammar_json
        # 0 alternatives = Vosk's MBR path, the only one with per-word confidences.
        self._max_alternatives = 0 if max_alternatives == 1 else max_alternatives
        c_api = getattr(vosk, "_c", None)
        self._accept_f = getattr(c_api, "vosk_recognizer_accept_waveform_f", None)
        self._ffi = getattr(vosk, "_ffi", None)
        self._dither = float(model.dither)
        # How long Vosk's endpoint flag must hold beyond its own minimum trailing silence.
        self._hold = max(0.0, self.endpointing.end_of_speech_s - model.info.endpoint_min_silence_s)

    @property
    def partial(self) -> str:
        """The words of the utterance in progress so far ("" between utterances)."""
        return self._segment.partial

    @property
    def time(self) -> float:
        """Seconds of the call's audio taken in so far (the recogniser's clock): what was
        decoded and the resampler's look-ahead behind it."""
        return (self._fed + self._lead) / self._rate if self._fed else 0.0

    @property
    def decoded_s(self) -> float:
        """Seconds of audio Vosk decoded (less than ``time`` once silence was skipped)."""
        return self._vosk_fed / self._rate

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
            self._ensure_vosk()
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
            self._ensure_vosk()
            if self._resampler is not None:
                tail = cast(NDArray[np.float32], self._resampler.flush(np.float32))
                self._pending = np.concatenate([self._pending, tail])
            events = self._drain()
            self._lead = 0  # the look-ahead is all in now: the clock counts what was decoded
            if len(self._pending):
                self._accept(self._pending, self._fed)
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

    def _ensure_vosk(self) -> None:
        """Make Vosk's recogniser for this call, if it is not made yet (see ``__init__`` for
        why it is made this late)."""
        if self._rec is not None:
            return
        vosk = import_vosk()
        grammar = () if self._grammar_json is None else (self._grammar_json,)
        self._rec = vosk.KaldiRecognizer(self.model.vosk_model, float(self._rate), *grammar)
        self._rec.SetMaxAlternatives(self._max_alternatives)
        self._rec.SetWords(True)

    def _drain(self) -> list[RecognizerEvent]:
        events: list[RecognizerEvent] = []
        used = 0
        while len(self._pending) - used >= self._next_cut - self._fed:
            size = self._next_cut - self._fed
            events += self._step(self._pending[used : used + size])  # advances _fed by size
            used += size
            self._next_cut += self._block
        self._pending = self._pending[used:]
        return events

    def _accept(self, block: NDArray[np.float32], at: int) -> bool:
        """Decode ``block``, which starts ``at`` samples into the stream (the dither's index)."""
        self._vosk_fed += len(block)
        if self._dither:
            block = dithered(block, at, self._dither)
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
        self._vad.process(block)
        at = self._fed
        self._fed += len(block)
        decoded = not self._silent_for_a_while()
        if decoded:
            for held_at, held in self._held:
                self._accept(held, held_at)
            self._held.clear()
            vosk_endpoint = self._accept(block, at)
        else:
            self._held.append((at, block))  # the pre-roll, should sound come back
            vosk_endpoint = False
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
        text = (
            normalise_text(json.loads(self._rec.PartialResult()).get("partial", ""), self._unk)
            if decoded
            else ""  # not decoding: nothing new can have been said
        )
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

    def _silent_for_a_while(self) -> bool:
        """Whether to skip decoding the block just counted: ``skip_silence_s`` without any
        sound up to its end and nothing open (no words in the partial, no early end settling).
        Vosk then has nothing to finish: an utterance closes after ``end_of_speech_s``, well
        before."""
        after = self.endpointing.skip_after_s
        seg = self._segment
        if after <= 0 or seg.partial or seg.speech_start is not None:
            return False
        if seg.settle_until is not None:
            return False
        return self.time - (self._vad.last_sound_end or 0.0) >= after - _EPS

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
        alternatives = parse_result(json.loads(raw), self._unk)
        if not alternatives:
            return []
        words = alternatives[0].words
        # Vosk's clock counts only the audio it decoded; no silence was skipped since these
        # words began (skipping waits for a closed utterance), so one offset maps them.
        skipped = (self._fed - self._vosk_fed) / self._rate
        start = words[0].start + skipped if words else now
        end = words[-1].end + skipped if words else now
        return [Final(alternatives, start, end, now, reason)]


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
