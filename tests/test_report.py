"""Report figures on a hand-built set of calls (expected numbers worked out by hand below), and the
``report``/``purge``/``forget`` commands on a real SQLite call log."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from voicebot.calllog.log import CallLog
from voicebot.calllog.records import CallRow, UtteranceRow
from voicebot.calllog.report import DayCounts, daily, render, summarize, to_json
from voicebot.cli.main import main
from voicebot.core.events import Utterance
from voicebot.core.match import Match, Scored, Verdict
from voicebot.core.state import Outcome, OutcomeKind
from voicebot.telephony.testing.serving import free_port

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def s(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def call(
    call_id: str,
    outcome: str | None,
    *,
    ended: float | None = None,
    decided: float | None = None,
    served: tuple[str, ...] = (),
    intent: str | None = None,
    group: str | None = None,
    reason: str | None = None,
    after: str | None = None,
    start: dt.datetime = T0,
) -> CallRow:
    return CallRow(
        call_id=call_id,
        started_at=start,
        language="en-US",
        caller=None,
        ended_at=None if ended is None else start + dt.timedelta(seconds=ended),
        outcome=outcome,
        reason=reason,
        group=group,
        intent=intent,
        after=after,
        turns=1,
        served=served,
        decided_at=None if decided is None else start + dt.timedelta(seconds=decided),
    )


CALLS = [
    call("c1", "announced", ended=20, decided=4, served=("opening_hours",), intent="opening_hours"),
    call(
        "c2", "sms_sent", ended=30, decided=6, served=("login_password",), intent="login_password"
    ),
    call(
        "c3", "transferred", ended=12, decided=5, intent="invoice", group="billing", reason="intent"
    ),
    call("c4", "transferred", ended=16, decided=15, group="members", reason="no_match"),
    call("c5", "caller_hung_up", ended=8, after="announcement:christmas_closing"),
    call(
        "c6",
        "caller_hung_up",
        ended=25,
        decided=5,
        served=("opening_hours",),
        after="anything_else",
    ),
    # Served an announcement, then transferred for a second request: not solved by the robot.
    call(
        "c7",
        "transferred",
        ended=40,
        decided=4,
        served=("opening_hours",),
        intent="invoice",
        group="billing",
        reason="intent",
        start=dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC),  # 00:30 next day in Stockholm
    ),
    call("c8", None, start=dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)),  # never ended
]


def utterance(call_id: str, seq: int, text: str | None, verdict: str | None) -> UtteranceRow:
    return UtteranceRow(call_id, seq, s(seq), text, (), verdict, None, None)


UTTERANCES = [
    utterance("c1", 3, "what are your opening hours", "accept"),
    utterance("c2", 3, "I forgot my password", "accept"),
    utterance("c3", 3, "my invoice is wrong", "accept"),
    utterance("c4", 3, "The thing.", "reject"),
    utterance("c4", 6, "the  thing", "reject"),
    utterance("c4", 9, "blue whale", "reject"),
    utterance("c7", 3, "something about money", "clarify"),
    utterance("c7", 6, "the invoice", "accept"),
    utterance("c7", 9, "the first one", None),  # answered without the matcher: not judged
    utterance("c9", 3, None, "reject"),  # transcript purged: judged, not listed
]


def test_report_figures_on_hand_built_calls() -> None:
    r = summarize(CALLS, UTTERANCES)
    assert (r.calls, r.ended) == (8, 7)
    assert r.outcomes == {"transferred": 3, "caller_hung_up": 2, "announced": 1, "sms_sent": 1}
    assert r.solved_by_robot == 3  # c1, c2, c6
    assert r.solved_share == pytest.approx(3 / 7)
    assert r.transfers_by_group == {"billing": 2, "members": 1}
    assert r.transfer_reasons == {"intent": 2, "no_match": 1}
    assert r.hangups_after_announcement == 1  # c5; c6 hung up after being served
    assert r.utterances == 9
    assert r.no_match_rate == pytest.approx(4 / 9)
    assert r.clarification_rate == pytest.approx(1 / 9)
    assert r.median_decision_s == 5.0  # 4, 4, 5, 5, 6, 15
    assert r.median_duration_s == 20.0  # 8, 12, 16, 20, 25, 30, 40
    assert r.intents == {"opening_hours": 3, "invoice": 2, "login_password": 1}
    assert r.top_unmatched == (("the thing", 2), ("blue whale", 1))
    assert summarize(CALLS, UTTERANCES, top=1).top_unmatched == (("the thing", 2),)


def test_an_empty_range_reports_no_rates() -> None:
    r = summarize([], [])
    assert (r.calls, r.solved_share, r.no_match_rate, r.median_decision_s) == (0, None, None, None)
    assert "solved by the robot                0 (-)" in render(r)
    assert daily([]) == []


def test_calls_per_day_by_outcome_include_empty_days() -> None:
    days = daily(CALLS)
    assert days == [
        DayCounts(
            dt.date(2026, 11, 23),
            7,
            {"transferred": 3, "caller_hung_up": 2, "announced": 1, "sms_sent": 1},
        ),
        DayCounts(dt.date(2026, 11, 24), 0, {}),
        DayCounts(dt.date(2026, 11, 25), 1, {"unfinished": 1}),
    ]
    local = daily(CALLS, tz="Europe/Stockholm", since=dt.date(2026, 11, 22))
    assert [(d.day.day, d.calls) for d in local] == [(22, 0), (23, 6), (24, 1), (25, 1)]
    assert local[2].outcomes == {"transferred": 1}


def test_json_and_table_carry_the_same_figures() -> None:
    r = summarize(CALLS, UTTERANCES)
    data = json.loads(json.dumps(to_json(r, daily(CALLS))))
    assert data["solved_by_robot"] == 3 and data["calls"] == 8
    assert data["top_unmatched"][0] == {"text": "the thing", "count": 2}
    assert data["daily"][1] == {"day": "2026-11-24", "calls": 0, "outcomes": {}, "shed": 0}
    table = render(r, daily(CALLS))
    assert "solved by the robot                3 (42.9 %)" in table
    assert "median time to a decision          5.0 s" in table
    assert "  billing                          2" in table
    assert "  2026-11-25                       1  unfinished 1" in table


# ---------------------------------------------------------------------------------------------
# The commands


def _cli(*argv: str) -> int:
    """Through ``voicebot.cli.main``, which turns a user's mistake into its exit status."""
    return main(list(argv))


def _log_a_call(
    log: CallLog,
    call_id: str,
    day: int,
    caller: str,
    said: str,
    kind: str,
    at: dt.time = dt.time(10, 0),
    language: str = "en-US",
) -> None:
    start = dt.datetime.combine(dt.date(2026, 11, day), at, dt.UTC)
    log.call_started(call_id, start, language, caller)
    verdict = Verdict.ACCEPT if kind == "sms_sent" else Verdict.REJECT
    match = Match(said, (Scored("login_password", 0.9 if kind == "sms_sent" else 0.1),), verdict)
    log.event(call_id, Utterance(((said, 0.9),), start + dt.timedelta(seconds=3)), match)
    served = ("login_password",) if kind == "sms_sent" else ()
    group = "members" if kind == "transferred" else None
    outcome = Outcome(OutcomeKind(kind), 2, group=group, served=served)
    log.call_ended(call_id, start + dt.timedelta(seconds=20), outcome)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("VOICEBOT_NUMBER_SALT", "cli-test-salt")
    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    with CallLog.open(url) as log:
        _log_a_call(log, "a", 23, "+46701234567", "I forgot my password", "sms_sent")
        _log_a_call(log, "b", 24, "+46739876543", "blah blah", "transferred")
        _log_a_call(log, "c", 25, "+46701234567", "blah  blah!", "transferred")
    return url


def test_report_command_json_and_date_range(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli("report", "--database", database, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["calls"], data["solved_by_robot"]) == (3, 1)
    assert data["transfers_by_group"] == {"members": 2}
    assert data["top_unmatched"] == [{"text": "blah blah", "count": 2}]
    assert "daily" not in data
    args = ("--since", "2026-11-24", "--until", "2026-11-24", "--json", "--daily")
    assert _cli("report", "--database", database, *args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["calls"] == 1 and data["outcomes"] == {"transferred": 1}
    assert data["daily"] == [
        {"day": "2026-11-24", "calls": 1, "outcomes": {"transferred": 1}, "shed": 0}
    ]
    assert _cli("report", "--database", database) == 0
    assert "calls                              3" in capsys.readouterr().out


def test_forget_and_purge_commands(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("forget", "--database", database, "+46 70 123 45 67") == 0
    assert capsys.readouterr().out == "forgot 2 calls (2 timeline entries, 2 utterances)\n"
    assert _cli("purge", "--database", database, "--retention-days", "0") == 0
    out = capsys.readouterr().out
    assert "1 timeline entries deleted, 1 transcripts and 1 caller numbers erased" in out
    assert _cli("report", "--database", database, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["calls"] == 1 and data["top_unmatched"] == []  # the aggregate survives


REPO = Path(__file__).resolve().parent.parent


def test_report_days_are_the_lines_days_unless_tz_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A call at 23:30 UTC on the 23rd rang at 00:30 on the 24th on a Stockholm line: the
    report counts it on the 24th, as the dashboard does."""
    monkeypatch.setenv("VOICEBOT_NUMBER_SALT", "cli-test-salt")
    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    with CallLog.open(url) as log:
        _log_a_call(log, "late", 23, "+46701234567", "blah", "transferred", dt.time(23, 30))
    day = ("--database", url, "--since", "2026-11-24", "--until", "2026-11-24", "--json")
    config = ("--config", str(REPO / "grammars"))
    for extra in ((), config, ("--tz", "Europe/Stockholm")):
        assert _cli("report", *day, *extra) == 0
        assert json.loads(capsys.readouterr().out)["calls"] == 1, extra
    assert _cli("report", *day, "--tz", "UTC") == 0
    assert json.loads(capsys.readouterr().out)["calls"] == 0


def test_report_for_one_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each line answers in its own language: `--lang` reports one line's calls."""
    monkeypatch.setenv("VOICEBOT_NUMBER_SALT", "cli-test-salt")
    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    with CallLog.open(url) as log:
        _log_a_call(log, "en", 23, "+46701234567", "I forgot my password", "sms_sent")
        _log_a_call(log, "sv", 23, "+46701234567", "min faktura", "transferred", language="sv-SE")
        log.call_started("sv2", dt.datetime(2026, 11, 24, 9, tzinfo=dt.UTC), "sv-SE", None)
    assert _cli("report", "--database", url, "--json", "--lang", "sv-SE") == 0
    swedish = json.loads(capsys.readouterr().out)
    assert swedish["calls"] == 2 and swedish["top_unmatched"] == [
        {"text": "min faktura", "count": 1}
    ]
    assert _cli("report", "--database", url, "--json", "--lang", "en-US") == 0
    english = json.loads(capsys.readouterr().out)
    assert english["calls"] == 1 and english["solved_by_robot"] == 1
    assert _cli("report", "--database", url, "--json") == 0
    assert json.loads(capsys.readouterr().out)["calls"] == 3


def test_forget_reads_a_national_number_with_the_lines_country(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A GDPR request written as the caller says their number (070-123 45 67) on a Swedish line
    (its numbers are +46) finds the calls stored as +46701234567."""
    config = str(REPO / "grammars" / "sv-SE")
    assert _cli("forget", "--database", database, "--config", config, "070-123 45 67") == 0
    assert capsys.readouterr().out == "forgot 2 calls (2 timeline entries, 2 utterances)\n"


@pytest.mark.parametrize(
    ("number", "says"),
    [
        ("0701234567", "is a national number and the line's country is not known"),
        ("hello", "'hello' is not a phone number"),
        ("anonymous", "'anonymous' is not a phone number"),
        ("+46", "'+46' is not a phone number"),
    ],
)
def test_forget_refuses_a_number_it_cannot_read_and_deletes_nothing(
    number: str, says: str, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Never "forgot 0 calls" for a number it could not read: the request would be missed."""
    assert _cli("forget", "--database", database, number) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith("voicebot: ") and says in err and "+46701234567" in err
    assert _cli("forget", "--database", database, "+46701234567") == 0
    assert capsys.readouterr().out.startswith("forgot 2 calls")  # nothing was deleted before


def test_the_number_salt_can_be_given_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ops keep the salt as a secret file (``--number-salt-file``); without it the commands say
    the log has another salt rather than forget nobody."""
    monkeypatch.setenv("VOICEBOT_NUMBER_SALT", "not-the-one")
    secret = tmp_path / "salt"
    secret.write_text("ops-secret\n")
    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    with CallLog.open(url, salt="ops-secret") as log:
        _log_a_call(log, "a", 23, "+46701234567", "I forgot my password", "sms_sent")
    assert _cli("forget", "--database", url, "+46701234567") == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "another number salt" in err
    assert "--number-salt-file" in err
    salt = ("--number-salt-file", str(secret))
    assert _cli("report", "--database", url, *salt, "--json") == 0
    assert json.loads(capsys.readouterr().out)["calls"] == 1
    assert _cli("forget", "--database", url, *salt, "+46701234567") == 0
    assert capsys.readouterr().out.startswith("forgot 1 calls")
    missing = ("--number-salt-file", str(tmp_path / "nope"))
    assert _cli("purge", "--database", url, *missing) == 1
    err = capsys.readouterr().err
    nope = tmp_path / "nope"
    assert err == f"voicebot: cannot read the number salt file {nope}: No such file or directory\n"


def test_purge_refuses_a_negative_retention_period(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli("purge", "--database", database, "--retention-days", "-5") == 1
    err = capsys.readouterr().err
    assert err.startswith("voicebot: ") and "retention" in err and len(err.splitlines()) == 1
    assert _cli("report", "--database", database, "--json") == 0
    assert json.loads(capsys.readouterr().out)["top_unmatched"] != []  # nothing was purged


def test_commands_report_a_bad_database_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("report", "--database", "mysql://x/y") == 1
    assert capsys.readouterr().err.startswith("voicebot: unsupported database URL")


@pytest.mark.parametrize("command", [["report"], ["purge"], ["forget", "+46701234567"]])
def test_report_purge_and_forget_never_create_a_call_log(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --database must not look like an empty line (0 calls) or a done forget."""
    missing = tmp_path / "typo" / "calls.sqlite3"
    assert _cli(*command, "--database", f"sqlite:///{missing}") == 1
    err = capsys.readouterr().err
    assert err == (
        f"voicebot: there is no call log at sqlite://{missing} (nothing was ever recorded "
        "there); give --database the log that voicebot serve writes, or set "
        "VOICEBOT_DATABASE_URL\n"
    )
    assert not missing.exists() and not missing.parent.exists()


@pytest.mark.parametrize("command", [["report"], ["purge"], ["forget", "+46701234567"]])
def test_a_database_that_is_down_is_one_line_not_a_queueing_warning(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL not running: one line that says so (it was a warning that "events are queued
    until it is back", meant for serve, then 30 s of retries, then a two-line error)."""
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/calls"
    assert _cli(*command, "--database", url) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"voicebot: call log {url}: ") and "refused" in err, err
    assert len(err.splitlines()) == 1 and "queued" not in err, err
