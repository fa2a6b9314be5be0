"""The simulator's reading of TwiML and its summary; the calls themselves: test_e2e_twilio."""

from __future__ import annotations

import json

from voicebot.config import Destination, DestinationKind
from voicebot.simulate import CallReport, parse_twiml, summary
from voicebot.twiml import Speech, connect_stream_twiml, say_and_hangup_twiml, transfer_twiml


def test_reads_the_incoming_call_twiml() -> None:
    xml = connect_stream_twiml(
        [Speech("안녕하세요", voice="Polly.Seoyeon", language="ko-KR")],
        "wss://bot.example.com/twilio/media",
        {"callSid": "CA1", "token": "t0k"},
        fallback=Destination(DestinationKind.NUMBER, "+82212345678"),
    )
    twiml = parse_twiml(xml)
    assert twiml.said == ("<Say ko-KR> 안녕하세요",)
    assert twiml.stream_url == "wss://bot.example.com/twilio/media"
    assert twiml.parameters == {"callSid": "CA1", "token": "t0k"}
    assert twiml.final == "dial number:+82212345678"


def test_reads_transfer_context_from_whisper_url_and_task() -> None:
    context = {"intent": "billing", "transcript": "요금 납부", "confidence": 0.9}
    dial = parse_twiml(
        transfer_twiml(
            Destination(DestinationKind.NUMBER, "+82212345678"),
            context=context,
            whisper_base_url="https://bot.example.com/twilio/whisper",
        )
    )
    assert dial.final == "dial number:+82212345678"
    assert dial.context == {"intent": "billing", "transcript": "요금 납부", "confidence": "0.9"}
    workflow = "WW" + "a" * 32
    task = parse_twiml(
        transfer_twiml(Destination(DestinationKind.WORKFLOW, workflow), context=context)
    )
    assert task.final == f"enqueue workflow:{workflow}"
    assert task.context["intent"] == "billing"
    queue = parse_twiml(transfer_twiml(Destination(DestinationKind.QUEUE, "billing")))
    assert (queue.final, dict(queue.context)) == ("enqueue billing", {})


def test_reads_goodbye() -> None:
    twiml = parse_twiml(say_and_hangup_twiml([Speech("bye", language="en-US")]))
    assert twiml.said == ("<Say en-US> bye",)
    assert twiml.final == "hangup" and twiml.stream_url is None


def test_summary_counts_undecided_calls_and_latency() -> None:
    reports = [
        CallReport("CA1", None, decision="transfer enqueue billing", latency_s=0.1),
        CallReport("CA2", None, decision="transfer enqueue billing", latency_s=0.3),
        CallReport("CA3", None, decision="none"),
    ]
    out = summary(reports)
    assert out["undecided"] == 1
    assert out["decisions"] == {"transfer enqueue billing": 2, "none": 1}
    assert out["latency_ms"]["p50"] == 100.0 and out["latency_ms"]["max"] == 300.0
    json.dumps(out)
