"""Issue #21: a bot too busy to answer in real time puts callers through to a person.

A real server (the Korean test deployment, the Korean Vosk model, a SQLite call log with the
dashboard mounted) and the simulator playing Twilio: the webhook of a call beyond the server's
``max_calls`` gets TwiML that dials the default group at once; a call whose audio waits too long
to be decoded is handed over mid-call. Both are logged with their own reason, counted in
/metrics, and shown by ``voicebot report`` and the dashboard.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_capacity import phone
from test_dashboard import TOKEN
from test_e2e_twilio import AUDIO, CONFIG, GENERAL, Live, _serving

from voicebot.calllog.log import CallLog
from voicebot.calllog.report import daily, render, summarize
from voicebot.cli.serve import attach_dashboard
from voicebot.core.actions import Transfer
from voicebot.loading.loader import load_language
from voicebot.speech import pipeline as pipeline_module
from voicebot.speech.pipeline import CallPipeline, speech_kit
from voicebot.speech.vosk_model import SpeechModel
from voicebot.telephony.admission import Admission
from voicebot.telephony.app import SpeechProvider
from voicebot.telephony.testing.call_report import CallReport, format_report
from voicebot.telephony.testing.simulator import SILENCE, SimOptions, load_audio, simulate_call

SALT = "overload-test-salt"


class Busy:
    def __init__(self, live: Live, log: CallLog) -> None:
        self.live, self.log = live, log

    def metrics(self) -> str:
        with urllib.request.urlopen(self.live.url + "/metrics") as response:
            return str(response.read().decode())

    def row(self, call_sid: str) -> tuple[str | None, str | None, str | None]:
        assert self.log.flush()
        (call,) = [c for c in self.log.fetch().calls if c.call_id == call_sid]
        return call.outcome, call.reason, call.group


@pytest.fixture(scope="module")
def busy(ko_model: SpeechModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Busy]:
    tmp = tmp_path_factory.mktemp("overload")
    log = CallLog.open(f"sqlite:///{tmp / 'calls.sqlite3'}", salt=SALT, env={})
    with _serving(
        CONFIG,
        SpeechProvider(lambda _config: ko_model),
        observer=log,
        before_start=lambda server: attach_dashboard(server, log, TOKEN),
    ) as live:
        yield Busy(live, log)
    log.close()


@pytest.fixture(autouse=True)
def _limits(busy: Busy) -> Iterator[Admission]:
    admission = busy.live.server.admission
    yield admission
    admission.max_calls = admission.max_backlog_s = None
    assert not busy.live.server.sessions, "a call was left open"


def _slow_billing() -> list[bytes]:
    """The caller says nothing for 3 s, then asks for billing: in progress for a while."""
    return [SILENCE * 150 + load_audio(AUDIO / "billing.wav")]


def _two_callers(
    live: Live, first_turns: list[bytes], first_options: SimOptions, when: Callable[[], bool]
) -> tuple[CallReport, CallReport]:
    """A first call, then, as soon as ``when`` holds, a second caller asking for billing."""

    async def scenario() -> tuple[CallReport, CallReport]:
        first = asyncio.ensure_future(simulate_call(first_turns, first_options, live.fake))
        while not when():
            assert not first.done(), format_report(first.result())
            await asyncio.sleep(0.02)
        turns = [load_audio(AUDIO / "billing.wav")]
        second = await simulate_call(turns, live.options(caller="+821099990000"), live.fake)
        return await first, second

    return asyncio.run(scenario())


def test_the_webhook_beyond_max_calls_puts_the_caller_through_at_once(
    busy: Busy, _limits: Admission
) -> None:
    _limits.max_calls = 1
    live = busy.live

    # The first call's stream holds the one place while the second caller's webhook comes.
    kept, shed = _two_callers(
        live, _slow_billing(), live.options(realtime=True), lambda: bool(live.server.sessions)
    )
    assert kept.decision == "transfer enqueue billing", format_report(kept)  # type: ignore[attr-defined]
    # The second caller never reached the bot: the webhook's TwiML dials the default group.
    assert shed.decision == GENERAL.removeprefix("transfer "), format_report(shed)  # type: ignore[attr-defined]
    assert shed.streams == 0 and shed.said == []  # type: ignore[attr-defined]
    assert 'voicebot_shed_total{stage="door"} 1' in busy.metrics()
    assert busy.row(shed.call_sid) == ("transferred", "shed", "general")  # type: ignore[attr-defined]
    assert busy.row(kept.call_sid) == ("transferred", "intent", "billing")  # type: ignore[attr-defined]

    rows = busy.log.fetch()
    report = summarize(rows.calls, rows.utterances)
    assert report.shed == 1
    days = daily(rows.calls)
    assert sum(d.shed for d in days) == 1
    assert re.search(r"^shed \(bot too busy: to a person\) +1$", render(report, days), re.M)
    request = urllib.request.Request(live.url + "/dashboard/api/summary?tz=UTC")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request) as response:
        summary = json.loads(response.read())
    assert summary["shed"] == 1 and sum(d["shed"] for d in summary["series"]) == 1

    _limits.max_calls = 5  # room again: the next caller has the bot
    again = live.call("billing.wav")
    assert again.decision == "transfer enqueue billing", format_report(again)


def test_a_decided_call_leaves_its_place_to_the_next_caller(busy: Busy, _limits: Admission) -> None:
    """A call the bot has decided decodes nothing more: while Twilio is slow to confirm its
    transfer (the stream still open, the session still here), the next caller has the bot."""
    _limits.max_calls = 1
    live = busy.live
    live.fake.answer_late(1, delay_s=3, updates=True)

    # The second caller calls once the first call is decided, its transfer not confirmed yet
    # (the session still here).
    decided, next_caller = _two_callers(
        live,
        [load_audio(AUDIO / "billing.wav")],
        live.options(),
        lambda: any(s.done for s in list(live.server.sessions.values())),
    )
    assert decided.decision == "transfer enqueue billing", format_report(decided)  # type: ignore[attr-defined]
    assert next_caller.streams == 1, format_report(next_caller)  # type: ignore[attr-defined]
    assert busy.row(next_caller.call_sid)[1] != "shed"  # type: ignore[attr-defined]
    assert next_caller.decision == "transfer enqueue billing", format_report(next_caller)  # type: ignore[attr-defined]


class _Held(ThreadPoolExecutor):
    """A decoding pool that never decodes: every chunk of caller audio waits."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        return super().submit(lambda: None)


def test_a_call_whose_decoding_falls_behind_is_handed_to_a_person(
    busy: Busy, _limits: Admission, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits.max_backlog_s = 0.5
    held = _Held(1)
    monkeypatch.setattr(pipeline_module, "decode_executor", lambda: held)
    try:
        report = busy.live.call("billing.wav", realtime=True)
    finally:
        held.shutdown()
    assert report.decision == "transfer " + GENERAL.removeprefix("transfer "), format_report(report)
    assert "고객 상담 팀로 연결해 드릴게요" in report.said[-1]  # "putting you through"
    assert busy.row(report.call_sid) == ("transferred", "overloaded", "general")
    assert 'voicebot_shed_total{stage="call"} 1' in busy.metrics()
    events = [e.type for e in busy.log.timeline(report.call_sid) if e.kind == "event"]
    assert events[-1] == "Overloaded"


def test_the_words_heard_so_far_route_an_overloaded_call_to_their_group(
    ko_model: SpeechModel,
) -> None:
    """The shell hands the dialogue the recogniser's partial transcript: a request already
    heard in full (but not yet ended by silence) goes to its own group, not the default."""
    import datetime as dt

    config = load_language(CONFIG)
    pipeline = CallPipeline(
        config, speech_kit(config, ko_model), caller=None, start_at=dt.datetime.now(dt.UTC)
    )
    pipeline.start()
    pcm = phone(AUDIO / "billing.wav")
    for i in range(0, len(pcm), 800):  # until the partial holds the whole phrase "요금 납부"
        assert not any(isinstance(a, Transfer) for a in pipeline.feed(pcm[i : i + 800]))
        if "납부" in pipeline.recognizer.partial:
            break
    else:
        pytest.fail("the billing request never showed in a partial transcript")
    actions = pipeline.overloaded("forced for the test")
    (transfer,) = [a for a in actions if isinstance(a, Transfer)]
    assert (transfer.group, transfer.context.reason, transfer.context.intent) == (
        "billing",
        "overloaded",
        "billing",
    )
    assert pipeline.steps[-1].event == "overloaded"


def test_serve_derives_max_calls_from_the_capacity_per_core() -> None:
    from voicebot.cli.main import build_parser
    from voicebot.cli.serve import server_settings
    from voicebot.speech.recognizer import usable_cpus
    from voicebot.telephony.settings import CALLS_PER_CORE

    parser = build_parser()
    args = parser.parse_args(["serve", "--dev"])
    settings = server_settings(args, "http://x", "t")
    assert settings.max_calls == CALLS_PER_CORE * usable_cpus()
    assert settings.max_backlog_s == 1.0
    args = parser.parse_args(["serve", "--dev", "--max-calls", "3", "--max-backlog", "0.5"])
    assert (server_settings(args, "http://x", "t").max_calls, args.max_backlog) == (3, 0.5)


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--max-calls", "-1", "--max-calls -1 must be 0 or more"),
        ("--max-backlog", "0", "--max-backlog 0.0 must be positive"),
        ("--agent-port", "70000", "--agent-port 70000 is not a TCP port"),
    ],
)
def test_bad_overload_options_are_one_line_errors(
    option: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from voicebot.cli.main import main

    assert main(["serve", "--dev", option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err


def test_the_default_capacity_is_quoted_from_its_one_place(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``CALLS_PER_CORE`` is the one figure; the help, the README and docs/deployment.md say it
    (so setting it after a new quiet benchmark run leaves no page behind)."""
    from pathlib import Path

    from voicebot.cli.main import main
    from voicebot.telephony.settings import CALLS_PER_CORE

    root = Path(__file__).resolve().parent.parent
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    quoted = {
        "serve --help": re.findall(r"default: (\d+) per core", help_text),
        "README.md": re.findall(
            r"default (\d+) per core", (root / "README.md").read_text(encoding="utf-8")
        ),
        "docs/deployment.md": re.findall(
            r"Default: (\d+) calls per core",
            (root / "docs" / "deployment.md").read_text(encoding="utf-8"),
        ),
    }
    assert quoted == {where: [str(CALLS_PER_CORE)] for where in quoted}
