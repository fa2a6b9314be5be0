"""The call log on both backends: what a real call leaves behind, outages, retention, erasure.

Store tests run on SQLite (a temporary file) and on a throwaway real PostgreSQL server started
for the session (``tests/postgres.py``); they are skipped on PostgreSQL only when no PostgreSQL
binaries exist. Calls are driven through the real dialogue, the way a call shell logs them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from postgres import PostgresServer

from voicebot.calllog.db import Connection, Cursor, connect, parse_url
from voicebot.calllog.log import CallLog, Purged, SaltMismatch, StoreNumbers
from voicebot.calllog.records import ts
from voicebot.calllog.schema import MIGRATIONS, Migration, current_version, migrate
from voicebot.calllog.scripted import log_text_call
from voicebot.calllog.store import PURGE_LOCK_KEY, Closed
from voicebot.core.config import LanguageConfig
from voicebot.core.dialogue import Dialogue
from voicebot.core.events import CallStarted, Event, HangUp, Utterance
from voicebot.core.match import Match, Scored, Verdict
from voicebot.core.state import Outcome, OutcomeKind
from voicebot.core.text import normalize
from voicebot.loading.loader import load_deployment

SALT = "test-salt-not-secret"
ALICE = "+46701234567"
BOB = "+46739876543"
MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)  # all groups open, no announcement

# What the fake matcher answers: normalised text -> (verdict, ranked intents).
ANSWERS: dict[str, tuple[Verdict, tuple[Scored, ...]]] = {
    "i forgot my password": (
        Verdict.ACCEPT,
        (Scored("login_password", 0.91), Scored("join", 0.12)),
    ),
    "my invoice is wrong": (Verdict.ACCEPT, (Scored("invoice", 0.88),)),
    "something about money": (
        Verdict.CLARIFY,
        (Scored("invoice", 0.45), Scored("insurance", 0.41)),
    ),
}

_ids = itertools.count()


@pytest.fixture(scope="module")
def config() -> LanguageConfig:
    return load_deployment(None).language("en-US")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database(f"calls_{next(_ids)}")


class Opener:
    """``CallLog.open`` on this test's database with the test salt; closes every log after."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.logs: list[CallLog] = []

    def open(
        self,
        *,
        salt: str = SALT,
        store_numbers: StoreNumbers | str = StoreNumbers.HASH,
        retention_days: int | None = 90,
    ) -> CallLog:
        log = CallLog.open(
            self.url,
            salt=salt,
            store_numbers=store_numbers,
            retention_days=retention_days,
            retry_max_s=0.2,
        )
        self.logs.append(log)
        return log


@pytest.fixture
def open_log(url: str) -> Iterator[Opener]:
    opener = Opener(url)
    yield opener
    for log in opener.logs:
        log.close(timeout=5)


def classify(alternatives: object) -> Match:
    text = next(iter(alternatives))[0]  # type: ignore[call-overload]
    verdict, ranked = ANSWERS.get(normalize(text), (Verdict.REJECT, (Scored("join", 0.1),)))
    return Match(text, ranked, verdict)


def run_call(
    log: CallLog,
    config: LanguageConfig,
    call_id: str,
    caller: str | None,
    start: dt.datetime,
    lines: list[str],
) -> Dialogue:
    """A call shell: lines are speech, "" silence, "/hangup"; SMS always succeed; 5 s a turn."""
    dialogue = log_text_call(
        log,
        config,
        classify,
        call_id,
        caller,
        start,
        lines,
        n_best=lambda line: ((line, 0.9), (line + " please", 0.4)),
    )
    assert dialogue.outcome is not None
    return dialogue


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Schema


def test_migrations_apply_on_an_empty_database_once(url: str) -> None:
    conn = connect(parse_url(url))
    try:
        assert migrate(conn) == [m.version for m in MIGRATIONS]
        assert migrate(conn) == []
        assert current_version(conn) == MIGRATIONS[-1].version
        later = Migration(99, "a later column", ("ALTER TABLE calls ADD COLUMN note TEXT",))
        assert migrate(conn, (*MIGRATIONS, later)) == [99]
        assert migrate(conn, (*MIGRATIONS, later)) == []
        conn.execute("INSERT INTO calls (call_id, started_at, note) VALUES ('c', 't', 'n')")
        assert conn.execute("SELECT note FROM calls").fetchone()[0] == "n"
        with pytest.raises(RuntimeError, match="newer"):
            migrate(conn)  # an older voicebot must not write into a newer schema
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# A whole call


def test_a_served_call_is_stored_and_read_back(open_log: Opener, config: LanguageConfig) -> None:
    log = open_log.open()
    run_call(log, config, "CA1", ALICE, MONDAY, ["I forgot my password", "no"])
    rows = log.fetch()
    [call] = rows.calls
    assert call.call_id == "CA1"
    assert call.started_at == MONDAY
    assert call.language == "en-US"
    assert call.outcome == "sms_sent"
    assert call.served == ("login_password",)
    assert call.intent == "login_password"
    assert call.duration_s == 10.0  # two turns of 5 s
    assert call.decision_s == 5.0  # the first utterance was accepted
    assert call.caller is None  # hashed only, by default

    first, second = rows.utterances
    assert first.transcript == "I forgot my password"
    assert first.alternatives == (
        ("I forgot my password", 0.9),
        ("I forgot my password please", 0.4),
    )
    assert first.verdict == "accept"
    assert (first.intent, first.score) == ("login_password", 0.91)
    assert first.ranked == (Scored("login_password", 0.91), Scored("join", 0.12))
    assert second.transcript == "no"
    assert second.verdict is None  # an answer to "anything else?", not a request

    timeline = log.timeline("CA1")
    assert [e.seq for e in timeline] == list(range(len(timeline)))
    kinds = [(e.kind, e.type) for e in timeline]
    assert kinds[:3] == [("event", "CallStarted"), ("action", "Say"), ("action", "Listen")]
    sms = next(e for e in timeline if e.type == "SendSms")
    assert sms.payload["intent"] == "login_password"
    assert sms.payload["to"].startswith("hmac:")  # not the number
    assert ("event", "SmsResult") in kinds
    assert kinds[-1] == ("action", "HangUpCall")


def test_a_transfer_and_a_hang_up_after_an_announcement(
    open_log: Opener, config: LanguageConfig
) -> None:
    log = open_log.open()
    run_call(log, config, "T", ALICE, MONDAY, ["my invoice is wrong"])
    christmas = dt.datetime(2026, 12, 15, 9, 0, tzinfo=dt.UTC)  # the closing announcement runs
    run_call(log, config, "H", BOB, christmas, ["/hangup"])
    transfer, hung_up = log.fetch().calls
    assert (transfer.outcome, transfer.group, transfer.reason) == (
        "transferred",
        "billing",
        "intent",
    )
    assert transfer.decision_s == 5.0
    assert (hung_up.outcome, hung_up.after) == ("caller_hung_up", "announcement:christmas_closing")
    assert hung_up.ended_at == christmas + dt.timedelta(seconds=5)
    assert hung_up.decided_at is None
    transfer_row = next(e for e in log.timeline("T") if e.type == "Transfer")
    assert transfer_row.payload["context"]["transcript"] == "my invoice is wrong"
    billing = config.groups["billing"].destination
    assert transfer_row.payload["destination"] == {"kind": billing.kind, "value": billing.value}


def test_fetch_selects_calls_by_start_time(open_log: Opener, config: LanguageConfig) -> None:
    log = open_log.open()
    for day in (1, 2, 3):
        run_call(
            log, config, f"D{day}", ALICE, MONDAY + dt.timedelta(days=day), ["my invoice is wrong"]
        )
    rows = log.fetch(MONDAY + dt.timedelta(days=2), MONDAY + dt.timedelta(days=3))
    assert [c.call_id for c in rows.calls] == ["D2"]
    assert {u.call_id for u in rows.utterances} == {"D2"}


def test_a_call_id_seen_again_keeps_what_was_logged(
    open_log: Opener, config: LanguageConfig
) -> None:
    log = open_log.open()
    run_call(log, config, "R", ALICE, MONDAY, ["my invoice is wrong"])
    run_call(log, config, "R", ALICE, MONDAY + dt.timedelta(hours=1), ["my invoice is wrong"])
    rows = log.fetch()
    [call] = rows.calls
    assert call.started_at == MONDAY  # the first start stays
    assert [u.transcript for u in rows.utterances] == ["my invoice is wrong"] * 2
    timeline = log.timeline("R")
    assert [e.seq for e in timeline] == list(range(len(timeline)))


class _Recorder:
    """Stands in for a CallLog and keeps each record call, to hand them to real logs later in
    a chosen order: what several instances writing one call do after an outage."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, method: str) -> Callable[..., None]:
        return lambda *args: self.calls.append((method, args))

    def replay(self, log: CallLog, part: slice) -> None:
        for method, args in self.calls[part]:
            getattr(log, method)(*args)
        assert log.flush()


def test_instances_writing_one_call_in_any_order_lose_nothing(
    open_log: Opener, config: LanguageConfig
) -> None:
    """The webhook's instance logs the start, another the media stream: their records reach the
    database in any order, and none is lost or overwritten."""
    recorder = _Recorder()
    run_call(recorder, config, "X", ALICE, MONDAY, ["", "I forgot my password", "no"])  # type: ignore[arg-type]
    webhook, stream = open_log.open(), open_log.open()
    start = slice(0, 3)  # call_started, CallStarted, its greeting
    assert [m for m, _ in recorder.calls[start]] == ["call_started", "event", "actions"]
    recorder.replay(stream, slice(3, 9))  # the stream's first records land before the start
    recorder.replay(webhook, start)
    recorder.replay(stream, slice(9, None))
    rows = webhook.fetch()
    [call] = rows.calls
    assert (call.started_at, call.language, call.outcome) == (MONDAY, "en-US", "sms_sent")
    assert [u.transcript for u in rows.utterances] == ["I forgot my password", "no"]
    timeline = webhook.timeline("X")
    events = sum(1 for method, _ in recorder.calls if method == "event")
    batches = [args[2] for method, args in recorder.calls if method == "actions"]
    actions = sum(len(b) for b in batches if isinstance(b, list | tuple))
    assert len(timeline) == events + actions
    assert [e.seq for e in timeline] == list(range(len(timeline)))
    assert webhook.stats().dropped == stream.stats().dropped == 0


def test_a_status_callback_closes_only_a_row_left_open(
    open_log: Opener, config: LanguageConfig
) -> None:
    """The instance holding a call died: Twilio's status callback, taken by another instance,
    closes the row as the fallback transfer; a row with a real outcome keeps it."""
    log = open_log.open()
    fallback = Outcome(OutcomeKind.TRANSFERRED, 1, "fallback", "general")
    log_text_call(log, config, classify, "CUT", ALICE, MONDAY, ["I forgot my password"])
    assert log.flush()  # the call is still open when its instance dies
    run_call(log, config, "DONE", BOB, MONDAY, ["I forgot my password", "no"])
    end = MONDAY + dt.timedelta(seconds=30)
    log.call_closed("CUT", end, fallback)
    log.call_closed("DONE", end, fallback)
    log.call_closed("UNSEEN", end, fallback)  # not even its start was written
    calls = {c.call_id: c for c in log.fetch().calls}
    assert (calls["CUT"].outcome, calls["CUT"].reason, calls["CUT"].group) == (
        "transferred",
        "fallback",
        "general",
    )
    assert calls["CUT"].ended_at == end
    assert calls["DONE"].outcome == "sms_sent"
    assert calls["UNSEEN"].outcome == "transferred"
    # The status callback can beat the live instance's own end record: the real one wins.
    log.call_closed("LATE", end, fallback)
    run_call(log, config, "LATE", ALICE, MONDAY, ["my invoice is wrong"])
    late = next(c for c in log.fetch().calls if c.call_id == "LATE")
    assert (late.outcome, late.group, late.reason) == ("transferred", "billing", "intent")


def test_one_instance_purges_at_a_time(pg_server: PostgresServer, config: LanguageConfig) -> None:
    """Every instance runs the hourly purge; the advisory lock lets one do it at a time."""
    import psycopg

    opener = Opener(pg_server.create_database(f"calls_{next(_ids)}"))
    try:
        log = opener.open(retention_days=90)
        run_call(log, config, "old", ALICE, MONDAY, ["I forgot my password", "no"])
        later = MONDAY + dt.timedelta(days=200)
        with psycopg.connect(opener.url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (PURGE_LOCK_KEY,))
            assert log.purge(later) == Purged(0, 0, 0)  # the other instance is purging
            assert log.timeline("old")
            other.execute("SELECT pg_advisory_unlock(%s)", (PURGE_LOCK_KEY,))
        assert log.purge(later).events > 0
        assert log.timeline("old") == []
    finally:
        for log in opener.logs:
            log.close(timeout=5)


# ---------------------------------------------------------------------------------------------
# Outages: recording never waits for the database


def test_recording_goes_on_while_sqlite_is_locked(tmp_path: Path, config: LanguageConfig) -> None:
    path = tmp_path / "calls.sqlite3"
    log = CallLog.open(f"sqlite:///{path}", salt=SALT, connect_timeout_s=0.05, retry_max_s=0.1)
    try:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        run_call(log, config, "L", ALICE, MONDAY, ["I forgot my password", "no"])
        assert not log.flush(timeout=0.5)  # returned from every record, nothing written yet
        stats = log.stats()
        assert stats.written == 0 and stats.queued + stats.writing == 10
        blocker.execute("ROLLBACK")
        blocker.close()
        assert log.flush(timeout=10)
        assert log.stats().queued == 0 and log.stats().dropped == 0
        assert [c.outcome for c in log.fetch().calls] == ["sms_sent"]
    finally:
        log.close(timeout=5)


def test_a_full_queue_drops_new_records_counts_them_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "calls.sqlite3"
    log = CallLog.open(
        f"sqlite:///{path}", salt=SALT, max_queue=5, connect_timeout_s=0.05, retry_max_s=0.1
    )
    try:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        log.call_started("Q0", MONDAY, "en-US", ALICE)
        _wait_until(lambda: log.stats().writing == 1)  # the writer is stuck retrying Q0
        with caplog.at_level(logging.ERROR, logger="voicebot.calllog.log"):
            for i in range(1, 13):
                log.call_started(f"Q{i}", MONDAY, "en-US", ALICE)
        assert log.stats().queued == 5
        assert log.dropped == 7
        assert len([r for r in caplog.records if "queue full" in r.message]) == 1
        blocker.execute("ROLLBACK")
        blocker.close()
        assert log.flush(timeout=10)
        assert [c.call_id for c in log.fetch().calls] == [f"Q{i}" for i in range(6)]
        assert log.dropped == 7
    finally:
        log.close(timeout=5)


def test_a_database_that_cannot_be_opened_at_start_is_written_once_it_can(
    tmp_path: Path, config: LanguageConfig
) -> None:
    blocked = tmp_path / "not-yet"
    blocked.write_text("a file where the database directory should be")
    log = CallLog.open(f"sqlite:///{blocked / 'calls.sqlite3'}", salt=SALT, retry_max_s=0.1)
    try:
        run_call(log, config, "S", ALICE, MONDAY, ["my invoice is wrong"])
        assert not log.flush(timeout=0.3)
        blocked.unlink()
        assert log.flush(timeout=10)
        assert [c.call_id for c in log.fetch().calls] == ["S"]
    finally:
        log.close(timeout=5)


def test_recording_goes_on_while_postgres_is_down(
    pg_server: PostgresServer, config: LanguageConfig
) -> None:
    url = pg_server.create_database("outage")
    log = CallLog.open(url, salt=SALT, connect_timeout_s=1, retry_max_s=0.2)
    try:
        run_call(log, config, "before", ALICE, MONDAY, ["/hangup"])
        assert log.flush(timeout=10)
        pg_server.stop()
        run_call(log, config, "during", BOB, MONDAY, ["I forgot my password", "no"])
        assert not log.flush(timeout=0.5)
        pg_server.start()
        assert log.flush(timeout=30)
        assert log.stats().dropped == 0
        rows = log.fetch()
        assert [c.call_id for c in rows.calls] == ["before", "during"]
        assert rows.calls[1].outcome == "sms_sent"
    finally:
        if not pg_server.running:
            pg_server.start()
        log.close(timeout=5)


# ---------------------------------------------------------------------------------------------
# Retention and erasure


def test_purge_deletes_old_transcripts_and_numbers_and_keeps_the_aggregate(
    open_log: Opener, config: LanguageConfig
) -> None:
    now = MONDAY + dt.timedelta(days=200)
    log = open_log.open(retention_days=90)
    run_call(
        log, config, "old", ALICE, now - dt.timedelta(days=100), ["I forgot my password", "no"]
    )
    run_call(log, config, "new", ALICE, now - dt.timedelta(days=10), ["I forgot my password", "no"])
    old_events = len(log.timeline("old"))
    purged = log.purge(now)
    assert (purged.events, purged.transcripts, purged.callers) == (old_events, 2, 1)
    assert log.timeline("old") == []
    assert len(log.timeline("new")) == old_events
    rows = log.fetch()
    old, _ = rows.calls
    assert (old.outcome, old.served, old.decision_s) == ("sms_sent", ("login_password",), 5.0)
    old_utterances = [u for u in rows.utterances if u.call_id == "old"]
    assert [(u.transcript, u.alternatives) for u in old_utterances] == [(None, ())] * 2
    assert old_utterances[0].intent == "login_password"  # the aggregate stays
    assert all(u.transcript for u in rows.utterances if u.call_id == "new")
    # The old call is no longer tied to the caller; the new one still is.
    assert log.forget(ALICE).calls == 1
    assert [c.call_id for c in log.fetch().calls] == ["old"]
    assert log.purge(now) == type(purged)(0, 0, 0)


def test_a_number_that_calls_every_day_is_counted_and_its_last_call_recalled(
    open_log: Opener, config: LanguageConfig
) -> None:
    """A switchboard calling daily: recall counts its calls inside the window only, not this
    call, not another number's, and names the last one's intent (the database counts and
    picks it, so a busy number's history does not all travel to the server)."""
    log = open_log.open()
    for day in range(25):  # days 0-19 fall inside a 20-day window, 20-24 before it
        when = MONDAY - dt.timedelta(days=day)
        run_call(log, config, f"s{day}", ALICE, when, ["I forgot my password", "no"])
    run_call(log, config, "last", ALICE, MONDAY + dt.timedelta(hours=1), ["my invoice is wrong"])
    run_call(log, config, "bob", BOB, MONDAY + dt.timedelta(hours=2), ["my invoice is wrong"])
    run_call(log, config, "now", ALICE, MONDAY + dt.timedelta(hours=3), ["my invoice is wrong"])
    _wait_until(lambda: len(log.fetch().calls) == 28)
    history = log.caller_history(ALICE, 20, MONDAY + dt.timedelta(hours=3), "now", timeout=10)
    assert history is not None
    assert (history.calls, history.last_intent) == (21, "invoice")
    assert history.last_at == MONDAY + dt.timedelta(hours=1)
    assert history.last_solved is False  # put through to a person
    earlier = log.caller_history(ALICE, 20, MONDAY + dt.timedelta(minutes=30), "x", timeout=10)
    assert earlier is not None
    assert (earlier.calls, earlier.last_intent) == (20, "login_password")
    assert earlier.last_solved is True  # the robot texted the link
    nobody = log.caller_history("+46700000000", 20, MONDAY, "x", timeout=10)
    assert nobody is not None and nobody.calls == 0 and nobody.last_intent is None


def test_forget_deletes_one_caller_and_not_another(
    open_log: Opener, config: LanguageConfig
) -> None:
    log = open_log.open()
    run_call(log, config, "a1", ALICE, MONDAY, ["I forgot my password", "no"])
    run_call(log, config, "b1", BOB, MONDAY, ["my invoice is wrong"])
    run_call(log, config, "a2", ALICE, MONDAY + dt.timedelta(hours=1), ["my invoice is wrong"])
    expected_events = len(log.timeline("a1")) + len(log.timeline("a2"))
    forgotten = log.forget("+46 70-123 45 67")  # written differently, same number
    assert (forgotten.calls, forgotten.events, forgotten.utterances) == (2, expected_events, 3)
    rows = log.fetch()
    assert [c.call_id for c in rows.calls] == ["b1"]
    assert {u.call_id for u in rows.utterances} == {"b1"}
    assert log.timeline("a1") == [] and log.timeline("b1") != []
    assert log.forget(ALICE).calls == 0
    assert log.forget("anonymous").calls == 0


def test_forget_during_a_live_call_leaves_nothing_of_that_call(
    open_log: Opener, url: str, config: LanguageConfig
) -> None:
    serving = open_log.open()  # the server's log, with the call in progress
    dialogue = Dialogue(config, classify)
    at = MONDAY

    def handle(event: Event) -> None:
        serving.event("LIVE", event, None)
        serving.actions("LIVE", event.at, dialogue.handle(event))

    serving.call_started("LIVE", at, "en-US", ALICE)
    handle(CallStarted(at, ALICE, "LIVE"))
    handle(Utterance((("a blue whale swallowed my invoice", 0.9),), at + dt.timedelta(seconds=5)))
    assert serving.flush()
    with CallLog.open(url, salt=SALT) as cli:  # `voicebot forget` in another process
        assert cli.forget(ALICE).calls == 1
    # the call goes on and ends: nothing of it may come back
    handle(Utterance((("my tangerine password", 0.9),), at + dt.timedelta(seconds=10)))
    handle(HangUp(at + dt.timedelta(seconds=15)))
    assert dialogue.outcome is not None
    serving.call_ended("LIVE", at + dt.timedelta(seconds=15), dialogue.outcome)
    assert serving.flush()
    assert serving.fetch().calls == [] and serving.timeline("LIVE") == []
    stored = _every_stored_text(url)
    assert "tangerine" not in stored and "whale" not in stored and "LIVE" not in stored
    # a later call from the same number is a new call, recorded as usual
    run_call(serving, config, "NEXT", ALICE, MONDAY + dt.timedelta(hours=1), ["/hangup"])
    assert [c.call_id for c in serving.fetch().calls] == ["NEXT"]


def test_deleted_text_does_not_stay_in_the_sqlite_files(
    tmp_path: Path, config: LanguageConfig
) -> None:
    path = tmp_path / "calls.sqlite3"
    url = f"sqlite:///{path}"

    def on_disk() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())

    serving = CallLog.open(url, salt=SALT, retention_days=90)
    try:
        run_call(serving, config, "F", ALICE, MONDAY, ["forget this aardvark", "/hangup"])
        run_call(serving, config, "P", BOB, MONDAY, ["purge this wombat", "/hangup"])
        run_call(
            serving,
            config,
            "K",
            BOB,
            MONDAY + dt.timedelta(days=95),
            ["keep this okapi", "/hangup"],
        )
        assert serving.flush()
        assert b"aardvark" in on_disk() and b"wombat" in on_disk()
        with CallLog.open(url, salt=SALT) as cli:  # another process, the server still running
            assert cli.forget(ALICE).calls == 1
        assert b"aardvark" not in on_disk()
        with CallLog.open(url, salt=SALT, retention_days=90) as cli:
            assert cli.purge(MONDAY + dt.timedelta(days=100)).transcripts == 1
        assert b"wombat" not in on_disk()
        assert b"okapi" in on_disk()  # within the retention period
    finally:
        serving.close()


@pytest.mark.parametrize("days", [-1, -5])
def test_a_negative_retention_period_is_refused(url: str, days: int) -> None:
    with pytest.raises(ValueError, match="retention period must be 0 days or more"):
        CallLog.open(url, salt=SALT, retention_days=days)


def _every_stored_text(url: str) -> str:
    conn = connect(parse_url(url))
    try:
        tables = ("calls", "call_events", "utterances", "settings")
        return repr([conn.execute(f"SELECT * FROM {t}").fetchall() for t in tables])
    finally:
        conn.close()


def test_numbers_are_never_stored_in_clear_by_default(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: LanguageConfig
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("VOICEBOT_DATA_DIR", str(data))
    monkeypatch.delenv("VOICEBOT_NUMBER_SALT", raising=False)
    log = CallLog.open(url)  # no salt given: one is generated and kept
    run_call(log, config, "P", ALICE, MONDAY, ["I forgot my password", "no"])
    assert log.flush(timeout=10)
    log.close()
    salt_file = data / "number_salt"
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    stored = _every_stored_text(url)
    assert "701234567" not in stored and "*4567" not in stored
    # The same salt is used next time, so the caller can still be forgotten.
    with CallLog.open(url) as again:
        assert again.forget(ALICE).calls == 1


def test_masked_and_clear_numbers_only_when_configured(
    open_log: Opener, url: str, config: LanguageConfig
) -> None:
    masked = open_log.open(store_numbers=StoreNumbers.MASK)
    run_call(masked, config, "M", ALICE, MONDAY, ["/hangup"])
    assert [c.caller for c in masked.fetch().calls] == ["+46*****4567"]
    masked.close()
    assert "701234567" not in _every_stored_text(url)
    clear = open_log.open(store_numbers="clear")
    run_call(clear, config, "C", BOB, MONDAY, ["/hangup"])
    run_call(clear, config, "W", None, MONDAY, ["/hangup"])  # withheld
    callers = {c.call_id: c.caller for c in clear.fetch().calls}
    assert callers == {"M": "+46*****4567", "C": BOB, "W": None}


def test_a_database_written_with_another_salt_is_refused(open_log: Opener) -> None:
    open_log.open().close()
    with pytest.raises(SaltMismatch):
        open_log.open(salt="another salt")


def test_a_salt_mismatch_says_where_this_salt_and_the_original_one_live(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error must send ops to the right place: the environment or the salt file."""
    monkeypatch.setenv("VOICEBOT_DATA_DIR", str(tmp_path / "first"))
    monkeypatch.delenv("VOICEBOT_NUMBER_SALT", raising=False)
    CallLog.open(url).close()  # writes with a salt generated in first/number_salt
    monkeypatch.setenv("VOICEBOT_NUMBER_SALT", "another salt")
    with pytest.raises(SaltMismatch) as info:
        CallLog.open(url)
    assert "(from $VOICEBOT_NUMBER_SALT)" in str(info.value)
    assert "the file number_salt in the data folder" in str(info.value)
    monkeypatch.delenv("VOICEBOT_NUMBER_SALT")
    monkeypatch.setenv("VOICEBOT_DATA_DIR", str(tmp_path / "second"))
    with pytest.raises(SaltMismatch) as info:
        CallLog.open(url)
    assert f"(from the file {tmp_path / 'second' / 'number_salt'})" in str(info.value)


@pytest.mark.parametrize(
    "given", ["sqlite:///{tmp}/calls.sqlite3", "sqlite:calls.sqlite3", "sqlite://calls.sqlite3"]
)
def test_the_printed_call_log_url_reads_back_as_the_same_file(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve`` prints ``call log: <target>``; pasted into --database it must name the same
    file from any folder, so a relative path is printed absolute, with sqlite:/// in front."""
    monkeypatch.chdir(tmp_path)
    target = parse_url(given.format(tmp=tmp_path))
    printed = str(target)
    assert printed == f"sqlite://{tmp_path / 'calls.sqlite3'}"
    monkeypatch.chdir("/")
    again = parse_url(printed)
    assert Path(again.location) == tmp_path / "calls.sqlite3"
    assert str(parse_url("sqlite://:memory:")) == "sqlite://:memory:"


def test_instances_starting_together_on_a_new_database_all_open_it(
    pg_server: PostgresServer,
) -> None:
    """Two `voicebot serve` started at once on an empty PostgreSQL: both create and migrate the
    schema without tripping over each other (CREATE TABLE IF NOT EXISTS alone races)."""
    import threading

    for round_ in range(4):
        url = pg_server.create_database(f"calls_{next(_ids)}")
        conns = [connect(parse_url(url)) for _ in range(4)]
        barrier = threading.Barrier(len(conns))
        errors: list[BaseException] = []

        def open_one(
            conn: Connection, barrier: threading.Barrier, errors: list[BaseException]
        ) -> None:
            barrier.wait()
            try:
                migrate(conn)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_one, args=(c, barrier, errors)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in conns:
            c.close()
        assert not errors, f"round {round_}: {errors}"
        check = connect(parse_url(url))
        try:
            assert current_version(check) == MIGRATIONS[-1].version
        finally:
            check.close()


def test_a_status_callback_never_overwrites_an_outcome_committed_meanwhile(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call's own instance commits its outcome just after another instance's status-callback
    close has read the row (still open) and before it updates it: the real outcome stays."""
    import psycopg

    url = pg_server.create_database(f"calls_{next(_ids)}")
    log = CallLog.open(url, salt=SALT, retry_max_s=0.2)
    try:
        log.call_started("RACE", MONDAY, "en-US", ALICE)
        assert log.flush()
    finally:
        log.close()
    store = CallLog.open(url, salt=SALT).store
    conn = store.connection()
    plain = conn.execute

    def execute(sql: str, params: Sequence[object] = ()) -> Cursor:
        cursor = plain(sql, params)
        if sql.startswith("SELECT started_at, decided_at, ended_at"):  # read: still open
            with psycopg.connect(url, autocommit=True) as own:  # the instance's Ended lands
                own.execute(
                    "UPDATE calls SET ended_at = %s, outcome = 'sms_sent', reason = 'goodbye' "
                    "WHERE call_id = 'RACE'",
                    (ts(MONDAY + dt.timedelta(seconds=20)),),
                )
        return cursor

    monkeypatch.setattr(conn, "execute", execute)
    fallback = Outcome(OutcomeKind.TRANSFERRED, 0, "fallback", "general")
    store.write([Closed("RACE", MONDAY + dt.timedelta(seconds=25), fallback)])
    store.close()
    check = CallLog.open(url, salt=SALT)
    try:
        [call] = check.fetch().calls
        assert (call.outcome, call.reason) == ("sms_sent", "goodbye")
    finally:
        check.close()
