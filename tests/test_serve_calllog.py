"""`voicebot serve` with its call log and dashboard: a simulated Twilio call (fake REST API, real
Korean Vosk model) ends up in a SQLite call log, and the dashboard reports it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_dashboard import TOKEN, AccessLines, serve
from test_e2e_twilio import AUDIO, CALLER, CONFIG, HEARD, Live, _serving, dialled_billing

from voicebot.calllog.log import CallLog, EventRow
from voicebot.calllog.report import summarize
from voicebot.cli.serve import attach_dashboard, purge_every, uvicorn_config
from voicebot.core.events import CallStarted, Utterance
from voicebot.loading.loader import ConfigHolder
from voicebot.speech.vosk_model import SpeechModel
from voicebot.telephony.app import SpeechProvider, VoiceServer
from voicebot.telephony.rest import TwilioRest
from voicebot.telephony.settings import ServerSettings
from voicebot.telephony.signature import SIGNATURE_HEADER, sign
from voicebot.telephony.testing.call_report import CallReport
from voicebot.telephony.testing.serving import serving
from voicebot.telephony.testing.simulator import load_audio, simulate_call

SALT = "test-number-salt"


@dataclass
class Logged:
    live: Live
    log: CallLog
    path: Path

    def call(self, *turns: str | bytes, **kw: object) -> CallReport:
        """A call saying each turn: a fixture WAV name, or mu-law audio."""
        audio = [load_audio(AUDIO / t) if isinstance(t, str) else t for t in turns]
        report = asyncio.run(simulate_call(audio, self.live.options(**kw), self.live.fake))
        assert self.log.flush()
        return report

    def timeline(self, report: CallReport) -> list[EventRow]:
        return self.log.timeline(report.call_sid)


@pytest.fixture(scope="module")
def logged(ko_model: SpeechModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    """The server as `voicebot serve` builds it: call log as observer, dashboard mounted."""
    tmp = tmp_path_factory.mktemp("serve-calllog")
    path = tmp / "calls.sqlite3"
    log = CallLog.open(f"sqlite:///{path}", salt=SALT, env={"VOICEBOT_DATA_DIR": str(tmp)})
    mounted: list[bool] = []
    with _serving(
        CONFIG,
        SpeechProvider(lambda _config: ko_model),
        observer=log,
        before_start=lambda server: mounted.append(attach_dashboard(server, log, TOKEN)),
    ) as live:
        assert mounted == [True]
        yield Logged(live, log, path)
    log.close()


def _get(url: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_routed_call_is_logged_with_transcript_intent_and_outcome(logged: Logged) -> None:
    report = logged.call("billing.wav")
    assert report.decision == "transfer enqueue billing"
    rows = logged.log.fetch()
    (call,) = [c for c in rows.calls if c.call_id == report.call_sid]
    assert (call.outcome, call.group, call.intent, call.language) == (
        "transferred",
        "billing",
        "billing",
        "ko-KR",
    )
    assert call.decided_at is not None and call.ended_at is not None
    (heard,) = [u for u in rows.utterances if u.call_id == report.call_sid]
    assert "요금" in (heard.transcript or "")
    assert (heard.intent, heard.verdict) == ("billing", "accept")
    kinds = [(e.kind, e.type) for e in logged.timeline(report)]
    assert kinds[0] == ("event", CallStarted.__name__)
    assert ("event", Utterance.__name__) in kinds
    assert kinds[-1] == ("action", "Transfer")  # each event is followed by what the bot did


def test_another_instance_reads_the_whisper_transcript_from_the_call_log(
    ko_model: SpeechModel, tmp_path: Path
) -> None:
    """Behind a load balancer the agent's whisper request may reach an instance that never
    saw the call: the transcript comes from the shared call log, not from the URL."""
    log = CallLog.open(f"sqlite:///{tmp_path / 'c.sqlite3'}", salt=SALT, env={})
    speech = SpeechProvider(lambda _config: ko_model)
    try:
        with _serving(dialled_billing(tmp_path), speech, observer=log) as live:
            report = asyncio.run(
                simulate_call([load_audio(AUDIO / "billing.wav")], live.options(), live.fake)
            )
            assert log.flush()
            found = re.search(r'url="([^"]+)"', live.updates(report)[-1])
            assert found is not None
            url = found.group(1).replace("&amp;", "&")
            live.server.services.whispers.clear()  # as if this were another instance
            request = urllib.request.Request(url)
            request.add_header(SIGNATURE_HEADER, sign(url, {}, live.fake.auth_token))
            with urllib.request.urlopen(request) as response:
                heard = HEARD.search(response.read().decode())
            assert heard is not None and "요금" in heard.group(1)
            assert heard.group(1) not in urllib.parse.unquote(url)
    finally:
        log.close()


def test_the_caller_number_is_not_stored_in_clear(logged: Logged) -> None:
    logged.call("billing.wav")
    assert logged.log.flush()
    with sqlite3.connect(logged.path) as db:
        dump = "\n".join(db.iterdump())
    assert "1012345678" not in dump  # neither in the calls table nor in any event payload
    assert "hmac:" in dump or "caller_hash" in dump


def test_every_kind_of_event_is_logged(logged: Logged) -> None:
    by_key = logged.call(dtmf="0")
    assert [(e.type, e.payload) for e in logged.timeline(by_key) if e.kind == "event"][1:] == [
        ("Dtmf", {"digit": "0"})
    ]
    texted = logged.call("password.wav")  # SMS, "anything else?", silence, goodbye
    events = [e.type for e in logged.timeline(texted) if e.kind == "event"]
    assert events[0] == "CallStarted" and "Utterance" in events
    assert "SmsResult" in events and events[-1] in ("SilenceTimeout", "HangUp")
    (call,) = [c for c in logged.log.fetch().calls if c.call_id == texted.call_sid]
    assert (call.outcome, call.served) == ("sms_sent", ("password",))


def test_a_bare_no_to_anything_else_is_not_an_unmatched_request(logged: Logged) -> None:
    tts = logged.live.server.tts
    assert tts is not None
    if not tts.available:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    silence = b"\xff" * 8000  # one second of mu-law silence: lets the utterance end
    no = silence[:2400] + tts.mulaw("아니요", "ko-KR") + silence
    # Said over "anything else?": the listening clock runs from the end of the first answer,
    # so a prompt this long leaves almost no time to answer after it.
    report = logged.call("password.wav", no, barge_in=True)
    assert report.decision == "hangup"
    rows = logged.log.fetch()
    said = [u for u in rows.utterances if u.call_id == report.call_sid]
    assert len(said) == 2 and "아니" in (said[1].transcript or "")
    assert said[1].verdict is None  # an answer, not a request the matcher failed on
    mine = [c for c in rows.calls if c.call_id == report.call_sid]
    summary = summarize(mine, said)
    assert summary.top_unmatched == () and summary.no_match_rate == 0.0


def test_dashboard_counts_the_calls(logged: Logged) -> None:
    report = logged.call("billing.wav")
    base = logged.live.url + "/dashboard"
    status, page = _get(base + "/")
    assert status == 200 and b"<html" in page.lower()
    assert _get(base + "/api/summary", token=None)[0] == 401
    status, body = _get(base + "/api/summary?tz=UTC")
    assert status == 200
    summary = json.loads(body)
    assert summary["calls"] == len(logged.log.fetch().calls) >= 1
    assert summary["transfers_by_group"].get("billing", 0) >= 1
    status, body = _get(f"{base}/api/calls/{report.call_sid}")
    assert status == 200 and json.loads(body)["timeline"]


def test_without_a_token_there_is_no_dashboard(tmp_path: Path) -> None:
    log = CallLog.open(f"sqlite:///{tmp_path / 'c.sqlite3'}", salt=SALT, env={})
    try:
        server = VoiceServer(
            ServerSettings(public_url="http://127.0.0.1", auth_token="t"),
            ConfigHolder(CONFIG),
            TwilioRest("AC" + "0" * 32, "t", base_url="http://127.0.0.1:9"),
            SpeechProvider(lambda _config: pytest.fail("no call expected")),
            observer=log,
        )
        assert not attach_dashboard(server, log, None)
        with serve(server.app) as url:
            assert _get(url + "/dashboard/")[0] == 404
            assert _get(url + "/dashboard/api/summary")[0] == 404
            assert _get(url + "/healthz", token=None)[0] == 200
    finally:
        log.close()


def test_serve_writes_no_query_values_to_its_access_log(tmp_path: Path) -> None:
    """`serve` builds uvicorn through ``uvicorn_config``: a secret sent in a URL by a client
    (an old ``?token=`` bookmark) reaches no log line."""
    server = VoiceServer(
        ServerSettings(public_url="http://127.0.0.1", auth_token="t"),
        ConfigHolder(CONFIG),
        TwilioRest("AC" + "0" * 32, "t", base_url="http://127.0.0.1:9"),
        SpeechProvider(lambda _config: pytest.fail("no call expected")),
    )
    with AccessLines() as access:
        for earlier in list(access.logger.filters):  # another test's server may have put it
            access.logger.removeFilter(earlier)
        with serving(uvicorn_config(server, "127.0.0.1", 0, log_level="info")) as url:
            access.attach()
            secret = "dashboard-token-in-a-bookmark"
            assert _get(f"{url}/healthz?token={secret}", token=None)[0] == 200
    lines = access.lines
    assert any("/healthz?token=..." in line for line in lines), lines
    assert not any(secret in line for line in lines)


def test_purge_runs_at_start_and_on_schedule(tmp_path: Path) -> None:
    log = CallLog.open(f"sqlite:///{tmp_path / 'c.sqlite3'}", salt=SALT, env={}, retention_days=30)
    try:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
        log.call_started("CAold", old, "ko-KR", CALLER)
        log.event("CAold", Utterance(alternatives=(("요금 납부", 0.9),), at=old))

        async def run() -> None:
            task = asyncio.ensure_future(purge_every(log, interval_s=0.05))
            await asyncio.sleep(0.3)
            log.call_started("CAold2", old, "ko-KR", CALLER)  # logged after the first purge
            log.event("CAold2", Utterance(alternatives=(("요금", 0.9),), at=old))
            await asyncio.sleep(0.3)
            task.cancel()

        asyncio.run(run())
        rows = log.fetch()
        assert {c.call_id for c in rows.calls} == {"CAold", "CAold2"}  # the aggregate stays
        assert len(rows.utterances) == 2
        assert all(u.transcript is None for u in rows.utterances)
        assert log.timeline("CAold") == [] and log.timeline("CAold2") == []
    finally:
        log.close()
