"""End to end: `serve` (uvicorn on a free port) + the fake Twilio REST API + `simulate`, with the
real Korean Vosk model and the Korean test configuration and audio fixtures."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from voicebot.core.actions import Say
from voicebot.loading.loader import ConfigHolder
from voicebot.speech.audio import read_wav, ulaw_encode, write_wav
from voicebot.speech.pipeline import CallPipeline, load_speech_model
from voicebot.speech.tts import Tts
from voicebot.speech.vosk_model import SpeechModel
from voicebot.telephony import prompts
from voicebot.telephony.app import SpeechProvider, VoiceServer
from voicebot.telephony.observer import CallObserver
from voicebot.telephony.rest import TwilioRest
from voicebot.telephony.settings import ServerSettings
from voicebot.telephony.signature import SIGNATURE_HEADER, sign
from voicebot.telephony.testing.call_report import CallReport, format_report
from voicebot.telephony.testing.fake_rest import FakeTwilio
from voicebot.telephony.testing.serving import free_port, serving
from voicebot.telephony.testing.simulator import (
    SILENCE,
    SimOptions,
    _post,
    load_audio,
    simulate_call,
)
from voicebot.telephony.testing.twiml_reader import parse_twiml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"
AUDIO = ROOT / "audio_fixtures" / "ko-KR"
CALLER = "+821012345678"
GENERAL = "dial number:+82212345678"  # the default group's destination
TO_GENERAL = "transfer " + GENERAL


@dataclass
class Live:
    server: VoiceServer
    fake: FakeTwilio
    url: str
    config_path: Path

    def options(self, **kw: object) -> SimOptions:
        base = SimOptions(
            url=self.url,
            auth_token=self.fake.auth_token,
            account_sid=self.fake.account_sid,
            caller=CALLER,
            max_wait_s=20.0,
        )
        return replace(base, **kw)  # type: ignore[arg-type]

    def call(self, *wavs: str, **kw: object) -> CallReport:
        turns = [load_audio(AUDIO / w) for w in wavs]
        return asyncio.run(simulate_call(turns, self.options(**kw), self.fake))

    def updates(self, report: CallReport) -> list[str]:
        return [u.twiml or "" for u in self.fake.call_updates() if u.call_sid == report.call_sid]


@contextlib.contextmanager
def _serving(
    config_path: Path,
    speech: SpeechProvider,
    *,
    observer: CallObserver | None = None,
    before_start: Callable[[VoiceServer], object] | None = None,
) -> Iterator[Live]:
    """``serve`` on a free port over ``config_path``, with its own fake Twilio REST API;
    ``before_start`` may mount more on the server (the dashboard) before it listens."""
    fake = FakeTwilio().start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rest = TwilioRest(
        fake.account_sid,
        fake.auth_token,
        from_number="+15005550006",
        base_url=fake.url,
        backoff_s=0.01,
        max_backoff_s=0.02,
    )
    server = VoiceServer(
        ServerSettings(public_url=url, auth_token=fake.auth_token),
        ConfigHolder(config_path),
        rest,
        speech,
        tts=Tts(),
        observer=observer,
    )
    if before_start is not None:
        before_start(server)
    try:
        with serving(server.app, port=port, log_config=None):
            yield Live(server, fake, url, config_path)
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def live(ko_model: SpeechModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    config_path = tmp_path_factory.mktemp("config") / "intents.yaml"
    shutil.copy(CONFIG, config_path)
    with _serving(config_path, SpeechProvider(lambda _config: ko_model)) as live:
        yield live


@pytest.fixture(autouse=True)
def _clean(live: Live) -> Iterator[None]:
    yield
    live.fake.fail_next(0)
    assert not live.server.sessions, "a call was left open"


def test_request_routed_to_its_queue(live: Live) -> None:
    report = live.call("billing.wav")
    assert report.decision == "transfer enqueue billing"
    assert report.said[0].startswith("<Play ko-KR> 안녕하세요")  # greeting from the webhook TwiML
    assert "요금 팀" in report.said[-1]  # "putting you through to the billing team"
    assert len(live.updates(report)) == 1


def _whisper(live: Live, url: str) -> str:
    """Fetch the whisper TwiML as the agent's leg does (Twilio signs the GET)."""
    request = urllib.request.Request(url)
    request.add_header(SIGNATURE_HEADER, sign(url, {}, live.fake.auth_token))
    with urllib.request.urlopen(request) as response:
        return str(response.read().decode())


def test_whisper_tells_the_agent_what_the_caller_wants(live: Live) -> None:
    query = urllib.parse.urlencode({"intent": "billing", "language": "ko-KR"})
    body = _whisper(live, f"{live.server.whisper_url}?{query}")
    assert "<Say" in body and "요금" in body
    unsigned = urllib.request.Request(f"{live.server.whisper_url}?{query}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned)
    assert refused.value.code == 403


def _whisper_url(live: Live, report: CallReport) -> str:
    found = re.search(r'url="([^"]+)"', live.updates(report)[-1])
    assert found is not None, live.updates(report)
    return found.group(1).replace("&amp;", "&")


def dialled_billing(tmp_path: Path) -> Path:
    """The Korean test config with the billing team on a phone number, so its transfers
    whisper to the agent (a queue has no whisper)."""
    text = CONFIG.read_text(encoding="utf-8")
    text = text.replace("    queue: billing\n", '    number: "+82 2 9999 0000"\n', 1)
    assert "+82 2 9999 0000" in text
    path = tmp_path / "intents.yaml"
    path.write_text(text, encoding="utf-8")
    return path


HEARD = re.compile(r"'([^']+)'")  # the whisper quotes what the caller said


def test_the_whisper_url_carries_no_caller_words_the_agent_still_hears_them(
    ko_model: SpeechModel, tmp_path: Path
) -> None:
    with _serving(dialled_billing(tmp_path), SpeechProvider(lambda _c: ko_model)) as live:
        report = live.call("billing.wav")
        assert report.decision == "transfer dial number:+82299990000", format_report(report)
        url = _whisper_url(live, report)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        assert set(query) == {"intent", "confidence", "language", "reason", "call"}
        assert query["call"] == report.call_sid and query["intent"] == "billing"
        heard = HEARD.search(_whisper(live, url))  # read server-side, not from the URL
        assert heard is not None and "요금" in heard.group(1)
        assert heard.group(1) not in urllib.parse.unquote(url)
        stranger = url.replace(report.call_sid, "CA" + "9" * 32)
        assert HEARD.search(_whisper(live, stranger)) is None


def test_sms_answer_is_texted_to_the_caller_then_goodbye(live: Live) -> None:
    # Two seconds of silence end the recording: the bot answers while it is still playing.
    turn = load_audio(AUDIO / "password.wav") + SILENCE * 100
    report = asyncio.run(simulate_call([turn], live.options(realtime=True), live.fake))
    assert report.texted == [
        (CALLER, "로그인 방법을 문자로 보내 드렸어요. https://example.org/ko/login")
    ]
    assert any(s.startswith("(stream) prompt") for s in report.said)  # "sent; anything else?"
    assert report.decision == "hangup"
    (goodbye,) = parse_twiml(live.updates(report)[-1]).said  # said before hanging up
    assert goodbye.startswith("<Play ko-KR> ") and "감사합니다" in goodbye
    # The caller's reaction time is to the SMS and its prompt, not to the goodbye that follows
    # the 5 s no-speech timeout.
    assert report.latency_s is not None and report.latency_s < 5.0, format_report(report)


def test_dtmf_zero_reaches_the_default_group_with_a_whisper(live: Live) -> None:
    report = live.call(dtmf="0")
    assert report.decision == TO_GENERAL
    assert report.context == {"language": "ko-KR", "reason": "dtmf", "call": report.call_sid}
    whisper = re.search(r'url="([^"]+)"', live.updates(report)[0])
    assert whisper is not None
    assert "<Say" in _whisper(live, whisper.group(1).replace("&amp;", "&"))


def test_caller_talking_over_a_prompt_clears_it(live: Live) -> None:
    # The hours announcement and "anything else?" play in the stream; the caller interrupts
    # with a login question, which the bot then answers by SMS.
    report = live.call("hours.wav", "password.wav", barge_in=True)
    assert report.clears >= 1, format_report(report)
    assert report.texted == [
        (CALLER, "로그인 방법을 문자로 보내 드렸어요. https://example.org/ko/login")
    ], format_report(report)


def test_bad_signatures_are_refused(live: Live) -> None:
    report = live.call("billing.wav", auth_token="wrong-token")
    assert report.rejected == 403
    assert not live.fake.call_updates() or all(
        u.call_sid != report.call_sid for u in live.fake.call_updates()
    )

    async def upgrade() -> int:
        url = live.server.stream_url
        try:
            ws = await connect(url, additional_headers={SIGNATURE_HEADER: sign(url, {}, "nope")})
        except InvalidStatus as exc:
            return int(exc.response.status_code)
        await ws.close()
        return 101

    assert asyncio.run(upgrade()) == 403


def test_malformed_frames_do_not_stop_the_call(live: Live) -> None:
    before = live.server.metrics.errors["protocol"]
    junk = (
        "not json",
        '{"event": "party"}',
        '{"event": "media", "streamSid": "MZ1", "sequenceNumber": "3",'
        ' "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "%%%"}}',
        json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": "A" * 20000}}),
        '{"event": "dtmf", "streamSid": "MZ1", "sequenceNumber": "4", "dtmf": {"digit": "xx"}}',
        "[1, 2, 3]",
    )
    report = live.call("billing.wav", junk=junk)
    assert report.decision == "transfer enqueue billing"
    assert live.server.metrics.errors["protocol"] - before == len(junk)


def test_rest_failures_are_retried(live: Live) -> None:
    live.fake.fail_next(2)
    report = live.call("billing.wav")
    assert report.decision == "transfer enqueue billing"
    mine = [r for r in live.fake.requests if r.call_sid == report.call_sid]
    assert [r.status for r in mine] == [500, 500, 200]


def test_transfer_that_keeps_failing_falls_back_to_the_twiml_dial(live: Live) -> None:
    live.fake.fail_next(50)
    report = live.call("billing.wav")
    live.fake.fail_next(0)
    assert report.decision == f"fallback {GENERAL}"  # Twilio dials on after the stream closes
    assert not live.updates(report)
    assert live.server.metrics.decisions["fallback"] >= 1


def test_error_in_call_handling_transfers_to_the_default_group(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = CallPipeline.feed

    def flaky(self: CallPipeline, pcm: object) -> list[object]:  # in a decoding thread
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("decoder exploded")
        return original(self, pcm)  # type: ignore[arg-type,return-value]

    monkeypatch.setattr(CallPipeline, "feed", flaky)
    report = live.call("billing.wav")
    assert report.decision == TO_GENERAL
    assert report.context["reason"] == "error"


def test_stream_lost_mid_call_ends_in_the_fallback(live: Live) -> None:
    """A socket that vanishes without "stop": Twilio dials the fallback; the session closes."""
    call_sid = "CA" + "1" * 32
    before = live.server.metrics.decisions["fallback"]

    async def vanish() -> None:
        params = {"CallSid": call_sid, "From": CALLER, "To": "+82212340000"}
        status, body = await asyncio.to_thread(
            _post, live.url + "/twilio/voice", params, live.fake.auth_token
        )
        assert status == 200
        twiml = parse_twiml(body)
        assert twiml.final == GENERAL and twiml.stream_url is not None
        url = twiml.stream_url
        headers = {SIGNATURE_HEADER: sign(url, {}, live.fake.auth_token)}
        async with connect(url, additional_headers=headers) as ws:
            start = {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": "MZ1",
                "start": {
                    "streamSid": "MZ1",
                    "callSid": call_sid,
                    "accountSid": live.fake.account_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": dict(twiml.parameters),
                },
            }
            await ws.send(json.dumps(start))
            audio = load_audio(AUDIO / "billing.wav")[:4000]  # half a word
            payload = base64.b64encode(audio).decode()
            await ws.send(
                json.dumps(
                    {
                        "event": "media",
                        "streamSid": "MZ1",
                        "sequenceNumber": "2",
                        "media": {
                            "track": "inbound",
                            "chunk": "1",
                            "timestamp": "0",
                            "payload": payload,
                        },
                    }
                )
            )
        for _ in range(250):  # the stream's session (made when it started) ends in the fallback
            if live.server.metrics.decisions["fallback"] > before:
                return
            await asyncio.sleep(0.02)

    asyncio.run(vanish())
    assert call_sid not in live.server.sessions
    assert live.server.metrics.decisions["fallback"] == before + 1
    assert not [u for u in live.fake.call_updates() if u.call_sid == call_sid]


def test_metrics_and_health(live: Live) -> None:
    with urllib.request.urlopen(live.url + "/healthz") as response:
        assert response.read().startswith(b"ok")
    with urllib.request.urlopen(live.url + "/metrics") as response:
        text = response.read().decode()
    assert "voicebot_calls_in_progress 0" in text
    assert re.search(r'voicebot_decisions_total\{action="transferred"\} [1-9]', text)
    assert re.search(r"voicebot_decode_seconds_count [1-9]", text)
    assert re.search(r"voicebot_decode_wait_seconds_count [1-9]", text)


def test_reload_during_a_call_keeps_the_call_on_its_config(live: Live) -> None:
    original = live.config_path.read_text(encoding="utf-8")
    workflow = "WW" + "0123456789abcdef" * 2
    changed = original.replace("    queue: billing", f"    workflow: {workflow}")
    assert changed != original
    try:

        async def scenario() -> tuple[CallReport, CallReport]:
            audio = [load_audio(AUDIO / "billing.wav")]
            # Call A answers on the old config; the reload lands while it is being answered.
            first = asyncio.ensure_future(
                simulate_call(audio, live.options(realtime=True), live.fake)
            )
            await asyncio.sleep(0.5)
            live.config_path.write_text(changed, encoding="utf-8")
            assert await asyncio.to_thread(live.server.reload)
            second = await simulate_call(audio, live.options(caller="+821055550000"), live.fake)
            return await first, second

        first, second = asyncio.run(scenario())
        assert first.decision == "transfer enqueue billing"  # old config: a plain queue
        assert second.decision == f"transfer enqueue workflow:{workflow}"
        assert second.context["intent"] == "billing"  # TaskRouter task attributes
        # A broken edit is refused and the last good configuration keeps serving.
        live.config_path.write_text(changed + "\n  broken: [", encoding="utf-8")
        assert not live.server.reload()
        third = live.call("billing.wav")
        assert third.decision == f"transfer enqueue workflow:{workflow}"
    finally:
        live.config_path.write_text(original, encoding="utf-8")
        assert live.server.reload()


def test_a_reload_of_a_file_with_a_nul_byte_is_a_counted_failure(live: Live) -> None:
    """It used to escape the reload as a YAML reader exception, uncounted in /metrics."""
    original = live.config_path.read_text(encoding="utf-8")
    before = live.server.metrics.reloads["failed"]
    try:
        live.config_path.write_text(original.replace("billing", "bil\0ling", 1), "utf-8")
        assert not live.server.reload()
        assert live.server.metrics.reloads["failed"] == before + 1
        assert live.call("billing.wav").decision == "transfer enqueue billing"  # still serving
    finally:
        live.config_path.write_text(original, encoding="utf-8")
        assert live.server.reload()


def test_prompts_fall_back_to_say_and_a_new_stream_without_tts(live: Live) -> None:
    tts, live.server.tts = live.server.tts, None
    try:
        report = live.call("hours.wav", "billing.wav")
    finally:
        live.server.tts = tts
    assert report.streams == 2  # <Say> through a REST redirect, then a new stream
    assert any("영업 시간은" in s for s in report.said)  # the announcement via <Say>
    assert report.decision == "transfer enqueue billing"
    # one voice: without the stream's engine every prompt is Twilio's <Say>, the greeting too
    assert report.said[0].startswith("<Say ko-KR> 안녕하세요")
    assert all(s.startswith("<Say ko-KR> ") for s in report.said), report.said


def _played_urls(twiml: str) -> list[str]:
    return [u.replace("&amp;", "&") for u in re.findall(r"<Play>([^<]+)</Play>", twiml)]


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, "", b""


def test_one_voice_the_greeting_and_the_transfer_line_are_the_streams_engine(
    live: Live,
) -> None:
    """The greeting (before the stream), the prompts in the stream and the transfer line (after
    it) are all espeak-ng: the TwiML plays the server's own audio of the same text."""
    report = live.call("hours.wav", "billing.wav")
    assert report.decision == "transfer enqueue billing"
    assert not any(s.startswith("<Say") for s in report.said), report.said
    assert report.said[0].startswith("<Play ko-KR> 안녕하세요")
    assert any(s.startswith("(stream) prompt") for s in report.said)
    (url,) = _played_urls(live.updates(report)[-1])  # "putting you through to the billing team"
    status, kind, body = _get(url)
    assert (status, kind) == (200, "audio/wav")
    text = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["text"]
    assert "요금 팀" in text
    assert body == prompts.wav_of(Tts().mulaw(text, "ko-KR"))  # what the stream would play
    forged = url.replace(urllib.parse.quote_plus(text), urllib.parse.quote_plus("다른 말"))
    assert forged != url and _get(forged)[0] == 403  # only texts the server signed


def test_recorded_prompts_are_played_before_in_and_after_the_stream(
    ko_model: SpeechModel, tmp_path: Path
) -> None:
    """Ops' recordings replace the engine wherever the prompt is played: the greeting's by
    <Play> (served from the WAV), "anything else?" in the stream."""
    tone = (0.3 * np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    write_wav(tmp_path / "hello.wav", tone, 16000)
    write_wav(tmp_path / "more.wav", tone[:8000], 16000)
    config = tmp_path / "intents.yaml"
    config.write_text(
        CONFIG.read_text(encoding="utf-8")
        + "\nrecordings:\n  greeting: hello.wav\n  anything_else: more.wav\n",
        encoding="utf-8",
    )
    with _serving(config, SpeechProvider(lambda _c: ko_model)) as live:
        report = live.call("hours.wav", "billing.wav")
        assert report.decision == "transfer enqueue billing"
        loaded = live.server.holder.current.language()
        greeting = urllib.parse.quote_plus(loaded.prompts.greeting)
        url = f"{live.server.services.prompt_url}?lang=ko-KR&text={greeting}"
        sig = prompts.signature(live.fake.auth_token, "ko-KR", loaded.prompts.greeting)
        status, kind, body = _get(f"{url}&sig={sig}")
        assert (status, kind) == (200, "audio/wav")
        recorded = ulaw_encode(read_wav(tmp_path / "hello.wav").resampled(8000).samples)
        assert body == prompts.wav_of(recorded)
        more = Say(loaded.prompts.anything_else, loaded.voice, "ko-KR")
        expected = ulaw_encode(read_wav(tmp_path / "more.wav").resampled(8000).samples)
        assert prompts.clip(more, loaded, None) == expected  # in the stream, even without TTS
    assert report.said[0].startswith("<Play ko-KR> 안녕하세요")


def test_numbers_never_logged_unmasked(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    live.call("password.wav")
    live.call("billing.wav")
    text = caplog.text
    assert "+82******5678" in text  # the caller is logged, masked
    assert "1012345678" not in text


def test_the_silence_timeout_starts_when_the_prompt_has_played(live: Live) -> None:
    # After the hours announcement and "anything else?" (several seconds of stream audio) the
    # caller waits 3 s before the next request: 3 s of silence, not prompt + 3 s, so the bot
    # must still be listening rather than saying goodbye after its 5 s timeout.
    report = live.call("hours.wav", "billing.wav", pause_s=3.0)
    prompts = [
        float(m)
        for m in re.findall(r"^\(stream\) prompt-\d+: ([\d.]+) s", "\n".join(report.said), re.M)
    ]
    assert len(prompts) == 1 and prompts[0] + 3.0 > 5.0  # prompt + pause exceed the timeout
    assert report.decision == "transfer enqueue billing"


SWEDISH_LINE = "+46101234598"


def test_each_line_answers_in_its_own_language(
    ko_model_dir: Path, ko_model: SpeechModel, tmp_path: Path
) -> None:
    """One server, two languages: the called number picks the call's language, any other
    number gets the default one. Both use the Korean model (set with ``speech.model``)."""
    korean = CONFIG.read_text(encoding="utf-8")
    model = f"speech:\n  model: {ko_model_dir}\n"
    assert "\nspeech:\n" in korean
    korean = korean.replace("speech:\n", model)
    swedish = korean.replace("language: ko-KR", "language: sv-SE").replace(
        "voice: Polly.Seoyeon", "voice: Polly.Astrid"
    )
    for code, text, number in (
        ("ko-KR", korean, "+82212340000"),
        ("sv-SE", swedish, "+46 10 123 45 98"),
    ):
        (tmp_path / code).mkdir()
        (tmp_path / code / "intents.yaml").write_text(
            f'{text}\nnumbers: ["{number}"]\n', encoding="utf-8"
        )
    (tmp_path / "deployment.yaml").write_text("default_language: ko-KR\n", encoding="utf-8")
    with _serving(tmp_path, SpeechProvider(load_speech_model)) as lines:
        swedish_call = lines.call("billing.wav", to=SWEDISH_LINE)
        other_call = lines.call(dtmf="0", to="+82299999999")
        assert not lines.server.sessions
    assert swedish_call.said[0].startswith("<Play sv-SE>")
    assert swedish_call.decision == "transfer enqueue billing"
    assert other_call.said[0].startswith("<Play ko-KR>")  # not a listed line: the default
    assert other_call.context == {
        "language": "ko-KR",
        "reason": "dtmf",
        "call": other_call.call_sid,
    }
