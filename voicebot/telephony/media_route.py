"""The Media Streams WebSocket route (``/twilio/media``) of ``app.VoiceServer``: its own module
because it is the one long-lived, stateful route (a loop over 20 ms frames with its own timeouts,
bad-message counting, attaching a stream to its call and resuming a call another instance
answered), while ``app`` holds the short request/response routes and the server's lifecycle.

The route reads everything through the server it belongs to (settings, sessions, metrics,
configuration, speech), so a reload or a changed setting reaches it exactly as it reaches the
other routes. Fail-safe as everywhere: any exception while handling a message asks the call's
dialogue to fail, which transfers the caller to the default group; a stream that closes without
the bot having redirected the call falls through to the TwiML's ``<Dial>``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final

from starlette.websockets import WebSocket, WebSocketDisconnect

from voicebot.core.dialogue import HangUpCall, Transfer
from voicebot.telephony.handoff import StreamParameters
from voicebot.telephony.media_stream import Media, ProtocolError, Start, parse_message
from voicebot.telephony.session import CallSession, CallState, close_socket

if TYPE_CHECKING:
    from voicebot.telephony.app import VoiceServer

__all__ = ["MediaRoute"]

# The app's logger: the stream's log lines stay where operators (and log filters) found them.
log = logging.getLogger("voicebot.telephony.app")

BAD_MESSAGES_LOGGED: Final = 10  # warnings per call (or unattached socket); the metric counts all


class MediaRoute:
    """The media stream of the calls ``server`` serves: ``serve`` is the WebSocket endpoint."""

    def __init__(self, server: VoiceServer) -> None:
        self.server = server

    async def serve(self, ws: WebSocket) -> None:
        """One Media Streams WebSocket, from the upgrade to its close.

        The idle deadline moves only with progress: the ``start`` that attaches the stream,
        then each new inbound audio frame. Anything else (``connected``, marks, a frame seen
        before, binary or malformed frames) is no sign of a live call, so a client sending only
        that is timed out as a silent one is. Bad messages are counted per socket, before
        ``start`` too: past ``max_bad_messages`` an unattached socket is closed, an attached
        call handed to a person; only the first few are logged."""
        if not self.server.signed(ws, "stream upgrade", {}, websocket=True):
            await ws.close(code=1008)  # before accept: the client gets HTTP 403
            return
        await ws.accept()
        session: CallSession | None = None
        loop = asyncio.get_running_loop()
        idle_s = self.server.settings.stream_start_timeout_s
        deadline = loop.time() + idle_s
        bad = 0  # bad messages on this socket
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await ws.receive()
                except TimeoutError:
                    await self._idle(ws, session, idle_s)
                    break
                except (WebSocketDisconnect, RuntimeError):
                    break
                if message["type"] == "websocket.disconnect":
                    break
                received = time.perf_counter()
                settings = self.server.settings
                problem: str | None = None
                text = message.get("text")
                parsed = None
                if text is None:
                    problem = "binary frame (Twilio sends text)"
                else:
                    try:
                        parsed = parse_message(text, max_payload_bytes=settings.max_payload_bytes)
                    except ProtocolError as exc:
                        problem = str(exc)
                if isinstance(parsed, Start) and session is not None:
                    problem = "a second start on the same stream"  # one stream, one start
                if problem is not None or parsed is None:
                    bad += 1
                    self._bad(session, bad, problem or "empty message")
                    if bad > settings.max_bad_messages:
                        if session is None:
                            log.warning("unattached stream: %d bad messages: closing it", bad)
                            break
                        async with session.lock:
                            await session.fail("too many malformed stream messages")
                    if session is not None and session.done:
                        break
                    continue
                if isinstance(parsed, Start):
                    session = await self._attach(ws, parsed)
                    if session is None:
                        break
                    idle_s = settings.media_timeout_s
                    deadline = loop.time() + idle_s
                    continue
                if session is None:
                    continue  # "connected", or anything before "start": nothing to attach to
                if session.repeated(parsed):
                    self.server.metrics.error("duplicate_frame")
                    continue
                if isinstance(parsed, Media):
                    deadline = loop.time() + idle_s  # new audio: the stream is alive
                async with session.lock:
                    try:
                        await session.on_message(parsed, received)
                    except Exception as exc:
                        log.exception("call %s: error handling the stream", session.call_sid)
                        await session.fail(f"{type(exc).__name__}: {exc}")
                if session.done or session.ws is not ws:
                    break
        finally:
            try:
                if session is not None:
                    session.stream_gone(ws)
            finally:
                await close_socket(ws)

    async def _idle(self, ws: WebSocket, session: CallSession | None, idle_s: float) -> None:
        """Nothing came on the stream for ``idle_s``. Before "start" it is no call: closed.
        Twilio sends a frame every 20 ms, so a started stream gone quiet is broken, and like any
        failure it ends in a transfer to a person (unless the call is being redirected)."""
        if session is None:
            self.server.metrics.error("stream_start_timeout")
            log.warning("stream sent no start within %g s: closing it", idle_s)
            return
        async with session.lock:
            if session.done or session.ws is not ws or session.state is CallState.REDIRECTING:
                return
            self.server.metrics.error("stream_silent")
            await session.fail(f"no media on the stream for {idle_s:g} s")

    def _bad(self, session: CallSession | None, on_socket: int, problem: str) -> None:
        """Count a bad message (``on_socket``-th on its socket); log the first few only."""
        self.server.metrics.error("protocol")
        seen = on_socket
        if session is not None:
            session.bad_messages += 1
            seen = session.bad_messages
        if seen > BAD_MESSAGES_LOGGED:
            return  # logged enough for this call, or this socket
        who = session.call_sid if session is not None else "unattached stream"
        log.warning("%s: ignored stream message: %s", who, problem)

    async def _attach(self, ws: WebSocket, start: Start) -> CallSession | None:
        params = StreamParameters.read(
            start.call_sid, start.custom_parameters, self.server.settings.auth_token
        )
        if params is None:
            self.server.metrics.error("unknown_stream")
            log.warning("stream for call %s with bad parameters: closing it", start.call_sid)
            return None
        if params.expired(self.server.clock()):
            self.server.metrics.error("stream_expired")
            log.warning(
                "stream %d of call %s: its parameters expired at %s: closing it",
                params.stream,
                start.call_sid,
                params.expires,
            )
            return None
        held = self.server.sessions.get(start.call_sid)
        if held is not None and params.stream != held.handoff.stream:
            self.server.metrics.error("stream_replayed")
            log.warning(
                "call %s: stream %d presented, the call is at stream %d: closing it",
                start.call_sid,
                params.stream,
                held.handoff.stream,
            )
            return None
        if not await self.server.first_use(start.call_sid, params.stream):
            self.server.metrics.error("stream_replayed")
            log.warning(
                "call %s: stream %d started before (a replay, or a second socket): closing "
                "this one; the call is left alone",
                start.call_sid,
                params.stream,
            )
            return None
        session = self.server.sessions.get(start.call_sid)
        if session is None:
            session = await self._resume(params)
            if session is None:
                return None
        if not start.media_format.is_telephone_mulaw:
            log.warning("call %s: unexpected media format %s", start.call_sid, start.media_format)
        async with session.lock:
            old = session.attach(ws, start.stream_sid)
            session.last_seq = start.sequence_number  # the new stream numbers from its start
        if old is not None and old is not ws:
            await close_socket(old)
        if session.unsaid:
            async with session.lock:
                await session.speak_unsaid()
        log.info("call %s: stream %d attached", session.call_sid, session.streams)
        return session

    async def _resume(self, params: StreamParameters) -> CallSession | None:
        """This instance did not answer the call's webhook (or has been restarted since): build
        the session from the stream parameters, as the webhook began it."""
        sid = params.call_sid
        if params.stream != 1:  # a redirected stream: its dialogue is in the redirecting instance
            self.server.metrics.error("unknown_stream")
            log.warning(
                "call %s: stream %d of a call held elsewhere: closing it", sid, params.stream
            )
            return None
        deployment = self.server.holder.current
        if params.language in deployment.languages:
            config = deployment.language(params.language)
        else:  # the language went away in a reload: the line's current one
            config = deployment.for_number(params.line)
        args = (sid, params.caller, config, params.line, params.started_at, params.history)
        try:
            # A few ms when the speech kit is ready: no thread hop while the caller's audio waits.
            if self.server.speech.has(config):
                session, actions = self.server.new_session(*args)
            else:
                session, actions = await asyncio.to_thread(self.server.new_session, *args)
        except Exception:
            log.exception("call %s: could not resume the call; the fallback dials", sid)
            self.server.metrics.error("call")
            return None
        if any(isinstance(a, Transfer | HangUpCall) for a in actions):
            log.warning("call %s: decided at start on resuming (reloaded?): fallback", sid)
            return None
        session.observed = len(session.pipeline.steps)  # the webhook's instance logged the start
        self.server.sessions[sid] = session
        self.server.metrics.call_started()
        return session
