"""One call's audio path: recogniser events in, dialogue actions out.

Every audio front end (WAV replay, microphone, the Twilio media stream) drives a call through
this class, so they all hear and decide the same way. Time is the call's own clock: the start
time plus the audio fed so far, never the wall clock, so a replayed call decides exactly as it
did live. Whatever fails in here (decoding, resampling) reaches the dialogue as ``Failure``,
which apologises and transfers: a caller is never left in silence.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from voicebot.core.actions import Action, Listen
from voicebot.core.config import Intent, LanguageConfig, SpeechMode, SpeechSettings, Thresholds
from voicebot.core.dialogue import Classify, Dialogue
from voicebot.core.events import (
    CallStarted,
    Dtmf,
    Event,
    Failure,
    HangUp,
    Overloaded,
    Partial,
    SilenceTimeout,
    SmsResult,
    Utterance,
)
from voicebot.core.lookup import LookupResult
from voicebot.core.match import Match, Verdict
from voicebot.core.recall import CallerHistory
from voicebot.core.state import Awaiting
from voicebot.core.text import words
from voicebot.matching.matcher import Matcher
from voicebot.speech import model_store as models
from voicebot.speech.audio import ulaw_decode
from voicebot.speech.endpointing import Endpointing
from voicebot.speech.grammar import runtime_grammar
from voicebot.speech.recognizer import Recognizer, decode_executor
from voicebot.speech.transcripts import UNK, Final, NoSpeech, PartialTranscript, RecognizerEvent
from voicebot.speech.vosk_model import REGISTRY, SpeechModel

__all__ = [
    "AudioQueue",
    "CallPipeline",
    "Heard",
    "PhraseStarts",
    "SpeechKit",
    "Step",
    "StepEvent",
    "TrainClassify",
    "endpointing",
    "load_speech_model",
    "phrase_starts",
    "speech_kit",
    "train_matcher",
]


def endpointing(speech: SpeechSettings) -> Endpointing:
    """When a call's utterances end, from the language's ``speech:`` settings."""
    return Endpointing(
        speech.end_of_speech_s,
        speech.no_speech_timeout_s,
        speech.max_utterance_s,
        speech.early_end_pause_s,
        speech.skip_silence_s,
    )


def load_speech_model(config: LanguageConfig) -> SpeechModel:
    """The configured model, else the installed one for the language; ``ModelError`` says how
    to fix it in one sentence."""
    return REGISTRY.get(models.configured(config.speech.model, config.language))


PhraseStarts = Mapping[str, Sequence[tuple[str, tuple[str, ...]]]]
"""first word -> (intent, words) of every phrase and example of a configuration."""


def phrase_starts(config: LanguageConfig) -> PhraseStarts:
    """The phrases and examples of ``config`` by their first word: a pause in a call then checks
    only the phrases that start with a word the caller said, not all of a large config's."""
    starts: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for name, intent in config.intents.items():
        for text in (*intent.phrases, *intent.examples):
            if ws := tuple(words(text)):
                starts.setdefault(ws[0], []).append((name, ws))
    return starts


@dataclass(frozen=True)
class SpeechKit:
    """What a call in one configuration needs besides the config: model, matcher, grammar and
    the phrase index of the early end (built once, not per call: a config can hold 10,000
    examples). ``CallPipeline`` takes the kit whole, so the pieces travel together and no
    shell can leave one out for the call to build again; a test that wants another matcher
    swaps it in with ``dataclasses.replace(kit, classify=...)``."""

    model: SpeechModel
    classify: Classify
    grammar: Sequence[str] | None
    starts: PhraseStarts


TrainClassify = Callable[[Sequence[Intent], Thresholds], Classify]
"""Trains a configuration's matcher and returns what a call classifies the n-best with."""


def train_matcher(intents: Sequence[Intent], thresholds: Thresholds) -> Classify:
    """The product's matcher (``voicebot.matching.matcher``), trained."""
    return Matcher(intents, thresholds).match_alternatives


def speech_kit(
    config: LanguageConfig,
    model: SpeechModel,
    warn: Callable[[str], None] | None = None,
    *,
    train: TrainClassify = train_matcher,
) -> SpeechKit:
    """Train the matcher and compile the grammar once per configuration: every call of that
    configuration (server, replay, microphone) shares them. ``train`` is another matcher's
    for a benchmark that compares two in the same server."""
    # A tuple: each call's recogniser looks its compiled grammar up by it (``Recognizer``),
    # and the kit's own tuple is found without copying or comparing its phrases.
    grammar = (
        tuple(runtime_grammar(config, warn)) if config.speech.mode is SpeechMode.GRAMMAR else None
    )
    classify = train(tuple(config.intents.values()), config.thresholds)
    return SpeechKit(model, classify, grammar, phrase_starts(config))


@dataclass(frozen=True)
class Heard:
    """One utterance as the recogniser closed it and the matcher scored it."""

    start_s: float  # call time of the first word
    end_s: float  # call time of the last word
    alternatives: tuple[tuple[str, float], ...]  # n-best, best first, as the dialogue got them
    match: Match | None  # as the dialogue reported it: None when it was no request (yes/no...)

    @property
    def match_summary(self) -> str:
        """``intent score (verdict)`` as replay and listen print it."""
        if self.match is None:
            return "not classified"
        best = self.match.best
        if best is None:
            return f"no intent ({self.match.verdict.value})"
        return f"{best.intent} {best.score:.2f} ({self.match.verdict.value})"


class StepEvent(StrEnum):
    """What a ``Step`` of the call was: the kind of moment the pipeline passed to the dialogue."""

    START = "start"
    UTTERANCE = "utterance"
    NO_SPEECH = "no_speech"
    BARGE_IN = "barge_in"
    DTMF = "dtmf"
    SMS = "sms"
    LOOKUP = "lookup"
    HANG_UP = "hang_up"
    FAILURE = "failure"
    OVERLOADED = "overloaded"


@dataclass(frozen=True)
class Step:
    """What happened at one moment of the call and what the bot did about it."""

    time_s: float  # call time
    event: StepEvent
    actions: tuple[Action, ...]
    handled: Event  # what the dialogue was given, for the call log
    heard: Heard | None = None
    detail: str = ""


class CallPipeline:
    """One call: a recogniser and a dialogue, fed audio in order.

    Speech only counts while the dialogue waits for an answer (its last actions ended with
    ``Listen``); the start of speech over a prompt it allowed to be interrupted is passed on
    as barge-in. Every entry point holds the pipeline's lock, so a decoding thread and the
    shell's event loop (keys, SMS results, hang-ups) may call it concurrently; audio must
    still come in order, from one feeder at a time.

    The caller's no-speech timeout counts from when the bot stops talking. A shell that plays
    prompts in real time (the phone) passes ``wait_for_prompts`` and calls ``arm_no_speech``
    once each prompt has played; otherwise (replay, where prompts take no call time) the clock
    starts as soon as the dialogue listens.

    ``kit`` must be the ``speech_kit`` of ``config`` (the server's ``SpeechProvider`` keeps
    one per configuration): the pipeline compiles, trains and indexes nothing per call.
    """

    def __init__(
        self,
        config: LanguageConfig,
        kit: SpeechKit,
        *,
        caller: str | None,
        start_at: dt.datetime,
        call_rate: int = 8000,
        call_id: str = "",
        wait_for_prompts: bool = False,
        history: CallerHistory | None = None,
        dialogue: Callable[[LanguageConfig, Classify], Dialogue] = Dialogue,
    ) -> None:
        speech = config.speech
        phrases: Sequence[str] = ()
        if speech.mode is SpeechMode.GRAMMAR:
            if kit.grammar is None:  # a kit built for an open-mode config
                raise ValueError("a grammar-mode call needs a speech kit with a grammar")
            phrases = kit.grammar
        self.config = config
        self.start_at = start_at
        self.caller = caller
        self.call_id = call_id
        self.history = history  # the caller's recent calls, for recall (``core.recall``)
        self.recognizer = Recognizer(
            kit.model,
            mode=speech.mode.value,
            phrases=phrases,
            endpointing=endpointing(speech),
            call_rate=call_rate,
            max_alternatives=speech.max_alternatives,
            allow_unknown_words=True,  # `voicebot check` lists them; a call must still work
            end_turn=self._complete_answer,
        )
        self._classify = kit.classify
        self._starts = kit.starts
        self.dialogue = dialogue(config, kit.classify)  # replay's may log to a call log
        self.steps: list[Step] = []
        self._speaking = False  # a Partial was already passed on for the current utterance
        self._wait_for_prompts = wait_for_prompts
        self._prompt_playing = False  # a Listen's prompt has not been reported finished yet
        self._lock = threading.RLock()

    # -- state -----------------------------------------------------------------------------

    @property
    def time_s(self) -> float:
        """Call time: seconds of audio fed so far."""
        return self.recognizer.time

    @property
    def now(self) -> dt.datetime:
        return self.at(self.time_s)

    def at(self, time_s: float) -> dt.datetime:
        return self.start_at + dt.timedelta(seconds=time_s)

    @property
    def ended(self) -> bool:
        return self.dialogue.ended

    @property
    def listening(self) -> bool:
        """True while the dialogue waits for the caller to speak."""
        return self.dialogue.state.waiting_for is Awaiting.LISTEN

    @property
    def awaiting_prompt_end(self) -> bool:
        """The dialogue listens but the no-speech clock waits for ``arm_no_speech``."""
        return self._prompt_playing and not self.dialogue.ended

    # -- events from the shell -------------------------------------------------------------

    def arm_no_speech(self, at_s: float | None = None) -> None:
        """The prompt has finished playing at call time ``at_s`` (default: now): from there the
        caller has ``no_speech_timeout_s`` to start talking. Calling it again re-arms."""
        with self._lock:
            self._prompt_playing = False
            self.recognizer.arm_no_speech(self.time_s if at_s is None else at_s)

    def start(self) -> list[Action]:
        event = CallStarted(self.now, self.caller, self.call_id, self.history)
        with self._lock:
            return self._handle(event, StepEvent.START)

    def feed(self, pcm: bytes | NDArray[np.int16]) -> list[Action]:
        """Decode the next chunk of 16-bit PCM at ``call_rate``; returns the actions it caused."""
        with self._lock:
            if self.dialogue.ended:
                return []
            try:
                events = self.recognizer.feed(pcm)
            except Exception as exc:  # fail safe: a person takes the call
                return self.fail(f"speech recognition failed: {exc}")
            actions: list[Action] = []
            for event in events:
                actions += self._on_recognizer(event)
            return actions

    def finish(self) -> list[Action]:
        """End of audio: close an utterance still open (the caller stopped mid-sentence)."""
        with self._lock:
            if self.dialogue.ended:
                return []
            try:
                events = self.recognizer.flush()
            except Exception as exc:
                return self.fail(f"speech recognition failed: {exc}")
            actions: list[Action] = []
            for event in events:
                actions += self._on_recognizer(event)
            return actions

    def dtmf(self, digit: str) -> list[Action]:
        with self._lock:
            return self._handle(Dtmf(digit=digit, at=self.now), StepEvent.DTMF, detail=digit)

    def sms_result(self, ok: bool, detail: str = "") -> list[Action]:
        with self._lock:
            event = SmsResult(ok=ok, detail=detail, at=self.now)
            return self._handle(event, StepEvent.SMS, detail=detail)

    def lookup_result(self, result: LookupResult) -> list[Action]:
        """The outcome of the ``Lookup`` the dialogue asked for (``voicebot.shells.lookup``)."""
        with self._lock:
            detail = "answered" if result.ok else result.error
            return self._handle(result, StepEvent.LOOKUP, detail=detail)

    def hang_up(self) -> list[Action]:
        with self._lock:
            return self._handle(HangUp(at=self.now), StepEvent.HANG_UP)

    def fail(self, error: str) -> list[Action]:
        with self._lock:
            return self._handle(Failure(error=error, at=self.now), StepEvent.FAILURE, detail=error)

    def overloaded(self, why: str) -> list[Action]:
        """The shell cannot decode this call in real time (``why``): the dialogue hands the
        caller over, to the group the words heard so far already name, if they do."""
        with self._lock:
            heard = self.recognizer.partial
            partial = _without_unk(heard) if heard else ""
            event = Overloaded(at=self.now, partial="" if partial == UNK else partial)
            return self._handle(event, StepEvent.OVERLOADED, detail=why)

    async def feed_async(self, pcm: bytes | NDArray[np.int16]) -> list[Action]:
        """``feed`` on the shared decoding pool, so many calls decode on all cores at once.
        Await each chunk before feeding the next of the same call."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(decode_executor(), self.feed, pcm)

    async def finish_async(self) -> list[Action]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(decode_executor(), self.finish)

    # -- internals -------------------------------------------------------------------------

    def _complete_answer(self, partial: str) -> bool:
        """Intent-aware end of turn, asked by the recogniser when the caller pauses: do the
        words so far already say what they want? Only while the dialogue listens, and only
        when they hold a whole phrase (or example) of the one intent the matcher accepts at
        ``early_end_min_score``, or an escape word: a pause inside a phrase ("요금 ... 납부")
        waits for the normal end of speech, so the caller is not cut off mid-request."""
        if not self.listening:
            return False
        said = words(_without_unk(partial))
        if not said:
            return False
        if self.config.words.asks_for_person(" ".join(said)):
            return True
        # The phrase test first: it is cheap, and most pauses hold no whole phrase, so the
        # matcher (a sentence encoder, tens of ms of the decoding thread) runs only when needed.
        holding = {
            intent
            for word in set(said)
            for intent, phrase in self._starts.get(word, ())
            if _contains(said, phrase)
        }
        if not holding:
            return False
        match = self._classify([(" ".join(said), 1.0)])
        best = match.best
        if match.verdict is not Verdict.ACCEPT or best is None:
            return False
        return best.intent in holding and best.score >= self.config.speech.early_end_min_score

    def _on_recognizer(self, event: RecognizerEvent) -> list[Action]:
        if isinstance(event, PartialTranscript):
            if not event.text or self._speaking:
                return []
            self._speaking = True
            if not (self.listening or self.dialogue.state.barge_in):
                return []
            at = self.at(event.time)
            return self._handle(Partial(text=event.text, at=at), StepEvent.BARGE_IN, event.time)
        if isinstance(event, NoSpeech):
            self._speaking = False
            if not self.listening:
                return []
            return self._handle(
                SilenceTimeout(at=self.at(event.time)), StepEvent.NO_SPEECH, event.time
            )
        return self._on_final(event)

    def _on_final(self, event: Final) -> list[Action]:
        self._speaking = False
        if not self.listening:  # spoken while the bot was not asking: not an answer
            return []
        alternatives = tuple((_without_unk(a.text), a.confidence) for a in event.alternatives)
        utterance = Utterance(alternatives=alternatives, at=self.at(event.time))
        return self._handle(
            utterance, StepEvent.UTTERANCE, event.time, spoken=(event.start, event.end)
        )

    def _handle(
        self,
        event: Event,
        name: StepEvent,
        time_s: float | None = None,
        *,
        detail: str = "",
        spoken: tuple[float, float] | None = None,  # an utterance's first and last word
    ) -> list[Action]:
        actions = self.dialogue.handle(event)
        when = self.time_s if time_s is None else time_s
        if any(isinstance(a, Listen) for a in actions):  # a new question: restart the clock
            if self._wait_for_prompts:
                self._prompt_playing = True
                self.recognizer.disarm_no_speech()
            else:
                self.recognizer.arm_no_speech(when)
        heard = None
        if spoken is not None and isinstance(event, Utterance):
            heard = Heard(*spoken, event.alternatives, self.dialogue.match)
        self.steps.append(Step(when, name, tuple(actions), event, heard, detail))
        return actions


class AudioQueue:
    """One call's caller audio on its way to the recogniser, decoded on the shared pool.

    Why not ``await feed_async`` per chunk: that is two thread hops per 100 ms per call (the
    profile of 15 real-time calls on one core put a tenth of the server's CPU in waking the
    event loop for results that were almost always "no action"), and it holds the WebSocket
    reader while decoding, so a backlog under overload hides in the socket where no metric
    sees it. Here the reader only appends (``put``); one pool job per call drains whatever has
    accumulated, chunk by chunk in order, and calls ``on_actions`` (from the decoding thread)
    only when the dialogue acted. ``backlog_s`` is the audio received but not yet decoded.

    A chunk put as ``bytes`` is the phone line's G.711 mu-law (one byte a sample), turned into
    16-bit PCM by the decoding thread: the event loop, which every call's frames go through,
    only appends it (issue #20).
    """

    def __init__(
        self,
        pipeline: CallPipeline,
        on_actions: Callable[[list[Action], float], None],
        *,
        executor: Executor | None = None,
        on_decoded: Callable[[float, float], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self._on_actions = on_actions  # (actions, due) from a decoding thread
        self._executor = executor
        # (seconds one chunk took to decode, seconds it waited for the decoder), for metrics
        self._on_decoded = on_decoded
        self._lock = threading.Lock()
        self._chunks: deque[tuple[NDArray[np.int16] | bytes, float]] = deque()
        self._queued = 0  # samples in _chunks
        self._running = False
        self._closed = False
        self.received_s = pipeline.time_s  # call time of the end of the audio put so far

    @property
    def backlog_s(self) -> float:
        """Seconds of audio put but not decoded yet."""
        return self._queued / self.pipeline.recognizer.call_rate

    @property
    def oldest_due(self) -> float | None:
        """``due`` of the oldest chunk still waiting, None when there is none."""
        with self._lock:
            return self._chunks[0][1] if self._chunks else None

    def lag_s(self, now: float) -> float:
        """How long the oldest audio still waiting has waited since it was ``due``: what this
        call's caller waits for the bot on top of the usual. Unlike ``backlog_s`` it is 0 for
        audio sent faster than real time (a replay, ``voicebot simulate``), which queues up
        without anyone waiting."""
        due = self.oldest_due
        return max(0.0, now - due) if due is not None else 0.0

    def put(self, pcm: NDArray[np.int16] | bytes, due: float) -> None:
        """Queue a chunk (16-bit samples, or mu-law ``bytes``); ``due`` is passed back with the
        actions it causes (the shell's clock for when that audio was spoken)."""
        with self._lock:
            if self._closed:
                return
            self._chunks.append((pcm, due))
            self._queued += len(pcm)
            self.received_s += len(pcm) / self.pipeline.recognizer.call_rate
            if self._running:
                return
            self._running = True
        (self._executor or decode_executor()).submit(self._drain)

    def close(self) -> None:
        """Drop what is queued and accept nothing more (the call was decided or ended)."""
        with self._lock:
            self._closed = True
            self._chunks.clear()
            self._queued = 0

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._chunks:
                    self._running = False
                    return
                pcm, due = self._chunks.popleft()
                self._queued -= len(pcm)
            started = time.perf_counter()
            try:
                actions = self.pipeline.feed(ulaw_decode(pcm) if isinstance(pcm, bytes) else pcm)
            except Exception as exc:  # fail safe; feed already catches the recogniser's errors
                actions = self.pipeline.fail(f"{type(exc).__name__}: {exc}")
            if self._on_decoded is not None:
                self._on_decoded(time.perf_counter() - started, max(0.0, started - due))
            if actions:
                self._on_actions(actions, due)


def _contains(said: Sequence[str], phrase: Sequence[str]) -> bool:
    """``phrase`` occurs in ``said`` as consecutive words."""
    n = len(phrase)
    return any(tuple(said[i : i + n]) == tuple(phrase) for i in range(len(said) - n + 1))


def _without_unk(text: str) -> str:
    """Drop ``[unk]`` stretches; all-unknown speech stays ``[unk]`` (heard, not understood)."""
    kept = [w for w in text.split() if w != UNK]
    return " ".join(kept) if kept else UNK
