"""The Media Streams WebSocket route (``/twilio/media``) of ``app.VoiceServer``: its own module
because it is the one long-lived, stateful route, while ``app`` holds the short request/response
routes and the server's lifecycle.

Each socket's logic (parsing, bad-message counting, duplicate drops, the start and silence
deadlines) is one ``MediaConnection`` driven per message, whichever transport carries it: the
Starlette route here on the main port (``serve``), or picows on the media port
(``media_listener``). What they share at the server level is here: attaching a stream to its
call (the stream parameters and their claim), resuming a call another instance answered, and
what a silent or misbehaving stream costs it.

The route reads everything through the server it belongs to (settings, sessions, metrics,
configuration, speech), so a reload or a changed setting reaches it exactly as it reaches the
other routes. Fail-safe as everywhere: any exception while handling a message asks the call's
dialogue to fail, which transfers the caller to the default group; a stream that closes without
the bot having redirected the call falls through to the TwiML's ``<Dial>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Final

from starlette.websockets import WebSocket, WebSocketDisconnect

from voicebot.core.actions import HangUpCall, Transfer
from voicebot.telephony.handoff import StreamParameters
from voicebot.telephony.media_connection import MediaConnection
from voicebot.telephony.media_socket import MediaSocket, StarletteSocket
from voicebot.telephony.media_stream import Start
from voicebot.telephony.session import CallSession, CallState

if TYPE_CHECKING:
    from voicebot.telephony.app import VoiceServer

__all__ = ["MediaRoute"]

# The app's logger: the stream's log lines stay where operators (and log filters) found them.
log = logging.getLogger("voicebot.telephony.app")

BAD_MESSAGES_LOGGED: Final = 10  # warnings per call (or unattached socket); the metric counts all


class MediaRoute:
    """The media stream of the calls ``server`` serves: ``serve`` is the Starlette WebSocket
    endpoint on the main port; ``media_listener`` serves the same streams with picows. Both
    drive a ``MediaConnection`` per socket; what they share at the server level (attaching a
    stream to its call, resuming a call, the idle and bad-message handling) is here."""

    def __init__(self, server: VoiceServer) -> None:
        self.server = server

    async def serve(self, ws: WebSocket) -> None:
        """One Media Streams WebSocket, from the upgrade to its close: the signature is checked
        before the upgrade, then each message goes to the stream's ``MediaConnection``."""
        if not self.server.signed(ws, "stream upgrade", {}, websocket=True):
            await ws.close(code=1008)  # before accept: the client gets HTTP 403
            return
        await ws.accept()
        socket = StarletteSocket(ws)
        connection = MediaConnection(self, socket)
        reader = asyncio.ensure_future(_read(ws, socket, connection))
        try:
            await connection.finished.wait()
        finally:
            reader.cancel()
            connection.end()

    async def idle(self, ws: MediaSocket, session: CallSession | None, idle_s: float) -> None:
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

    def bad(self, session: CallSession | None, on_socket: int, problem: str) -> None:
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

    async def attach(self, ws: MediaSocket, start: Start) -> CallSession | None:
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
            await old.close()
        if session.unsaid:
            async with session.lock:
                await session.speak_unsaid()
        log.info("call %s: stream %d attached (%s)", session.call_sid, session.streams, ws.carrier)
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


async def _read(ws: WebSocket, socket: StarletteSocket, connection: MediaConnection) -> None:
    """Starlette's side of a stream: each message to ``connection`` as it comes, until the
    peer closes or the connection has ended; waits while ``connection`` paused reading."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while not connection.ended:
            if not socket.readable.is_set():
                await socket.readable.wait()
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            connection.on_text(message.get("text"), time.perf_counter())
    connection.on_closed()
