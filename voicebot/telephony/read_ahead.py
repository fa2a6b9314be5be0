"""uvicorn's WebSocket protocol with read-ahead: the socket is paused when the app falls behind
by many messages, not after every message.

uvicorn's ``websockets-sansio`` protocol stops reading the socket as soon as it has queued one
message for the app and starts again when the app has taken it. For a media stream that is two
``epoll_ctl`` system calls and their selector bookkeeping per 20 ms frame, 100 per second per
call: ``bench/bench_transport.py`` measured 203 µs of server CPU per frame with uvicorn's own
protocol and 166 µs with this one (20 real-time streams on one core). Here reading pauses only once
``HIGH_WATER`` messages wait for the app, and resumes, as before, when the app has taken them
all. Memory stays bounded (Twilio's frames are about 250 bytes of JSON) and a client that sends
faster than the app reads is still held back by TCP. A client that pings without reading gets
no pongs while the server's write buffer is full (``handle_ping``).

What is subclassed is the flow-control contract of ``WebSocketsSansIOProtocol`` (its
``read_paused`` flag, ``queue`` and ``transport``), the same in every uvicorn since the class
appeared (0.35); the message handling itself is uvicorn's.
"""

from __future__ import annotations

from typing import Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["HIGH_WATER", "ReadAheadWebSocketProtocol"]

HIGH_WATER: Final = 64  # messages queued for the app before reading pauses: 1.3 s of frames


class ReadAheadWebSocketProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` that pauses reading at ``HIGH_WATER`` queued messages."""

    def send_receive_event_to_app(self) -> None:
        paused = self.read_paused
        self.read_paused = True  # the base class pauses after each message unless it is set
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        # Past the app's close, messages are discarded and reading must go on to the peer's
        # close reply (the queue the app left full would pause it until the 10 s close timer).
        if not self.read_paused and not self.close_sent and self.queue.qsize() >= HIGH_WATER:
            self.read_paused = True
            self.transport.pause_reading()  # resumed by ``receive`` once the queue is empty

    def handle_ping(self) -> None:
        """Answer a ping, unless the client is not reading what we send (the write buffer is
        over its high-water mark): uvicorn writes each pong past the flow control the app's
        sends wait on, so a client pinging without reading grew the server's memory by as
        much as it sent. RFC 6455 (5.5.3) lets an endpoint answer only the latest ping."""
        output = self.conn.data_to_send()  # the pong; taken either way, or it piles up there
        if self.writable.is_set():
            self.transport.write(b"".join(output))
