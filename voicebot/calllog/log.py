"""The call log: every call's events, actions and outcome, written without slowing a call down.

Call shells (server, replay, chat) record through ``CallLog``; each method only puts a record on
an in-memory queue, and one background thread writes the records in small transactions as soon
as they arrive, so a crash loses at most the batch in flight. When the database is down or
locked, records wait in the queue (bounded: beyond ``max_queue`` new ones are dropped, counted and
logged once) and the thread retries with backoff until it is back. ``close()`` flushes.

Privacy (see ``calllog_records``): numbers are stored as a salted HMAC, optionally also masked or
in clear. ``purge()`` enforces ``retention_days``: for calls older than that it deletes the
timeline (every event and action, which hold transcripts and SMS texts), blanks transcripts and
n-best lists and erases the caller's hash and number. What stays is anonymous: the call's times,
language, outcome, reason, group, intents, verdicts and scores, so long-term reports (volumes,
transfers, solved share, per-intent counts) keep working; top unmatched utterances cover the
retention window only. ``forget(number)`` deletes every trace of one caller at once; a call of
theirs still in progress (in this or another process) is marked, so its later events are dropped
rather than written again. On SQLite both overwrite what they delete (``secure_delete``) and
empty the write-ahead log, so no copy of the text stays in the ``-wal`` file. A negative
retention period is refused: it would purge everything, calls in progress included.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from voicebot.calllog.db import (
    DATABASE_URL_ENV,
    NoCallLog,
    Target,
    data_dir,
    default_url,
    is_transient,
    parse_url,
)
from voicebot.calllog.records import (
    CallRow,
    EventRow,
    Forgotten,
    NumberPolicy,
    Purged,
    Rows,
    StoreNumbers,
    UtteranceRow,
    read_salt_file,
    resolve_salt,
    salt_source,
)
from voicebot.calllog.store import (
    Closed,
    Did,
    Ended,
    Happened,
    Progressed,
    Record,
    SaltMismatch,
    Started,
    Store,
)
from voicebot.core.actions import Action
from voicebot.core.events import Event
from voicebot.core.match import Match
from voicebot.core.recall import CallerHistory
from voicebot.core.state import Outcome, Progress
from voicebot.errors import VoicebotError

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "CallLog",
    "CallLogUnavailable",
    "CallRow",
    "EventRow",
    "Forgotten",
    "LogStats",
    "Purged",
    "Rows",
    "SaltMismatch",
    "StoreNumbers",
    "UtteranceRow",
    "data_dir",
    "default_url",
]

log = logging.getLogger("voicebot.calllog.log")

DEFAULT_RETENTION_DAYS = 90
T = TypeVar("T")


class BadRetention(VoicebotError, ValueError):
    """A retention period the call log refuses."""


def _check_retention(days: int | None) -> int | None:
    """A negative period would purge everything, calls in progress included."""
    if days is not None and days < 0:
        raise BadRetention(
            f"the retention period must be 0 days or more, not {days} (--retention-days)"
        )
    return days


class CallLogUnavailable(VoicebotError, RuntimeError):
    """A read, purge or forget could not reach the database in time."""


@dataclass(frozen=True, slots=True)
class LogStats:
    queued: int  # records waiting in the queue
    writing: int  # records taken by the writer, not yet committed (retrying while it is down)
    written: int
    dropped: int  # lost: queue full, unwritable record, or unflushed at close


@dataclass(frozen=True, slots=True)
class _Command:
    run: Callable[[Store], object]
    future: Future[object]
    deadline: float


_Item = Record | _Command


class CallLog:
    """Non-blocking recording plus synchronous maintenance (``purge``, ``forget``, ``fetch``)."""

    def __init__(
        self,
        store: Store,
        *,
        retention_days: int | None = DEFAULT_RETENTION_DAYS,
        max_queue: int = 10_000,
        batch: int = 50,
        retry_min_s: float = 0.05,
        retry_max_s: float = 5.0,
    ) -> None:
        self.store = store
        self.retention_days = _check_retention(retention_days)
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=max_queue)
        self._batch = max(1, batch)
        self._retry = (retry_min_s, retry_max_s)
        self._lock = threading.Condition()
        self._enqueued = 0
        self._written = 0
        self._dropped = 0
        self._lost = 0  # queued but never written (also counted in _dropped)
        self._taken = 0  # records the writer has taken off the queue
        self._full_logged = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="voicebot-calllog", daemon=True)
        self._thread.start()

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        salt: str | None = None,
        salt_file: Path | None = None,
        store_numbers: StoreNumbers | str = StoreNumbers.HASH,
        retention_days: int | None = DEFAULT_RETENTION_DAYS,
        max_queue: int = 10_000,
        connect_timeout_s: float = 5.0,
        retry_min_s: float = 0.05,
        retry_max_s: float = 5.0,
        env: Mapping[str, str] | None = None,
        create: bool = True,
    ) -> CallLog:
        """Open the log at ``url`` (default: ``default_url()``), migrating it.

        A database that is down or locked does not stop the caller: recording starts at once and
        the writer connects when it can. A bad URL or a different number salt raise here.
        With ``create=False`` (commands that only read or delete) a SQLite log that does not
        exist yet raises ``NoCallLog`` instead of being created empty, and a database that
        cannot be reached raises ``CallLogUnavailable`` at once.
        """
        _check_retention(retention_days)  # before anything is created
        target: Target = parse_url(url or default_url(env))
        if not create and not target.exists():
            raise NoCallLog(
                f"there is no call log at {target} (nothing was ever recorded there); give "
                f"--database the log that voicebot serve writes, or set {DATABASE_URL_ENV}"
            )
        directory = data_dir(env)
        if salt is None and salt_file is not None:
            salt, source = read_salt_file(salt_file), f"the file {salt_file}"
        else:
            source = salt_source(salt, directory, env)
        policy = NumberPolicy(
            resolve_salt(salt, directory, env), StoreNumbers(store_numbers), salt_source=source
        )
        store = Store(target, policy, timeout_s=connect_timeout_s)
        try:
            store.connection()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if not create:  # report, purge, forget: one line now, not 30 s of silent retries
                raise CallLogUnavailable(f"call log {target}: {_one_line(exc)}") from None
            log.warning(
                "call log %s unavailable (%s); events are queued until it is back",
                target,
                _one_line(exc),
            )
            store.reset()
        return cls(
            store,
            retention_days=retention_days,
            max_queue=max_queue,
            retry_min_s=retry_min_s,
            retry_max_s=retry_max_s,
        )

    # -----------------------------------------------------------------------------------------
    # Recording: never blocks, never raises

    def call_started(
        self, call_id: str, at: dt.datetime, language: str | None, caller: str | None
    ) -> None:
        """A new call (a call id seen before keeps what was logged for it)."""
        self._put(Started(call_id, at, language, caller))

    def event(self, call_id: str, event: Event, match: Match | None = None) -> None:
        """A dialogue event at ``event.at``; for an Utterance, pass the Match the dialogue got."""
        self._put(Happened(call_id, event, match))

    def actions(self, call_id: str, at: dt.datetime, actions: Iterable[Action]) -> None:
        """The actions the dialogue returned, in order; empty lists are not recorded."""
        batch = tuple(actions)
        if batch:
            self._put(Did(call_id, at, batch))

    def call_progress(self, call_id: str, at: dt.datetime, progress: Progress) -> None:
        """What the call has come to so far, into its row at once (see ``Progressed``)."""
        self._put(Progressed(call_id, at, progress))

    def call_ended(self, call_id: str, at: dt.datetime, outcome: Outcome) -> None:
        self._put(Ended(call_id, at, outcome))

    def call_closed(self, call_id: str, at: dt.datetime, outcome: Outcome) -> None:
        """Twilio reports the end of a call no live session here knows (its instance died, or
        another one holds it): ``outcome`` is written only if the row is still open."""
        self._put(Closed(call_id, at, outcome))

    def _put(self, record: Record) -> None:
        with self._lock:
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                self._dropped += 1
                first, self._full_logged = not self._full_logged, True
            else:
                self._enqueued += 1
                return
        if first:
            log.error(
                "call log queue full (%d records): dropping new records until the database is back",
                self._queue.maxsize,
            )

    # -----------------------------------------------------------------------------------------
    # Flushing and closing

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every record recorded so far is written (or dropped); False on timeout."""
        with self._lock:
            target = self._enqueued
            return self._lock.wait_for(lambda: self._written + self._lost >= target, timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush (up to ``timeout``), stop the writer and close the database; False if records
        were lost because the database stayed unavailable."""
        flushed = self.flush(timeout)
        with self._lock:
            lost_before = self._lost
        self._stopping.set()
        self._thread.join(timeout=max(self._retry[1], 1.0) + 5.0)
        self.store.close()
        if not flushed:
            with self._lock:
                lost = self._lost - lost_before
            log.error("call log closed with %d records unwritten", lost)
        return flushed

    def stats(self) -> LogStats:
        with self._lock:
            done = self._written + self._lost
            return LogStats(
                self._enqueued - self._taken, self._taken - done, self._written, self._dropped
            )

    @property
    def dropped(self) -> int:
        return self.stats().dropped

    # -----------------------------------------------------------------------------------------
    # Maintenance and reads: run by the writer thread in order with the records

    def purge(self, now: dt.datetime | None = None, timeout: float = 30.0) -> Purged:
        """Apply ``retention_days`` (see the module docstring); a no-op when it is None."""
        if self.retention_days is None:
            return Purged(0, 0, 0)
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=self.retention_days)
        return self._call(lambda s: s.purge(cutoff), timeout)

    def forget(self, number: str, timeout: float = 30.0) -> Forgotten:
        """Delete everything about one caller, including records still queued for them."""
        caller_hash = self.store.policy.hash(number)
        if caller_hash is None:
            return Forgotten(0, 0, 0)
        return self._call(lambda s: s.forget(caller_hash), timeout)

    def fetch(
        self,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        timeout: float = 30.0,
    ) -> Rows:
        """Calls started in [since, until) with their utterances, after the queued records."""
        return self._call(lambda s: s.fetch(since, until), timeout)

    def has_call(self, call_id: str, timeout: float = 0.5) -> bool | None:
        """Whether the log has a row for ``call_id``, after the records queued before; None
        when the database cannot say within about ``timeout`` (+1 s): the server then treats
        the call as new rather than keep a caller waiting."""
        try:
            return self._call(lambda s: s.has_call(call_id), timeout)
        except CallLogUnavailable:
            return None

    def claim_stream(self, call_id: str, stream: int, timeout: float = 0.5) -> bool | None:
        """Claim stream ``stream`` of a call for the instance asking: False when an instance
        sharing this log claimed it before (the parameters are replayed), None when the
        database cannot say within about ``timeout`` (+1 s): the stream is then taken, as
        with ``has_call``, rather than keep a caller waiting."""
        at = dt.datetime.now(dt.UTC)
        try:
            return self._call(lambda s: s.claim_stream(call_id, stream, at), timeout)
        except CallLogUnavailable:
            return None

    def timeline(self, call_id: str, timeout: float = 30.0) -> list[EventRow]:
        return self._call(lambda s: s.timeline(call_id), timeout)

    def open_session(
        self, session_hash: str, at: dt.datetime, expires: dt.datetime, timeout: float = 10.0
    ) -> None:
        """A dashboard login, stored (as a hash of its cookie) for every instance to see."""
        self._call(lambda s: s.open_session(session_hash, at, expires), timeout)

    def session_alive(self, session_hash: str, now: dt.datetime, timeout: float = 10.0) -> bool:
        return self._call(lambda s: s.session_alive(session_hash, now), timeout)

    def close_session(self, session_hash: str, timeout: float = 10.0) -> None:
        self._call(lambda s: s.close_session(session_hash), timeout)

    def caller_history(
        self,
        number: str | None,
        days: int,
        at: dt.datetime,
        call_id: str = "",
        timeout: float = 0.5,
    ) -> CallerHistory | None:
        """The caller's calls in the ``days`` before ``at`` (``call_id`` not counted), for
        repeat-caller recall; None for a withheld number, and when the database cannot say
        within about ``timeout`` (+1 s): the caller then gets the normal greeting rather than
        wait. Numbers are looked up by their hash, as they are stored."""
        caller_hash = self.store.policy.hash(number)
        if caller_hash is None:
            return None
        since = at - dt.timedelta(days=days)
        try:
            return self._call(lambda s: s.caller_history(caller_hash, since, at, call_id), timeout)
        except Exception as exc:  # unavailable, or any other database trouble: no recall
            log.warning("call log: no caller history (%s); no recall", exc)
            return None

    def transfer_transcript(self, call_id: str, timeout: float = 3.0) -> str | None:
        """The transcript in the call's last transfer, for the agent's whisper on another
        instance (the whisper URL carries no caller words); None if unknown or purged. Short
        timeout: the agent is waiting, and the whisper works without it."""
        return self._call(lambda s: s.transfer_transcript(call_id), timeout)

    def _call(self, run: Callable[[Store], T], timeout: float) -> T:
        future: Future[object] = Future()
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_Command(run, future, deadline), timeout=timeout)
        except queue.Full:
            raise CallLogUnavailable("the call log writer is backed up") from None
        try:
            result = future.result(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        except TimeoutError:
            future.cancel()
            raise CallLogUnavailable(f"call log {self.store.target}: timed out") from None
        return cast(T, result)

    # -----------------------------------------------------------------------------------------
    # The writer thread

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            batch: list[Record] = []
            while True:
                if isinstance(item, _Command):
                    self._write(batch)
                    batch = []
                    self._command(item)
                else:
                    batch.append(item)
                    with self._lock:
                        self._taken += 1
                if len(batch) >= self._batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, records: list[Record]) -> None:
        """Write until it works, backing off while the database is unavailable."""
        if not records:
            return
        delay = self._retry[0]
        failing_since: float | None = None
        while True:
            try:
                self.store.write(records)
            except Exception as exc:
                self.store.reset()
                if not is_transient(exc):
                    self._write_each(records, exc)
                    return
                if self._stopping.is_set():
                    self._abandon(records, exc)
                    return
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("call log write failed (%s); retrying", exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, self._retry[1])
                continue
            if failing_since is not None:
                log.warning(
                    "call log writes resumed after %.1f s", time.monotonic() - failing_since
                )
            self._count(written=len(records))
            return

    def _abandon(self, records: list[Record], exc: Exception) -> None:
        """Closing while the database is down: give up on everything still queued."""
        lost = len(records)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Command):
                if item.future.set_running_or_notify_cancel():
                    item.future.set_exception(CallLogUnavailable(str(exc)))
            else:
                lost += 1
                with self._lock:
                    self._taken += 1
        self._count(lost=lost)

    def _write_each(self, records: list[Record], first: Exception) -> None:
        """A record the database refuses: write the others and drop (and log) only that one."""
        if len(records) == 1:
            log.error("call log dropped a record it cannot write: %r (%s)", records[0], first)
            self._count(lost=1)
            return
        for r in records:
            self._write([r])

    def _command(self, cmd: _Command) -> None:
        if not cmd.future.set_running_or_notify_cancel():
            return  # the caller gave up waiting
        delay = self._retry[0]
        while True:
            try:
                cmd.future.set_result(cmd.run(self.store))
                return
            except Exception as exc:
                self.store.reset()
                late = time.monotonic() + delay > cmd.deadline
                if not is_transient(exc) or late or self._stopping.is_set():
                    if is_transient(exc):
                        exc = CallLogUnavailable(f"call log {self.store.target}: {_one_line(exc)}")
                    cmd.future.set_exception(exc)
                    return
                self._stopping.wait(delay)
                delay = min(delay * 2, self._retry[1])

    def _count(self, *, written: int = 0, lost: int = 0) -> None:
        with self._lock:
            self._written += written
            self._lost += lost
            self._dropped += lost
            if written:
                self._full_logged = False
            self._lock.notify_all()

    def __enter__(self) -> CallLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(exc: BaseException) -> str:
    """A driver's message on one line (psycopg adds a tab-indented hint on a line of its own)."""
    return " ".join(str(exc).split())
