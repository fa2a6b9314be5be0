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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from voicebot.core.config import LanguageConfig, SpeechMode
from voicebot.core.dialogue import (
    Action,
    CallStarted,
    Classify,
    Dialogue,
    Dtmf,
    Event,
    Failure,
    HangUp,
    Listen,
    SilenceTimeout,
    SmsResult,
    Utterance,
)
from voicebot.core.dialogue import Partial as SpeechStarted
from voicebot.core.match import Match
from voicebot.matching.matcher import Matcher
from voicebot.speech import model_store as models
from voicebot.speech.grammar import runtime_grammar
from voicebot.speech.recognizer import (
    REGISTRY,
    UNK,
    Endpointing,
    Final,
    NoSpeech,
    Partial,
    Recognizer,
    RecognizerEvent,
    SpeechModel,
    decode_executor,
)

__all__ = ["CallPipeline", "Heard", "SpeechKit", "Step", "load_speech_model", "speech_kit"]


def load_speech_model(config: LanguageConfig) -> SpeechModel:
    """The configured model, else the installed one for the language; ``ModelError`` says how
    to fix it in one sentence."""
    if config.speech.model is not None:
        return REGISTRY.get(config.speech.model)
    return REGISTRY.get(models.require(config.language))


@dataclass(frozen=True)
class SpeechKit:
    """What a call in one configuration needs besides the config: model, matcher, grammar."""

    model: SpeechModel
    classify: Classify
    grammar: Sequence[str] | None


def speech_kit(
    config: LanguageConfig, model: SpeechModel, warn: Callable[[str], None] | None = None
) -> SpeechKit:
    """Train the matcher and compile the grammar once per configuration: every call of that
    configuration (server, replay, microphone) shares them."""
    grammar = runtime_grammar(config, warn) if config.speech.mode is SpeechMode.GRAMMAR else None
    matcher = Matcher(tuple(config.intents.values()), config.thresholds)
    return SpeechKit(model, matcher.match_alternatives, grammar)


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


@dataclass(frozen=True)
class Step:
    """What happened at one moment of the call and what the bot did about it."""

    time_s: float  # call time
    event: str  # start, utterance, no_speech, barge_in, dtmf, sms, hang_up, failure
    actions: tuple[Action, ...]
    handled: Event  # what the dialogue was given, for the call log
    heard: Heard | None = None
    detail: str = ""


class CallPipeline:
    """One call: a recogniser and a dialogue, fed audio in order.

    Speech only counts while the dialogue waits for an answer (its last actions ended with
    ``Listen``); the start of speech over a prompt it allowed to be interrupted is passed on
    as barge-in. Feed one call from one task or thread at a time.

    The caller's no-speech timeout counts from when the bot stops talking. A shell that plays
    prompts in real time (the phone) passes ``wait_for_prompts`` and calls ``arm_no_speech``
    once each prompt has played; otherwise (replay, where prompts take no call time) the clock
    starts as soon as the dialogue listens.
    """

    def __init__(
        self,
        config: LanguageConfig,
        model: SpeechModel,
        classify: Classify,
        *,
        caller: str | None,
        start_at: dt.datetime,
        grammar: Sequence[str] | None = None,
        call_rate: int = 8000,
        call_id: str = "",
        warn: Callable[[str], None] | None = None,
        wait_for_prompts: bool = False,
    ) -> None:
        speech = config.speech
        phrases: Sequence[str] = ()
        if speech.mode is SpeechMode.GRAMMAR:
            if grammar is None:
                grammar = runtime_grammar(config, warn)
            phrases = grammar
        self.config = config
        self.start_at = start_at
        self.caller = caller
        self.call_id = call_id
        self.recognizer = Recognizer(
            model,
            mode=speech.mode.value,
            phrases=phrases,
            endpointing=Endpointing(
                speech.end_of_speech_s, speech.no_speech_timeout_s, speech.max_utterance_s
            ),
            call_rate=call_rate,
            max_alternatives=speech.max_alternatives,
            allow_unknown_words=True,  # `voicebot check` lists them; a call must still work
        )
        self.dialogue = Dialogue(config, classify)
        self.steps: list[Step] = []
        self._speaking = False  # a Partial was already passed on for the current utterance
        self._wait_for_prompts = wait_for_prompts
        self._prompt_playing = False  # a Listen's prompt has not been reported finished yet

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
        return self.dialogue.state.waiting_for == "listen"

    @property
    def awaiting_prompt_end(self) -> bool:
        """The dialogue listens but the no-speech clock waits for ``arm_no_speech``."""
        return self._prompt_playing and not self.dialogue.ended

    # -- events from the shell -------------------------------------------------------------

    def arm_no_speech(self, at_s: float | None = None) -> None:
        """The prompt has finished playing at call time ``at_s`` (default: now): from there the
        caller has ``no_speech_timeout_s`` to start talking. Calling it again re-arms."""
        self._prompt_playing = False
        self.recognizer.arm_no_speech(self.time_s if at_s is None else at_s)

    def start(self) -> list[Action]:
        event = CallStarted(at=self.now, caller=self.caller, call_id=self.call_id)
        return self._handle(event, "start")

    def feed(self, pcm: bytes | NDArray[np.int16]) -> list[Action]:
        """Decode the next chunk of 16-bit PCM at ``call_rate``; returns the actions it caused."""
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
        return self._handle(Dtmf(digit=digit, at=self.now), "dtmf", detail=digit)

    def sms_result(self, ok: bool, detail: str = "") -> list[Action]:
        return self._handle(SmsResult(ok=ok, detail=detail, at=self.now), "sms", detail=detail)

    def hang_up(self) -> list[Action]:
        return self._handle(HangUp(at=self.now), "hang_up")

    def fail(self, error: str) -> list[Action]:
        return self._handle(Failure(error=error, at=self.now), "failure", detail=error)

    async def feed_async(self, pcm: bytes | NDArray[np.int16]) -> list[Action]:
        """``feed`` on the shared decoding pool, so many calls decode on all cores at once.
        Await each chunk before feeding the next of the same call."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(decode_executor(), self.feed, pcm)

    async def finish_async(self) -> list[Action]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(decode_executor(), self.finish)

    # -- internals -------------------------------------------------------------------------

    def _on_recognizer(self, event: RecognizerEvent) -> list[Action]:
        if isinstance(event, Partial):
            if not event.text or self._speaking:
                return []
            self._speaking = True
            if not (self.listening or self.dialogue.state.barge_in):
                return []
            at = self.at(event.time)
            return self._handle(SpeechStarted(text=event.text, at=at), "barge_in", event.time)
        if isinstance(event, NoSpeech):
            self._speaking = False
            if not self.listening:
                return []
            return self._handle(SilenceTimeout(at=self.at(event.time)), "no_speech", event.time)
        return self._on_final(event)

    def _on_final(self, event: Final) -> list[Action]:
        self._speaking = False
        if not self.listening:  # spoken while the bot was not asking: not an answer
            return []
        alternatives = tuple((_without_unk(a.text), a.confidence) for a in event.alternatives)
        utterance = Utterance(alternatives=alternatives, at=self.at(event.time))
        return self._handle(utterance, "utterance", event.time, spoken=(event.start, event.end))

    def _handle(
        self,
        event: Event,
        name: str,
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


def _without_unk(text: str) -> str:
    """Drop ``[unk]`` stretches; all-unknown speech stays ``[unk]`` (heard, not understood)."""
    kept = [w for w in text.split() if w != UNK]
    return " ".join(kept) if kept else UNK
