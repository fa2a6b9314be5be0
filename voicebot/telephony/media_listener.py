"""The media stream on its own port, served by picows (``serve --media-port``, issue #20).

uvicorn's WebSocket hands each message to the app through a future the app awaits: with the
JSON of Twilio's 20 ms frames that was most of the event loop's CPU per call
(``bench/bench_transport.py``). picows (MIT, Cython) parses WebSocket frames in compiled code
and calls ``on_ws_frame`` per frame, which hands the message straight to the stream's
``MediaConnection``: a frame of an attached call is buffered for the decoder with no future,
task or lock acquisition. picows answers WebSocket upgrades only (the webhooks stay on the main
port's Starlette app), so it listens on a port of its own that the load balancer routes
``/twilio/media`` to (docs/deployment.md).

What the Starlette route guarantees holds here too: the ``X-Twilio-Signature`` of the upgrade
(path and query on the public URL of the stream) is checked in the listener factory and a bad
one refused with HTTP 403 before any upgrade; a message over ``max_ws_message_bytes`` closes
the stream (picows' ``max_frame_size``; fragments are reassembled up to the same size); an
upgrade request that does not arrive within ``header_timeout_s`` is dropped. Reading pauses
when ``MediaConnection`` has ``HIGH_WATER`` messages waiting. ``GET /healthz`` on this port
answers as the main port's does, so a load balancer can check the media port itself.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from voicebot.telephony.handoff import health
from voicebot.telephony.media_connection import MediaConnection
from voicebot.telephony.signature import SIGNATURE_HEADER

if TYPE_CHECKING:
    from voicebot.telephony.media_route import MediaRoute

__all__ = ["MEDIA_PATH", "PicowsSocket", "start_media_listener"]

MEDIA_PATH: Final = "/twilio/media"


class PicowsSocket:
    """A picows transport as a ``MediaSocket``. ``transport.send`` only queues bytes for the
    kernel; when picows says the write buffer is full (``pause_writing``), sends wait, as
    long as the session's patience, for it to drain."""

    carrier = "picows"

    def __init__(self, transport: WSTransport) -> None:
        self.transport = transport
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = False

    @property
    def open(self) -> bool:
        return not self.closed and not self.transport.is_disconnected

    async def send_texts(self, texts: Sequence[str], patience_s: float) -> None:
        for text in texts:
            if not self.writable.is_set():
                async with asyncio.timeout(patience_s):
                    await self.writable.wait()
            if not self.open:
                raise ConnectionError("the media stream is closed")
            self.transport.send(WSMsgType.TEXT, text.encode())

    async def close(self) -> None:
        if self.open:
            self.closed = True
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()  # graceful: after what is queued has been written

    def pause_reading(self) -> None:
        self.transport.underlying_transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.underlying_transport.resume_reading()


class StreamListener(WSListener):
    """One accepted stream: frames to its ``MediaConnection``, as they come."""

    def __init__(self, route: MediaRoute, max_bytes: int) -> None:
        super().__init__()
        self.route = route
        self.max_bytes = max_bytes
        self.socket: PicowsSocket | None = None
        self.connection: MediaConnection | None = None
        self.parts: list[bytes] = []  # a fragmented message so far (Twilio does not fragment)
        self.text = True  # whether the fragmented message is text

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.socket = PicowsSocket(transport)
        self.connection = MediaConnection(self.route, self.socket)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        connection = self.connection
        if connection is None:
            return
        kind = frame.msg_type
        if kind is WSMsgType.TEXT and frame.fin:  # every Twilio message
            # bytes: ``parse_message`` decodes them (bad UTF-8 is a bad message, not a crash)
            connection.on_text(frame.get_payload_as_bytes(), time.perf_counter())
        elif kind in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            self._fragment(transport, frame, connection)
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def _fragment(
        self, transport: WSTransport, frame: WSFrame, connection: MediaConnection
    ) -> None:
        if frame.msg_type is not WSMsgType.CONTINUATION:
            self.parts = []
            self.text = frame.msg_type is WSMsgType.TEXT
        self.parts.append(frame.get_payload_as_bytes())
        if sum(len(p) for p in self.parts) > self.max_bytes:
            self.parts = []
            transport.send_close(WSCloseCode.MESSAGE_TOO_BIG)
            transport.disconnect()
            return
        if frame.fin:
            message, self.parts = b"".join(self.parts), []
            connection.on_text(message if self.text else None, time.perf_counter())

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.connection is not None:
            self.connection.on_closed()

    def pause_writing(self) -> None:
        if self.socket is not None:
            self.socket.writable.clear()

    def resume_writing(self) -> None:
        if self.socket is not None:
            self.socket.writable.set()


def _refusal(status: int, text: str) -> WSUpgradeResponseWithListener:
    response = WSUpgradeResponse.create_error_response(status, (text + "\n").encode())
    return WSUpgradeResponseWithListener(response, None)


async def start_media_listener(
    route: MediaRoute,
    *,
    host: str | None = None,
    port: int | None = None,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """picows serving ``route``'s streams on ``sock`` (or ``host``:``port``), on the running
    loop (the one the server's sessions live on). Close the returned server to stop accepting;
    streams in progress go on."""
    server = route.server
    settings = server.settings

    def listener_for(request: WSUpgradeRequest) -> WSListener | WSUpgradeResponseWithListener:
        target = request.path.decode("latin-1")
        path = target.partition("?")[0]
        if path == "/healthz":
            status, text = health(
                ready=server.ready,
                draining=server.draining,
                overloaded=server.overloaded(),
                calls=len(server.sessions),
            )
            ok = WSUpgradeResponse.create_ok_response((text + "\n").encode())
            return (
                WSUpgradeResponseWithListener(ok, None) if status == 200 else _refusal(status, text)
            )
        if path != MEDIA_PATH:
            return _refusal(404, "not found")
        signature = request.headers.get(SIGNATURE_HEADER)
        if not server.signed_target(target, signature, "stream upgrade", stream=True):
            return _refusal(403, "invalid signature")
        return StreamListener(route, settings.max_ws_message_bytes)

    where = {"sock": sock} if sock is not None else {"host": host, "port": port}
    return await ws_create_server(
        listener_for,
        max_frame_size=settings.max_ws_message_bytes,
        websocket_handshake_timeout=settings.header_timeout_s,
        logger_name="voicebot.media",
        **where,
    )
