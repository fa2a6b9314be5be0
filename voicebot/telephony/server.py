"""The Twilio shell: incoming-call webhook, Media Streams WebSocket, status callback, whisper.

Every decision is made by ``CallPipeline`` (recogniser + dialogue); this module only turns
Twilio's requests into pipeline calls and the returned actions into TwiML, stream messages and
REST requests. A call lives in memory as a ``CallSession`` keyed by CallSid, pinned to the
``LanguageConfig`` it started with, so a reload never changes a call in progress.

Fail-safe rules: the incoming-call TwiML ends with a ``<Dial>`` of the default group after the
stream, so whenever the socket closes without the bot having redirected the call (crash, lost
connection, failed REST transfer) Twilio puts the caller through to a person. Any exception while
handling a call asks the dialogue to fail, which apologises and transfers to the default group.
Phone numbers reach logs only through ``phone.mask``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voicebot.core.config import LanguageConfig
from voicebot.core.dialogue import (
    Action,
    Event,
    HangUpCall,
    Listen,
    Outcome,
    Play,
    Say,
    SendSms,
    StopSpeaking,
    Transfer,
)
from voicebot.core.match import Match
from voicebot.core.phone import mask, normalize
from voicebot.loading.loader import ConfigHolder
from voicebot.speech.audio import ulaw_decode
from voicebot.speech.pipeline import AudioQueue, CallPipeline, SpeechKit, speech_kit
from voicebot.speech.recognizer import SpeechModel
from voicebot.speech.tts import Tts, TtsError
from voicebot.telephony.media_stream import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    Dtmf,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    clear_message,
    mark_message,
    media_messages,
    parse_message,
)
from voicebot.telephony.metrics import Metrics
from voicebot.telephony.rest import RestResult, TwilioRest
from voicebot.telephony.signature import SIGNATURE_HEADER, is_valid, public_url
from voicebot.telephony.twiml import (
    Speech,
    connect_stream_twiml,
    say_and_hangup_twiml,
    transfer_twiml,
    whisper_text,
    whisper_twiml,
)

__all__ = [
    "CallObserver",
    "CallSession",
    "ServerSettings",
    "SpeechKit",
    "SpeechProvider",
    "VoiceServer",
]

log = logging.getLogger(__name__)

TWIML = "application/xml"
ENDED_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


@dataclass(frozen=True)
class ServerSettings:
    public_url: str  # the origin Twilio calls, e.g. https://bot.example.com (signatures, TwiML)
    auth_token: str  # signs webhooks and the stream upgrade
    check_signatures: bool = True
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    feed_bytes: int = 800  # caller audio handed to the recogniser in 100 ms chunks (its block)
    max_bad_messages: int = 100  # malformed frames in one call before a person takes over
    send_timeout_s: float = 5.0  # a client that does not read for this long is gone
    unattached_ttl_s: float = 120.0  # a session whose stream never connected is dropped
    # /healthz answers 503 "overloaded" while some call has more caller audio than this
    # waiting to be decoded: its caller already waits that much longer for the bot.
    overload_backlog_s: float = 1.0


class CallObserver(Protocol):
    """Hook for the call log (``voicebot.calllog.log.CallLog`` fits): must not block or raise.

    Per call: ``call_started``, then each dialogue event (with the Match an Utterance got)
    followed by the actions it caused, then ``call_ended`` once the call has an outcome.
    """

    def call_started(
        self, call_id: str, at: dt.datetime, language: str | None, caller: str | None
    ) -> None: ...

    def event(self, call_id: str, event: Event, match: Match | None = None) -> None: ...

    def actions(self, call_id: str, at: dt.datetime, actions: Iterable[Action]) -> None: ...

    def call_ended(self, call_id: str, at: dt.datetime, outcome: Outcome) -> None: ...


class SpeechProvider:
    """Builds a ``SpeechKit`` once per configuration object (a reload makes new objects)."""

    def __init__(self, load_model: Callable[[LanguageConfig], SpeechModel]) -> None:
        self._load_model = load_model
        self._lock = threading.Lock()
        self._kits: dict[int, tuple[LanguageConfig, SpeechKit]] = {}

    def get(self, config: LanguageConfig) -> SpeechKit:
        """Blocking on first use of a config (matcher training): call from a thread."""
        with self._lock:
            hit = self._kits.get(id(config))
            if hit is not None and hit[0] is config:
                return hit[1]
            kit = speech_kit(config, self._load_model(config), log.warning)
            self._kits[id(config)] = (config, kit)
            while len(self._kits) > 16:  # old configs of finished calls
                self._kits.pop(next(iter(self._kits)))
            return kit


@dataclass(eq=False)
class CallSession:
    """One call, from the webhook to its decision; survives stream redirects."""

    call_sid: str
    caller: str | None
    config: LanguageConfig
    pipeline: CallPipeline
    token: str
    start_twiml: str
    created: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ws: WebSocket | None = None
    stream_sid: str | None = None
    streams: int = 0  # streams attached so far (more than one after a <Say> redirect)
    decided: bool = False  # the bot ended the call (transfer or hang-up requested)
    redirecting: bool = False  # a REST redirect to a new stream is under way
    ended: bool = False
    pending_marks: set[str] = field(default_factory=set)
    marks_sent: int = 0
    buffer: bytearray = field(default_factory=bytearray)
    bad_messages: int = 0
    decision_from: float | None = None  # perf_counter of the audio that triggered the actions
    audio: AudioQueue | None = None  # caller audio waiting for the recogniser
    media_offset: float | None = None  # earliest (arrival - media timestamp) of this stream
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    observed: int = 0  # pipeline steps already passed to the observer

    @property
    def speaking(self) -> bool:
        """Our prompt audio is still queued or playing (no echo of its mark yet)."""
        return bool(self.pending_marks)


class VoiceServer:
    """The ASGI app (``.app``) and the in-memory calls it serves."""

    def __init__(
        self,
        settings: ServerSettings,
        holder: ConfigHolder,
        rest: TwilioRest,
        speech: SpeechProvider,
        *,
        tts: Tts | None = None,
        metrics: Metrics | None = None,
        observer: CallObserver | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.rest = rest
        self.speech = speech
        self.tts = tts
        self.metrics = metrics or Metrics()
        self.observer = observer
        self.clock = clock
        self.sessions: dict[str, CallSession] = {}
        base = settings.public_url.rstrip("/")
        self.stream_url = public_url(base + "/twilio/media", base, websocket=True)
        self.whisper_url = public_url(base + "/twilio/whisper", base)
        self.app = Starlette(
            routes=[
                Route("/twilio/voice", self.voice, methods=["POST"]),
                Route("/twilio/status", self.status, methods=["POST"]),
                Route("/twilio/whisper", self.whisper, methods=["GET", "POST"]),
                WebSocketRoute("/twilio/media", self.media),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/metrics", self.metrics_text, methods=["GET"]),
            ]
        )

    def mount(self, path: str, app: ASGIApp) -> None:
        """Serve a sub-application (the dashboard) under ``path`` next to the Twilio routes."""
        self.app.router.routes.append(Mount(path, app=app))

    # -- configuration ---------------------------------------------------------------------

    def reload(self) -> bool:
        """Reload the configuration (blocking); running calls keep theirs. True when it took."""
        error = self.holder.reload()
        self.metrics.reload(error is None)
        if error is None:
            self.prepare()
        return error is None

    def prepare(self) -> None:
        """Load models and train matchers for every language a call can get, now rather than in
        a caller's webhook: the default one and each that answers its own numbers."""
        deployment = self.holder.current
        for config in deployment.languages.values():
            if config.numbers or config.language == deployment.default_language:
                try:
                    self.speech.get(config)
                except Exception:
                    log.exception("%s: preparing speech failed", config.language)
                self._warm_prompts(config)

    def _warm_prompts(self, config: LanguageConfig) -> None:
        """Synthesise the likely mid-call prompts once per configuration. (Warming them per
        call cost every new call three espeak-ng runs until the cache filled, all at once
        when calls arrived together: 7% of the server's CPU at 15 calls.)"""
        if self.tts is None or not self.tts.available:
            return
        prompts = config.prompts
        for text in (prompts.anything_else, prompts.reprompt, prompts.goodbye):
            self._warm(text, config.language)

    # -- plain HTTP endpoints --------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        overloaded = self.overloaded()
        if overloaded is not None:  # a load balancer stops sending calls here
            return PlainTextResponse(f"overloaded: {overloaded}\n", status_code=503)
        return PlainTextResponse(f"ok {len(self.sessions)} calls\n")

    def overloaded(self) -> str | None:
        """Why this server should get no new calls now, or None: decoding lags behind."""
        total, worst = self.decode_backlog()
        if worst <= self.settings.overload_backlog_s:
            return None
        return (
            f"{worst:.1f} s of one call's audio waits to be decoded "
            f"({total:.1f} s over {len(self.sessions)} calls)"
        )

    async def metrics_text(self, request: Request) -> Response:
        self.metrics.backlog(*self.decode_backlog())
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def _signed_form(self, request: Request) -> dict[str, str] | None:
        # Twilio posts application/x-www-form-urlencoded; parsed here (no multipart dependency).
        body = await request.body()
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if not self.settings.check_signatures:
            return params
        url = public_url(str(request.url), self.settings.public_url)
        signature = request.headers.get(SIGNATURE_HEADER)
        if is_valid(url, params, signature, self.settings.auth_token):
            return params
        self.metrics.error("signature")
        log.warning("rejected %s %s: bad or missing %s", request.method, url, SIGNATURE_HEADER)
        return None

    async def voice(self, request: Request) -> Response:
        """Incoming call: greeting and announcements as TwiML, then the media stream."""
        params = await self._signed_form(request)
        if params is None:
            return PlainTextResponse("invalid signature\n", status_code=403)
        call_sid = params.get("CallSid", "")
        if not call_sid:
            return PlainTextResponse("CallSid missing\n", status_code=400)
        existing = self.sessions.get(call_sid)
        if existing is not None:  # Twilio retried the webhook
            return Response(existing.start_twiml, media_type=TWIML)
        self._sweep()
        caller = normalize(params.get("From"))
        config = self.holder.current.for_number(normalize(params.get("To")))  # the line's language
        try:
            session, actions = await asyncio.to_thread(self._new_session, call_sid, caller, config)
        except Exception:
            log.exception("call %s: could not start the bot; dialling the default group", call_sid)
            self.metrics.error("call")
            group = config.group(None)
            return Response(transfer_twiml(group.destination), media_type=TWIML)
        log.info(
            "call %s from %s started (%s, %s)",
            call_sid,
            mask(caller),
            config.language,
            config.source,
        )
        self.metrics.call_started()
        self._observe("call_started", call_sid, session.pipeline.start_at, config.language, caller)
        self._record(session)
        if any(isinstance(a, Transfer | HangUpCall) for a in actions):
            twiml = self._final_twiml(session, actions)
            session.decided = True
            self._end(session, "decided at start")
            return Response(twiml, media_type=TWIML)
        self.sessions[call_sid] = session
        return Response(session.start_twiml, media_type=TWIML)

    def _new_session(
        self, call_sid: str, caller: str | None, config: LanguageConfig
    ) -> tuple[CallSession, list[Action]]:
        kit = self.speech.get(config)
        pipeline = CallPipeline(
            config,
            kit.model,
            kit.classify,
            caller=caller,
            start_at=self.clock(),
            grammar=kit.grammar,
            call_id=call_sid,
            warn=log.warning,
            wait_for_prompts=True,  # the no-speech clock starts when a prompt has played
        )
        actions = pipeline.start()
        token = secrets.token_urlsafe(16)
        speech = [_speech(a) for a in actions if isinstance(a, Say | Play)]
        twiml = connect_stream_twiml(
            speech,
            self.stream_url,
            {"callSid": call_sid, "language": config.language, "token": token},
            fallback=config.group(None).destination,
        )
        return CallSession(call_sid, caller, config, pipeline, token, twiml), actions

    def _warm(self, text: str, language: str) -> None:
        assert self.tts is not None
        with contextlib.suppress(TtsError):
            self.tts.mulaw(text, language)

    def _sweep(self) -> None:
        """Drop sessions whose stream never connected (the status callback may never come)."""
        now = time.monotonic()
        for session in list(self.sessions.values()):
            stale = now - session.created > self.settings.unattached_ttl_s
            if stale and session.streams == 0:
                log.warning("call %s: no media stream connected; dropping it", session.call_sid)
                self._end(session, "no stream")

    async def status(self, request: Request) -> Response:
        """Call status callback: a call that ended closes its session."""
        params = await self._signed_form(request)
        if params is None:
            return PlainTextResponse("invalid signature\n", status_code=403)
        session = self.sessions.get(params.get("CallSid", ""))
        if session is not None and params.get("CallStatus") in ENDED_STATUSES:
            async with session.lock:
                if not session.decided:
                    session.pipeline.hang_up()
                self._end(session, f"status {params.get('CallStatus')}")
        return Response(status_code=204)

    async def whisper(self, request: Request) -> Response:
        """What the agent hears before being bridged: the context the bot gathered."""
        if request.method == "POST":
            params = await self._signed_form(request)
            if params is None:
                return PlainTextResponse("invalid signature\n", status_code=403)
        elif self.settings.check_signatures:
            url = public_url(str(request.url), self.settings.public_url)
            if not is_valid(
                url, {}, request.headers.get(SIGNATURE_HEADER), self.settings.auth_token
            ):
                self.metrics.error("signature")
                log.warning("rejected GET %s: bad or missing %s", url, SIGNATURE_HEADER)
                return PlainTextResponse("invalid signature\n", status_code=403)
        query = request.query_params
        deployment = self.holder.current
        language = query.get("language")
        config = deployment.language(language if language in deployment.languages else None)
        intent = config.intents.get(query.get("intent") or "")
        topic = intent.label if intent is not None else (query.get("reason") or "?")
        text = whisper_text(topic, query.get("transcript"))
        return Response(whisper_twiml(text, config.voice, config.language), media_type=TWIML)

    # -- the media stream ------------------------------------------------------------------

    async def media(self, ws: WebSocket) -> None:
        if self.settings.check_signatures:
            url = public_url(str(ws.url), self.settings.public_url, websocket=True)
            signature = ws.headers.get(SIGNATURE_HEADER)
            if not is_valid(url, {}, signature, self.settings.auth_token):
                self.metrics.error("signature")
                log.warning("rejected stream upgrade %s: bad or missing %s", url, SIGNATURE_HEADER)
                await ws.close(code=1008)  # before accept: the client gets HTTP 403
                return
        await ws.accept()
        session: CallSession | None = None
        try:
            while True:
                try:
                    message = await ws.receive()
                except (WebSocketDisconnect, RuntimeError):
                    break
                if message["type"] == "websocket.disconnect":
                    break
                received = time.perf_counter()
                text = message.get("text")
                if text is None:
                    self._bad(session, "binary frame (Twilio sends text)")
                    continue
                try:
                    parsed = parse_message(text, max_payload_bytes=self.settings.max_payload_bytes)
                except ProtocolError as exc:
                    self._bad(session, str(exc))
                    if (
                        session is not None
                        and session.bad_messages > self.settings.max_bad_messages
                    ):
                        async with session.lock:
                            await self._fail(session, "too many malformed stream messages")
                    if session is not None and session.decided:
                        break
                    continue
                if isinstance(parsed, Start):
                    session = await self._attach(ws, parsed)
                    if session is None:
                        break
                    continue
                if session is None:
                    continue  # "connected", or anything before "start": nothing to attach to
                async with session.lock:
                    try:
                        await self._on_message(session, parsed, received)
                    except Exception as exc:
                        log.exception("call %s: error handling the stream", session.call_sid)
                        await self._fail(session, f"{type(exc).__name__}: {exc}")
                if session.decided or session.ended or session.ws is not ws:
                    break
        finally:
            await self._stream_closed(ws, session)

    def _bad(self, session: CallSession | None, problem: str) -> None:
        self.metrics.error("protocol")
        if session is not None:
            session.bad_messages += 1
            if session.bad_messages > 10:
                return  # logged enough for this call
        who = session.call_sid if session is not None else "unattached stream"
        log.warning("%s: ignored stream message: %s", who, problem)

    async def _attach(self, ws: WebSocket, start: Start) -> CallSession | None:
        session = self.sessions.get(start.call_sid)
        token = start.custom_parameters.get("token", "")
        if session is None or not hmac.compare_digest(token, session.token):
            self.metrics.error("unknown_stream")
            log.warning("stream for unknown call %s or bad token: closing it", start.call_sid)
            return None
        if not start.media_format.is_telephone_mulaw:
            log.warning("call %s: unexpected media format %s", start.call_sid, start.media_format)
        async with session.lock:
            old = session.ws
            session.ws, session.stream_sid = ws, start.stream_sid
            session.streams += 1
            session.redirecting = False
            session.pending_marks.clear()
            session.buffer.clear()
            session.media_offset = None  # a new stream's timestamps start from 0
            if session.audio is None:
                session.audio = self._audio_queue(session)
            self._arm_when_quiet(session)  # the TwiML's <Say> before the stream has played
        if old is not None and old is not ws:
            await _close(old)
        log.info("call %s: stream %d attached", session.call_sid, session.streams)
        return session

    async def _on_message(self, session: CallSession, message: object, received: float) -> None:
        if session.decided or session.ended:
            return
        if isinstance(message, Media):
            if message.track not in ("inbound", "inbound_track"):
                return
            self._on_media(session, message, received)
        elif isinstance(message, Dtmf):
            log.info("call %s: key %s", session.call_sid, message.digit)
            await self._carry_out(session, session.pipeline.dtmf(message.digit), received)
        elif isinstance(message, Mark):
            session.pending_marks.discard(message.name)
            self._arm_when_quiet(session)
        elif isinstance(message, Stop) and not session.redirecting:
            log.info("call %s: stream stopped; the caller hung up", session.call_sid)
            session.pipeline.hang_up()
            self._end(session, "caller hung up")

    # -- caller audio: decoded off the event loop, no await per chunk ----------------------

    def _audio_queue(self, session: CallSession) -> AudioQueue:
        loop = asyncio.get_running_loop()

        def decoded(actions: list[Action], due: float) -> None:  # in a decoding thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: the server stopped
                loop.call_soon_threadsafe(self._on_decoded, session, actions, due)

        return AudioQueue(session.pipeline, decoded, on_decoded=self.metrics.decoded)

    def _on_media(self, session: CallSession, message: Media, received: float) -> None:
        """Buffer a 20 ms frame; hand each 100 ms to the recogniser's queue. ``due`` is when
        the chunk's last frame should have arrived by its media timestamp, measured against
        the stream's start (its earliest arrival minus timestamp): frames queueing anywhere
        before us (the socket, a busy event loop) make the decision latency grow, as the
        caller feels it."""
        end_s = (message.timestamp_ms + 1000 * len(message.payload) / 8000) / 1000
        offset = received - end_s
        if session.media_offset is None or offset < session.media_offset:
            session.media_offset = offset
        session.buffer += message.payload
        if len(session.buffer) < self.settings.feed_bytes or session.audio is None:
            return
        pcm = ulaw_decode(bytes(session.buffer))
        session.buffer.clear()
        session.audio.put(pcm, session.media_offset + end_s)

    def _on_decoded(self, session: CallSession, actions: list[Action], due: float) -> None:
        self._spawn(session, self._carry_out_decoded(session, actions, due))

    async def _carry_out_decoded(
        self, session: CallSession, actions: list[Action], due: float
    ) -> None:
        async with session.lock:
            if session.decided or session.ended:
                return
            try:
                await self._carry_out(session, actions, due)
            except Exception as exc:
                log.exception("call %s: error carrying out the bot's actions", session.call_sid)
                await self._fail(session, f"{type(exc).__name__}: {exc}")

    def decode_backlog(self) -> tuple[float, float]:
        """Caller audio received but not decoded yet: (total over calls, worst call), seconds."""
        backlogs = [s.audio.backlog_s for s in self.sessions.values() if s.audio is not None]
        return sum(backlogs), max(backlogs, default=0.0)

    async def _stream_closed(self, ws: WebSocket, session: CallSession | None) -> None:
        try:
            await self._stream_gone(ws, session)
        finally:
            await _close(ws)

    async def _stream_gone(self, ws: WebSocket, session: CallSession | None) -> None:
        if session is None or session.ws is not ws:
            return
        session.ws = None
        if session.ended or session.redirecting:
            return
        if session.decided:
            self._end(session, "decided")
            return
        # The socket went away with nobody deciding: Twilio continues the TwiML, whose <Dial>
        # puts the caller through to the default group.
        self.metrics.error("stream_lost")
        log.warning(
            "call %s: stream closed before a decision; the TwiML fallback dials the default group",
            session.call_sid,
        )
        session.pipeline.fail("media stream lost")
        self._end(session, "fallback")

    # -- carrying out actions --------------------------------------------------------------

    async def _carry_out(
        self, session: CallSession, actions: list[Action], received: float
    ) -> None:
        self._record(session)
        if not actions:
            return
        if any(not isinstance(a, StopSpeaking) for a in actions):
            session.decision_from = received
        if any(isinstance(a, Transfer | HangUpCall) for a in actions):
            for a in actions:
                if isinstance(a, StopSpeaking):
                    await self._clear(session)
                elif isinstance(a, SendSms):
                    self._spawn(session, self._send_sms(session, a))
            await self._finish(session, actions)
            return
        speech: list[Say | Play] = []
        for a in actions:
            if isinstance(a, Say | Play):
                speech.append(a)
            elif isinstance(a, StopSpeaking):
                await self._clear(session)
            elif isinstance(a, Listen):
                await self._speak(session, speech)
                speech = []
            elif isinstance(a, SendSms):
                await self._speak(session, speech)
                speech = []
                self._left(session)
                self._spawn(session, self._send_sms(session, a))
        await self._speak(session, speech)
        self._arm_when_quiet(session)  # no prompt audio in the stream: the caller's turn now

    def _arm_when_quiet(self, session: CallSession) -> None:
        """Start the caller's no-speech clock once nothing of ours is left to play: prompt audio
        in the stream ends with its mark's echo, a <Say> redirect with the new stream."""
        pipeline = session.pipeline
        if not pipeline.awaiting_prompt_end or session.speaking or session.redirecting:
            return
        # The echo came after the caller audio received so far (decoded or not), so it ends
        # that audio: arm at the call time of the audio received, not of the audio decoded,
        # which lags under load and would start the caller's clock before the prompt ended.
        buffered_s = len(session.buffer) / pipeline.recognizer.call_rate
        received_s = session.audio.received_s if session.audio is not None else pipeline.time_s
        pipeline.arm_no_speech(received_s + buffered_s)

    def _left(self, session: CallSession) -> None:
        """An action left the server: record the decision latency once per triggering audio."""
        if session.decision_from is not None:
            self.metrics.latency(time.perf_counter() - session.decision_from)
            session.decision_from = None

    def _spawn(self, session: CallSession, job: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(job)
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    async def _send(self, session: CallSession, texts: Sequence[str]) -> bool:
        ws = session.ws
        if ws is None or ws.client_state is not WebSocketState.CONNECTED:
            return False
        try:
            for text in texts:
                await asyncio.wait_for(ws.send_text(text), self.settings.send_timeout_s)
        except (TimeoutError, RuntimeError, OSError, WebSocketDisconnect) as exc:
            self.metrics.error("send")
            log.warning("call %s: sending to the stream failed: %r", session.call_sid, exc)
            return False
        return True

    async def _clear(self, session: CallSession) -> None:
        if session.speaking and session.stream_sid is not None:
            log.info("call %s: caller talks over the prompt: clearing it", session.call_sid)
            await self._send(session, [clear_message(session.stream_sid)])

    async def _speak(self, session: CallSession, speech: Sequence[Say | Play]) -> None:
        """Prompts in the stream (TTS audio + mark), else a redirect to <Say> and a new stream."""
        if not speech:
            return
        if session.stream_sid is not None and self.tts is not None and self.tts.available:
            try:
                clips = [
                    await asyncio.to_thread(self.tts.mulaw, s.text, s.language)
                    for s in speech
                    if isinstance(s, Say)
                ]
            except TtsError as exc:
                log.warning("call %s: %s; using <Say> instead", session.call_sid, exc)
                clips = []
            if clips and len(clips) == len(speech):
                session.marks_sent += 1
                name = f"prompt-{session.marks_sent}"
                messages = [m for clip in clips for m in media_messages(session.stream_sid, clip)]
                messages.append(mark_message(session.stream_sid, name))
                self._left(session)
                session.pending_marks.add(name)
                if await self._send(session, messages):
                    return
                session.pending_marks.discard(name)
        await self._redirect_to_say(session, speech)

    async def _redirect_to_say(self, session: CallSession, speech: Sequence[Say | Play]) -> None:
        twiml = connect_stream_twiml(
            [_speech(s) for s in speech],
            self.stream_url,
            {
                "callSid": session.call_sid,
                "language": session.config.language,
                "token": session.token,
            },
            fallback=session.config.group(None).destination,
        )
        session.redirecting = True
        self._left(session)
        result = await asyncio.to_thread(self.rest.update_call, session.call_sid, twiml)
        if not result.ok:
            session.redirecting = False
            self.metrics.error("rest")
            log.error("call %s: redirect to speak a prompt failed: %s", session.call_sid, result)

    async def _send_sms(self, session: CallSession, sms: SendSms) -> None:
        try:
            result = await asyncio.to_thread(self.rest.send_sms, sms.to, sms.body)
        except Exception as exc:  # no sender configured, ...
            result = RestResult(ok=False, error_message=str(exc))
        log.info(
            "call %s: SMS to %s %s",
            session.call_sid,
            mask(sms.to),
            "sent" if result.ok else f"failed: {result.error_code} {result.error_message}",
        )
        if not result.ok:
            self.metrics.error("sms")
        async with session.lock:
            if session.ended or session.decided:
                return
            try:
                actions = session.pipeline.sms_result(result.ok, result.status or str(result))
                await self._carry_out(session, actions, time.perf_counter())
            except Exception as exc:
                log.exception("call %s: error after the SMS", session.call_sid)
                await self._fail(session, f"{type(exc).__name__}: {exc}")

    def _final_twiml(self, session: CallSession, actions: Sequence[Action]) -> str:
        speech = [_speech(a) for a in actions if isinstance(a, Say | Play)]
        for a in actions:
            if isinstance(a, Transfer):
                return transfer_twiml(
                    a.destination,
                    context=asdict(a.context),
                    speech=speech,
                    whisper_base_url=self.whisper_url,
                )
        return say_and_hangup_twiml(speech)

    async def _finish(self, session: CallSession, actions: Sequence[Action]) -> None:
        """Transfer or hang up through a REST call update; the stream then ends."""
        session.decided = True
        if session.audio is not None:
            session.audio.close()
        transfer = next((a for a in actions if isinstance(a, Transfer)), None)
        try:
            twiml = self._final_twiml(session, actions)
        except Exception:
            log.exception("call %s: could not build the final TwiML", session.call_sid)
            twiml = ""
        self._left(session)
        if twiml:
            result = await asyncio.to_thread(self.rest.update_call, session.call_sid, twiml)
        else:
            result = RestResult(ok=False, error_message="no TwiML")
        if transfer is not None:
            ctx = transfer.context
            log.info(
                "call %s: transfer to %s (%s, intent %s, confidence %s) %s",
                session.call_sid,
                transfer.group,
                ctx.reason,
                ctx.intent,
                ctx.confidence,
                "requested" if result.ok else f"FAILED: {result}",
            )
        else:
            log.info("call %s: hang-up %s", session.call_sid, "requested" if result.ok else result)
        if not result.ok:
            self.metrics.error("rest")
            log.error(
                "call %s: REST update failed; closing the stream so the TwiML fallback dials "
                "the default group",
                session.call_sid,
            )
        self._end(session, "decided" if result.ok else "fallback")
        if session.ws is not None:
            await _close(session.ws)

    async def _fail(self, session: CallSession, error: str) -> None:
        """The bot cannot go on: apologise and transfer to the default group."""
        self.metrics.error("call")
        log.error("call %s: %s; transferring to the default group", session.call_sid, error)
        if session.decided or session.ended:
            return
        try:
            actions = session.pipeline.fail(error)
            await self._carry_out(session, actions, time.perf_counter())
        except Exception:
            log.exception("call %s: the fail-safe failed too; closing the stream", session.call_sid)
            session.decided = True
            self._end(session, "fallback")
            if session.ws is not None:
                await _close(session.ws)

    def _end(self, session: CallSession, why: str) -> None:
        if session.ended:
            return
        session.ended = True
        if session.audio is not None:
            session.audio.close()
        if self.sessions.get(session.call_sid) is session:
            del self.sessions[session.call_sid]
        self.metrics.call_ended()
        outcome = session.pipeline.dialogue.outcome
        label = outcome.kind.value if outcome is not None and why != "fallback" else "fallback"
        self.metrics.decision(label)
        log.info("call %s ended (%s): %s", session.call_sid, why, outcome or "no outcome")
        self._record(session)
        if outcome is not None:
            self._observe("call_ended", session.call_sid, session.pipeline.now, outcome)

    def _record(self, session: CallSession) -> None:
        """Pass the pipeline steps not yet observed on: each event, then the actions it caused."""
        if self.observer is None:
            return
        steps = session.pipeline.steps
        for step in steps[session.observed :]:
            match = step.heard.match if step.heard is not None else None
            self._observe("event", session.call_sid, step.handled, match)
            self._observe("actions", session.call_sid, step.handled.at, step.actions)
        session.observed = len(steps)

    def _observe(self, method: str, *args: object) -> None:
        if self.observer is None:
            return
        try:
            getattr(self.observer, method)(*args)
        except Exception:
            log.exception("call observer %s failed", method)


def _speech(action: Say | Play) -> Speech:
    if isinstance(action, Play):
        return Speech(audio_url=action.url)
    return Speech(text=action.text, voice=action.voice, language=action.language)


async def _close(ws: WebSocket) -> None:
    if ws.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await ws.close()
