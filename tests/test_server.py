"""The server's parts that need no model: metrics text, prompt audio, serve's refusal to start."""

from __future__ import annotations

import re

import pytest

from voicebot.cli import main
from voicebot.metrics import Metrics, percentile
from voicebot.serve_cli import dev_environment, missing_credentials
from voicebot.tts import Tts, TtsError


def test_metrics_render_prometheus_text() -> None:
    m = Metrics()
    m.call_started()
    m.call_started()
    m.call_ended()
    m.decision("transferred")
    m.decision("transferred")
    m.decision("sms_sent")
    m.error("protocol")
    m.reload(ok=False)
    for s in (0.004, 0.02, 3.0):
        m.decoded(s)
    m.latency(0.12)
    text = m.render()
    assert "voicebot_calls_in_progress 1\n" in text
    assert 'voicebot_decisions_total{action="transferred"} 2\n' in text
    assert 'voicebot_decisions_total{action="sms_sent"} 1\n' in text
    assert 'voicebot_errors_total{kind="protocol"} 1\n' in text
    assert 'voicebot_config_reloads_total{result="failed"} 1\n' in text
    # cumulative buckets: 0.004 <= 0.005, 0.02 <= 0.025, 3.0 only in +Inf
    assert 'voicebot_decode_seconds_bucket{le="0.005"} 1\n' in text
    assert 'voicebot_decode_seconds_bucket{le="0.025"} 2\n' in text
    assert 'voicebot_decode_seconds_bucket{le="+Inf"} 3\n' in text
    assert "voicebot_decode_seconds_count 3\n" in text
    assert 'voicebot_decision_seconds_bucket{le="0.1"} 0\n' in text
    assert 'voicebot_decision_seconds_bucket{le="0.15"} 1\n' in text
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? [0-9.e+-]+", line), line


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0


def test_tts_speaks_telephone_mulaw_and_caches() -> None:
    tts = Tts()
    if not tts.available:
        pytest.skip("espeak-ng is not installed")
    audio = tts.mulaw("안녕하세요, 고객 센터입니다.", "ko-KR")
    assert 0.8 < len(audio) / 8000 < 6.0  # seconds of 8 kHz mu-law
    assert len(set(audio)) > 50  # speech, not silence
    assert tts.mulaw("안녕하세요, 고객 센터입니다.", "ko-KR") is audio
    assert tts.synthesised == 1


def test_tts_without_espeak_says_so() -> None:
    tts = Tts(binary="no-such-espeak-binary")
    assert not tts.available
    with pytest.raises(TtsError):
        tts.mulaw("hello", "en-US")


def test_production_needs_credentials_dev_fills_them() -> None:
    assert missing_credentials({}) == [
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER (or TWILIO_MESSAGING_SERVICE_SID)",
    ]
    env = dev_environment({"TWILIO_AUTH_TOKEN": "mine"})
    assert missing_credentials(env) == []
    assert env["TWILIO_AUTH_TOKEN"] == "mine"  # the environment wins over dev defaults
    assert env["TWILIO_API_BASE_URL"].startswith("http://127.0.0.1:")


def test_serve_refuses_to_start_without_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve", "--public-url", "https://bot.example.com"]) == 2
    assert "TWILIO_ACCOUNT_SID" in capsys.readouterr().err


def test_serve_needs_a_public_url_outside_dev(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+15005550006")
    assert main(["serve"]) == 2
    assert "--public-url" in capsys.readouterr().err
