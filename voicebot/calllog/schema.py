"""The call log's schema as a versioned list of migrations, applied in order at open.

Each migration runs once, in one transaction with its ``schema_version`` row, under a lock so two
processes opening the same database at once do not both apply it (on PostgreSQL an advisory
lock, taken before the version table is created, since that creation races too). The SQL is
portable: TEXT timestamps (ISO 8601 UTC, which sort as text), JSON as TEXT, DOUBLE PRECISION,
composite keys instead of dialect-specific auto-increment. Never edit a released migration;
append a new one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from voicebot.calllog.db import Connection, Dialect

MIGRATE_LOCK_KEY = 0x766F_6963_6562_6F73  # pg_advisory_xact_lock key of migrate() ("voicebos")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "calls, their events and utterances, settings",
        (
            # One row per call: who (pseudonymised), when, and how it ended.
            """CREATE TABLE calls (
                call_id TEXT PRIMARY KEY,
                started_at TEXT NOT NULL,
                language TEXT,
                caller_hash TEXT,
                caller TEXT,
                ended_at TEXT,
                outcome TEXT,
                reason TEXT,
                agent_group TEXT,
                intent TEXT,
                after_prompt TEXT,
                turns INTEGER,
                served TEXT,
                decided_at TEXT,
                duration_s DOUBLE PRECISION,
                decision_s DOUBLE PRECISION
            )""",
            "CREATE INDEX calls_started_at ON calls (started_at)",
            "CREATE INDEX calls_caller_hash ON calls (caller_hash)",
            # Every dialogue event and action in order: the full timeline of a call.
            """CREATE TABLE call_events (
                call_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                at TEXT NOT NULL,
                kind TEXT NOT NULL,
                type TEXT NOT NULL,
                payload TEXT NOT NULL,
                PRIMARY KEY (call_id, seq)
            )""",
            "CREATE INDEX call_events_at ON call_events (at)",
            # What the caller said and what the matcher made of it, for reports.
            """CREATE TABLE utterances (
                call_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                at TEXT NOT NULL,
                transcript TEXT,
                alternatives TEXT,
                ranked TEXT,
                verdict TEXT,
                intent TEXT,
                score DOUBLE PRECISION,
                PRIMARY KEY (call_id, seq)
            )""",
            "CREATE INDEX utterances_at ON utterances (at)",
            "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ),
    ),
    Migration(
        2,
        "calls forgotten while live",
        (
            # `forget` during a call deletes its rows, but the serving process goes on writing
            # the call's later events: their call ids are kept here (no number, no text) so
            # those writes are dropped instead of recreating a row forget cannot find again.
            """CREATE TABLE forgotten_calls (
                call_id TEXT PRIMARY KEY,
                forgotten_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        3,
        "dashboard sessions",
        (
            # One row per dashboard login, so every instance sharing the database knows it and
            # logging out ends it everywhere. Only a hash of the cookie is stored: reading the
            # database does not let anyone log in.
            """CREATE TABLE dashboard_sessions (
                session_hash TEXT PRIMARY KEY,
                created_at TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        4,
        "media streams started",
        (
            # One row per (call, stream number) that started a media stream on any instance:
            # the stream parameters in a call's TwiML start one stream only, so a replayed or
            # hijacking socket is refused wherever it lands. No number, no text.
            """CREATE TABLE stream_claims (
                call_id TEXT NOT NULL,
                stream INTEGER NOT NULL,
                claimed_at TEXT NOT NULL,
                PRIMARY KEY (call_id, stream)
            )""",
        ),
    ),
    Migration(
        5,
        "lookups and repeat-caller recall per call",
        (
            # Anonymous like the other outcome columns, so purge keeps them for long-term
            # reports: the lookups made ([[intent, answered], ...] as JSON), the intent a repeat
            # caller was asked about and what they answered ("yes", "no", "other").
            "ALTER TABLE calls ADD COLUMN lookups TEXT",
            "ALTER TABLE calls ADD COLUMN recalled TEXT",
            "ALTER TABLE calls ADD COLUMN recall_answer TEXT",
        ),
    ),
)


def current_version(conn: Connection) -> int:
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply the migrations this database lacks; the versions applied (empty when up to date)."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"migration versions must be unique and ascending: {versions}")
    applied: list[int] = []
    postgres = conn.dialect is Dialect.POSTGRES
    with conn.transaction(lock=None if postgres else "schema_version"):  # SQLite: IMMEDIATE
        if postgres:
            # Instances started together on a new database: CREATE TABLE IF NOT EXISTS is not
            # safe against a concurrent one (both see no table, one fails), so they queue here.
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATE_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        have = current_version(conn)
        if versions and have > versions[-1]:
            raise RuntimeError(
                f"the call log database has schema version {have}, newer than this voicebot "
                f"knows ({versions[-1]}): upgrade voicebot"
            )
        for m in migrations:
            if m.version <= have:
                continue
            for statement in m.statements:
                conn.execute(statement)
            now = dt.datetime.now(dt.UTC).isoformat()
            conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (m.version, m.description, now),
            )
            applied.append(m.version)
    return applied
