"""The simulator's reading of TwiML and its summary; the calls themselves: test_e2e_twilio."""

from __future__ import annotations

import json

import numpy as np

from voicebot.core.config import Destination, DestinationKind
from voicebot.speech.audio import ulaw_encode
from voicebot.telephony.media_stream import split_frames
from voicebot.telephony.testing.call_report import CallReport, summary
from voicebot.telephony.testing.simulator import voiced_frames
from voicebot.telephony.testing.twiml_reader import parse_twiml
from voicebot.telephony.twiml import (
    Speech,
    connect_stream_twiml,
    say_and_hangup_twiml,
    transfer_twiml,
)


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


def test_reaction_is_timed_from_the_last_word_not_the_trailing_silence() -> None:
    t = np.arange(8000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)  # 1 s of "speech"
    rng = np.random.default_rng(0)
    hiss = rng.normal(0, 200, 4000).astype(np.int16)  # then 0.5 s of line noise (-32 dB)
    frames = split_frames(ulaw_encode(np.concatenate([tone, hiss])))
    assert len(frames) == 75
    assert voiced_frames(frames) == 50  # speech ends after 50 frames of 20 ms
    assert voiced_frames(split_frames(ulaw_encode(np.zeros(800, np.int16)))) == 5  # all silent
