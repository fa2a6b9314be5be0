"""Where the call log lives and a thin connection that speaks the same SQL on SQLite and PostgreSQL.

SQLite (stdlib, WAL) needs no set-up and is the default; ``VOICEBOT_DATABASE_URL=postgresql://...``
switches to PostgreSQL through psycopg 3, imported only then. Statements are written once with
``?`` placeholders and portable types; the connection rewrites placeholders for psycopg.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from voicebot.errors import VoicebotError

DATABASE_URL_ENV = "VOICEBOT_DATABASE_URL"
DATA_DIR_ENV = "VOICEBOT_DATA_DIR"
SQLITE_FILE = "calls.sqlite3"


class DatabaseUrlError(VoicebotError, ValueError):
    """A call-log URL that names no database this program can use."""


class NoCallLog(VoicebotError):
    """A command that only reads was pointed at a call log that does not exist."""


class NotADatabase(VoicebotError):
    """The file at a call-log path is something else (the log would overwrite it)."""


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


@dataclass(frozen=True, slots=True)
class Target:
    dialect: Dialect
    location: str  # SQLite: a file path or ":memory:"; PostgreSQL: the libpq URL

    def __str__(self) -> str:
        """A URL that ``parse_url`` reads back as the same database (the password hidden), so
        what the banner prints can be pasted into ``--database``."""
        if self.dialect is Dialect.SQLITE:
            if self.location == ":memory:":
                return "sqlite://:memory:"
            path = Path(self.location).expanduser().absolute().as_posix()
            return "sqlite:///" + path.lstrip("/")  # "sqlite:////x" also names /x; print one form
        return _hide_password(self.location)

    def exists(self) -> bool:
        """False for a SQLite file not created yet; a server database is assumed to exist."""
        if self.dialect is Dialect.SQLITE and self.location != ":memory:":
            return Path(self.location).expanduser().exists()
        return True


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """$VOICEBOT_DATA_DIR, else the XDG data directory (~/.local/share/voicebot)."""
    env = os.environ if env is None else env
    explicit = env.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "voicebot"


def default_url(env: Mapping[str, str] | None = None) -> str:
    """$VOICEBOT_DATABASE_URL, else the SQLite file calls.sqlite3 in ``data_dir()``."""
    env = os.environ if env is None else env
    return env.get(DATABASE_URL_ENV) or f"sqlite:///{data_dir(env) / SQLITE_FILE}"


def parse_url(url: str) -> Target:
    """``postgresql://...`` / ``postgres://...``, ``sqlite:///abs/path``, ``sqlite:rel/path``,
    ``sqlite://:memory:`` or a bare file path."""
    if url.startswith(("postgresql://", "postgres://")):
        return Target(Dialect.POSTGRES, url)
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
        if rest.startswith("//"):
            rest = rest[2:]  # sqlite:///abs -> /abs, sqlite://:memory: -> :memory:
        if not rest:
            raise DatabaseUrlError(f"no file in database URL {url!r}")
        return Target(Dialect.SQLITE, rest)
    if "://" in url:
        raise DatabaseUrlError(
            f"unsupported database URL {url!r}: use postgresql://... or sqlite:///path"
        )
    return Target(Dialect.SQLITE, url)


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection:
    """One DB-API connection in autocommit mode; ``transaction()`` groups statements."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        if self.dialect is Dialect.POSTGRES:
            sql = sql.replace("?", "%s")
        cursor: Cursor = self.raw.execute(sql, tuple(params))
        return cursor

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Connection]:
        """BEGIN ... COMMIT, ROLLBACK on error. ``lock``: a table to lock against other writers."""
        if self.dialect is Dialect.SQLITE:
            self.raw.execute("BEGIN IMMEDIATE" if lock else "BEGIN")
        else:
            self.raw.execute("BEGIN")
            if lock:
                self.raw.execute(f"LOCK TABLE {lock} IN EXCLUSIVE MODE")
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        try:
            if self.dialect is Dialect.SQLITE:
                if self.raw.in_transaction:
                    self.raw.execute("ROLLBACK")
            else:
                self.raw.execute("ROLLBACK")
        except Exception:
            pass  # the connection is broken; the caller reconnects

    def scrub(self) -> bool:
        """After deleting personal data: fold SQLite's write-ahead log into the database and
        truncate it, so no older copy of a deleted page stays in the ``-wal`` file (with
        ``secure_delete`` the current pages hold zeros). False when another connection's open
        read kept the log from being emptied. PostgreSQL: nothing to do here; dead rows go at
        the next (auto)vacuum, and its WAL and backups are the database administrator's."""
        if self.dialect is not Dialect.SQLITE:
            return True
        row = self.raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return row is None or int(row[0]) == 0

    def close(self) -> None:
        with suppress(Exception):
            self.raw.close()


def connect(target: Target, *, timeout_s: float = 5.0) -> Connection:
    """Open a connection; ``timeout_s`` bounds both connecting and waiting for SQLite's lock."""
    if target.dialect is Dialect.SQLITE:
        if target.location != ":memory:":
            Path(target.location).expanduser().parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(
            Path(target.location).expanduser() if target.location != ":memory:" else ":memory:",
            timeout=timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=NORMAL")  # in WAL: durable across process crashes
            # deleted rows are overwritten with zeros, not just unlinked: forget and purge must
            # not leave transcripts readable in free space (see ``Connection.scrub``)
            raw.execute("PRAGMA secure_delete=ON")
        except sqlite3.DatabaseError as exc:
            raw.close()
            if isinstance(exc, sqlite3.OperationalError):  # locked, busy: worth retrying
                raise
            raise NotADatabase(
                f"{target.location} is not a call log ({exc}); give the call log's file, or a "
                "new path to start one"
            ) from None
        except Exception:
            raw.close()
            raise
        return Connection(raw, Dialect.SQLITE)
    import psycopg

    conn = psycopg.connect(target.location, autocommit=True, connect_timeout=max(1, int(timeout_s)))
    return Connection(conn, Dialect.POSTGRES)


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying later: the database is down, locked or the connection broke."""
    if isinstance(exc, sqlite3.OperationalError | OSError):
        return True  # locked, busy, unable to open (directory missing or not writable), disk I/O
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
