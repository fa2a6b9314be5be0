"""Self-service lookups on the phone (issue #23): `serve` on a free port, the fake Twilio REST API,
the simulator with the real Korean model and audio, and a real local HTTP endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_e2e_twilio import AUDIO, CALLER, CONFIG, TO_GENERAL, Live, _serving

from voicebot.shells.lookup import LOOKUP_SECRET_ENV, SIGNATURE_HEADER
from voicebot.speech.vosk_model import SpeechModel
from voicebot.telephony.app import SpeechProvider
from voicebot.telephony.testing.call_report import format_report
from voicebot.telephony.testing.lookup_server import LookupEndpoint
from voicebot.telephony.testing.simulator import SILENCE, load_audio, simulate_call

ANSWER = "요금은 삼만 원입니다."  # "the fee is 30,000 won"
FILLER = "잠시만 기다려 주세요."


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LookupEndpoint]:
    server = LookupEndpoint(answers={"fee": {"say": ANSWER}}, slow_s=2.0).start()
    yield server
    server.stop()


def lookup_config(tmp_path: Path, url: str) -> Path:
    """The Korean test config with billing as a lookup; otherwise the general line (dialled,
    so the transfer's context reaches the whisper URL, which the report reads)."""
    text = CONFIG.read_text(encoding="utf-8")
    billing = "    label: 요금\n    transfer: billing\n"
    assert billing in text
    text = text.replace(
        billing,
        f"    label: 요금\n    lookup:\n      url: {url}\n      otherwise: general\n"
        "      timeout_s: 1\n",
    )
    text = text.replace("  error:", f'  lookup_wait: "{FILLER}"\n  error:', 1)
    path = tmp_path / "intents.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def call(live: Live, turn: bytes) -> tuple[str, list[str], dict[str, str], str]:
    report = asyncio.run(simulate_call([turn], live.options(realtime=True), live.fake))
    return report.decision, report.said, report.context, format_report(report)


def test_a_lookup_answers_on_the_phone(
    ko_model: SpeechModel,
    endpoint: LookupEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LOOKUP_SECRET_ENV, "phone-secret")
    before = len(endpoint.received)
    config = lookup_config(tmp_path, endpoint.url + "/answer/fee")
    with _serving(config, SpeechProvider(lambda _c: ko_model)) as live:
        turn = load_audio(AUDIO / "billing.wav") + SILENCE * 100
        decision, said, _, report = call(live, turn)
        assert decision == "hangup", report  # answered, "anything else?", silence, goodbye
        spoken = " ".join(said)
        assert FILLER in spoken and ANSWER in spoken, report
        assert spoken.index(FILLER) < spoken.index(ANSWER), report
        (request,) = endpoint.received[before:]
        assert request.json["intent"] == "billing" and request.json["caller"] == CALLER
        assert request.json["call"].startswith("CA") and "요금" in request.json["transcript"]
        assert request.headers[SIGNATURE_HEADER].startswith("sha256=")
        assert not live.server.sessions


@pytest.mark.parametrize("path", ["/broken", "/slow"])
def test_a_failed_lookup_puts_the_caller_through_on_the_phone(
    ko_model: SpeechModel, endpoint: LookupEndpoint, tmp_path: Path, path: str
) -> None:
    config = lookup_config(tmp_path, endpoint.url + path)
    with _serving(config, SpeechProvider(lambda _c: ko_model)) as live:
        before = live.server.metrics.errors["lookup"]
        decision, said, context, report = call(live, load_audio(AUDIO / "billing.wav"))
        assert decision == TO_GENERAL, report
        assert context["reason"] == "lookup_failed" and context["intent"] == "billing", report
        assert FILLER in " ".join(said) and ANSWER not in " ".join(said), report
        assert live.server.metrics.errors["lookup"] == before + 1
        assert not live.server.sessions


def test_the_config_copy_is_a_lookup(endpoint: LookupEndpoint, tmp_path: Path) -> None:
    """The fixture edit above must really change the action (else the tests prove nothing)."""
    from voicebot.loading.deployment import load_language_text

    path = lookup_config(tmp_path, endpoint.url + "/answer/fee")
    config = load_language_text(path.read_text(encoding="utf-8"))
    assert config.intents["billing"].action.kind.value == "lookup"
