"""TwiML the caller's call runs on, checked as parsed XML (element order, attributes, text)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest

from voicebot.core.config import Destination, DestinationKind
from voicebot.telephony.twiml import (
    MAX_CONTEXT_VALUE,
    ContextValue,
    Speech,
    connect_stream_twiml,
    say_and_hangup_twiml,
    transfer_twiml,
    whisper_text,
    whisper_twiml,
    whisper_url,
)

CONTEXT: dict[str, ContextValue] = {
    "intent": "billing",
    "transcript": "my invoice is wrong & too high",
    "confidence": 0.82,
    "language": "en-US",
    "reason": "intent",
    "unused": None,
}


def parse(xml: str) -> ET.Element:
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    return root


def test_incoming_call_speaks_then_connects_the_stream_with_parameters() -> None:
    root = parse(
        connect_stream_twiml(
            [
                Speech("Välkommen till support.", voice="Polly.Astrid", language="sv-SE"),
                Speech(audio_url="https://cdn.example.com/closed-friday.mp3"),
            ],
            "wss://bot.example.com/stream",
            {"From": "+46701234567", "language": "sv-SE"},
        )
    )
    say, play, connect = list(root)
    assert (say.tag, say.text) == ("Say", "Välkommen till support.")
    assert say.attrib == {"voice": "Polly.Astrid", "language": "sv-SE"}
    assert (play.tag, play.text) == ("Play", "https://cdn.example.com/closed-friday.mp3")
    assert connect.tag == "Connect"
    (stream,) = list(connect)
    assert stream.tag == "Stream" and stream.get("url") == "wss://bot.example.com/stream"
    assert {p.get("name"): p.get("value") for p in stream.iter("Parameter")} == {
        "From": "+46701234567",
        "language": "sv-SE",
    }


def test_audio_wins_over_text_and_say_omits_unset_attributes() -> None:
    root = parse(
        connect_stream_twiml(
            [Speech("fallback text", audio_url="https://x/a.wav"), Speech("Hi")], "wss://b/s"
        )
    )
    play, say, _ = list(root)
    assert play.tag == "Play" and say.tag == "Say" and say.attrib == {}


def test_stream_failure_falls_through_to_a_person() -> None:
    root = parse(
        connect_stream_twiml(
            [Speech("Hello")],
            "wss://b/s",
            after=[Speech("Sorry, something went wrong.")],
            fallback=Destination(DestinationKind.QUEUE, "support"),
        )
    )
    assert [e.tag for e in root] == ["Say", "Connect", "Say", "Enqueue"]
    assert root[3].text == "support"


def test_stream_url_must_be_a_websocket() -> None:
    with pytest.raises(ValueError, match="ws"):
        connect_stream_twiml([], "https://bot.example.com/stream")


def test_speech_needs_something_to_say() -> None:
    with pytest.raises(ValueError):
        Speech()


def test_transfer_to_number_whispers_the_context_to_the_agent() -> None:
    root = parse(
        transfer_twiml(
            Destination(DestinationKind.NUMBER, "+46812345678"),
            context=CONTEXT,
            speech=[Speech("I'll put you through to billing.", voice="Polly.Joanna")],
            whisper_base_url="https://bot.example.com/whisper?lang=en-US",
            caller_id="+46700000000",
            timeout_s=30,
        )
    )
    say, dial = list(root)
    assert say.tag == "Say" and dial.tag == "Dial"
    assert dial.get("callerId") == "+46700000000" and dial.get("timeout") == "30"
    (number,) = list(dial)
    assert number.tag == "Number" and number.text == "+46812345678"
    url = urlsplit(number.get("url") or "")
    assert (url.scheme, url.netloc, url.path) == ("https", "bot.example.com", "/whisper")
    query = parse_qs(url.query)
    assert query == {
        "lang": ["en-US"],
        "intent": ["billing"],
        "transcript": ["my invoice is wrong & too high"],
        "confidence": ["0.82"],
        "language": ["en-US"],
        "reason": ["intent"],
    }


def test_transfer_to_sip_without_whisper() -> None:
    root = parse(transfer_twiml(Destination(DestinationKind.SIP, "sip:support@pbx.example.com")))
    (dial,) = list(root)
    (sip,) = list(dial)
    assert sip.tag == "Sip" and sip.text == "sip:support@pbx.example.com"
    assert "url" not in sip.attrib


def test_transfer_to_sip_with_whisper() -> None:
    root = parse(
        transfer_twiml(
            Destination(DestinationKind.SIP, "sip:a@b"),
            context={"intent": "x"},
            whisper_base_url="https://bot/w",
        )
    )
    assert root.find("Dial/Sip").get("url") == "https://bot/w?intent=x"  # type: ignore[union-attr]


def test_transfer_to_taskrouter_workflow_carries_context_as_task_attributes() -> None:
    root = parse(
        transfer_twiml(
            Destination(DestinationKind.WORKFLOW, "WW0123456789abcdef0123456789abcdef"),
            context={**CONTEXT, "transcript": 'räkningen är "fel" <igen>'},
        )
    )
    (enqueue,) = list(root)
    assert enqueue.tag == "Enqueue"
    assert enqueue.get("workflowSid") == "WW0123456789abcdef0123456789abcdef"
    assert enqueue.text is None or not enqueue.text.strip()
    (task,) = list(enqueue)
    assert task.tag == "Task"
    attributes = json.loads(task.text or "")
    assert attributes["transcript"] == 'räkningen är "fel" <igen>'
    assert attributes["confidence"] == 0.82 and attributes["intent"] == "billing"
    assert attributes["unused"] is None


def test_transfer_to_plain_queue_with_hold_music() -> None:
    root = parse(
        transfer_twiml(
            Destination(DestinationKind.QUEUE, "support-sv"),
            context=CONTEXT,
            wait_url="https://bot/hold",
        )
    )
    (enqueue,) = list(root)
    assert (enqueue.tag, enqueue.text, enqueue.get("waitUrl")) == (
        "Enqueue",
        "support-sv",
        "https://bot/hold",
    )
    assert list(enqueue) == []


def test_queue_names_over_twilios_limit_are_refused() -> None:
    with pytest.raises(ValueError, match="64"):
        transfer_twiml(Destination(DestinationKind.QUEUE, "q" * 65))


def test_say_and_hangup() -> None:
    root = parse(say_and_hangup_twiml([Speech("Goodbye!", voice="Polly.Joanna")]))
    assert [e.tag for e in root] == ["Say", "Hangup"]
    assert root[0].text == "Goodbye!"


def test_whisper_url_cuts_long_values_and_keeps_existing_query() -> None:
    url = whisper_url("https://bot/w?token=abc", {"transcript": "a" * 1000, "ok": True})
    query = parse_qs(urlsplit(url).query)
    assert query["token"] == ["abc"]
    assert query["transcript"] == ["a" * MAX_CONTEXT_VALUE]
    assert query["ok"] == ["true"]


def test_whisper_text_and_twiml() -> None:
    assert whisper_text("billing", " my bill ") == "Caller asked about billing: 'my bill'"
    assert whisper_text("billing", "") == "Caller asked about billing."
    assert whisper_text("faktura", "hej", template="Gäller {topic}: {transcript}") == (
        "Gäller faktura: hej"
    )
    root = parse(whisper_twiml("Caller asked about billing: 'x & y'", "Polly.Joanna", "en-US"))
    (say,) = list(root)
    assert say.text == "Caller asked about billing: 'x & y'"
    assert say.attrib == {"voice": "Polly.Joanna", "language": "en-US"}
