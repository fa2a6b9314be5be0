"""The Twilio server against hostile or broken clients and faults (issue #14): request size and
time limits, replayed webhooks, duplicate media frames, a call log that says what the caller
got, and calls a crash left open."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voicebot.calllog.log import CallLog, CallRow
from voicebot.cli.main import build_parser, main
from voicebot.cli.serve import MAX_BACKLOG_S, server_settings, uvicorn_config
from voicebot.core.events import CallStarted
from voicebot.core.state import Outcome, OutcomeKind
from voicebot.loading.loader import ConfigHolder
from voicebot.speech.tts import Tts
from voicebot.speech.vosk_model import SpeechModel
from voicebot.telephony.admission import default_max_calls
from voicebot.telephony.app import SpeechProvider, VoiceServer
from voicebot.telephony.media_listener import start_media_listener
from voicebot.telephony.media_stream import split_frames
from voicebot.telephony.observer import CallObserver
from voicebot.telephony.rest import TwilioRest
from voicebot.telephony.settings import ServerSettings
from voicebot.telephony.signature import SIGNATURE_HEADER, sign
from voicebot.telephony.testing.call_report import CallReport
from voicebot.telephony.testing.fake_rest import FakeTwilio
from voicebot.telephony.testing.serving import free_port, serving
from voicebot.telephony.testing.simulator import (
    SILENCE,
    SimOptions,
    _post,
    load_audio,
    simulate_call,
    voiced_frames,
)
from voicebot.telephony.testing.twiml_reader import parse_twiml

from test_e2e_twilio import AUDIO, CALLER, CONFIG, GENERAL  # isort: skip

TOKEN = "hardening-token"
KIB = 1024


def _server(
    public_url: str = "http://127.0.0.1", observer: CallObserver | None = None, **settings: Any
) -> VoiceServer:
    """A server that answers no call (no speech model): enough for requests refused early."""
    return VoiceServer(
        ServerSettings(public_url=public_url, auth_token=TOKEN, **settings),
        ConfigHolder(CONFIG),
        TwilioRest("AC" + "0" * 32, TOKEN, base_url="http://127.0.0.1:9"),
        SpeechProvider(lambda _config: pytest.fail("no call expected")),
        observer=observer,
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


@pytest.mark.parametrize(
    "path", ["/twilio/voice", "/twilio/status", "/twilio/whisper", "/dashboard/api/x", "/nowhere"]
)
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


@contextlib.contextmanager
def _listening(server: VoiceServer, port: int, media_port: int | None = None) -> Iterator[None]:
    """``server`` behind uvicorn on ``port``, configured as ``voicebot serve`` configures it;
    with ``media_port``, its picows media listener there too (``serve --media-port``)."""

    async def media() -> asyncio.Server:
        return await start_media_listener(server.media_route, host="127.0.0.1", port=media_port)

    config = uvicorn_config(server, "127.0.0.1", port, log_config=None)
    with serving(config, beside=media if media_port is not None else None):
        yield


TRANSPORTS = ["starlette", "picows"]  # the media stream on the main port, or on its own


def _media_settings(transport: str) -> tuple[int | None, dict[str, Any]]:
    """The media port of ``transport`` (None: the main port's) and the settings it needs."""
    if transport == "starlette":
        return None, {}
    media_port = free_port()
    return media_port, {"stream_public_url": f"http://127.0.0.1:{media_port}"}


@pytest.fixture(params=TRANSPORTS)
def streaming(request: pytest.FixtureRequest) -> Iterator[VoiceServer]:
    """A server (no calls) whose media stream ``server.stream_url`` is served by each
    transport in turn; short start and head timeouts."""
    media_port, media = _media_settings(request.param)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _server(url, header_timeout_s=0.5, stream_start_timeout_s=0.5, **media)
    with _listening(server, port, media_port):
        yield server


@pytest.fixture
def listening() -> Iterator[tuple[VoiceServer, int]]:
    port = free_port()
    server = _server(header_timeout_s=0.5, stream_start_timeout_s=0.5)
    with _listening(server, port):
        yield server, port


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


def test_serve_closes_a_stream_that_sends_an_oversized_message(streaming: VoiceServer) -> None:
    server = streaming

    async def send_big() -> int | None:
        url = server.stream_url
        async with connect(url, additional_headers=_signed_headers(server)) as ws:
            await ws.send("x" * (server.settings.max_ws_message_bytes + 1))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            return ws.close_code

    assert asyncio.run(send_big()) == 1009  # "message too big"


# ---------------------------------------------------------------------------------------------
# A running bot (real Korean model, fake REST API, SQLite call log), for whole calls


@dataclass
class Bot:
    server: VoiceServer
    fake: FakeTwilio
    log: CallLog
    url: str

    def options(self, **kw: Any) -> SimOptions:
        base = SimOptions(
            url=self.url,
            auth_token=TOKEN,
            account_sid=self.fake.account_sid,
            caller=CALLER,
            max_wait_s=20.0,
        )
        return replace(base, **kw)

    def call(self, *wavs: str, **kw: Any) -> CallReport:
        turns = [load_audio(AUDIO / w) for w in wavs]
        report = asyncio.run(simulate_call(turns, self.options(**kw), self.fake))
        assert self.log.flush()
        return report

    def row(self, call_sid: str) -> CallRow:
        (row,) = [c for c in self.log.fetch().calls if c.call_id == call_sid]
        return row

    def updates(self, call_sid: str) -> list[str]:
        return [u.twiml or "" for u in self.fake.call_updates() if u.call_sid == call_sid]

    def post(self, path: str, params: dict[str, str]) -> tuple[int, str]:
        return _post(self.url + path, params, TOKEN)


MEDIA_TIMEOUT_S = 3.0


@contextlib.contextmanager
def _running_bot(
    tmp: Path,
    model: SpeechModel,
    config: Path,
    tts: Tts | None,
    transport: str = "starlette",
    **settings: Any,
) -> Iterator[Bot]:
    """``config`` served as ``serve`` serves it (call log, REST API, the call log's checks of
    repeated webhooks and streams), with a fake Twilio REST API and a SQLite call log."""
    log = CallLog.open(f"sqlite:///{tmp / 'calls.sqlite3'}", salt="salt", env={})
    fake = FakeTwilio(auth_token=TOKEN).start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    media_port, media = _media_settings(transport)
    settings.update(media)
    rest = TwilioRest(
        fake.account_sid,
        TOKEN,
        from_number="+15005550006",
        base_url=fake.url,
        backoff_s=0.01,
        max_backoff_s=0.02,
    )
    server = VoiceServer(
        ServerSettings(public_url=url, auth_token=TOKEN, **settings),
        ConfigHolder(config),
        rest,
        SpeechProvider(lambda _config: model),
        tts=tts,
        observer=log,
    )
    server.known_call = log.has_call  # as serve sets it: every call here goes through the check
    server.claim_stream = log.claim_stream  # as serve sets it: stream parameters used once
    try:
        with _listening(server, port, media_port):
            yield Bot(server, fake, log, url)
    finally:
        fake.stop()
        log.close()


@pytest.fixture(scope="module", params=TRANSPORTS)
def bot(
    request: pytest.FixtureRequest, ko_model: SpeechModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bot]:
    """The bot, its media stream served by each transport in turn (``stream_url``)."""
    tmp = tmp_path_factory.mktemp("hardening")
    with _running_bot(
        tmp, ko_model, CONFIG, Tts(), request.param, media_timeout_s=MEDIA_TIMEOUT_S
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_call_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "bot" in request.fixturenames:
        bot: Bot = request.getfixturevalue("bot")
        bot.fake.fail_next(0)
        # The server ends a session when its stream's handler returns, which on a loaded
        # machine can come a moment after the client has gone; a leak never ends.
        deadline = time.monotonic() + 10.0
        while bot.server.sessions and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not bot.server.sessions, "a call was left open"


def _ringing(call_sid: str) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": CALLER,
        "To": "+82212340000",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }


def _media(stream_sid: str, seq: int, frame: bytes) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "streamSid": stream_sid,
            "media": {
                "track": "inbound",
                "chunk": str(seq),
                "timestamp": str(seq * 20),
                "payload": base64.b64encode(frame).decode(),
            },
        }
    )


def _start(call_sid: str, stream_sid: str, parameters: dict[str, str]) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": stream_sid,
            "start": {
                "streamSid": stream_sid,
                "callSid": call_sid,
                "accountSid": "AC" + "0" * 32,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": parameters,
            },
        }
    )


def _webhook(bot: Bot, call_sid: str) -> dict[str, str]:
    """The stream parameters the incoming-call webhook hands Twilio for ``call_sid``."""
    status, body = bot.post("/twilio/voice", _ringing(call_sid))
    assert status == 200, body
    return dict(parse_twiml(body).parameters)


@contextlib.asynccontextmanager
async def _stream(
    bot: Bot, call_sid: str, parameters: dict[str, str] | None = None
) -> AsyncIterator[tuple[ClientConnection, str]]:
    """A call's webhook (unless its stream ``parameters`` are given), then its media stream up
    to "start": the caller's side, by hand."""
    if parameters is None:
        parameters = await asyncio.to_thread(_webhook, bot, call_sid)
    stream_sid = "MZ" + secrets.token_hex(16)
    async with connect(bot.server.stream_url, additional_headers=_signed_headers(bot.server)) as ws:
        await ws.send(_start(call_sid, stream_sid, parameters))
        yield ws, stream_sid


def _new_sid() -> str:
    return "CA" + secrets.token_hex(16)


# ---------------------------------------------------------------------------------------------
# 10. Duplicate media frames


def test_a_frame_sent_twice_is_heard_once(bot: Bot) -> None:
    """Every frame of "billing" arrives twice (same sequence number): the bot hears the words
    once, at their speed, and routes them as it does without the duplicates."""
    call_sid = _new_sid()
    before = bot.server.metrics.errors["duplicate_frame"]
    speech = split_frames(load_audio(AUDIO / "billing.wav"))

    async def talk() -> None:
        async with _stream(bot, call_sid) as (ws, stream_sid):
            frames = speech + [SILENCE] * 500
            with contextlib.suppress(ConnectionClosed):
                for seq, frame in enumerate(frames, 2):
                    message = _media(stream_sid, seq, frame)
                    await ws.send(message)
                    await ws.send(message)
                    await asyncio.sleep(0.002)
                    if bot.updates(call_sid):
                        break

    asyncio.run(talk())
    (update,) = bot.updates(call_sid)
    assert parse_twiml(update).final == "enqueue billing"
    # Every copy up to the end of the words was dropped (the bot may decide in the silence).
    assert bot.server.metrics.errors["duplicate_frame"] - before >= voiced_frames(speech)


def test_frames_sent_right_behind_the_start_are_all_heard_in_order(bot: Bot) -> None:
    """The start's attach (the stream claim in the call log) takes a while; the frames that
    arrive meanwhile wait for it and are all handled after it, none dropped (issue #20: the
    picows listener handles a frame in its callback, and queues it while a task runs)."""
    call_sid = _new_sid()

    async def burst() -> tuple[float, int]:
        async with _stream(bot, call_sid) as (ws, stream_sid):
            for seq in range(2, 102):  # 2 s of audio at once, right behind the start
                await ws.send(_media(stream_sid, seq, SILENCE))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                session = bot.server.sessions.get(call_sid)
                if session is not None and session.last_seq == 101:
                    break
                await asyncio.sleep(0.01)
            assert session is not None and session.audio is not None
            return session.audio.received_s + len(session.buffer) / 8000, session.last_seq

    heard, last = asyncio.run(burst())
    assert last == 101
    assert heard == pytest.approx(2.0, abs=0.001)
    _ended(bot, call_sid)


# ---------------------------------------------------------------------------------------------
# 2. A replayed webhook


def test_a_replayed_ringing_webhook_leaves_the_finished_call_alone(bot: Bot) -> None:
    report = bot.call("billing.wav")
    assert report.decision == "transfer enqueue billing"
    row, timeline = bot.row(report.call_sid), bot.log.timeline(report.call_sid)
    before = bot.server.metrics.errors["duplicate_webhook"]
    status, body = bot.post("/twilio/voice", _ringing(report.call_sid))  # a replay, signed
    assert status == 200
    twiml = parse_twiml(body)  # valid TwiML ...
    assert twiml.stream_url is None  # ... that starts no session
    assert not bot.server.sessions
    assert bot.log.flush()
    assert bot.row(report.call_sid) == row
    assert bot.log.timeline(report.call_sid) == timeline
    assert bot.server.metrics.errors["duplicate_webhook"] == before + 1


# ---------------------------------------------------------------------------------------------
# 3. The call log says what the caller got


def test_a_failed_transfer_is_logged_as_the_fallback_the_caller_got(bot: Bot) -> None:
    bot.fake.fail_next(50)
    report = bot.call("billing.wav")
    bot.fake.fail_next(0)
    assert report.decision == f"fallback {GENERAL}"
    row = bot.row(report.call_sid)
    assert (row.outcome, row.group, row.reason) == ("transferred", "general", "fallback")
    assert row.intent == "billing"  # what the caller asked for is still known
    failures = [e for e in bot.log.timeline(report.call_sid) if e.type == "Failure"]
    assert len(failures) == 1 and "billing" in failures[0].payload["error"]


def test_a_failed_text_then_a_failed_hang_up_is_not_logged_as_goodbye(bot: Bot) -> None:
    bot.fake.fail_next(1000)  # the SMS and, later, the hang-up
    report = bot.call("password.wav")
    bot.fake.fail_next(0)
    assert report.decision == f"fallback {GENERAL}"
    row = bot.row(report.call_sid)
    assert (row.outcome, row.group, row.reason) == ("transferred", "general", "fallback")
    timeline = bot.log.timeline(report.call_sid)
    assert any(e.type == "SmsResult" and not e.payload["ok"] for e in timeline)
    assert [e.type for e in timeline if e.type == "Failure"] == ["Failure"]


# ---------------------------------------------------------------------------------------------
# 9. Idle connections


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """Whether the server closes ``sock`` within ``within_s`` (reading whatever it sends)."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_a_connection_that_never_finishes_its_request_head_is_closed(
    listening: tuple[VoiceServer, int],
) -> None:
    _, port = listening  # header_timeout_s=0.5
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /twilio/voice HTTP/1.1\r\nHo")
        assert _closed_by_server(sock, 5.0)
    _assert_a_trickled_head_is_cut_short(port, b"GET /healthz HTTP/1.1\r\nX-Slow: ")


def _assert_a_trickled_head_is_cut_short(port: int, head: bytes) -> None:
    """``head`` and 100 more bytes, one every 50 ms: closed well before the 5 s they take."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for byte in head + b"a" * 100:  # a byte at a time
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        assert _closed_by_server(sock, 5.0)
        assert time.monotonic() - started < 4.0  # not after the 100 bytes' 5 s


def test_a_stream_upgrade_that_never_finishes_its_head_is_closed(streaming: VoiceServer) -> None:
    """Slowloris on the media stream's port (the picows listener's handshake timeout is
    serve's --request-timeout, as the main port's request-head timeout is)."""
    port = urlsplit(streaming.stream_url).port  # header_timeout_s=0.5
    assert port is not None
    _assert_a_trickled_head_is_cut_short(port, b"GET /twilio/media HTTP/1.1\r\nX-Slow: ")


def test_a_request_answered_leaves_the_connection_usable(
    listening: tuple[VoiceServer, int],
) -> None:
    _, port = listening
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(2):  # keep-alive: the head timeout does not cut a request being answered
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(sock).startswith(b"HTTP/1.1 200 ")


def _response(sock: socket.socket) -> bytes:
    """One whole HTTP response (head, then as many body bytes as its Content-Length says)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_stream_upgrade_without_a_valid_signature_is_refused_before_upgrading(
    streaming: VoiceServer,
) -> None:
    server = streaming
    forged = {SIGNATURE_HEADER: sign(server.stream_url, {}, "another account's token")}

    async def upgrade(headers: dict[str, str]) -> int:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.stream_url, additional_headers=headers):
                pass
        return int(refused.value.response.status_code)

    assert asyncio.run(upgrade(forged)) == 403
    assert asyncio.run(upgrade({})) == 403
    assert server.metrics.errors["signature"] == 2


def test_a_stream_that_never_starts_is_closed(streaming: VoiceServer) -> None:
    server = streaming  # stream_start_timeout_s=0.5

    async def idle() -> float:
        url = server.stream_url
        async with connect(url, additional_headers=_signed_headers(server)) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1"}))
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            return time.monotonic() - started

    assert asyncio.run(idle()) < 5
    assert server.metrics.errors["stream_start_timeout"] == 1


def test_a_stream_that_goes_silent_ends_in_a_transfer_to_a_person(bot: Bot) -> None:
    call_sid = _new_sid()

    async def fall_silent() -> None:
        async with _stream(bot, call_sid) as (ws, stream_sid):
            for seq in range(2, 12):  # 200 ms of silence, then nothing while the socket stays
                await ws.send(_media(stream_sid, seq, SILENCE))
            deadline = time.monotonic() + MEDIA_TIMEOUT_S + 10
            while not bot.updates(call_sid) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

    asyncio.run(fall_silent())
    (update,) = bot.updates(call_sid)
    assert parse_twiml(update).final == GENERAL
    assert bot.log.flush()
    row = bot.row(call_sid)
    assert (row.outcome, row.group, row.reason) == ("transferred", "general", "error")
    assert bot.server.metrics.errors["stream_silent"] >= 1


# ---------------------------------------------------------------------------------------------
# The limits are serve's options


def test_serve_takes_the_limits_from_its_options() -> None:
    args = build_parser().parse_args(
        ["serve", "--max-body-bytes", "4096", "--request-timeout", "3", "--stream-timeout", "7.5"]
    )
    settings = server_settings(args, "https://bot.example.com", "token")
    assert (settings.max_body_bytes, settings.header_timeout_s, settings.body_timeout_s) == (
        4096,
        3.0,
        3.0,
    )
    assert (settings.stream_start_timeout_s, settings.media_timeout_s) == (7.5, 7.5)
    defaults = server_settings(build_parser().parse_args(["serve"]), "https://b.example", "t")
    assert defaults == ServerSettings(
        public_url="https://b.example",
        auth_token="t",
        max_calls=default_max_calls(),  # admission control (issue #21): serve sets both
        max_backlog_s=MAX_BACKLOG_S,
    )


@pytest.mark.parametrize(
    "option", [["--max-body-bytes", "0"], ["--request-timeout", "-1"], ["--stream-timeout", "0"]]
)
def test_serve_refuses_a_limit_that_is_not_positive(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--dev", *option]) == 2
    err = capsys.readouterr().err
    assert option[0] in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# 5. Calls a crash left open


def test_status_callbacks_close_the_rows_a_crash_left_open(tmp_path: Path) -> None:
    """The process that held three calls was killed: their rows have no outcome. The new
    process knows none of them; Twilio's status callbacks close each row from the call log
    alone, as what Twilio reports happened; a row with an outcome keeps it."""
    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    start = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    with CallLog.open(url, salt="salt", env={}) as before_the_crash:
        for sid in ("CAcut", "CAgaveup", "CAringing", "CAdone"):
            before_the_crash.call_started(sid, start, "ko-KR", CALLER)
            before_the_crash.event(sid, CallStarted(start, CALLER, sid))
        done = Outcome(OutcomeKind.TRANSFERRED, 1, "intent", "billing", "billing")
        before_the_crash.call_ended("CAdone", start + dt.timedelta(seconds=20), done)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    with CallLog.open(url, salt="salt", env={}) as log:
        server = _server(public_url=public, observer=log)
        with _listening(server, port):
            for sid, status, duration in (
                ("CAcut", "completed", "95"),
                ("CAgaveup", "canceled", "0"),
                ("CAringing", "in-progress", "30"),  # not over yet
                ("CAdone", "completed", "60"),
            ):
                params = {**_ringing(sid), "CallStatus": status, "CallDuration": duration}
                assert _post(public + "/twilio/status", params, TOKEN)[0] == 204
        assert log.flush()
        rows = {c.call_id: c for c in log.fetch().calls}
    cut, gave_up = rows["CAcut"], rows["CAgaveup"]
    assert (cut.outcome, cut.group, cut.reason) == ("transferred", "general", "fallback")
    assert cut.ended_at is not None
    assert (gave_up.outcome, gave_up.reason) == ("caller_hung_up", "canceled")
    assert rows["CAringing"].outcome is None
    assert (rows["CAdone"].outcome, rows["CAdone"].group) == ("transferred", "billing")


def test_a_webhook_replayed_after_a_restart_leaves_the_call_alone(tmp_path: Path) -> None:
    """This process never saw the call (it was answered before a restart, or by another
    instance): the call log knows it, and that is enough to refuse the replay."""
    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    start = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    with CallLog.open(url, salt="salt", env={}) as log:
        log.call_started("CAold", start, "ko-KR", CALLER)
        log.event("CAold", CallStarted(start, CALLER, "CAold"))
        done = Outcome(OutcomeKind.TRANSFERRED, 1, "intent", "billing", "billing")
        log.call_ended("CAold", start + dt.timedelta(seconds=20), done)
        assert log.flush()
        row, timeline = log.fetch().calls, log.timeline("CAold")
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        server = _server(public_url=public, observer=log)
        server.known_call = log.has_call
        with _listening(server, port):
            status, body = _post(public + "/twilio/voice", _ringing("CAold"), TOKEN)
        assert status == 200 and parse_twiml(body).final == GENERAL  # no stream, no session
        assert not server.sessions
        assert server.metrics.errors["duplicate_webhook"] == 1
        assert log.flush()
        assert log.fetch().calls == row
        assert log.timeline("CAold") == timeline


def test_a_prompt_that_cannot_be_delivered_puts_the_caller_through_to_a_person(bot: Bot) -> None:
    """Without TTS a prompt is a REST redirect to <Say>; when it fails the caller hears
    nothing of it. The bot must not go on as if it had been heard (it used to wait, say
    goodbye and log the call as announced): the stream closes, the TwiML's <Dial> puts the
    caller through, and the log says so, next to the Say the bot meant."""
    tts, bot.server.tts = bot.server.tts, None
    try:
        bot.fake.fail_next(3)  # every attempt of the announcement's redirect
        report = bot.call("hours.wav")
    finally:
        bot.server.tts = tts
        bot.fake.fail_next(0)
    assert not any("영업 시간은" in s for s in report.said)  # the announcement was not heard
    assert report.decision == f"fallback {GENERAL}"
    row = bot.row(report.call_sid)
    assert (row.outcome, row.group, row.reason) == ("transferred", "general", "fallback")
    assert row.intent == "hours"
    failures = [e for e in bot.log.timeline(report.call_sid) if e.type == "Failure"]
    assert failures and "prompt" in failures[0].payload["error"]
    assert not [u for u in bot.fake.call_updates() if u.call_sid == report.call_sid][3:]


LONG_ANNOUNCEMENT = "영업 시간은 평일 아홉 시부터 여섯 시까지입니다. " * 150  # ~4,800 characters


@pytest.fixture(scope="module")
def long_bot(ko_model: SpeechModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    """A bot whose hours announcement is longer than one call update may carry (4,000
    characters of TwiML), speaking with <Say> (``serve --no-tts``)."""
    tmp = tmp_path_factory.mktemp("long")
    config = tmp / "intents.yaml"
    text = CONFIG.read_text(encoding="utf-8")
    short = '"영업 시간은 평일 아홉 시부터 여섯 시까지입니다."'
    assert short in text
    config.write_text(text.replace(short, json.dumps(LONG_ANNOUNCEMENT)), encoding="utf-8")
    with _running_bot(tmp, ko_model, config, None) as running:
        yield running


def test_a_prompt_too_long_for_one_call_update_is_spoken_in_parts(long_bot: Bot) -> None:
    """Twilio refuses a call update over 4,000 characters of TwiML: the announcement is split
    over several redirects (each a <Say> then the stream again), and the caller hears all of
    it, in order, instead of being hung up on."""
    report = long_bot.call("hours.wav", max_wait_s=30.0)
    updates = long_bot.updates(report.call_sid)
    assert len(updates) >= 3 and all(len(u) <= 4000 for u in updates)
    heard = " ".join(s.split("> ", 1)[1] for s in report.said if "영업" in s)
    assert heard.split() == LONG_ANNOUNCEMENT.split()
    assert report.decision == "hangup"  # goodbye after "anything else?" went unanswered
    row = long_bot.row(report.call_sid)
    assert (row.outcome, row.intent) == ("announced", "hours")


def test_a_prompt_a_stream_stops_taking_is_spoken_by_say_in_parts(long_bot: Bot) -> None:
    """With TTS, a client that stops reading what the server sends (an 11-minute
    announcement) makes the send time out; the prompt then goes by a <Say> redirect, which
    used to be refused as "TwiML of 4866 characters is over 4000" and the caller was hung
    up on after "goodbye". Now the redirect carries the first part, and the stream it opens
    the rest."""
    tts = Tts()
    if not tts.available:
        pytest.skip("espeak-ng is not installed (apt install espeak-ng)")
    call_sid = _new_sid()
    frames = split_frames(load_audio(AUDIO / "hours.wav")) + [SILENCE] * 3000

    async def never_read() -> None:
        # The client library reads only while fewer than 16 messages wait for ``recv``:
        # never calling it, the client soon takes nothing more from the socket.
        async with _stream(long_bot, call_sid) as (ws, stream_sid):
            deadline = time.monotonic() + 90
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                for seq, frame in enumerate(frames, 2):
                    await asyncio.wait_for(ws.send(_media(stream_sid, seq, frame)), 10)
                    await asyncio.sleep(0.002)
                    if long_bot.updates(call_sid) or time.monotonic() > deadline:
                        break

    long_bot.server.tts = tts
    try:
        asyncio.run(never_read())
    finally:
        long_bot.server.tts = None
        _ended(long_bot, call_sid)
    first = long_bot.updates(call_sid)[0]
    assert len(first) <= 4000
    twiml = parse_twiml(first)
    assert twiml.stream_url is not None  # the rest follows on the next stream
    assert twiml.said and "영업 시간은" in twiml.said[0]


def test_at_start_up_the_server_is_ready_only_with_its_prompts_synthesised(
    ko_model: SpeechModel,
) -> None:
    """The first calls a load balancer sends after a restart must not wait on (or share the
    core with) espeak-ng: ``serve`` prepares with ``warm_first``, and the prompts a call plays
    after its first answer are already in the cache when ``ready`` turns true."""
    tts = Tts()
    if not tts.available:
        pytest.skip("espeak-ng is not installed (apt install espeak-ng)")
    server = VoiceServer(
        ServerSettings(public_url="http://127.0.0.1", auth_token=TOKEN),
        ConfigHolder(CONFIG),
        TwilioRest("AC" + "0" * 32, TOKEN, base_url="http://127.0.0.1:9"),
        SpeechProvider(lambda _config: ko_model),
        tts=tts,
        ready=False,  # as serve starts it
    )
    server.prepare(strict=True, warm_first=True)
    assert server.ready
    warmed = tts.synthesised
    config = server.holder.language()
    prompts = config.prompts
    assert warmed >= 3
    for text in (prompts.anything_else, prompts.goodbye, prompts.sms_sent):
        tts.mulaw(text, config.language)
    assert tts.synthesised == warmed  # all three were cache hits


# ---------------------------------------------------------------------------------------------
# Stream parameters: bound to the call and its stream, used once, expiring (issue #26)


async def _refused(bot: Bot, call_sid: str, parameters: dict[str, str]) -> bool:
    """Whether a stream presenting ``parameters`` for ``call_sid`` (under a valid upgrade
    signature: it is captured once and valid for every call) is closed by the server at once,
    while it keeps sending audio."""
    url = bot.server.stream_url
    headers = {SIGNATURE_HEADER: sign(url, {}, TOKEN)}
    stream_sid = "MZ" + secrets.token_hex(16)
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(_start(call_sid, stream_sid, parameters))
        try:
            for seq in range(2, 150):  # 3 s of silence
                await ws.send(_media(stream_sid, seq, SILENCE))
                await asyncio.sleep(0.02)
        except ConnectionClosed:
            return True
    return False


async def _talk(ws: ClientConnection, stream_sid: str, bot: Bot, call_sid: str) -> None:
    """Say "billing" on ``ws`` and wait for the bot's decision."""
    frames = split_frames(load_audio(AUDIO / "billing.wav")) + [SILENCE] * 500
    for seq, frame in enumerate(frames, 100):
        await ws.send(_media(stream_sid, seq, frame))
        await asyncio.sleep(0.002)
        if bot.updates(call_sid):
            break


def _ended(bot: Bot, call_sid: str) -> None:
    params = {**_ringing(call_sid), "CallStatus": "completed", "CallDuration": "20"}
    assert bot.post("/twilio/status", params)[0] == 204


def test_a_finished_calls_stream_parameters_are_refused(bot: Bot) -> None:
    """Replaying a finished call's parameters used to run the call again (more events, texts,
    a rewritten outcome): now the stream is closed and the call log is left alone."""
    call_sid = _new_sid()
    parameters = _webhook(bot, call_sid)

    async def call() -> None:
        async with _stream(bot, call_sid, parameters) as (ws, stream_sid):
            with contextlib.suppress(ConnectionClosed):
                await _talk(ws, stream_sid, bot, call_sid)

    asyncio.run(call())
    _ended(bot, call_sid)
    assert bot.log.flush()
    row, timeline = bot.row(call_sid), bot.log.timeline(call_sid)
    assert row.group == "billing"
    assert asyncio.run(_refused(bot, call_sid, parameters))
    assert bot.log.flush()
    assert bot.row(call_sid) == row
    assert bot.log.timeline(call_sid) == timeline
    assert len(bot.updates(call_sid)) == 1


def test_a_call_that_ended_before_its_stream_refuses_its_parameters(bot: Bot) -> None:
    """The caller hung up during the greeting: the parameters were never used, and still
    must not start the call afterwards."""
    call_sid = _new_sid()
    parameters = _webhook(bot, call_sid)
    _ended(bot, call_sid)
    assert asyncio.run(_refused(bot, call_sid, parameters))
    assert not bot.server.sessions


def test_expired_stream_parameters_are_refused(bot: Bot) -> None:
    """Parameters a webhook gave out 16 minutes ago were accepted and rewrote the call."""
    call_sid = _new_sid()
    clock = bot.server.clock
    bot.server.clock = lambda: clock() - dt.timedelta(minutes=16)
    try:
        parameters = _webhook(bot, call_sid)
    finally:
        bot.server.clock = clock
    assert asyncio.run(_refused(bot, call_sid, parameters))
    assert not bot.server.sessions


def test_one_calls_parameters_do_not_start_another_call(bot: Bot) -> None:
    first, second = _new_sid(), _new_sid()
    parameters = _webhook(bot, first)
    _webhook(bot, second)
    assert asyncio.run(_refused(bot, second, parameters))  # A's parameters, B's CallSid
    altered = {**parameters, "callSid": second}
    assert asyncio.run(_refused(bot, second, altered))
    for name, value in (("stream", "2"), ("expires", "2099-01-01T00:00:00+00:00")):
        assert asyncio.run(_refused(bot, first, {**parameters, name: value}))
    assert not bot.server.sessions
    _ended(bot, first)
    _ended(bot, second)


def test_a_second_socket_cannot_take_over_a_live_call(bot: Bot) -> None:
    """A second socket presenting a live call's parameters used to close the real stream and
    drive the call. It is refused; the real stream goes on and the caller is routed."""
    call_sid = _new_sid()
    before = bot.server.metrics.errors["stream_replayed"]

    parameters = _webhook(bot, call_sid)

    async def hijack() -> bool:
        async with _stream(bot, call_sid, parameters) as (ws, stream_sid):
            for seq in range(2, 20):
                await ws.send(_media(stream_sid, seq, SILENCE))
            refused = await _refused(bot, call_sid, parameters)
            await _talk(ws, stream_sid, bot, call_sid)  # the real stream still works
            return refused

    assert asyncio.run(hijack())
    (update,) = bot.updates(call_sid)
    assert parse_twiml(update).final == "enqueue billing"
    assert bot.server.metrics.errors["stream_replayed"] == before + 1
    _ended(bot, call_sid)


def test_stream_parameters_are_used_once_across_instances(
    bot: Bot, ko_model: SpeechModel, tmp_path: Path
) -> None:
    """Two instances share the call log (as behind HAProxy): the stream of a call answered by
    one lands on the other; the same parameters presented to the first are then refused,
    although the first holds nothing of the call in memory."""
    url = str(bot.log.store.target)
    with CallLog.open(url, salt="salt", env={}) as shared:
        port = free_port()
        other = VoiceServer(
            ServerSettings(public_url=bot.url, auth_token=TOKEN),  # same public URL (the LB)
            ConfigHolder(CONFIG),
            bot.server.rest,
            SpeechProvider(lambda _config: ko_model),
            observer=shared,
        )
        other.claim_stream = shared.claim_stream
        call_sid = _new_sid()
        parameters = _webhook(bot, call_sid)
        with _listening(other, port):

            async def on_other() -> None:
                url = f"ws://127.0.0.1:{port}/twilio/media"
                headers = _signed_headers(other)  # its stream URL, on the public origin
                async with connect(url, additional_headers=headers) as ws:
                    await ws.send(_start(call_sid, "MZ" + secrets.token_hex(16), parameters))
                    for seq in range(2, 30):
                        await ws.send(_media("MZx", seq, SILENCE))
                        await asyncio.sleep(0.02)
                    assert call_sid in other.sessions  # the other instance took the call
                    assert await _refused(bot, call_sid, parameters)

            asyncio.run(on_other())
            _ended(bot, call_sid)
            deadline = time.monotonic() + 10
            while other.sessions and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not bot.server.sessions


# ---------------------------------------------------------------------------------------------
# Limits after a signed upgrade (issue #26)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def _handshake(port: int, server: VoiceServer) -> socket.socket:
    """A WebSocket upgrade by hand, so the client can then never read anything."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    signature = _signed_headers(server)[SIGNATURE_HEADER]
    sock.sendall(
        (
            f"GET /twilio/media HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{SIGNATURE_HEADER}: {signature}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payload under 126 bytes)."""
    mask = secrets.token_bytes(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def test_pings_from_a_client_that_never_reads_do_not_fill_the_servers_memory(
    listening: tuple[VoiceServer, int],
) -> None:
    """Each ping is answered by a pong; a client that never reads used to make the server
    queue every pong (150 MB of pings: 154 MB more memory). Pongs are no longer queued
    behind a full write buffer (RFC 6455 lets a server answer only the latest ping)."""
    server, port = listening
    ping = _client_frame(0x9, b"p" * 125)
    burst = ping * 8000  # 1 MiB of pings
    sock = _handshake(port, server)
    try:
        before = _rss_bytes()
        sock.settimeout(30)  # the server reads on: only a loaded machine makes it slow
        for _ in range(24):  # 24 MiB, never reading the pongs
            sock.sendall(burst)
        time.sleep(0.5)  # the server takes in what is in flight
        grown = _rss_bytes() - before
    finally:
        sock.close()
    assert grown < 12 * 2**20, f"the server's memory grew by {grown / 2**20:.0f} MiB"


def test_a_socket_without_a_start_is_closed_however_many_messages_it_sends(
    listening: tuple[VoiceServer, int],
) -> None:
    """``connected`` every 100 ms used to reset the 0.5 s start timeout for ever."""
    server, port = listening

    async def chatter() -> float:
        url = f"ws://127.0.0.1:{port}/twilio/media"
        started = time.monotonic()
        async with connect(url, additional_headers=_signed_headers(server)) as ws:
            connected = json.dumps({"event": "connected", "protocol": "Call", "version": "1"})
            with contextlib.suppress(ConnectionClosed):
                while time.monotonic() - started < 6:
                    await ws.send(connected)
                    await asyncio.sleep(0.1)
        return time.monotonic() - started

    assert asyncio.run(chatter()) < 3


def test_junk_before_start_writes_a_few_warnings_then_the_socket_is_closed(
    listening: tuple[VoiceServer, int], caplog: pytest.LogCaptureFixture
) -> None:
    """20,000 tiny frames before ``start`` used to write a warning each (3.3 MiB of log)."""
    server, port = listening

    async def junk() -> int:
        url = f"ws://127.0.0.1:{port}/twilio/media"
        sent = 0
        async with connect(url, additional_headers=_signed_headers(server)) as ws:
            with contextlib.suppress(ConnectionClosed):
                for _ in range(2000):
                    await ws.send("x")
                    sent += 1
                await asyncio.wait_for(ws.recv(), 5)
        return sent

    with caplog.at_level("WARNING", logger="voicebot.telephony.app"):
        asyncio.run(junk())
    warnings = [r for r in caplog.records if "ignored stream message" in r.getMessage()]
    assert 1 <= len(warnings) <= 11
    assert server.metrics.errors["protocol"] <= server.settings.max_bad_messages + 1 + 64


@pytest.mark.parametrize("kind", ["connected", "repeated frame", "mark", "binary"])
def test_a_stream_without_media_progress_times_out_to_a_person(bot: Bot, kind: str) -> None:
    """After its start, a stream sending only messages that carry no new audio used to stay
    open for ever, since any message reset ``--stream-timeout``."""
    call_sid = _new_sid()

    async def no_progress() -> None:
        async with _stream(bot, call_sid) as (ws, stream_sid):
            frame = _media(stream_sid, 2, SILENCE)
            await ws.send(frame)
            message: str | bytes = {
                "connected": json.dumps(
                    {"event": "connected", "protocol": "Call", "version": "1.0.0"}
                ),
                "repeated frame": frame,
                "mark": json.dumps(
                    {
                        "event": "mark",
                        "sequenceNumber": "3",
                        "streamSid": stream_sid,
                        "mark": {"name": "x"},
                    }
                ),
                "binary": b"\x00" * 160,
            }[kind]
            deadline = time.monotonic() + MEDIA_TIMEOUT_S + 8
            with contextlib.suppress(ConnectionClosed):
                while not bot.updates(call_sid) and time.monotonic() < deadline:
                    await ws.send(message)
                    await asyncio.sleep(0.1)  # 10 a second: under max_bad_messages in 3 s

    asyncio.run(no_progress())
    (update,) = bot.updates(call_sid)
    assert parse_twiml(update).final == GENERAL
    _ended(bot, call_sid)


def test_binary_frames_count_as_bad_messages(bot: Bot) -> None:
    """Twilio sends text: a stream of binary frames ends with a person, as malformed text
    frames do, once there are more than ``max_bad_messages``."""
    call_sid = _new_sid()

    async def binary() -> None:
        async with _stream(bot, call_sid) as (ws, _stream_sid):
            with contextlib.suppress(ConnectionClosed):
                for _ in range(bot.server.settings.max_bad_messages + 20):
                    await ws.send(b"\x00" * 160)
                deadline = time.monotonic() + MEDIA_TIMEOUT_S - 1
                while not bot.updates(call_sid) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)

    started = time.monotonic()
    asyncio.run(binary())
    (update,) = bot.updates(call_sid)
    assert parse_twiml(update).final == GENERAL
    assert time.monotonic() - started < MEDIA_TIMEOUT_S  # not the media timeout's doing
    _ended(bot, call_sid)


# ---------------------------------------------------------------------------------------------
# Reload storms (issue #26)


def test_a_webhook_during_a_reload_storm_is_answered_promptly(
    ko_model: SpeechModel, tmp_path: Path
) -> None:
    """25 SIGHUPs while a configuration takes a second to load used to take every thread that
    answers webhooks (and the speech lock) for 25 s: a new call's webhook was answered after
    Twilio's 15 s timeout, while /healthz said 200. Reloads are coalesced (one running, one
    pending) on a thread of their own."""
    import signal

    from voicebot.cli.serve import install_reload_signal, without_signal_handling

    config = tmp_path / "intents.yaml"
    config.write_text(CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    loads: list[float] = []

    def load(_config: object) -> SpeechModel:
        if loads:  # not the first (start-up) load: each reload's takes a second
            time.sleep(1.0)
        loads.append(time.monotonic())
        return ko_model

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = VoiceServer(
        ServerSettings(public_url=url, auth_token=TOKEN),
        ConfigHolder(config),
        TwilioRest("AC" + "0" * 32, TOKEN, base_url="http://127.0.0.1:9"),
        SpeechProvider(load),
    )
    server.prepare()
    answered: list[float] = []

    def webhook() -> None:
        started = time.monotonic()
        status, _ = _post(url + "/twilio/voice", _ringing(_new_sid()), TOKEN)
        assert status == 200
        answered.append(time.monotonic() - started)

    async def storm() -> None:
        loop = asyncio.get_running_loop()
        uv = without_signal_handling(uvicorn_config(server, "127.0.0.1", port, log_config=None))
        serving_task = asyncio.ensure_future(uv.serve())
        restore = install_reload_signal(loop, server.reload)
        try:
            while not uv.started:
                await asyncio.sleep(0.01)
            for _ in range(25):
                os.kill(os.getpid(), signal.SIGHUP)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # the storm is on
            caller = threading.Thread(target=webhook)  # not from the server's thread pool
            caller.start()
            while caller.is_alive():
                await asyncio.sleep(0.05)
        finally:
            restore()
            uv.should_exit = True
            await serving_task

    asyncio.run(storm())
    assert answered and answered[0] < 5.0, f"webhook answered in {answered[0]:.1f} s"
    time.sleep(3)  # let the reloads still queued run out (coalesced: at most two)
    assert 2 <= len(loads) <= 4, f"{len(loads) - 1} reloads for 25 SIGHUPs"
