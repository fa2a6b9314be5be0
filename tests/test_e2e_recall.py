"""Repeat callers on the phone (issue #23): `serve` with a real SQLite call log, the fake Twilio
REST API and the simulator with the real Korean model. The caller's "yes" (네) is espeak-ng's
voice, heard by the same recogniser as every other turn."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_e2e_twilio import AUDIO, CALLER, Live, _serving, _whisper, _whisper_url, dialled_billing

from voicebot.calllog.log import CallLog
from voicebot.speech.tts import Tts
from voicebot.speech.vosk_model import SpeechModel
from voicebot.telephony.app import SpeechProvider
from voicebot.telephony.testing.call_report import CallReport, format_report
from voicebot.telephony.testing.simulator import SILENCE, load_audio, simulate_call

QUESTION = "요금 때문에 다시 전화하셨나요?"  # "are you calling about the fee again?"
BILLING = "transfer dial number:+82299990000"


def recall_config(tmp_path: Path) -> Path:
    path = dialled_billing(tmp_path)
    text = path.read_text(encoding="utf-8")
    text = text.replace("  error:", '  recall: "{label} 때문에 다시 전화하셨나요?"\n  error:', 1)
    text = text.replace("\ndefault_group:", "\nrecall:\n  days: 30\n\ndefault_group:", 1)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def live(
    ko_model: SpeechModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Live, CallLog]]:
    monkeypatch.setenv("VOICEBOT_DATA_DIR", str(tmp_path / "data"))
    log = CallLog.open(f"sqlite:///{tmp_path / 'calls.sqlite3'}")

    def wire(server: object) -> None:
        server.caller_history = log.caller_history  # type: ignore[attr-defined]  # as serve does

    try:
        with _serving(
            recall_config(tmp_path),
            SpeechProvider(lambda _c: ko_model),
            observer=log,
            before_start=wire,
        ) as running:
            yield running, log
    finally:
        log.close()


def call(live: Live, turn: bytes, caller: str | None = CALLER) -> CallReport:
    report = asyncio.run(simulate_call([turn], live.options(caller=caller), live.fake))
    assert not live.server.sessions
    return report


def yes() -> bytes:
    tts = Tts()
    if not tts.available:
        pytest.skip("espeak-ng is not installed (it speaks the caller's yes)")
    return SILENCE * 25 + tts.mulaw("네", "ko-KR") + SILENCE * 50


def test_a_repeat_caller_says_yes_and_is_routed_with_the_history_for_the_agent(
    live: tuple[Live, CallLog],
) -> None:
    server, log = live
    first = call(server, load_audio(AUDIO / "billing.wav"))
    assert first.decision == BILLING, format_report(first)
    assert log.flush()
    second = call(server, yes())
    assert second.said[0].endswith(f" ko-KR> {QUESTION}"), format_report(second)  # Say or Play
    assert second.decision == BILLING, format_report(second)
    context = second.context
    assert (context["recent_calls"], context["last_intent"]) == ("1", "billing")
    assert context["reason"] == "intent" and len(context["last_call"]) == 10  # a day
    whisper = _whisper(server, _whisper_url(server, second))
    assert "1 earlier call in 30 days; the last on" in whisper and "about 요금" in whisper
    assert log.flush()
    rows = {c.call_id: c for c in log.fetch().calls}
    assert (rows[second.call_sid].recalled, rows[second.call_sid].recall_answer) == (
        "billing",
        "yes",
    )
    assert rows[first.call_sid].recalled is None


def test_a_withheld_number_is_never_recalled(live: tuple[Live, CallLog]) -> None:
    server, log = live
    for _ in range(2):
        report = call(server, load_audio(AUDIO / "billing.wav"), caller=None)
        assert report.decision == BILLING, format_report(report)
        assert QUESTION not in report.said[0] and "recent_calls" not in report.context
        assert log.flush()


def test_anything_else_than_yes_takes_the_normal_path(live: tuple[Live, CallLog]) -> None:
    server, log = live
    call(server, load_audio(AUDIO / "billing.wav"))
    assert log.flush()
    report = call(server, load_audio(AUDIO / "hours.wav") + SILENCE * 100)
    assert report.said[0].endswith(f" ko-KR> {QUESTION}"), format_report(report)
    assert any("영업 시간은" in s for s in report.said), format_report(report)  # hours answered
    assert log.flush()
    row = next(c for c in log.fetch().calls if c.call_id == report.call_sid)
    assert (row.recalled, row.recall_answer) == ("billing", "other")
