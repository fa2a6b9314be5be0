"""One call on the Twilio side: what the bot's actions become on the wire, and when it is over.

``app.VoiceServer`` turns requests into calls on a ``CallSession``; the session turns the
pipeline's actions into stream messages (TTS audio + mark, clear), REST requests (a redirect to
``<Say>`` and a new stream, the final transfer or hang-up, an SMS) and observer records. Where the
call is in its life is one ``CallState`` with the transitions below, not a set of flags that
could disagree::

    WAITING --attach--> STREAMING --redirect--> REDIRECTING --attach--> STREAMING
       ^                    |                        |
       +---redirect failed, no stream----------------+
    WAITING / STREAMING / REDIRECTING --decide--> DECIDED --end--> ENDED   (any --end--> ENDED)

Fail-safe rules: when the bot cannot go on (``fail``) it asks the dialogue to apologise and
transfer; when even that fails, or a REST update is refused, the stream is closed so the
incoming-call TwiML's ``<Dial>`` fallback puts the caller through to a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Final

from voicebot.core.actions import (
    Action,
    HangUpCall,
    Listen,
    Play,
    Say,
    SendSms,
    StopSpeaking,
    Transfer,
)
from voicebot.core.config import LanguageConfig
from voicebot.core.events import Failure
from voicebot.core.lookup import Lookup
from voicebot.core.phone import mask
from voicebot.core.state import Outcome, OutcomeKind, Progress
from voicebot.shells.lookup import lookup, lookup_secret
from voicebot.speech.pipeline import AudioQueue, CallPipeline
from voicebot.speech.tts import Tts, TtsError
from voicebot.telephony import prompts
from voicebot.telephony.handoff import StreamParameters, UsedStreams, expiry
from voicebot.telephony.media_socket import SEND_ERRORS, MediaSocket
from voicebot.telephony.media_stream import (
    DtmfMessage,
    Mark,
    Media,
    Stop,
    clear_message,
    mark_message,
    media_messages,
    prompt_mark,
)
from voicebot.telephony.metrics import Metrics
from voicebot.telephony.observer import CallObserver
from voicebot.telephony.rest import MAX_TWIML_CHARS, RestResult, TwilioRest
from voicebot.telephony.settings import ServerSettings
from voicebot.telephony.twiml import (
    Speech,
    connect_stream_twiml,
    say_and_hangup_twiml,
    transfer_twiml,
)
from voicebot.telephony.whisper import WhisperNotes, whisper_context

__all__ = [
    "CallServices",
    "CallSession",
    "CallState",
    "decision_twiml",
    "fit_speech",
    "stream_twiml",
]

log = logging.getLogger(__name__)


class CallState(Enum):
    WAITING = "waiting"  # no stream attached: before the first connects, or a redirect failed
    STREAMING = "streaming"  # a media stream is attached; the caller and the bot take turns
    REDIRECTING = "redirecting"  # a REST redirect to <Say> and a new stream is under way
    DECIDED = "decided"  # the bot asked for a transfer or hang-up; only the ending is left
    ENDED = "ended"  # outcome recorded, session forgotten by the server


_OVER: Final = frozenset({CallState.DECIDED, CallState.ENDED})  # ``CallSession.done``
_CALLER_TRACKS: Final = frozenset({"inbound", "inbound_track"})  # the caller's audio
_NUMBERED: Final = (Media, Mark, DtmfMessage, Stop)  # the messages with a sequence number


@dataclass
class CallServices:
    """What every session shares with the server. Mutable on purpose: ``tts`` can be switched
    off on a running server (tests do, to exercise the ``<Say>`` path), for every call at once."""

    settings: ServerSettings
    rest: TwilioRest
    metrics: Metrics
    observer: CallObserver
    tts: Tts | None
    stream_url: str
    whisper_url: str
    sessions: dict[str, CallSession]  # the live calls by CallSid; a session leaves when it ends
    whispers: WhisperNotes = field(default_factory=WhisperNotes)  # transcripts for the agent
    # Whether a call whose audio has waited this long to be decoded must be handed over now
    # (``admission.Admission.behind``); never, by default.
    behind: Callable[[str, float], bool] = lambda call_sid, backlog_s: False
    prompt_url: str = ""  # where Twilio fetches prompt audio for <Play> (``prompts``)
    used_streams: UsedStreams = field(default_factory=UsedStreams)  # parameters start once
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    def speech(
        self, actions: Sequence[Action], config: LanguageConfig, *, plain: bool = False
    ) -> list[Speech]:
        """What TwiML plays for the Say/Play actions: one voice with the stream (``prompts``)."""
        secret = self.settings.auth_token
        return [
            prompts.speech(a, config, self.tts, self.prompt_url, secret, plain=plain)
            for a in actions
            if isinstance(a, Say | Play)
        ]


@dataclass(eq=False)
class CallSession:
    """One call, from the webhook to its decision; survives stream redirects.

    Callers hold ``lock`` around everything that reads or changes the call except ``end`` and
    ``stream_gone``, which only ever move the state towards ``ENDED``.
    """

    call_sid: str
    caller: str | None
    config: LanguageConfig
    pipeline: CallPipeline
    handoff: StreamParameters  # what the stream's TwiML carries (any instance can resume it)
    start_twiml: str
    services: CallServices
    state: CallState = CallState.WAITING
    created: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ws: MediaSocket | None = None
    stream_sid: str | None = None
    streams: int = 0  # streams attached so far (more than one after a <Say> redirect)
    pending_marks: set[str] = field(default_factory=set)
    marks_sent: int = 0
    buffer: bytearray = field(default_factory=bytearray)
    bad_messages: int = 0
    decision_from: float | None = None  # perf_counter of the audio that triggered the actions
    audio: AudioQueue | None = None  # caller audio waiting for the recogniser
    media_offset: float | None = None  # earliest (arrival - media timestamp) of this stream
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    observed: int = 0  # pipeline steps already passed to the observer
    last_seq: int = -1  # the highest sequence number seen on the current stream
    # What a <Say> redirect could not carry (a call update holds 4,000 characters of TwiML):
    # spoken as soon as the stream it opens attaches, before the caller's turn.
    unsaid: list[Say | Play] = field(default_factory=list)
    progress: Progress | None = None  # last passed to ``call_progress``

    # -- state -----------------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        """Our prompt audio is still queued or playing (no echo of its mark yet)."""
        return bool(self.pending_marks)

    @property
    def done(self) -> bool:
        """Decided or ended: nothing the caller sends can change the call any more."""
        return self.state in _OVER

    def attach(self, ws: MediaSocket, stream_sid: str) -> MediaSocket | None:
        """A (new) stream of this call started; returns the stream it replaces, to close."""
        old = self.ws
        self.ws, self.stream_sid = ws, stream_sid
        self.streams += 1
        if not self.done:
            self.state = CallState.STREAMING
        self.pending_marks.clear()
        self.buffer.clear()
        # A new stream's timestamps start from 0 now: a frame later than its timestamp says,
        # counted from here, waited somewhere (socket, event loop) and the caller with it.
        self.media_offset = time.perf_counter()
        if self.audio is None:
            self.audio = self._audio_queue()
        self.arm_when_quiet()  # the TwiML's <Say> before the stream has played
        return old

    def repeated(self, message: object) -> bool:
        """Whether ``message`` is a copy of one already handled: Twilio numbers the messages of
        a stream in order, so a number not above the highest seen is a duplicate or a replay.
        Handling it again would feed the same audio twice (slowing the caller's words down
        until they are heard as something else) or press a key twice. Counted in the metrics
        (``duplicate_frame``)."""
        if not isinstance(message, _NUMBERED):
            return False
        if message.sequence_number <= self.last_seq:
            self.services.metrics.error("duplicate_frame")
            return True
        self.last_seq = message.sequence_number
        return False

    def decide(self) -> None:
        if self.state is not CallState.ENDED:
            self.state = CallState.DECIDED
        if self.audio is not None:
            self.audio.close()  # what the caller says now changes nothing

    def _redirect_failed(self) -> None:
        if self.state is CallState.REDIRECTING:
            self.state = CallState.STREAMING if self.ws is not None else CallState.WAITING

    def end(self, why: str) -> None:
        """Forget the call and record its outcome, once; ``why`` "fallback" counts as one."""
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        if self.audio is not None:
            self.audio.close()
        services = self.services
        if services.sessions.get(self.call_sid) is self:
            del services.sessions[self.call_sid]
        services.metrics.call_ended()
        services.used_streams.close(self.call_sid, self.handoff.stream)
        outcome = self.pipeline.dialogue.outcome
        if why == "fallback":
            outcome = self.fallback_outcome()
        label = outcome.kind.value if outcome is not None and why != "fallback" else "fallback"
        services.metrics.decision(label)
        log.info("call %s ended (%s): %s", self.call_sid, why, outcome or "no outcome")
        self.record()
        if outcome is not None:
            services.observer.call_ended(self.call_sid, self.pipeline.now, outcome)

    def fallback_outcome(self) -> Outcome:
        """What the caller got when the bot's own ending did not happen (REST update refused,
        stream lost): the TwiML's <Dial> of the default group, whatever the dialogue meant."""
        state = self.pipeline.dialogue.state
        return Outcome(
            OutcomeKind.TRANSFERRED,
            state.turns,
            "fallback",
            self.config.group(None).id,
            state.intent,
            state.after or None,
            state.served,
            lookups=state.lookups,
            recalled=state.recalled,
            recall_answer=state.recall_answer,
        )

    def stream_gone(self, ws: MediaSocket) -> None:
        """The socket ``ws`` closed. Unless the bot redirected or decided, nobody decided:
        Twilio continues the TwiML, whose <Dial> puts the caller through to the default group."""
        if self.ws is not ws:
            return
        self.ws = None
        if self.state in (CallState.ENDED, CallState.REDIRECTING):
            return
        if self.state is CallState.DECIDED:
            self.end("decided")
            return
        self.services.metrics.error("stream_lost")
        log.warning(
            "call %s: stream closed before a decision; the TwiML fallback dials the default group",
            self.call_sid,
        )
        self.pipeline.fail("media stream lost")
        self.end("fallback")

    # -- what the caller sends -------------------------------------------------------------

    def on_media(self, message: Media, received: float) -> None:
        """A caller audio frame: synchronous (no await, so the stream's reader can call it per
        frame without a task or future); like every call change, under ``lock`` or while no
        one holds it. Buffers 20 ms frames and hands each 100 ms to the recogniser's queue.
        ``due`` is when the chunk's last frame should have arrived by its media timestamp,
        counted from the stream's start (when it attached, or earlier if frames ran ahead of
        real time): frames queueing anywhere before us (the socket, a busy event loop) make the
        decision latency grow, as the caller feels it. One method, 50 calls a second per call:
        every call and property read here is paid on the event loop for every frame."""
        if self.state in _OVER or message.track not in _CALLER_TRACKS:
            return
        end_s = (message.timestamp_ms + 1000 * len(message.payload) / 8000) / 1000
        offset = received - end_s
        if self.media_offset is None or offset < self.media_offset:
            self.media_offset = offset
        buffer = self.buffer
        buffer += message.payload
        audio = self.audio
        if len(buffer) < self.services.settings.feed_bytes or audio is None:
            return
        audio.put(bytes(buffer), self.media_offset + end_s)  # decoded off the loop
        buffer.clear()
        lag = audio.lag_s(received)
        if self.services.behind(self.call_sid, lag):
            self._spawn(self.overloaded(f"its audio waits {lag:.1f} s to be decoded"))

    async def on_message(self, message: object, received: float) -> None:
        if self.done:
            return
        if isinstance(message, Media):
            self.on_media(message, received)
        elif isinstance(message, DtmfMessage):
            log.info("call %s: key %s", self.call_sid, message.digit)
            await self.carry_out(self.pipeline.dtmf(message.digit), received)
        elif isinstance(message, Mark):
            self.pending_marks.discard(message.name)
            self.arm_when_quiet()
        elif isinstance(message, Stop) and self.state is not CallState.REDIRECTING:
            log.info("call %s: stream stopped; the caller hung up", self.call_sid)
            self.pipeline.hang_up()
            self.end("caller hung up")

    # -- caller audio: decoded off the event loop, no await per chunk ----------------------

    def _audio_queue(self) -> AudioQueue:
        loop = asyncio.get_running_loop()

        def decoded(actions: list[Action], due: float) -> None:  # in a decoding thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: the server stopped
                loop.call_soon_threadsafe(self._on_decoded, actions, due)

        return AudioQueue(self.pipeline, decoded, on_decoded=self.services.metrics.decoded)

    async def overloaded(self, why: str) -> None:
        """The bot cannot keep up with this caller: the dialogue puts them through now."""
        async with self.lock:
            if self.done:
                return
            self.services.metrics.shed("call")
            log.warning("call %s: %s; putting the caller through", self.call_sid, why)
            try:
                await self.carry_out(self.pipeline.overloaded(why), time.perf_counter())
            except Exception as exc:
                log.exception("call %s: error handing the call over", self.call_sid)
                await self.fail(f"{type(exc).__name__}: {exc}")

    def _on_decoded(self, actions: list[Action], due: float) -> None:
        self._spawn(self._carry_out_decoded(actions, due))

    async def _carry_out_decoded(self, actions: list[Action], due: float) -> None:
        async with self.lock:
            if self.done:
                return
            try:
                await self.carry_out(actions, due)
            except Exception as exc:
                log.exception("call %s: error carrying out the bot's actions", self.call_sid)
                await self.fail(f"{type(exc).__name__}: {exc}")

    @property
    def backlog_s(self) -> float:
        """Caller audio received but not decoded yet."""
        return self.audio.backlog_s if self.audio is not None else 0.0

    # -- carrying out actions --------------------------------------------------------------

    async def carry_out(self, actions: list[Action], received: float) -> None:
        self.record()
        if not actions:
            return
        if any(not isinstance(a, StopSpeaking) for a in actions):
            self.decision_from = received
        if any(isinstance(a, Transfer | HangUpCall) for a in actions):
            for a in actions:
                if isinstance(a, StopSpeaking):
                    await self.clear()
                elif isinstance(a, SendSms):
                    self._spawn(self.send_sms(a))
            await self.finish(actions)
            return
        speech: list[Say | Play] = []
        for a in actions:
            if isinstance(a, Say | Play):
                speech.append(a)
            elif isinstance(a, StopSpeaking):
                await self.clear()
            elif isinstance(a, Listen):
                await self.speak(speech)
                speech = []
            elif isinstance(a, SendSms):
                await self.speak(speech)
                speech = []
                if self.done:  # the prompt before the text failed: a person takes over
                    return
                self._left()
                self._spawn(self.send_sms(a))
            elif isinstance(a, Lookup):
                await self.speak(speech)  # the filler plays while the endpoint answers
                speech = []
                if self.done:  # the filler failed: a person takes over
                    return
                self._left()
                self._spawn(self.look_up(a))
            if self.done:
                return
        await self.speak(speech)
        self.arm_when_quiet()  # no prompt audio in the stream: the caller's turn now

    def arm_when_quiet(self) -> None:
        """Start the caller's no-speech clock once nothing of ours is left to play: prompt audio
        in the stream ends with its mark's echo, a <Say> redirect with the new stream."""
        pipeline = self.pipeline
        if (
            not pipeline.awaiting_prompt_end
            or self.speaking
            or self.unsaid
            or self.state is CallState.REDIRECTING
        ):
            return
        # The echo came after the caller audio received so far (decoded or not), so it ends
        # that audio: arm at the call time of the audio received, not of the audio decoded,
        # which lags under load and would start the caller's clock before the prompt ended.
        buffered_s = len(self.buffer) / pipeline.recognizer.call_rate
        received_s = self.audio.received_s if self.audio is not None else pipeline.time_s
        pipeline.arm_no_speech(received_s + buffered_s)

    def _left(self) -> None:
        """An action left the server: record the decision latency once per triggering audio."""
        if self.decision_from is not None:
            self.services.metrics.latency(time.perf_counter() - self.decision_from)
            self.decision_from = None

    def _spawn(self, job: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(job)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(self, texts: Sequence[str]) -> bool:
        ws = self.ws
        if ws is None or not ws.open:
            return False
        try:
            await ws.send_texts(texts, self.services.settings.send_timeout_s)
        except SEND_ERRORS as exc:
            self.services.metrics.error("send")
            log.warning("call %s: sending to the stream failed: %r", self.call_sid, exc)
            return False
        return True

    async def clear(self) -> None:
        """The caller talks over our prompt: drop the audio Twilio has not played yet."""
        if self.speaking and self.stream_sid is not None:
            log.info("call %s: caller talks over the prompt: clearing it", self.call_sid)
            await self._send([clear_message(self.stream_sid)])

    async def speak(self, speech: Sequence[Say | Play]) -> None:
        """Prompts in the stream (TTS audio + mark), else a redirect to <Say> and a new stream."""
        if not speech:
            return
        tts = self.services.tts
        voiced = all(isinstance(s, Say) and prompts.has_voice(s, self.config, tts) for s in speech)
        if self.stream_sid is not None and voiced:
            try:
                clips = [
                    await asyncio.to_thread(prompts.clip, s, self.config, tts)
                    for s in speech
                    if isinstance(s, Say)
                ]
            except TtsError as exc:
                log.warning("call %s: %s; using <Say> instead", self.call_sid, exc)
                clips = []
            if clips and len(clips) == len(speech):
                self.marks_sent += 1
                name = prompt_mark(self.marks_sent, [s.text for s in speech if isinstance(s, Say)])
                messages = [m for clip in clips for m in media_messages(self.stream_sid, clip)]
                messages.append(mark_message(self.stream_sid, name))
                self._left()
                self.pending_marks.add(name)
                if await self._send(messages):
                    return
                self.pending_marks.discard(name)
        await self.redirect_to_say(speech)

    async def speak_unsaid(self) -> None:
        """A new stream attached after a <Say> redirect that could not carry the whole prompt:
        the rest now (in the stream, or by the next redirect), then the caller's turn."""
        speech, self.unsaid = self.unsaid, []
        if speech and not self.done:
            await self.speak(speech)
        self.arm_when_quiet()

    async def redirect_to_say(self, speech: Sequence[Say | Play]) -> None:
        """Have Twilio speak with <Say>/<Play> and then open a new stream to this session; what
        does not fit into one call update waits in ``unsaid`` for that stream. If Twilio will
        not take the redirect, the caller cannot hear the bot: a person takes over."""
        self.handoff = self.handoff.next_stream()  # only this instance can continue this dialogue

        def twiml_of(part: Sequence[Say | Play]) -> str:
            return stream_twiml(self.services, self.config, self.handoff, part)

        now, later = fit_speech(speech, lambda part: len(twiml_of(part)) <= MAX_TWIML_CHARS)
        twiml = twiml_of(now or speech)  # nothing fits: the update is refused, and said so
        self.unsaid = later + self.unsaid
        if not self.done:
            self.state = CallState.REDIRECTING
        self._left()
        result = await asyncio.to_thread(self.services.rest.update_call, self.call_sid, twiml)
        if not result.ok:
            self._redirect_failed()
            self.services.metrics.error("rest")
            log.error("call %s: redirect to speak a prompt failed: %s", self.call_sid, result)
            await self.hand_over(f"prompt not played, redirect failed: {result}")

    async def hand_over(self, error: str) -> None:
        """What the bot says can no longer reach the caller (a redirect refused, ...): no other
        REST request either (it would most likely fail the same way), but close the stream, so
        the TwiML's <Dial> after it puts the caller through to the default group, and log the
        call as that fallback, with ``error`` in its timeline next to the prompt not heard."""
        self.services.observer.event(self.call_sid, Failure(error, self.pipeline.now))
        log.error("call %s: %s; the TwiML fallback dials the default group", self.call_sid, error)
        self.decide()
        self.end("fallback")
        if self.ws is not None:
            await self.ws.close()

    async def send_sms(self, sms: SendSms) -> None:
        """Text the caller (off the call path), then tell the dialogue how that went."""
        try:
            result = await asyncio.to_thread(self.services.rest.send_sms, sms.to, sms.body)
        except Exception as exc:  # no sender configured, ...
            result = RestResult(ok=False, error_message=str(exc))
        log.info(
            "call %s: SMS to %s %s",
            self.call_sid,
            mask(sms.to),
            "sent" if result.ok else f"failed: {result.error_code} {result.error_message}",
        )
        if not result.ok:
            self.services.metrics.error("sms")
        detail = result.status or str(result)
        await self._continue("the SMS", lambda: self.pipeline.sms_result(result.ok, detail))

    async def _continue(self, after: str, step: Callable[[], list[Action]]) -> None:
        """Feed the result of something done off the call path (an SMS, a lookup) to the
        dialogue and carry out what it decides, unless the call was decided meanwhile."""
        async with self.lock:
            if self.done:
                return
            try:
                await self.carry_out(step(), time.perf_counter())
            except Exception as exc:
                log.exception("call %s: error after %s", self.call_sid, after)
                await self.fail(f"{type(exc).__name__}: {exc}")

    async def look_up(self, request: Lookup) -> None:
        """Ask the organisation's endpoint (off the event loop), then tell the dialogue; a
        failure is a result like any other: the dialogue transfers to ``otherwise``."""
        result = await asyncio.to_thread(
            lookup, request, self.config, self.pipeline.now, secret=lookup_secret()
        )
        log.info(
            "call %s: lookup %s %s",
            self.call_sid,
            request.intent,
            "answered" if result.ok else f"failed: {result.error}",
        )
        if not result.ok:
            self.services.metrics.error("lookup")
        await self._continue("the lookup", lambda: self.pipeline.lookup_result(result))

    def final_twiml(self, actions: Sequence[Action]) -> str:
        """The TwiML of a decision: a transfer (with the whisper for the agent) or a hang-up,
        its words in the call's one voice (``decision_twiml``)."""
        return decision_twiml(self.services, self.call_sid, self.config, actions)

    async def finish(self, actions: Sequence[Action]) -> None:
        """Transfer or hang up through a REST call update; the stream then ends."""
        self.decide()
        transfer = next((a for a in actions if isinstance(a, Transfer)), None)
        try:
            twiml = self.final_twiml(actions)
        except Exception:
            log.exception("call %s: could not build the final TwiML", self.call_sid)
            twiml = ""
        self._left()
        if twiml:
            result = await asyncio.to_thread(self.services.rest.update_call, self.call_sid, twiml)
        else:
            result = RestResult(ok=False, error_message="no TwiML")
        if transfer is not None:
            ctx = transfer.context
            log.info(
                "call %s: transfer to %s (%s, intent %s, confidence %s) %s",
                self.call_sid,
                transfer.group,
                ctx.reason,
                ctx.intent,
                ctx.confidence,
                "requested" if result.ok else f"FAILED: {result}",
            )
        else:
            log.info("call %s: hang-up %s", self.call_sid, "requested" if result.ok else result)
        if not result.ok:
            self.services.metrics.error("rest")
            log.error(
                "call %s: REST update failed; closing the stream so the TwiML fallback dials "
                "the default group",
                self.call_sid,
            )
            what = f"transfer to {transfer.group}" if transfer is not None else "hang-up"
            failure = Failure(f"{what} failed: {result}", self.pipeline.now)
            self.services.observer.event(self.call_sid, failure)
        self.end("decided" if result.ok else "fallback")
        if self.ws is not None:
            await self.ws.close()

    async def fail(self, error: str) -> None:
        """The bot cannot go on: apologise and transfer to the default group."""
        self.services.metrics.error("call")
        log.error("call %s: %s; transferring to the default group", self.call_sid, error)
        if self.done:
            return
        try:
            actions = self.pipeline.fail(error)
            await self.carry_out(actions, time.perf_counter())
        except Exception:
            log.exception("call %s: the fail-safe failed too; closing the stream", self.call_sid)
            self.decide()
            self.end("fallback")
            if self.ws is not None:
                await self.ws.close()

    def record(self) -> None:
        """Pass the pipeline steps not yet observed on: each event, then the actions it caused;
        then what the call has come to, if that changed (the intent asked for, what was served:
        written as it happens, so a row a crash leaves open still says it)."""
        observer = self.services.observer
        steps = self.pipeline.steps
        for step in steps[self.observed :]:
            match = step.heard.match if step.heard is not None else None
            observer.event(self.call_sid, step.handled, match)
            observer.actions(self.call_sid, step.handled.at, step.actions)
        self.observed = len(steps)
        progress = self.pipeline.dialogue.state.progress
        if progress != self.progress and self.state is not CallState.ENDED:
            self.progress = progress
            observer.call_progress(self.call_sid, self.pipeline.now, progress)


def decision_twiml(
    services: CallServices, call_sid: str, config: LanguageConfig, actions: Sequence[Action]
) -> str:
    """The TwiML of a decision, with or without a session (a call refused at the door): a
    transfer (with the whisper for the agent) or a hang-up, its words in the call's one voice;
    with <Say> if the prompt URLs would make it longer than Twilio takes in a call update."""
    twiml = _decision_twiml(services, call_sid, actions, services.speech(actions, config))
    if len(twiml) > MAX_TWIML_CHARS:
        plain = services.speech(actions, config, plain=True)
        twiml = _decision_twiml(services, call_sid, actions, plain)
    return twiml


def _decision_twiml(
    services: CallServices, call_sid: str, actions: Sequence[Action], speech: Sequence[Speech]
) -> str:
    for a in actions:
        if isinstance(a, Transfer):
            # the caller's words go to the agent's screen (task) and whisper, never in a URL
            services.whispers.put(call_sid, a.context.transcript)
            return transfer_twiml(
                a.destination,
                context=asdict(a.context),
                speech=speech,
                whisper_base_url=services.whisper_url,
                whisper_context=whisper_context(call_sid, a.context),
            )
    return say_and_hangup_twiml(speech)


def stream_twiml(
    services: CallServices,
    config: LanguageConfig,
    handoff: StreamParameters,
    speech: Sequence[Say | Play],
) -> str:
    """Speak ``speech`` (in the call's one voice), then connect the media stream to whichever
    instance takes it, with what it needs to resume the call (signed, and valid until shortly
    after Twilio has spoken ``speech``: see ``handoff``); the default group if the stream ends
    undecided. With <Say> if the prompt URLs would make it longer than a call update takes."""

    def build(plain: bool) -> str:
        said = services.speech(speech, config, plain=plain)
        expires = expiry(services.clock(), services.settings.stream_parameters_s, said)
        return connect_stream_twiml(
            said,
            services.stream_url,
            handoff.until(expires).encode(services.settings.auth_token),
            fallback=config.group(None).destination,
        )

    twiml = build(plain=False)
    return build(plain=True) if len(twiml) > MAX_TWIML_CHARS else twiml


def fit_speech(
    speech: Sequence[Say | Play], fits: Callable[[Sequence[Say | Play]], bool]
) -> tuple[list[Say | Play], list[Say | Play]]:
    """``speech`` cut in two: the longest head that ``fits`` (whole items, then the words of a
    <Say> up to its last full sentence that fits, else its last word) and the rest. Both empty
    parts are possible: nothing fits, or everything does."""
    head: list[Say | Play] = []
    for i, item in enumerate(speech):
        if fits([*head, item]):
            head.append(item)
            continue
        if not isinstance(item, Say):
            return head, list(speech[i:])
        words = item.text.split()
        lo, hi = 0, len(words)  # the most words that fit: lo does, hi + 1 does not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits([*head, replace(item, text=" ".join(words[:mid]))]):
                lo = mid
            else:
                hi = mid - 1
        ends = [n for n in range(1, lo + 1) if words[n - 1].endswith((".", "?", "!", "。"))]
        cut = ends[-1] if ends else lo
        if cut == 0:
            return head, list(speech[i:])
        rest = replace(item, text=" ".join(words[cut:]))
        return [*head, replace(item, text=" ".join(words[:cut]))], [rest, *speech[i + 1 :]]
    return head, []
