"""Synchronous reads and writes of the call log; ``voicebot.calllog.log`` runs them off the call
path.

A ``Store`` owns one connection, opened lazily (migrations and the salt check run then), and
writes a batch of records in one transaction. Sequence numbers order a call's timeline.

Several server instances may write the same call (its webhook, media stream and status
callback can each land on a different one, and each instance queues its own records, so they
commit in any order, e.g. when PostgreSQL comes back after an outage). Hence: a call's next
sequence number is read from the database in every transaction, under a lock on the call's row,
never cached in one process; a ``Started`` that arrives after other records of its call fills
in the row instead of replacing it; and ``Closed`` (Twilio's status callback for a call whose
row is still open) only closes a row no instance has given an outcome.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from voicebot.calllog.db import Connection, Dialect, Target, connect
from voicebot.calllog.records import (
    RANKED_KEPT,
    SALT_ENV,
    SALT_FILE,
    CallRow,
    EventRow,
    Forgotten,
    NumberPolicy,
    Purged,
    Rows,
    UtteranceRow,
    dumps,
    parse_ts,
    payload,
    salt_fingerprint,
    seconds,
    ts,
)
from voicebot.calllog.schema import MIGRATIONS, Migration, migrate
from voicebot.core.actions import Action, HangUpCall, SendSms, Transfer
from voicebot.core.events import Event, Utterance
from voicebot.core.match import Match, Scored, Verdict
from voicebot.core.recall import CallerHistory
from voicebot.core.state import Outcome, Progress
from voicebot.errors import VoicebotError

SALT_KEY = "number_salt_fingerprint"
FORGOTTEN_MARKER_KEPT = dt.timedelta(days=2)  # longer than any call lasts
STREAM_CLAIMS_KEPT = dt.timedelta(days=1)  # far beyond any stream parameters' expiry

log = logging.getLogger("voicebot.calllog.store")


class SaltMismatch(VoicebotError, RuntimeError):
    """The database was written with another number salt: hashes would not match."""


# Records queued by CallLog and written by Store.


@dataclass(frozen=True, slots=True)
class Started:
    call_id: str
    at: dt.datetime
    language: str | None
    caller: str | None


@dataclass(frozen=True, slots=True)
class Happened:
    call_id: str
    event: Event
    match: Match | None = None


@dataclass(frozen=True, slots=True)
class Did:
    call_id: str
    at: dt.datetime
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Ended:
    call_id: str
    at: dt.datetime
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Closed:
    """Twilio says the call ended, and no instance here knows it (the one holding it died):
    close its row with ``outcome`` unless an instance wrote the real one."""

    call_id: str
    at: dt.datetime
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Progressed:
    """What the call has come to so far (the intent asked for, what was served, the last
    prompt, the questions asked), written into its open row as it changes: a call whose
    process dies keeps it when the status callback closes the row (``Closed``)."""

    call_id: str
    at: dt.datetime
    progress: Progress


Record: TypeAlias = Started | Happened | Did | Progressed | Ended | Closed

# pg_try_advisory_xact_lock key for purge(): one instance of a cluster purges at a time.
PURGE_LOCK_KEY = 0x766F_6963_6562_6F74 & 0x7FFF_FFFF_FFFF_FFFF  # "voicebot"

_DECISIONS = (Transfer, SendSms, HangUpCall)


@dataclass
class Store:
    target: Target
    policy: NumberPolicy
    timeout_s: float = 5.0
    migrations: Sequence[Migration] = MIGRATIONS
    conn: Connection | None = None

    @property
    def dialect(self) -> Dialect:
        return self.target.dialect

    def connection(self) -> Connection:
        """The open connection, connecting, migrating and checking the salt first if needed."""
        if self.conn is None:
            conn = connect(self.target, timeout_s=self.timeout_s)
            try:
                migrate(conn, self.migrations)
                self._check_salt(conn)
            except BaseException:
                conn.close()
                raise
            self.conn = conn
        return self.conn

    def reset(self) -> None:
        """After an error: drop a PostgreSQL connection (it may be dead), roll SQLite back."""
        if self.conn is None:
            return
        if self.dialect is Dialect.POSTGRES:
            self.conn.close()
            self.conn = None
        else:
            self.conn.rollback()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _check_salt(self, conn: Connection) -> None:
        mine = salt_fingerprint(self.policy.salt)
        with conn.transaction(lock="settings"):
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (SALT_KEY,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (SALT_KEY, mine))
            elif row[0] != mine:
                raise SaltMismatch(
                    f"the call log {self.target} was written with another number salt than this "
                    f"one (from {self.policy.salt_source}): give --number-salt-file or set "
                    f"${SALT_ENV} to the salt it was written with (${SALT_ENV}, or the file "
                    f"{SALT_FILE} in the data folder of the host that wrote it, or its "
                    "--number-salt-file), or callers' hashes would not match and forget "
                    "could not find them"
                )

    # -----------------------------------------------------------------------------------------
    # Writing

    def write(self, records: Sequence[Record]) -> None:
        """All records in one transaction; on error nothing is written and they can be retried.
        Records of a call forgotten while it was live are dropped (see migration 2)."""
        conn = self.connection()
        seq: dict[str, int] = {}  # next sequence number of each call, within this transaction
        forgotten: dict[str, bool] = {}
        with conn.transaction():
            for r in records:
                if r.call_id not in forgotten:
                    forgotten[r.call_id] = self._forgotten(conn, r.call_id)
                if not forgotten[r.call_id]:
                    self._write(conn, r, seq)

    def _forgotten(self, conn: Connection, call_id: str) -> bool:
        row = conn.execute("SELECT 1 FROM forgotten_calls WHERE call_id = ?", (call_id,)).fetchone()
        return row is not None

    def _write(self, conn: Connection, r: Record, seq: dict[str, int]) -> None:
        if isinstance(r, Started):
            self._started(conn, r)
            return
        self._ensure_call(conn, r.call_id, r.event.at if isinstance(r, Happened) else r.at)
        if isinstance(r, Happened):
            self._event(conn, r, self._next(conn, r.call_id, seq))
        elif isinstance(r, Did):
            for action in r.actions:
                self._row(conn, r.call_id, self._next(conn, r.call_id, seq), r.at, "action", action)
            if any(isinstance(a, _DECISIONS) for a in r.actions):
                self._decided(conn, r.call_id, r.at)
        elif isinstance(r, Progressed):
            p = r.progress
            conn.execute(
                "UPDATE calls SET intent = ?, served = ?, after_prompt = ?, turns = ? "
                "WHERE call_id = ? AND ended_at IS NULL",
                (p.intent, dumps(list(p.served)), p.after, p.turns, r.call_id),
            )
        elif isinstance(r, Closed):
            self._ended(conn, r, only_open=True)
        else:
            self._ended(conn, r)

    def _next(self, conn: Connection, call_id: str, seq: dict[str, int]) -> int:
        if call_id not in seq:
            if self.dialect is Dialect.POSTGRES:  # another instance may be writing this call
                conn.execute("SELECT 1 FROM calls WHERE call_id = ? FOR UPDATE", (call_id,))
            row = conn.execute(
                "SELECT MAX(seq) FROM call_events WHERE call_id = ?", (call_id,)
            ).fetchone()
            seq[call_id] = 0 if row is None or row[0] is None else int(row[0]) + 1
        n = seq[call_id]
        seq[call_id] = n + 1
        return n

    def _started(self, conn: Connection, r: Started) -> None:
        """A new call's row. A call id already there keeps everything logged for it (another
        instance's records came first, or Twilio retried the webhook): only what is missing is
        filled in, and the earliest start time wins."""
        values = (ts(r.at), r.language, self.policy.hash(r.caller), self.policy.readable(r.caller))
        inserted = conn.execute(
            "INSERT INTO calls (call_id, started_at, language, caller_hash, caller) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING",
            (r.call_id, *values),
        ).rowcount
        if inserted:
            return
        conn.execute(
            "UPDATE calls SET started_at = CASE WHEN started_at > ? THEN ? ELSE started_at END, "
            "language = COALESCE(language, ?), caller_hash = COALESCE(caller_hash, ?), "
            "caller = COALESCE(caller, ?) WHERE call_id = ?",
            (values[0], *values, r.call_id),
        )

    def _ensure_call(self, conn: Connection, call_id: str, at: dt.datetime) -> None:
        conn.execute(
            "INSERT INTO calls (call_id, started_at) VALUES (?, ?) "
            "ON CONFLICT (call_id) DO NOTHING",
            (call_id, ts(at)),
        )

    def _row(
        self, conn: Connection, call_id: str, n: int, at: dt.datetime, kind: str, obj: object
    ) -> None:
        conn.execute(
            "INSERT INTO call_events (call_id, seq, at, kind, type, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (call_id, n, ts(at), kind, type(obj).__name__, dumps(payload(obj, self.policy))),
        )

    def _event(self, conn: Connection, r: Happened, n: int) -> None:
        e = r.event
        self._row(conn, r.call_id, n, e.at, "event", e)
        if not isinstance(e, Utterance):
            return
        m = r.match
        best = m.best if m is not None else None
        top = max(e.alternatives, key=lambda a: a[1])[0] if e.alternatives else ""
        ranked = [[s.intent, s.score] for s in m.ranked[:RANKED_KEPT]] if m is not None else []
        conn.execute(
            "INSERT INTO utterances (call_id, seq, at, transcript, alternatives, ranked, verdict, "
            "intent, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.call_id,
                n,
                ts(e.at),
                (m.text if m is not None and m.text else top),
                dumps([list(a) for a in e.alternatives]),
                dumps(ranked),
                m.verdict.value if m is not None else None,
                best.intent if best is not None else None,
                best.score if best is not None else None,
            ),
        )
        if m is not None and m.verdict is Verdict.ACCEPT:
            self._decided(conn, r.call_id, e.at)

    def _decided(self, conn: Connection, call_id: str, at: dt.datetime) -> None:
        conn.execute(
            "UPDATE calls SET decided_at = ? WHERE call_id = ? AND decided_at IS NULL",
            (ts(at), call_id),
        )

    def _ended(self, conn: Connection, r: Ended | Closed, *, only_open: bool = False) -> None:
        row = conn.execute(
            "SELECT started_at, decided_at, ended_at FROM calls WHERE call_id = ?", (r.call_id,)
        ).fetchone()
        if only_open and row[2] is not None:
            return  # an instance logged how the call really ended
        started, decided = parse_ts(row[0]), parse_ts(row[1])
        o = r.outcome
        # Closed: the condition is in the UPDATE too. An instance's Ended committing between the
        # SELECT above and here would otherwise be overwritten (PostgreSQL re-checks the WHERE
        # of an UPDATE that waited for the row's lock, not an earlier SELECT).
        # Closed knows only what Twilio reports: what the row has come to (``Progressed``)
        # stays, rather than be blanked by an outcome without intent or service.
        kept = (
            "intent = COALESCE(intent, ?), after_prompt = COALESCE(after_prompt, ?), "
            "turns = COALESCE(turns, ?), served = COALESCE(served, ?)"
            if only_open
            else "intent = ?, after_prompt = ?, turns = ?, served = ?"
        )
        conn.execute(
            f"UPDATE calls SET ended_at = ?, outcome = ?, reason = ?, agent_group = ?, {kept}, "
            "duration_s = ?, decision_s = ?, lookups = ?, recalled = ?, recall_answer = ? "
            "WHERE call_id = ?" + (" AND ended_at IS NULL" if only_open else ""),
            (
                ts(r.at),
                o.kind.value,
                o.reason,
                o.group,
                o.intent,
                o.after,
                o.turns,
                dumps(list(o.served)),
                seconds(started, r.at),
                seconds(started, decided),
                dumps([list(lookup) for lookup in o.lookups]) if o.lookups else None,
                o.recalled,
                o.recall_answer,
                r.call_id,
            ),
        )

    # -----------------------------------------------------------------------------------------
    # Reading

    def fetch(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> Rows:
        """Calls started in [since, until) and their utterances, oldest first."""
        where, params = _range("c.started_at", since, until)
        conn = self.connection()
        calls = conn.execute(
            "SELECT c.call_id, c.started_at, c.language, c.caller, c.ended_at, c.outcome, "
            "c.reason, c.agent_group, c.intent, c.after_prompt, c.turns, c.served, c.decided_at, "
            f"c.lookups, c.recalled, c.recall_answer FROM calls c {where} "
            "ORDER BY c.started_at, c.call_id",
            params,
        ).fetchall()
        utterances = conn.execute(
            "SELECT u.call_id, u.seq, u.at, u.transcript, u.alternatives, u.verdict, u.intent, "
            f"u.score, u.ranked FROM utterances u JOIN calls c ON c.call_id = u.call_id {where} "
            "ORDER BY u.at, u.call_id, u.seq",
            params,
        ).fetchall()
        return Rows([_call_row(r) for r in calls], [_utterance_row(r) for r in utterances])

    def has_call(self, call_id: str) -> bool:
        row = self.connection().execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,))
        return row.fetchone() is not None

    def timeline(self, call_id: str) -> list[EventRow]:
        rows = (
            self.connection()
            .execute(
                "SELECT call_id, seq, at, kind, type, payload FROM call_events "
                "WHERE call_id = ? ORDER BY seq",
                (call_id,),
            )
            .fetchall()
        )
        return [EventRow(r[0], int(r[1]), _at(r[2]), r[3], r[4], json.loads(r[5])) for r in rows]

    def caller_history(
        self, caller_hash: str, since: dt.datetime, before: dt.datetime, call_id: str
    ) -> CallerHistory:
        """The calls of one (hashed) number started in [since, before), other than ``call_id``:
        how many, and the last one's intent, start and whether the robot solved it. Reads only
        ``caller_hash``, so what ``forget`` deleted and ``purge`` erased is never recalled.
        The database counts and picks the last call: a number that calls every day (a
        switchboard) has hundreds of calls in the window, and each new call of it would
        otherwise carry them all over to the server, under recall's timeout."""
        window = (
            "FROM calls WHERE caller_hash = ? AND started_at >= ? AND started_at < ? "
            "AND call_id <> ?"
        )
        args = (caller_hash, ts(since), ts(before), call_id)
        connection = self.connection()
        last = connection.execute(
            f"SELECT started_at, intent, served {window} "
            "ORDER BY started_at DESC, call_id DESC LIMIT 1",
            args,
        ).fetchone()
        if last is None:
            return CallerHistory(0, None, None, last_solved=False)
        (count,) = connection.execute(f"SELECT COUNT(*) {window}", args).fetchone()
        started, intent, served = last
        solved = intent is not None and intent in (json.loads(served) if served else [])
        return CallerHistory(int(count), intent, parse_ts(started), last_solved=solved)

    def transfer_transcript(self, call_id: str) -> str | None:
        row = (
            self.connection()
            .execute(
                "SELECT payload FROM call_events WHERE call_id = ? AND type = ? "
                "ORDER BY seq DESC LIMIT 1",
                (call_id, Transfer.__name__),
            )
            .fetchone()
        )
        if row is None:
            return None
        transcript = json.loads(row[0]).get("context", {}).get("transcript")
        return transcript if isinstance(transcript, str) else None

    def claim_stream(self, call_id: str, stream: int, at: dt.datetime) -> bool:
        """Record that stream ``stream`` of the call started; False if one already had."""
        cursor = self.connection().execute(
            "INSERT INTO stream_claims (call_id, stream, claimed_at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (call_id, stream, ts(at)),
        )
        return cursor.rowcount == 1

    # -----------------------------------------------------------------------------------------
    # Dashboard sessions (see migration 3)

    def open_session(self, session_hash: str, at: dt.datetime, expires: dt.datetime) -> None:
        self.connection().execute(
            "INSERT INTO dashboard_sessions (session_hash, created_at, expires_at) "
            "VALUES (?, ?, ?)",
            (session_hash, ts(at), ts(expires)),
        )

    def session_alive(self, session_hash: str, now: dt.datetime) -> bool:
        conn = self.connection()
        row = conn.execute(
            "SELECT expires_at FROM dashboard_sessions WHERE session_hash = ?", (session_hash,)
        ).fetchone()
        if row is None:
            return False
        if row[0] > ts(now):
            return True
        self.close_session(session_hash)
        return False

    def close_session(self, session_hash: str) -> None:
        self.connection().execute(
            "DELETE FROM dashboard_sessions WHERE session_hash = ?", (session_hash,)
        )

    # -----------------------------------------------------------------------------------------
    # Retention and erasure

    def purge(self, before: dt.datetime) -> Purged:
        """Delete timelines and transcripts, erase caller numbers, of calls older than ``before``;
        keep the anonymous aggregate (times, outcome, group, intents, verdicts, scores)."""
        cutoff = ts(before)
        conn = self.connection()
        with conn.transaction():
            if self.dialect is Dialect.POSTGRES:
                got = conn.execute("SELECT pg_try_advisory_xact_lock(?)", (PURGE_LOCK_KEY,))
                if not got.fetchone()[0]:
                    return Purged(0, 0, 0)  # another instance is purging right now
            events = conn.execute("DELETE FROM call_events WHERE at < ?", (cutoff,)).rowcount
            transcripts = conn.execute(
                "UPDATE utterances SET transcript = NULL, alternatives = NULL "
                "WHERE at < ? AND (transcript IS NOT NULL OR alternatives IS NOT NULL)",
                (cutoff,),
            ).rowcount
            callers = conn.execute(
                "UPDATE calls SET caller_hash = NULL, caller = NULL "
                "WHERE started_at < ? AND (caller_hash IS NOT NULL OR caller IS NOT NULL)",
                (cutoff,),
            ).rowcount
            # markers of forgotten calls outlive any call still in progress, then go
            keep_markers = dt.datetime.now(dt.UTC) - FORGOTTEN_MARKER_KEPT
            conn.execute(
                "DELETE FROM forgotten_calls WHERE forgotten_at < ?",
                (ts(min(before, keep_markers)),),
            )
            conn.execute(  # sessions nobody logged out of
                "DELETE FROM dashboard_sessions WHERE expires_at < ?",
                (ts(dt.datetime.now(dt.UTC)),),
            )
            conn.execute(  # stream claims outlive their parameters' expiry (minutes), then go
                "DELETE FROM stream_claims WHERE claimed_at < ?",
                (ts(dt.datetime.now(dt.UTC) - STREAM_CLAIMS_KEPT),),
            )
        self._scrub(conn)
        return Purged(events, transcripts, callers)

    def forget(self, caller_hash: str) -> Forgotten:
        """Delete every call of one caller, with its timeline and utterances."""
        conn = self.connection()
        with conn.transaction():
            sub = "SELECT call_id FROM calls WHERE caller_hash = ?"
            conn.execute(  # a call still in progress must not be recreated by its later writes
                "INSERT INTO forgotten_calls (call_id, forgotten_at) SELECT call_id, ? "
                "FROM calls WHERE caller_hash = ? ON CONFLICT (call_id) DO NOTHING",
                (ts(dt.datetime.now(dt.UTC)), caller_hash),
            )
            events = conn.execute(
                f"DELETE FROM call_events WHERE call_id IN ({sub})", (caller_hash,)
            ).rowcount
            utterances = conn.execute(
                f"DELETE FROM utterances WHERE call_id IN ({sub})", (caller_hash,)
            ).rowcount
            calls = conn.execute("DELETE FROM calls WHERE caller_hash = ?", (caller_hash,)).rowcount
        self._scrub(conn)
        return Forgotten(calls, events, utterances)

    def _scrub(self, conn: Connection) -> None:
        if not conn.scrub():
            log.warning(
                "call log %s: a reader kept the write-ahead log from being emptied; deleted "
                "text stays in its -wal file until the next checkpoint",
                self.target,
            )


def _range(
    column: str, since: dt.datetime | None, until: dt.datetime | None
) -> tuple[str, tuple[str, ...]]:
    clauses: list[str] = []
    params: list[str] = []
    if since is not None:
        clauses.append(f"{column} >= ?")
        params.append(ts(since))
    if until is not None:
        clauses.append(f"{column} < ?")
        params.append(ts(until))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _at(text: str) -> dt.datetime:
    at = parse_ts(text)
    assert at is not None
    return at


def _call_row(r: Any) -> CallRow:
    return CallRow(
        call_id=r[0],
        started_at=_at(r[1]),
        language=r[2],
        caller=r[3],
        ended_at=parse_ts(r[4]),
        outcome=r[5],
        reason=r[6],
        group=r[7],
        intent=r[8],
        after=r[9],
        turns=None if r[10] is None else int(r[10]),
        served=tuple(json.loads(r[11])) if r[11] else (),
        decided_at=parse_ts(r[12]),
        lookups=tuple((str(i), bool(ok)) for i, ok in json.loads(r[13])) if r[13] else (),
        recalled=r[14],
        recall_answer=r[15],
    )


def _utterance_row(r: Any) -> UtteranceRow:
    alternatives = tuple((str(t), float(c)) for t, c in json.loads(r[4])) if r[4] else ()
    ranked = tuple(Scored(str(i), float(s)) for i, s in json.loads(r[8])) if r[8] else ()
    return UtteranceRow(
        call_id=r[0],
        seq=int(r[1]),
        at=_at(r[2]),
        transcript=r[3],
        alternatives=alternatives,
        verdict=r[5],
        intent=r[6],
        score=None if r[7] is None else float(r[7]),
        ranked=ranked,
    )
