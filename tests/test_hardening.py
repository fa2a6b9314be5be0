"""The Twilio server against hostile or broken clients and faults (issue #14): request size and
time limits, replayed webhooks, duplicate media frames, a call log that says what the caller
got, and calls a crash left open."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from voicebot.loading.loader import ConfigHolder
from voicebot.telephony.app import SpeechProvider, VoiceServer
from voicebot.telephony.rest import TwilioRest
from voicebot.telephony.settings import ServerSettings
from voicebot.telephony.signature import SIGNATURE_HEADER, sign

from test_e2e_twilio import CONFIG  # isort: skip

TOKEN = "hardening-token"
KIB = 1024


def _server(**settings: Any) -> VoiceServer:
    """A server that answers no call (no speech model): enough for requests refused early."""
    return VoiceServer(
        ServerSettings(public_url="http://127.0.0.1", auth_token=TOKEN, **settings),
        ConfigHolder(CONFIG),
        TwilioRest("AC" + "0" * 32, TOKEN, base_url="http://127.0.0.1:9"),
        SpeechProvider(lambda _config: pytest.fail("no call expected")),
    )


class _Client:
    """One HTTP request sent straight into the ASGI app, its body pulled lazily in 64 KiB
    pieces (``declared`` is its Content-Length, None for a chunked upload of ``size``)."""

    def __init__(self, size: int, declared: int | None, *, stall_after: int | None = None) -> None:
        self.size = size
        self.declared = declared
        self.stall_after = stall_after  # bytes sent before the client goes quiet
        self.pulled = 0
        self.status: int | None = None

    async def receive(self) -> dict[str, Any]:
        if self.stall_after is not None and self.pulled >= self.stall_after:
            await asyncio.sleep(3600)
        piece = min(64 * KIB, self.size - self.pulled)
        if self.stall_after is not None:
            piece = min(piece, self.stall_after - self.pulled)
        self.pulled += piece
        if self.pulled > 8 * 2**20:
            raise AssertionError("the app read 8 MiB of an unsigned body")
        return {"type": "http.request", "body": b"a" * piece, "more_body": self.pulled < self.size}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])

    async def post(self, server: VoiceServer, path: str) -> int:
        headers = [(b"content-type", b"application/x-www-form-urlencoded")]
        if self.declared is not None:
            headers.append((b"content-length", str(self.declared).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 5555),
            "server": ("127.0.0.1", 80),
        }
        await server.app(scope, self.receive, self.send)  # type: ignore[arg-type]
        assert self.status is not None
        return self.status


# ---------------------------------------------------------------------------------------------
# 1. Request bodies: refused over a small limit before they are read


@pytest.mark.parametrize("path", ["/twilio/voice", "/twilio/status", "/twilio/whisper"])
def test_a_declared_oversized_body_is_refused_unread(path: str) -> None:
    server = _server()
    client = _Client(size=4 * 2**20, declared=4 * 2**20)
    assert asyncio.run(client.post(server, path)) == 413
    assert client.pulled == 0  # refused on its Content-Length alone
    assert server.metrics.errors["body_too_large"] == 1


def test_a_chunked_body_is_cut_off_at_the_limit() -> None:
    server = _server(max_body_bytes=64 * KIB)
    client = _Client(size=100 * 2**20, declared=None)  # no Content-Length: count what comes
    assert asyncio.run(client.post(server, "/twilio/status")) == 413
    assert client.pulled <= 128 * KIB  # the limit and the piece that crossed it
    small = _Client(size=2 * KIB, declared=None)
    assert asyncio.run(small.post(server, "/twilio/status")) == 403  # read, then unsigned


def test_a_body_that_stops_arriving_is_timed_out() -> None:
    server = _server(body_timeout_s=0.2)
    client = _Client(size=10 * KIB, declared=10 * KIB, stall_after=64)
    started = time.monotonic()
    assert asyncio.run(client.post(server, "/twilio/voice")) == 408
    assert time.monotonic() - started < 5
    assert server.metrics.errors["body_timeout"] == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listening() -> Iterator[tuple[VoiceServer, int]]:
    """The server behind uvicorn configured as ``voicebot serve`` configures it."""
    import threading

    import uvicorn

    from voicebot.cli.serve import uvicorn_config

    server = _server(header_timeout_s=0.5, stream_start_timeout_s=0.5)
    port = _free_port()
    uv = uvicorn.Server(uvicorn_config(server, "127.0.0.1", port, log_config=None))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert uv.started
    try:
        yield server, port
    finally:
        uv.should_exit = True
        thread.join(5)


def _answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


def test_serve_refuses_a_100_mb_post_at_once(listening: tuple[VoiceServer, int]) -> None:
    _, port = listening
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /twilio/status HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 104857600\r\n\r\n" + b"a" * 1000
        )
        assert _answer(sock).startswith(b"HTTP/1.1 413 ")


def _signed_headers(server: VoiceServer) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(server.stream_url, {}, TOKEN)}


def test_serve_closes_a_stream_that_sends_an_oversized_message(
    listening: tuple[VoiceServer, int],
) -> None:
    server, port = listening

    async def send_big() -> int | None:
        url = f"ws://127.0.0.1:{port}/twilio/media"
        async with connect(url, additional_headers=_signed_headers(server)) as ws:
            await ws.send("x" * (server.settings.max_ws_message_bytes + 1))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            return ws.close_code

    assert asyncio.run(send_big()) == 1009  # "message too big"
