"""Media Streams messages as Twilio documents them, malformed input, and request signatures."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicebot.telephony.media_stream import (
    FRAME_BYTES,
    MULAW_SILENCE,
    Connected,
    DtmfMessage,
    FrameSplitter,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    _Fields,
    _media,
    clear_message,
    mark_message,
    media_message,
    media_messages,
    parse_message,
    split_frames,
)
from voicebot.telephony.signature import is_valid, public_url, sign

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA" + "a" * 32
ACCOUNT = "AC" + "b" * 32

# Shapes as in Twilio's "Media Streams - WebSocket Messages" documentation.
CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": ACCOUNT,
        "streamSid": SID,
        "callSid": CALL,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"From": "+46701234567", "language": "sv-SE"},
    },
    "streamSid": SID,
}
AUDIO = bytes(range(160))
MEDIA = {
    "event": "media",
    "sequenceNumber": "3",
    "media": {
        "track": "inbound",
        "chunk": "1",
        "timestamp": "5",
        "payload": base64.b64encode(AUDIO).decode(),
    },
    "streamSid": SID,
}
MARK = {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "greeting"}}
DTMF = {
    "event": "dtmf",
    "streamSid": SID,
    "sequenceNumber": "5",
    "dtmf": {"track": "inbound_track", "digit": "1"},
}
STOP = {
    "event": "stop",
    "sequenceNumber": "6",
    "streamSid": SID,
    "stop": {"accountSid": ACCOUNT, "callSid": CALL},
}


def test_parses_each_documented_message() -> None:
    assert parse_message(json.dumps(CONNECTED)) == Connected("Call", "1.0.0")

    start = parse_message(json.dumps(START))
    assert isinstance(start, Start)
    assert (start.stream_sid, start.call_sid, start.account_sid) == (SID, CALL, ACCOUNT)
    assert start.sequence_number == 1
    assert start.tracks == ("inbound",)
    assert start.media_format.is_telephone_mulaw
    assert start.custom_parameters == {"From": "+46701234567", "language": "sv-SE"}

    media = parse_message(json.dumps(MEDIA))
    assert media == Media(3, SID, "inbound", 1, 5, AUDIO)

    assert parse_message(json.dumps(MARK)) == Mark(4, SID, "greeting")
    assert parse_message(json.dumps(DTMF)) == DtmfMessage(5, SID, "inbound_track", "1")
    assert parse_message(json.dumps(STOP)) == Stop(6, SID, CALL, ACCOUNT)


def test_accepts_bytes_and_integer_counters() -> None:
    message = json.loads(json.dumps(MEDIA))
    message["sequenceNumber"] = 3
    message["media"]["timestamp"] = 5
    parsed = parse_message(json.dumps(message).encode())
    assert isinstance(parsed, Media) and parsed.timestamp_ms == 5


def test_start_without_custom_parameters_gives_an_empty_mapping() -> None:
    message = json.loads(json.dumps(START))
    del message["start"]["customParameters"]
    parsed = parse_message(json.dumps(message))
    assert isinstance(parsed, Start) and parsed.custom_parameters == {}


def test_other_media_formats_are_parsed_but_flagged() -> None:
    message = json.loads(json.dumps(START))
    message["start"]["mediaFormat"]["sampleRate"] = 16000
    parsed = parse_message(json.dumps(message))
    assert isinstance(parsed, Start) and not parsed.media_format.is_telephone_mulaw


def _with(base: Mapping[str, object], path: str, value: object) -> str:
    """``base`` with the dotted ``path`` set to ``value`` (or removed when value is ...)."""
    message = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    node = message
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return json.dumps(message)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"media"', "must be a JSON object"),
        ("{}", "no 'event'"),
        ('{"event": 3}', "no 'event'"),
        ('{"event": "hangup"}', "unknown event 'hangup'"),
        (_with(MEDIA, "media.payload", "@@not base64@@"), "not valid base64"),
        (_with(MEDIA, "media.payload", "AAA"), "not valid base64"),  # bad padding
        (_with(MEDIA, "media.payload", 42), "'media.payload' must be a string"),
        (_with(MEDIA, "media.payload", ...), "'media.payload' is missing"),
        (_with(MEDIA, "media", "x"), "'media' must be a JSON object"),
        (_with(MEDIA, "streamSid", ...), "'streamSid' is missing"),
        (_with(MEDIA, "sequenceNumber", "three"), "'sequenceNumber' must be a non-negative"),
        (_with(MEDIA, "sequenceNumber", -1), "'sequenceNumber' must be a non-negative"),
        (_with(MEDIA, "sequenceNumber", "9" * 5000), "'sequenceNumber' must be a non-negative"),
        (_with(MEDIA, "sequenceNumber", "٣"), "'sequenceNumber' must be a non-negative"),
        ("[" * 5000, "not valid JSON"),
        (_with(MEDIA, "media.timestamp", True), "'media.timestamp' must be a non-negative"),
        (_with(MEDIA, "media.chunk", None), "'media.chunk' is missing"),
        (_with(START, "start.callSid", ...), "'start.callSid' is missing"),
        (_with(START, "start.mediaFormat", ...), "'start.mediaFormat' is missing"),
        (_with(START, "start.customParameters", {"a": 1}), "must map strings to strings"),
        (_with(START, "start.tracks", "inbound"), "must be a list of strings"),
        (_with(START, "start.streamSid", "MZother"), "differ"),
        (_with(MARK, "mark.name", ...), "'mark.name' is missing"),
        (_with(DTMF, "dtmf.digit", ...), "'dtmf.digit' is missing"),
        (_with(DTMF, "dtmf.digit", "12"), "not a DTMF digit"),
        (_with(DTMF, "dtmf.digit", "x"), "not a DTMF digit"),
        (_with(STOP, "stop", ...), "'stop' is missing"),
        (_with(CONNECTED, "version", ...), "'version' is missing"),
    ],
)
def test_malformed_messages_raise_one_clear_protocol_error(text: str | bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason.replace("(", r"\(")):
        parse_message(text)


def test_oversized_payload_is_rejected_by_the_configured_limit() -> None:
    big = _with(MEDIA, "media.payload", base64.b64encode(bytes(321)).decode())
    with pytest.raises(ProtocolError, match="320-byte limit"):
        parse_message(big, max_payload_bytes=320)
    parsed = parse_message(big, max_payload_bytes=321)
    assert isinstance(parsed, Media) and len(parsed.payload) == 321


def test_huge_message_is_rejected_before_json_parsing() -> None:
    with pytest.raises(ProtocolError, match="over the"):
        parse_message("[" * 1_000_000, max_payload_bytes=160)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_input_raises_nothing_but_protocol_error(text: str | bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_message(text)


@given(
    st.fixed_dictionaries(
        {"event": st.sampled_from(["media", "start", "mark", "dtmf", "stop"])},
        optional={
            "streamSid": st.one_of(st.text(max_size=5), st.integers(), st.none()),
            "sequenceNumber": st.one_of(st.text(max_size=5), st.integers(), st.none()),
            "media": st.dictionaries(st.sampled_from(["payload", "chunk", "timestamp"]), st.text()),
            "start": st.dictionaries(st.text(max_size=12), st.text(max_size=5)),
            "mark": st.one_of(st.dictionaries(st.just("name"), st.integers()), st.lists(st.none())),
            "dtmf": st.dictionaries(st.just("digit"), st.text(max_size=3)),
            "stop": st.one_of(st.none(), st.text()),
        },
    )
)
def test_structurally_wrong_messages_raise_only_protocol_error(message: dict[str, object]) -> None:
    with contextlib.suppress(ProtocolError):
        parse_message(json.dumps(message))


def test_outgoing_messages_have_twilio_shapes() -> None:
    assert json.loads(media_message(SID, AUDIO)) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": base64.b64encode(AUDIO).decode()},
    }
    assert json.loads(mark_message(SID, "prompt-1")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "prompt-1"},
    }
    assert json.loads(clear_message(SID)) == {"event": "clear", "streamSid": SID}


def test_outgoing_media_round_trips_through_the_inbound_parser() -> None:
    sent = json.loads(media_message(SID, AUDIO))
    echoed = {**MEDIA, "media": {**MEDIA["media"], "payload": sent["media"]["payload"]}}  # type: ignore[dict-item]
    parsed = parse_message(json.dumps(echoed))
    assert isinstance(parsed, Media) and parsed.payload == AUDIO


def test_split_frames_cuts_20ms_frames_and_pads_the_last_with_silence() -> None:
    audio = bytes(range(256)) * 2  # 512 bytes = 3 frames + 32 bytes
    frames = split_frames(audio)
    assert [len(f) for f in frames] == [FRAME_BYTES] * 4
    assert b"".join(frames)[: len(audio)] == audio
    assert frames[-1][32:] == bytes([MULAW_SILENCE]) * (FRAME_BYTES - 32)
    assert [len(f) for f in split_frames(audio, pad=False)] == [160, 160, 160, 32]
    assert split_frames(b"") == []


def test_frame_splitter_streams_arbitrary_pieces_into_whole_frames() -> None:
    audio = bytes(i % 251 for i in range(1000))
    splitter = FrameSplitter()
    frames: list[bytes] = []
    for start in range(0, len(audio), 77):
        frames += splitter.push(audio[start : start + 77])
    assert all(len(f) == FRAME_BYTES for f in frames) and len(frames) == 6
    frames += splitter.flush(pad=False)
    assert b"".join(frames) == audio
    assert splitter.flush() == []


def test_media_messages_carry_the_whole_clip_in_few_messages() -> None:
    clip = bytes(range(256)) * 30  # 7680 bytes: 0.96 s
    messages = media_messages(SID, clip)
    assert len(messages) == 3  # 400 ms each, not 48 of 20 ms
    assert all(json.loads(m)["streamSid"] == SID for m in messages)
    sent = b"".join(base64.b64decode(json.loads(m)["media"]["payload"]) for m in messages)
    assert sent == clip  # whole frames already: nothing added
    odd = b"".join(
        base64.b64decode(json.loads(m)["media"]["payload"]) for m in media_messages(SID, clip[:100])
    )
    assert odd == clip[:100] + bytes([MULAW_SILENCE]) * 60  # padded to a 20 ms frame


# --- signatures ---

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}


def test_signature_matches_twilios_documented_example() -> None:
    # The example from Twilio's "Webhooks security" page.
    assert sign(URL, PARAMS, TOKEN) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert is_valid(URL, PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", TOKEN)


def test_tampered_or_missing_signatures_are_rejected() -> None:
    signature = sign(URL, PARAMS, TOKEN)
    assert not is_valid(URL, {**PARAMS, "Digits": "9999"}, signature, TOKEN)
    assert not is_valid(URL, {**PARAMS, "Extra": "1"}, signature, TOKEN)
    assert not is_valid(URL.replace("foo=1", "foo=2"), PARAMS, signature, TOKEN)
    assert not is_valid(URL, PARAMS, signature, "other-token")
    assert not is_valid(URL, PARAMS, None, TOKEN)
    assert not is_valid(URL, PARAMS, "", TOKEN)
    assert not is_valid(URL, PARAMS, signature, "")


def test_websocket_upgrade_is_signed_on_the_wss_url_without_params() -> None:
    url = "wss://bot.example.com/stream"
    signature = sign(url, None, TOKEN)
    assert is_valid(url, {}, signature, TOKEN)
    assert is_valid("wss://bot.example.com:443/stream", None, signature, TOKEN)
    assert not is_valid("https://bot.example.com/stream", {}, signature, TOKEN)


def test_public_url_rebuilds_what_twilio_signed_behind_a_proxy() -> None:
    internal = "http://10.0.0.5:8080/voice/incoming?lang=sv"
    public = public_url(internal, "https://bot.example.com")
    assert public == "https://bot.example.com/voice/incoming?lang=sv"
    signature = sign(public, PARAMS, TOKEN)
    assert not is_valid(internal, PARAMS, signature, TOKEN)
    assert is_valid(public_url(internal, "https://bot.example.com/"), PARAMS, signature, TOKEN)
    assert public_url("/stream", "https://bot.example.com/prefix", websocket=True) == (
        "wss://bot.example.com/prefix/stream"
    )
    with pytest.raises(ValueError, match="absolute"):
        public_url("/x", "bot.example.com")


_COUNTS = st.one_of(
    st.sampled_from(["0", "7", "12345", "-1", "1.5", "١٢", "", "9" * 19]),
    st.integers(min_value=-2, max_value=2**62),
    st.booleans(),
    st.none(),
)


@given(
    st.fixed_dictionaries(
        {
            "event": st.just("media"),
            "sequenceNumber": _COUNTS,
            "streamSid": st.one_of(st.just("MZ1"), st.integers(), st.none()),
            "media": st.one_of(
                st.fixed_dictionaries(
                    {
                        "track": st.one_of(st.just("inbound"), st.integers()),
                        "chunk": _COUNTS,
                        "timestamp": _COUNTS,
                        "payload": st.one_of(
                            st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
                            st.sampled_from(["", "AA", "AA=", "A A=", "!!!!", "AAAA\n"]),
                        ),
                    }
                ),
                st.none(),
                st.lists(st.integers(), max_size=2),
            ),
        }
    )
)
def test_the_plain_media_path_parses_and_refuses_as_the_general_one(
    message: dict[str, object],
) -> None:
    """``parse_message`` reads Twilio's usual ``media`` message without the general field
    checks (issue #20, 50 a second per call): whatever the fields, the result, or the error
    sentence, is the general path's."""
    limit = 200

    def outcome(parse: Callable[[], object]) -> object:
        try:
            return parse()
        except ProtocolError as exc:
            return str(exc)

    text = json.dumps(message)
    general = outcome(lambda: _media(_Fields("media", json.loads(text)), limit))
    assert outcome(lambda: parse_message(text, max_payload_bytes=limit)) == general
