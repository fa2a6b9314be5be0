"""One Media Streams socket's logic, driven per message by whichever transport carries it.

The transports (Starlette's WebSocket in ``media_route``, picows in ``media_listener``) check
the signature before the upgrade, then call ``on_text`` for each message and ``on_closed`` when
the peer goes. Everything else is here, once: parsing, bad-message counting, duplicate drops,
attaching the stream to its call (with its claim in the call log), the start and silence
deadlines, and the fail-safe.

Why synchronous: a call is 50 ``media`` frames a second, and the frame of an attached call needs
no await (``CallSession.on_media`` buffers 20 ms frames and hands each 100 ms to the decoder
thread's queue). Handling it in the transport's callback costs no future, task or lock
acquisition per frame. What needs awaiting (``start``: the stream claim in the call log; marks,
keys and ``stop``: ``carry_out``; a frame while another task holds the call's ``lock``) runs as
one task at a time per socket, and the messages arriving meanwhile wait in ``pending``, handled
in order once it is done: the order of a stream's messages is the order they are handled in,
as it was with one ``await ws.receive()`` loop. Past ``HIGH_WATER`` waiting messages the socket
stops being read (TCP then holds the client back) until they are all handled.

The idle deadline is a timestamp of the last progress (the ``start``, then each new inbound
frame) and one timer that re-arms itself when it finds progress since it was set: no timer is
rescheduled per frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Final

from voicebot.telephony.media_socket import MediaSocket
from voicebot.telephony.media_stream import Media, ProtocolError, Start, parse_message
from voicebot.telephony.read_ahead import HIGH_WATER
from voicebot.telephony.session import CallSession

if TYPE_CHECKING:
    from voicebot.telephony.media_route import MediaRoute

__all__ = ["MediaConnection"]

# The app's logger: the stream's log lines stay where operators (and log filters) found them.
log = logging.getLogger("voicebot.telephony.app")

BUSY_RECHECK_S: Final = 0.05  # the idle timer, while a message's task runs, looks again after
_CLOSED: Final = object()  # in ``pending``: the peer closed after the messages before it

Job = Coroutine[object, object, None]


class MediaConnection:
    """The stream on ``socket`` (signature already checked), from its first message to its end
    (``finished`` is set once the session has let go of it and the socket is closed)."""

    def __init__(self, route: MediaRoute, socket: MediaSocket) -> None:
        self.route = route
        self.server = route.server
        self.socket = socket
        self.session: CallSession | None = None
        self.loop = asyncio.get_running_loop()
        self.idle_s = self.server.settings.stream_start_timeout_s
        self.progress = self.loop.time()  # of the last sign of a live stream
        self.bad = 0  # bad messages on this socket
        self.busy = False  # a message's task is running; new messages wait in ``pending``
        self.pending: deque[tuple[str | bytes | None, float] | object] = deque()
        self.paused = False
        self.ended = False
        self.finished = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = self.loop.call_at(
            self.progress + self.idle_s, self._tick
        )

    # -- what the transport calls ------------------------------------------------------------

    def on_text(self, text: str | bytes | None, received: float | None = None) -> None:
        """One text message (as ``str``, or its UTF-8 bytes; ``None``: a binary message), as it
        arrived; ``received`` is its
        ``time.perf_counter()`` (taken here when the transport did not)."""
        if self.ended:
            return
        if received is None:
            received = time.perf_counter()
        if self.busy:
            self.pending.append((text, received))
            if not self.paused and len(self.pending) >= HIGH_WATER:
                self.paused = True
                self.socket.pause_reading()
            return
        try:
            self._handle(text, received)
        except Exception:  # fail-safe: the stream closes, the TwiML's <Dial> takes the call
            log.exception("media stream: error handling a message; closing the stream")
            self.end()

    def on_closed(self) -> None:
        """The peer closed the socket (or it broke): the messages before still count."""
        if self.busy:
            self.pending.append(_CLOSED)
        else:
            self.end()

    def end(self) -> None:
        """This stream is over: let its call know, close the socket (once)."""
        if self.ended:
            return
        self.ended = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.pending.clear()
        self._spawn(self._finish())

    # -- one message ----------------------------------------------------------------------

    def _handle(self, text: str | bytes | None, received: float) -> None:
        """Handle one message now, or start the one task it needs (then ``busy``)."""
        settings = self.server.settings
        session = self.session
        problem: str | None = None
        parsed = None
        if text is None:
            problem = "binary frame (Twilio sends text)"
        else:
            try:
                parsed = parse_message(text, max_payload_bytes=settings.max_payload_bytes)
            except ProtocolError as exc:
                problem = str(exc)
        if type(parsed) is Media and session is not None:  # 50 a second: the fewest steps
            self._media(session, parsed, received)
            return
        if isinstance(parsed, Start) and session is not None:
            problem = "a second start on the same stream"  # one stream, one start
        if problem is not None or parsed is None:
            self.bad += 1
            self.route.bad(session, self.bad, problem or "empty message")
            if self.bad > settings.max_bad_messages:
                if session is None:
                    log.warning("unattached stream: %d bad messages: closing it", self.bad)
                    self.end()
                    return
                self._run(self._fail(session, "too many malformed stream messages"))
                return
            if session is not None and session.done:
                self.end()
            return
        if isinstance(parsed, Start):
            self._run(self._start(parsed))
            return
        if session is None:
            return  # "connected", or anything before "start": nothing to attach to
        if session.repeated(parsed):
            return
        self._run(self._message(session, parsed, received))

    def _media(self, session: CallSession, media: Media, received: float) -> None:
        """A caller audio frame of the attached call: buffered now, no await, no task (unless
        a task holds the call's lock)."""
        if session.repeated(media):
            return
        self.progress = self.loop.time()  # new audio: the stream is alive
        if session.lock.locked():
            self._run(self._message(session, media, received))
            return
        try:
            session.on_media(media, received)
        except Exception as exc:
            log.exception("call %s: error handling the stream", session.call_sid)
            self._run(self._fail(session, f"{type(exc).__name__}: {exc}"))
            return
        self._check_attached()

    def _check_attached(self) -> None:
        session = self.session
        if session is not None and (session.done or session.ws is not self.socket):
            self.end()

    def _run(self, job: Job) -> None:
        """Start the task one message needs; the messages after it wait for it."""
        self.busy = True
        self._spawn(self._step(job))

    async def _step(self, job: Job) -> None:
        try:
            await job
        except Exception:  # fail-safe: the stream closes, the TwiML's <Dial> takes the call
            log.exception("media stream: error handling a message; closing the stream")
            self.busy = False
            self.end()
            return
        self.busy = False
        self._check_attached()
        while self.pending and not self.busy and not self.ended:
            item = self.pending.popleft()
            if isinstance(item, tuple):
                self.on_text(*item)  # neither busy nor ended: handled now
            else:  # _CLOSED
                self.end()
        if self.paused and not self.pending and not self.ended:
            self.paused = False
            self.socket.resume_reading()

    async def _start(self, start: Start) -> None:
        session = await self.route.attach(self.socket, start)
        if session is None:
            self.end()
            return
        self.session = session
        self.idle_s = self.server.settings.media_timeout_s
        self.progress = self.loop.time()

    async def _message(self, session: CallSession, message: object, received: float) -> None:
        async with session.lock:
            try:
                await session.on_message(message, received)
            except Exception as exc:
                log.exception("call %s: error handling the stream", session.call_sid)
                await session.fail(f"{type(exc).__name__}: {exc}")

    async def _fail(self, session: CallSession, why: str) -> None:
        async with session.lock:
            await session.fail(why)
        if session.done:
            self.end()

    # -- time -------------------------------------------------------------------------------

    def _tick(self) -> None:
        """The idle timer: re-armed at the deadline the last progress gives, or it is due."""
        self._timer = None
        if self.ended:
            return
        now = self.loop.time()
        due = self.progress + self.idle_s
        if self.busy:  # the deadline counts between messages, as a receive timeout did
            due = max(due, now + BUSY_RECHECK_S)
        if now < due:
            self._timer = self.loop.call_at(due, self._tick)
            return
        self._run(self._idle())

    async def _idle(self) -> None:
        await self.route.idle(self.socket, self.session, self.idle_s)
        self.end()

    # -- the end ----------------------------------------------------------------------------

    async def _finish(self) -> None:
        try:
            if self.session is not None:
                self.session.stream_gone(self.socket)
        finally:
            try:
                await self.socket.close()
            finally:
                self.finished.set()

    def _spawn(self, job: Job) -> None:
        task = self.loop.create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
