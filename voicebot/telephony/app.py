"""The Twilio shell's routes: incoming-call webhook, status callback, whisper, health and
metrics, and the server's lifecycle (prepare, reload, drain); the Media Streams WebSocket route is
``media_route.MediaRoute``, mounted here.

Every decision is made by ``CallPipeline`` (recogniser + dialogue); this module only turns
Twilio's requests into calls on a ``session.CallSession``, which carries out the actions. Every
signed route checks its signature through ``signed`` (one check, one metric, one log line),
against the public URL Twilio signed.

Several instances can serve one line behind a load balancer (docs/deployment.md): the webhook
keeps nothing in memory; what the stream needs travels in the TwiML's stream parameters
(``handoff``), and whichever instance the WebSocket reaches builds the call's session from them,
pinned to the ``LanguageConfig`` it then has, so a reload never changes a call in progress. A
status callback for a call no session here knows closes its call-log row as the fallback
transfer (its instance may have died). ``/healthz`` says 503 until the models are loaded
(``prepare``; a webhook that comes anyway sends the caller to a person) and while draining
(``drain``), so the load balancer sends the instance nothing new.

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
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp

from voicebot.core.actions import Action, HangUpCall, Play, Say, Transfer
from voicebot.core.config import LanguageConfig
from voicebot.core.phone import mask, normalize
from voicebot.core.recall import CallerHistory
from voicebot.core.state import Outcome, OutcomeKind
from voicebot.loading.loader import ConfigHolder
from voicebot.speech.pipeline import (
    CallPipeline,
    SpeechKit,
    TrainClassify,
    speech_kit,
    train_matcher,
)
from voicebot.speech.recognizer import SpeechModel
from voicebot.speech.tts import Tts, TtsError
from voicebot.telephony import prompts
from voicebot.telephony.admission import Admission, refuse
from voicebot.telephony.handoff import StreamParameters, health
from voicebot.telephony.limits import BodyLimit
from voicebot.telephony.media_route import MediaRoute
from voicebot.telephony.metrics import Metrics
from voicebot.telephony.observer import CallObserver, GuardedObserver, NoObserver
from voicebot.telephony.rest import TwilioRest
from voicebot.telephony.session import (
    CallServices,
    CallSession,
    stream_twiml,
)
from voicebot.telephony.settings import ServerSettings
from voicebot.telephony.signature import SIGNATURE_HEADER, public_url, verify
from voicebot.telephony.twiml import transfer_twiml, whisper_text, whisper_twiml

__all__ = ["SpeechKit", "SpeechProvider", "VoiceServer"]

log = logging.getLogger(__name__)

TWIML = "application/xml"
ENDED_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
KNOWN_CALLS = 100_000  # CallSids remembered to refuse repeated webhooks (12 MB measured)


def closed_outcome(params: Mapping[str, str], config: LanguageConfig) -> Outcome:
    """How a call ended that no session knows, from Twilio's status callback alone. Answered
    and completed: the stream dropped with the process, and the TwiML's ``<Dial>`` took the
    caller to the default group. Never connected (busy, no-answer, failed, canceled, or a
    completed call of 0 s): the caller hung up before any of that."""
    status = params.get("CallStatus", "")
    duration = params.get("CallDuration", "")
    answered = status == "completed" and not (duration.isdigit() and int(duration) == 0)
    if answered:
        return Outcome(OutcomeKind.TRANSFERRED, 0, "fallback", config.group(None).id)
    return Outcome(OutcomeKind.CALLER_HUNG_UP, 0, status or None)


class SpeechProvider:
    """Builds a ``SpeechKit`` once per configuration object (a reload makes new objects).

    The lock guards the table only, never a build: a reload training the matchers of a new
    configuration (a second or more) must not hold up a webhook that wants the kit of the
    configuration in service, nor ``has``, which the event loop calls. Two threads wanting the
    same new configuration share one build (the second waits for the first's)."""

    def __init__(
        self,
        load_model: Callable[[LanguageConfig], SpeechModel],
        *,
        train: TrainClassify = train_matcher,
    ) -> None:
        self._load_model = load_model
        self._train = train  # the product's matcher unless a benchmark swaps in another
        self._lock = threading.Lock()
        self._kits: dict[int, tuple[LanguageConfig, SpeechKit]] = {}
        self._building: dict[int, tuple[LanguageConfig, Future[SpeechKit]]] = {}

    def has(self, config: LanguageConfig) -> bool:
        """Whether ``get(config)`` is ready without building anything (safe on the loop)."""
        with self._lock:
            hit = self._kits.get(id(config))
            return hit is not None and hit[0] is config

    def get(self, config: LanguageConfig) -> SpeechKit:
        """Blocking on first use of a config (matcher training): call from a thread."""
        with self._lock:
            hit = self._kits.get(id(config))
            if hit is not None and hit[0] is config:
                return hit[1]
            building = self._building.get(id(config))
            if building is not None and building[0] is config:
                waiting: Future[SpeechKit] | None = building[1]
            else:
                waiting = None
                built: Future[SpeechKit] = Future()
                self._building[id(config)] = (config, built)
        if waiting is not None:
            return waiting.result()
        try:
            kit = speech_kit(config, self._load_model(config), log.warning, train=self._train)
        except BaseException as exc:
            with self._lock:
                del self._building[id(config)]
            built.set_exception(exc)
            raise
        with self._lock:
            del self._building[id(config)]
            self._kits[id(config)] = (config, kit)
            while len(self._kits) > 16:  # old configs of finished calls
                self._kits.pop(next(iter(self._kits)))
        built.set_result(kit)
        return kit


class VoiceServer:
    """The ASGI app (``.app``) and the in-memory calls it serves (``.sessions``)."""

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
        ready: bool = True,
    ) -> None:
        self.settings = settings
        self.ready = ready  # models and intents loaded: False until prepare() (see serve)
        self.draining = False
        self.holder = holder
        self.speech = speech
        self.sessions: dict[str, CallSession] = {}
        # CallSids answered by this process, oldest first: a webhook for one of them is a repeat.
        self.answered: dict[str, None] = {}
        # Whether the call log has a CallSid (``CallLog.has_call``; None: cannot tell), for
        # repeats of calls answered before a restart or by another instance.
        self.known_call: Callable[[str], bool | None] = lambda call_sid: False
        # Claims a call's stream in the call log shared by the instances (``CallLog.
        # claim_stream``): False when another claimed it first, None when there is no shared
        # log or it cannot tell; then only this instance's memory (``UsedStreams``) refuses.
        self.claim_stream: Callable[[str, int], bool | None] = lambda call_sid, stream: None
        # The caller's recent calls for recall (``CallLog.caller_history``: number, days, the
        # call's start, CallSid); None when unknown. Asked only for a language with recall on.
        self.caller_history: Callable[[str | None, int, dt.datetime, str], CallerHistory | None] = (
            lambda number, days, at, call_sid: None
        )
        base = settings.public_url.rstrip("/")
        self.stream_base = (settings.stream_public_url or base).rstrip("/")
        stream_base = self.stream_base
        self.services = CallServices(
            settings=settings,
            rest=rest,
            metrics=metrics or Metrics(),
            observer=NoObserver() if observer is None else GuardedObserver(observer),
            tts=tts,
            stream_url=public_url(stream_base + "/twilio/media", stream_base, websocket=True),
            whisper_url=public_url(base + "/twilio/whisper", base),
            sessions=self.sessions,
            prompt_url=public_url(base + prompts.PROMPT_PATH, base),
            clock=clock,
        )
        self.admission = Admission(
            self.sessions, max_calls=settings.max_calls, max_backlog_s=settings.max_backlog_s
        )
        self.services.behind = self.admission.behind
        self.media_route = MediaRoute(self)
        self.app = Starlette(
            routes=[
                Route("/twilio/voice", self.voice, methods=["POST"]),
                Route("/twilio/status", self.status, methods=["POST"]),
                Route("/twilio/whisper", self.whisper, methods=["GET", "POST"]),
                Route(prompts.PROMPT_PATH, self.prompt_audio, methods=["GET", "HEAD"]),
                WebSocketRoute("/twilio/media", self.media_route.serve),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/metrics", self.metrics_text, methods=["GET"]),
            ],
            middleware=[
                Middleware(
                    BodyLimit,
                    max_bytes=settings.max_body_bytes,
                    timeout_s=settings.body_timeout_s,
                    refused=self.services.metrics.error,
                )
            ],
        )

    # The sessions read these through ``services``; exposed here for the CLI and tests.
    @property
    def rest(self) -> TwilioRest:
        return self.services.rest

    @property
    def metrics(self) -> Metrics:
        return self.services.metrics

    @property
    def tts(self) -> Tts | None:
        return self.services.tts

    @tts.setter
    def tts(self, tts: Tts | None) -> None:
        self.services.tts = tts

    @property
    def clock(self) -> Callable[[], dt.datetime]:
        return self.services.clock

    @clock.setter
    def clock(self, clock: Callable[[], dt.datetime]) -> None:
        self.services.clock = clock

    async def first_use(self, call_sid: str, stream: int) -> bool:
        """Whether stream ``stream`` of the call starts here for the first time, on this
        instance (checked and marked at once, before any await: two sockets racing cannot both
        pass) and in the shared call log (unless it cannot tell in time)."""
        if not self.services.used_streams.take(call_sid, stream):
            return False
        return await asyncio.to_thread(self.claim_stream, call_sid, stream) is not False

    @property
    def stream_url(self) -> str:
        return self.services.stream_url

    @property
    def whisper_url(self) -> str:
        return self.services.whisper_url

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

    def prepare(self, *, strict: bool = False, warm_first: bool = False) -> None:
        """Load models and train matchers for every language a call can get, now rather than in
        a caller's webhook: the default one and each that answers its own numbers. Then the
        server is ready. ``strict``: a language that fails raises instead of being logged.
        ``warm_first`` (at start-up): synthesise the prompts before saying ready, so the first
        calls a load balancer sends do not share the core with espeak-ng; on a reload they are
        warmed in the background while calls go on."""
        deployment = self.holder.current
        for config in deployment.languages.values():
            if config.numbers or config.language == deployment.default_language:
                try:
                    self.speech.get(config)
                except Exception:
                    if strict:
                        raise
                    log.exception("%s: preparing speech failed", config.language)
                self._warm_prompts(config, wait=warm_first)
        self.ready = True

    def _warm_prompts(self, config: LanguageConfig, *, wait: bool = False) -> None:
        """Synthesise the usual prompts once per configuration, in one background thread:
        what the intents announce or say after a text, and the usual follow-ups. (Warming three
        of them for every new call cost each call three espeak-ng runs until the cache filled,
        all at once when calls arrived together: 7% of the server's CPU at 15 calls; the
        announcements themselves were synthesised while their first caller waited.)"""
        tts = self.tts
        if tts is None or not tts.available:
            return
        p = config.prompts
        texts = [p.greeting, p.anything_else, p.reprompt, p.goodbye, p.sms_sent, p.sms_failed]
        # the transfer lines and closed messages Twilio fetches for <Play> at the end of a call
        for group in config.groups.values():
            texts.append(p.transfer.replace("{group}", group.name))
            if group.when_closed is not None:
                texts.append(group.when_closed.say)
        for intent in config.intents.values():
            texts += [t for t in (intent.action.text, intent.action.answer) if t]
        language = config.language

        def warm_all() -> None:
            for text in dict.fromkeys(texts):
                _warm(tts, text, language)

        if wait:
            warm_all()
        else:
            threading.Thread(target=warm_all, name="warm-prompts", daemon=True).start()

    async def drain(self, timeout_s: float, hurry: asyncio.Event | None = None) -> int:
        """Stop taking calls (``/healthz`` 503, so the load balancer sends new ones elsewhere)
        and wait up to ``timeout_s`` (or until ``hurry`` is set) for the calls in progress to
        end; those still going are then handed to the default group. Requests that arrive
        before the load balancer has noticed are still served: a webhook's TwiML sends its
        stream back through the load balancer. Returns how many calls were handed over."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.sessions and loop.time() < deadline and not (hurry and hurry.is_set()):
            await asyncio.sleep(0.1)
        left = list(self.sessions.values())
        for session in left:
            async with session.lock:
                await session.fail("this instance is shutting down")
        while self.sessions and loop.time() < deadline + 10:  # their REST updates
            await asyncio.sleep(0.05)
        return len(left)

    # -- plain HTTP endpoints --------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        status, text = health(
            ready=self.ready,
            draining=self.draining,
            overloaded=self.overloaded(),
            calls=len(self.sessions),
        )
        return PlainTextResponse(text, status_code=status)

    def overloaded(self) -> str | None:
        """Why this server should get no new calls now, or None: decoding lags behind."""
        total, worst = self.decode_backlog()
        if worst <= self.lag_limit_s():
            return None
        return (
            f"{worst:.1f} s of one call's audio waits to be decoded "
            f"({total:.1f} s over {len(self.sessions)} calls)"
        )

    def agent_weight(self) -> int:
        """What HAProxy's agent-check reads (``admission``): the room left, in percent; the
        minimum while some caller waits more than ``lag_limit_s`` for decoding."""
        now = time.perf_counter()
        lags = [s.audio.lag_s(now) for s in list(self.sessions.values()) if s.audio is not None]
        return self.admission.weight(lagging=max(lags, default=0.0) > self.lag_limit_s())

    def lag_limit_s(self) -> float:
        """The decoding lag past which this instance asks for no new calls: ``overload_backlog_s``,
        or ``max_backlog_s`` when that is lower. Otherwise ``serve --max-backlog 0.5`` would hand
        its lagging calls over to people while HAProxy, told it had room, sent it more."""
        lag, limit = self.settings.overload_backlog_s, self.settings.max_backlog_s
        return lag if limit is None else min(lag, limit)

    def decode_backlog(self) -> tuple[float, float]:
        """Caller audio received but not decoded yet: (total over calls, worst call), seconds."""
        backlogs = [s.backlog_s for s in list(self.sessions.values())]
        return sum(backlogs), max(backlogs, default=0.0)

    async def metrics_text(self, request: Request) -> Response:
        self.metrics.backlog(*self.decode_backlog())
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")

    def signed(
        self, conn: HTTPConnection, what: str, params: Mapping[str, str], *, websocket: bool = False
    ) -> bool:
        """Whether Twilio signed this request (webhook, whisper or stream upgrade); a rejection
        is counted and logged here once for every route."""
        signature = conn.headers.get(SIGNATURE_HEADER)
        return self.signed_target(str(conn.url), signature, what, params, websocket=websocket)

    def signed_target(
        self,
        target: str,
        signature: str | None,
        what: str,
        params: Mapping[str, str] | None = None,
        *,
        websocket: bool = False,
        stream: bool = False,
    ) -> bool:
        """``signed`` for a request URL (or just its path and query: only those are used, on
        the public origin) and its signature header; ``stream``: the media listener's upgrade,
        signed on the stream's own origin (``ServerSettings.stream_public_url``)."""
        if not self.settings.check_signatures:
            return True
        failed = verify(
            target if "://" in target else "http://media" + target,
            params or {},
            signature,
            public_base=self.stream_base if stream else self.settings.public_url,
            auth_token=self.settings.auth_token,
            websocket=websocket or stream,
        )
        if failed is None:
            return True
        self.metrics.error("signature")
        log.warning("rejected %s %s: bad or missing %s", what, failed, SIGNATURE_HEADER)
        return False

    async def _signed_form(self, request: Request) -> dict[str, str] | None:
        # Twilio posts application/x-www-form-urlencoded; parsed here (no multipart dependency).
        body = await request.body()
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return params if self.signed(request, request.method, params) else None

    async def voice(self, request: Request) -> Response:
        """Incoming call: greeting and announcements as TwiML, then the media stream."""
        params = await self._signed_form(request)
        if params is None:
            return PlainTextResponse("invalid signature\n", status_code=403)
        call_sid = params.get("CallSid", "")
        if not call_sid:
            return PlainTextResponse("CallSid missing\n", status_code=400)
        caller = normalize(params.get("From"))
        line = normalize(params.get("To")) or ""
        config = self.holder.current.for_number(line)  # the line's language
        if not self.ready:  # the load balancer should not have sent it: no models yet
            log.warning("call %s: not ready; sending the caller to the default group", call_sid)
            self.metrics.error("unavailable")
            return Response(transfer_twiml(config.group(None).destination), media_type=TWIML)
        existing = self.sessions.get(call_sid)
        if existing is not None:  # Twilio retried the webhook of a call whose stream is here
            self.metrics.error("duplicate_webhook")
            return Response(existing.start_twiml, media_type=TWIML)
        seen: bool | None = call_sid in self.answered
        if not seen:
            seen = await asyncio.to_thread(self.known_call, call_sid)
        if seen:
            return self._answered_before(call_sid, config)
        self.answered[call_sid] = None
        while len(self.answered) > KNOWN_CALLS:
            del self.answered[next(iter(self.answered))]
        self._sweep()
        if not self.admission.admit(call_sid):
            why = f"{self.admission.load()} calls here, at most {self.admission.max_calls}"
            twiml = refuse(self.services, call_sid, caller, config, self.clock(), why)
            return Response(twiml, media_type=TWIML)
        # While draining, the answer is the same: its stream goes through the load balancer,
        # to an instance that is not draining once the health check has seen this one's 503.
        try:
            start_at = self.clock()
            history = await self._history(caller, config, start_at, call_sid)
            session, actions = await asyncio.to_thread(
                self.new_session, call_sid, caller, config, line, start_at, history
            )
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
        self.services.observer.call_started(
            call_sid, session.pipeline.start_at, config.language, caller
        )
        session.record()
        if any(isinstance(a, Transfer | HangUpCall) for a in actions):
            self.metrics.call_started()
            twiml = session.final_twiml(actions)
            session.decide()
            session.end("decided at start")
            return Response(twiml, media_type=TWIML)
        # Nothing is kept: the stream's instance (this one or another) rebuilds the session.
        return Response(session.start_twiml, media_type=TWIML)

    def _answered_before(self, call_sid: str, config: LanguageConfig) -> Response:
        """The webhook of a call answered before (here, or as the call log knows) came again:
        a replay (Twilio does not ask twice for a call it is still connecting). It must not
        start a second session, which would write a second start and outcome into the call's
        log: ignored and counted. The answer still puts a caller through to a person, should
        one be on the line."""
        self.metrics.error("duplicate_webhook")
        log.warning("call %s: webhook for a call that has ended; ignored", call_sid)
        return Response(transfer_twiml(config.group(None).destination), media_type=TWIML)

    async def _history(
        self, caller: str | None, config: LanguageConfig, at: dt.datetime, call_sid: str
    ) -> CallerHistory | None:
        """What recall needs, read off the event loop; nothing is read with recall off or a
        withheld number."""
        if config.recall is None or caller is None:
            return None
        days = config.recall.days
        return await asyncio.to_thread(self.caller_history, caller, days, at, call_sid)

    def new_session(
        self,
        call_sid: str,
        caller: str | None,
        config: LanguageConfig,
        line: str,
        start_at: dt.datetime,
        history: CallerHistory | None = None,
    ) -> tuple[CallSession, list[Action]]:
        """The call as the webhook starts it, or as a stream's instance rebuilds it from the
        stream parameters: the same dialogue start, deterministically."""
        pipeline = CallPipeline(
            config,
            self.speech.get(config),
            caller=caller,
            start_at=start_at,
            call_id=call_sid,
            wait_for_prompts=True,  # the no-speech clock starts when a prompt has played
            history=history,
        )
        actions = pipeline.start()
        handoff = StreamParameters(
            call_sid, config.language, line, caller, start_at, history=history
        )
        speech = [a for a in actions if isinstance(a, Say | Play)]
        twiml = stream_twiml(self.services, config, handoff, speech)
        session = CallSession(call_sid, caller, config, pipeline, handoff, twiml, self.services)
        return session, actions

    def _sweep(self) -> None:
        """Drop sessions whose stream never connected (the status callback may never come)."""
        now = time.monotonic()
        for session in list(self.sessions.values()):
            stale = now - session.created > self.settings.unattached_ttl_s
            if stale and session.streams == 0:
                log.warning("call %s: no media stream connected; dropping it", session.call_sid)
                session.end("no stream")

    async def status(self, request: Request) -> Response:
        """Call status callback: a call that ended closes its session."""
        params = await self._signed_form(request)
        if params is None:
            return PlainTextResponse("invalid signature\n", status_code=403)
        call_sid = params.get("CallSid", "")
        if params.get("CallStatus") not in ENDED_STATUSES:
            return Response(status_code=204)
        self.admission.ended(call_sid)
        session = self.sessions.get(call_sid)
        if session is not None:
            async with session.lock:
                if not session.done:
                    session.pipeline.hang_up()
                session.end(f"status {params.get('CallStatus')}")
        elif call_sid:
            # Not a call of this process (any more): if the call log has no outcome for it, the
            # process that held it died, and what Twilio reports is all there is to know.
            config = self.holder.current.for_number(normalize(params.get("To")))
            outcome = closed_outcome(params, config)
            self.services.observer.call_closed(call_sid, self.clock(), outcome)
            # The call is over: its first stream's parameters (given out, maybe never used)
            # must not start it again, here or on another instance.
            await self.first_use(call_sid, 1)
        return Response(status_code=204)

    async def whisper(self, request: Request) -> Response:
        """What the agent hears before being bridged: the context the bot gathered."""
        if request.method == "POST":
            params = await self._signed_form(request)
            if params is None:
                return PlainTextResponse("invalid signature\n", status_code=403)
        elif not self.signed(request, "GET", {}):
            return PlainTextResponse("invalid signature\n", status_code=403)
        query = request.query_params
        deployment = self.holder.current
        language = query.get("language")
        config = deployment.language(language if language in deployment.languages else None)
        intent = config.intents.get(query.get("intent") or "")
        topic = intent.label if intent is not None else (query.get("reason") or "?")
        text = whisper_text(topic, await self._transcript(query.get("call") or ""))
        text += recent_calls_text(query, config)
        return Response(whisper_twiml(text, config.voice, config.language), media_type=TWIML)

    async def prompt_audio(self, request: Request) -> Response:
        """A prompt as audio for TwiML's <Play>: the same recording or engine audio the stream
        plays (``prompts``). Only texts the server signed are spoken."""
        query = request.query_params
        language, text = query.get("lang", ""), query.get("text", "")
        expected = prompts.signature(self.settings.auth_token, language, text)
        if not hmac.compare_digest(expected, query.get("sig", "")):
            return PlainTextResponse("invalid signature\n", status_code=403)
        config = self.holder.current.languages.get(language)
        if config is None:
            return PlainTextResponse("no such language\n", status_code=404)
        say = Say(text, config.voice, language)
        try:
            audio = await asyncio.to_thread(prompts.clip, say, config, self.tts)
        except TtsError as exc:
            log.warning("prompt audio for <Play> failed: %s", exc)
            self.metrics.error("tts")
            return PlainTextResponse("no audio for this prompt\n", status_code=503)
        headers = {"Cache-Control": "public, max-age=86400"}  # Twilio may cache it
        return Response(prompts.wav_of(audio), media_type="audio/wav", headers=headers)

    async def _transcript(self, call_sid: str) -> str | None:
        """What the caller said, for the agent: this instance's note of the transfer, else the
        call log's (the call may have been served by another instance)."""
        if not call_sid:
            return None
        note = self.services.whispers.get(call_sid)
        if note is not None:
            return note
        observer = self.services.observer
        return await asyncio.to_thread(observer.transfer_transcript, call_sid)


def recent_calls_text(query: Mapping[str, str], config: LanguageConfig) -> str:
    """The whisper's sentence about a repeat caller's recent calls ("" without them)."""
    calls = query.get("recent_calls")
    if not calls or not calls.isdigit() or int(calls) == 0:
        return ""
    last = config.intents.get(query.get("last_intent") or "")
    about = f" about {last.label}" if last is not None else ""
    when = f" on {query['last_call']}" if query.get("last_call") else ""
    days = f" in {config.recall.days} days" if config.recall is not None else ""
    return f" {calls} earlier call{'s' if calls != '1' else ''}{days}; the last{when}{about}."


def _warm(tts: Tts, text: str, language: str) -> None:
    """Synthesise a likely prompt ahead, so a call does not wait for it."""
    with contextlib.suppress(TtsError):
        tts.mulaw(text, language)
