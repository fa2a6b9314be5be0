"""Twilio Media Streams WebSocket messages: typed parsing in, JSON building out.

Everything Twilio (or anyone reaching the socket) sends goes through ``parse_message``, which either
returns one of the frozen message types or raises ``ProtocolError`` with one readable sentence, so
the server has a single failure path to handle for hostile or broken input.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

FRAME_BYTES: Final = 160  # 20 ms of 8 kHz mono mu-law
FRAME_MS: Final = 20
MULAW_SILENCE: Final = 0xFF
DEFAULT_MAX_PAYLOAD_BYTES: Final = 8000  # 1 s of audio; Twilio sends 160-byte frames
OUTBOUND_BYTES: Final = 3200  # 400 ms of prompt audio per message the bot sends


class ProtocolError(ValueError):
    """A message that is not valid Media Streams protocol; ``str()`` says what is wrong."""


@dataclass(frozen=True, slots=True)
class MediaFormat:
    encoding: str  # "audio/x-mulaw"
    sample_rate: int  # 8000
    channels: int  # 1

    @property
    def is_telephone_mulaw(self) -> bool:
        return (self.encoding, self.sample_rate, self.channels) == ("audio/x-mulaw", 8000, 1)


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    sequence_number: int
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    media_format: MediaFormat
    custom_parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Media:
    sequence_number: int
    stream_sid: str
    track: str  # "inbound" (caller) or "outbound"
    chunk: int
    timestamp_ms: int  # since the stream started
    payload: bytes  # raw mu-law


@dataclass(frozen=True, slots=True)
class Mark:
    """Twilio's echo of a mark we sent: the audio queued before it has played (or was cleared)."""

    sequence_number: int
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class DtmfMessage:
    sequence_number: int
    stream_sid: str
    track: str
    digit: str


@dataclass(frozen=True, slots=True)
class Stop:
    sequence_number: int
    stream_sid: str
    call_sid: str
    account_sid: str


InboundMessage = Connected | Start | Media | Mark | DtmfMessage | Stop

_DTMF_DIGITS = frozenset("0123456789*#ABCDabcd")


class _Fields:
    """Typed access to one JSON object, raising ProtocolError that names the dotted path."""

    def __init__(self, event: str, data: object, path: str = "") -> None:
        if not isinstance(data, dict):
            where = f"'{path}'" if path else "message"
            raise ProtocolError(f"{event} message: {where} must be a JSON object")
        self.event = event
        self.data: dict[str, Any] = data
        self.path = path

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str) -> object:
        if key not in self.data or self.data[key] is None:
            raise ProtocolError(f"{self.event} message: field '{self._name(key)}' is missing")
        return self.data[key]

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise ProtocolError(f"{self.event} message: field '{self._name(key)}' must be a string")
        return value

    def count(self, key: str) -> int:
        """Twilio sends counters as decimal strings ("sequenceNumber": "3"); accept both."""
        value = self._get(key)
        if isinstance(value, bool):
            value = None
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
            return int(value)
        if isinstance(value, int) and value >= 0:
            return value
        raise ProtocolError(
            f"{self.event} message: field '{self._name(key)}' must be a non-negative integer"
        )

    def obj(self, key: str) -> _Fields:
        return _Fields(self.event, self._get(key), self._name(key))


def parse_message(
    text: str | bytes, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> InboundMessage:
    """Parse one WebSocket text frame from Twilio; raises only ``ProtocolError``."""
    # Bound the work before decoding: base64 is 4/3 the size plus a little JSON around it.
    max_chars = max_payload_bytes * 4 // 3 + 4096
    if len(text) > max_chars:
        raise ProtocolError(f"message of {len(text)} characters is over the {max_chars} limit")
    try:  # 50 a second per call: Twilio's usual media message, straight into typed fields
        wire = _WIRE_MEDIA.decode(text)
    except (ValueError, RecursionError):  # not that shape (or not JSON): the general path says
        wire = None
    if wire is not None and wire.event == "media":
        media = _plain_media(wire, max_payload_bytes)
        if media is not None:
            return media
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"message is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("message must be a JSON object")
    event = raw.get("event")
    if not isinstance(event, str):
        raise ProtocolError("message has no 'event' string")
    parser = _PARSERS.get(event)
    if parser is None:
        raise ProtocolError(f"unknown event {event[:40]!r}")
    return parser(_Fields(event, raw), max_payload_bytes)


def _connected(m: _Fields, _limit: int) -> Connected:
    return Connected(protocol=m.text("protocol"), version=m.text("version"))


def _start(m: _Fields, _limit: int) -> Start:
    body = m.obj("start")
    fmt = body.obj("mediaFormat")
    tracks = body.data.get("tracks", ["inbound"])
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise ProtocolError("start message: field 'start.tracks' must be a list of strings")
    params = body.data.get("customParameters") or {}
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    ):
        raise ProtocolError(
            "start message: field 'start.customParameters' must map strings to strings"
        )
    stream_sid = m.text("streamSid")
    if body.text("streamSid") != stream_sid:
        raise ProtocolError("start message: 'streamSid' and 'start.streamSid' differ")
    return Start(
        sequence_number=m.count("sequenceNumber"),
        stream_sid=stream_sid,
        call_sid=body.text("callSid"),
        account_sid=body.text("accountSid"),
        tracks=tuple(tracks),
        media_format=MediaFormat(
            encoding=fmt.text("encoding"),
            sample_rate=fmt.count("sampleRate"),
            channels=fmt.count("channels"),
        ),
        custom_parameters=dict(params),
    )


def _media(m: _Fields, limit: int) -> Media:
    body = m.obj("media")
    encoded = body.text("payload")
    if len(encoded) > (limit + 2) // 3 * 4:
        raise ProtocolError(f"media message: payload is over the {limit}-byte limit")
    try:
        payload = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("media message: 'media.payload' is not valid base64") from None
    if len(payload) > limit:
        raise ProtocolError(
            f"media message: payload of {len(payload)} bytes is over the {limit}-byte limit"
        )
    return Media(
        sequence_number=m.count("sequenceNumber"),
        stream_sid=m.text("streamSid"),
        track=body.text("track"),
        chunk=body.count("chunk"),
        timestamp_ms=body.count("timestamp"),
        payload=payload,
    )


def _plain_count(value: str | int) -> int | None:
    """``_Fields.count`` without its error: None for anything it would not accept."""
    if type(value) is str and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    if type(value) is int and value >= 0:
        return value
    return None


class _WireMediaBody(msgspec.Struct):
    track: str
    chunk: str | int
    timestamp: str | int
    payload: str


class _WireMedia(msgspec.Struct, rename="camel"):
    """A ``media`` message as Twilio sends it, as msgspec (BSD-3, compiled) decodes it: JSON
    to these typed fields in one call, a sixth of ``json.loads`` alone (``bench/bench_parse.py``).
    Any other shape (a missing field, a number where Twilio sends a string, another event, bad
    JSON) fails to decode and takes the general path, which parses it or says what is wrong.
    Unknown fields are ignored and a repeated key counts once, its last value, as with
    ``json.loads``."""

    event: str
    sequence_number: str | int
    stream_sid: str
    media: _WireMediaBody


_WIRE_MEDIA: Final = msgspec.json.Decoder(_WireMedia)


def _plain_media(wire: _WireMedia, limit: int) -> Media | None:
    """A ``media`` message of the shape Twilio sends, from its decoded fields, checked as
    ``_media`` checks them; None for anything ``_media`` would not accept as it is, which it
    then parses or refuses with its error sentence."""
    body = wire.media
    encoded = body.payload
    if len(encoded) > (limit + 2) // 3 * 4:
        return None
    sequence = _plain_count(wire.sequence_number)
    chunk = _plain_count(body.chunk)
    timestamp = _plain_count(body.timestamp)
    if sequence is None or chunk is None or timestamp is None:
        return None
    try:
        payload = binascii.a2b_base64(encoded, strict_mode=True)  # b64decode(validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(payload) > limit:
        return None
    return Media(sequence, wire.stream_sid, body.track, chunk, timestamp, payload)


def _mark(m: _Fields, _limit: int) -> Mark:
    return Mark(
        sequence_number=m.count("sequenceNumber"),
        stream_sid=m.text("streamSid"),
        name=m.obj("mark").text("name"),
    )


def _dtmf(m: _Fields, _limit: int) -> DtmfMessage:
    body = m.obj("dtmf")
    digit = body.text("digit")
    if len(digit) != 1 or digit not in _DTMF_DIGITS:
        raise ProtocolError(f"dtmf message: {digit[:10]!r} is not a DTMF digit")
    return DtmfMessage(
        sequence_number=m.count("sequenceNumber"),
        stream_sid=m.text("streamSid"),
        track=str(body.data.get("track", "inbound_track")),
        digit=digit,
    )


def _stop(m: _Fields, _limit: int) -> Stop:
    body = m.obj("stop")
    return Stop(
        sequence_number=m.count("sequenceNumber"),
        stream_sid=m.text("streamSid"),
        call_sid=body.text("callSid"),
        account_sid=body.text("accountSid"),
    )


_PARSERS: dict[str, Callable[[_Fields, int], InboundMessage]] = {
    "connected": _connected,
    "start": _start,
    "media": _media,
    "mark": _mark,
    "dtmf": _dtmf,
    "stop": _stop,
}


# --- server -> Twilio (bidirectional <Connect><Stream> only) ---


def media_message(stream_sid: str, mulaw: bytes) -> str:
    """Audio to play to the caller; Twilio queues it behind earlier media."""
    payload = base64.b64encode(mulaw).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_message(stream_sid: str, name: str) -> str:
    """Ask Twilio to echo ``name`` back once the audio queued before it has played."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


MARK_TEXT_CHARS: Final = 120  # of a prompt's text carried in its mark's name


def prompt_mark(number: int, texts: Sequence[str]) -> str:
    """Name of the mark after the ``number``-th prompt's audio: ``prompt-N`` then its text.

    Twilio echoes the name back unchanged once the audio has played. Carrying the (bot's own,
    never the caller's) words lets the other end of the socket, such as ``voicebot simulate``
    or a capture, show what was said without recognising the audio. Cut to a few words."""
    text = " ".join(" ".join(t.split()) for t in texts if t.strip())
    if len(text) > MARK_TEXT_CHARS:
        text = text[: MARK_TEXT_CHARS - 1].rstrip() + "…"
    return f"prompt-{number} {text}" if text else f"prompt-{number}"


def mark_label(name: str) -> tuple[str, str]:
    """``prompt_mark``'s name split into its label and the prompt's text ("" when absent)."""
    label, _, text = name.partition(" ")
    return label, text


def clear_message(stream_sid: str) -> str:
    """Drop all queued outbound audio at once (barge-in); pending marks are echoed back."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})


def split_frames(mulaw: bytes, frame_bytes: int = FRAME_BYTES, pad: bool = True) -> list[bytes]:
    """Cut audio into 20 ms frames, padding the last with mu-law silence unless ``pad`` is off."""
    if frame_bytes <= 0:
        raise ValueError("frame_bytes must be positive")
    frames = [mulaw[i : i + frame_bytes] for i in range(0, len(mulaw), frame_bytes)]
    if pad and frames and len(frames[-1]) < frame_bytes:
        frames[-1] = frames[-1] + bytes([MULAW_SILENCE]) * (frame_bytes - len(frames[-1]))
    return frames


class FrameSplitter:
    """Streaming ``split_frames``: audio arrives in arbitrary pieces, whole frames come out."""

    def __init__(self, frame_bytes: int = FRAME_BYTES) -> None:
        if frame_bytes <= 0:
            raise ValueError("frame_bytes must be positive")
        self.frame_bytes = frame_bytes
        self._buffer = bytearray()

    def push(self, mulaw: bytes) -> list[bytes]:
        self._buffer.extend(mulaw)
        whole = len(self._buffer) - len(self._buffer) % self.frame_bytes
        out = split_frames(bytes(self._buffer[:whole]), self.frame_bytes)
        del self._buffer[:whole]
        return out

    def flush(self, pad: bool = True) -> list[bytes]:
        """The remainder as one (padded) frame, or nothing."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return split_frames(rest, self.frame_bytes, pad=pad)


def media_messages(stream_sid: str, mulaw: bytes, chunk_bytes: int = OUTBOUND_BYTES) -> list[str]:
    """Outbound ``media`` messages for a whole clip: ``chunk_bytes`` of audio each, the clip
    padded with silence to whole 20 ms frames. Twilio queues what it is sent and plays it at
    its own pace whatever the message size, so the bot need not send 50 messages per second
    of prompt (each one JSON, a WebSocket frame and a system call, on both sides)."""
    frames = split_frames(mulaw, FRAME_BYTES)
    per = max(1, chunk_bytes // FRAME_BYTES)
    return [
        media_message(stream_sid, b"".join(frames[i : i + per])) for i in range(0, len(frames), per)
    ]


def frames_duration_ms(frames: Iterable[bytes]) -> int:
    """Playing time of mu-law frames at 8 kHz (8 bytes per ms)."""
    return sum(len(f) for f in frames) // 8
