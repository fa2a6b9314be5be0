"""Pure parts of the call log: caller-number privacy, event/action payloads and the rows read back.

Caller numbers are personal data. Every stored number goes through ``NumberPolicy``: the salted
HMAC (``phone.hash_number``) is always kept so ``forget(number)`` can find a caller's calls, and
the readable form is nothing (``hash``, the default), ``phone.mask()`` (``mask``) or the number
itself (``clear``, only when configured). Numbers inside payloads (CallStarted.caller,
SendSms.to) get the same treatment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from voicebot.core.match import Scored
from voicebot.core.phone import hash_number, is_withheld, mask, normalize
from voicebot.errors import VoicebotError

SALT_ENV = "VOICEBOT_NUMBER_SALT"
SALT_FILE = "number_salt"
RANKED_KEPT = 5  # top intents stored per utterance


class StoreNumbers(StrEnum):
    HASH = "hash"  # only the salted HMAC
    MASK = "mask"  # HMAC plus +46******4567
    CLEAR = "clear"  # HMAC plus the number itself


class SaltFileError(VoicebotError, ValueError):
    """The number-salt file cannot be used."""


def resolve_salt(
    explicit: str | None, directory: Path, env: Mapping[str, str] | None = None
) -> str:
    """The salt for number hashes: given, else $VOICEBOT_NUMBER_SALT, else a random one kept in
    ``directory/number_salt`` (created once, mode 0600). Several hosts sharing one PostgreSQL
    must share the salt through the environment, or their hashes of one number differ."""
    env = os.environ if env is None else env
    if explicit:
        return explicit
    if env.get(SALT_ENV):
        return env[SALT_ENV]
    path = directory / SALT_FILE
    try:
        return _read_salt(path)
    except FileNotFoundError:
        pass
    directory.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return _read_salt(path)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return _read_salt(path)


def salt_source(explicit: str | None, directory: Path, env: Mapping[str, str] | None = None) -> str:
    """Where ``resolve_salt`` takes the salt from, in words for an error message."""
    env = os.environ if env is None else env
    if explicit:
        return "given by the program"
    if env.get(SALT_ENV):
        return f"${SALT_ENV}"
    return f"the file {directory / SALT_FILE}"


def _read_salt(path: Path) -> str:
    salt = path.read_text().strip()
    if not salt:
        raise SaltFileError(f"{path} is empty: delete it to generate a new number salt")
    return salt


def read_salt_file(path: Path) -> str:
    """The salt kept in a file ops chose (``--number-salt-file``, e.g. a secret the service
    manager mounts): unlike the data folder's own file it is never created, since a missing
    secret must not silently become a new salt that ``forget`` cannot match."""
    try:
        salt = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not text"
        raise SaltFileError(f"cannot read the number salt file {path}: {reason}") from None
    if not salt:
        raise SaltFileError(f"the number salt file {path} is empty; write the salt into it")
    return salt


def salt_fingerprint(salt: str) -> str:
    """Stored in the database so opening it with another salt fails loudly, not silently."""
    return hmac.new(salt.encode(), b"voicebot call log salt check", hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class NumberPolicy:
    salt: str
    store: StoreNumbers = StoreNumbers.HASH
    salt_source: str = "given by the program"  # where ``salt`` came from, for error messages

    def hash(self, number: str | None) -> str | None:
        return None if is_withheld(number) or number is None else hash_number(number, self.salt)

    def readable(self, number: str | None) -> str | None:
        """What the ``caller`` column holds: None in hash mode."""
        if self.store is StoreNumbers.HASH:
            return None
        if self.store is StoreNumbers.MASK:
            return mask(number)
        return None if number is None else normalize(number) or number

    def in_payload(self, number: str | None) -> str | None:
        """How a number appears inside a stored event: the readable form, else the hash."""
        if number is None:
            return None
        if self.store is StoreNumbers.HASH:
            return "<withheld>" if is_withheld(number) else f"hmac:{self.hash(number)}"
        return self.readable(number)


# The fields of dialogue events and actions that hold a phone number (CallStarted.caller,
# SendSms.to): pseudonymised when stored, masked again when the dashboard shows a payload.
NUMBER_FIELDS = frozenset({"caller", "to"})


def payload(obj: object, policy: NumberPolicy) -> dict[str, Any]:
    """A dialogue event or action as a JSON-able dict: its fields without ``at``, numbers
    pseudonymised, enums as values, nested dataclasses as dicts."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"not a dialogue event or action: {obj!r}")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name == "at":
            continue
        value = getattr(obj, f.name)
        if f.name in NUMBER_FIELDS and (value is None or isinstance(value, str)):
            out[f.name] = policy.in_payload(value)
        else:
            out[f.name] = _plain(value)
    return out


def _plain(value: object) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def ts(at: dt.datetime) -> str:
    """Fixed-width UTC text that sorts like time; naive times are taken as UTC."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


# ---------------------------------------------------------------------------------------------
# Rows read back


@dataclass(frozen=True, slots=True)
class CallRow:
    """One call as stored; outcome fields are None while the call runs (or if it never ended)."""

    call_id: str
    started_at: dt.datetime
    language: str | None
    caller: str | None  # masked or clear number per the policy; None when hashed or purged
    ended_at: dt.datetime | None = None
    outcome: str | None = None  # OutcomeKind value
    reason: str | None = None
    group: str | None = None
    intent: str | None = None
    after: str | None = None  # the last prompt before the end, e.g. "announcement:xmas"
    turns: int | None = None
    served: tuple[str, ...] = ()
    decided_at: dt.datetime | None = None
    lookups: tuple[tuple[str, bool], ...] = ()  # (intent, answered) per lookup made
    recalled: str | None = None  # the intent a repeat caller was asked about
    recall_answer: str | None = None  # "yes", "no" or "other"

    @property
    def duration_s(self) -> float | None:
        return seconds(self.started_at, self.ended_at)

    @property
    def decision_s(self) -> float | None:
        """Seconds from the start to the first decision: an accepted match, a transfer, an SMS
        or the bot hanging up."""
        return seconds(self.started_at, self.decided_at)


@dataclass(frozen=True, slots=True)
class UtteranceRow:
    call_id: str
    seq: int
    at: dt.datetime
    transcript: str | None  # None once purged
    alternatives: tuple[tuple[str, float], ...]  # n-best; empty once purged
    verdict: str | None  # Verdict value; None when no match was logged
    intent: str | None  # the best-ranked intent
    score: float | None
    ranked: tuple[Scored, ...] = ()


@dataclass(frozen=True, slots=True)
class EventRow:
    """One entry of a call's timeline: ``kind`` is "event" or "action", ``type`` its class."""

    call_id: str
    seq: int
    at: dt.datetime
    kind: str
    type: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rows:
    calls: list[CallRow]
    utterances: list[UtteranceRow]

    def in_language(self, language: str | None) -> Rows:
        """Only the calls answered in ``language`` (each line answers in its own; None: all)."""
        if language is None:
            return self
        calls = [c for c in self.calls if c.language == language]
        ids = {c.call_id for c in calls}
        return Rows(calls, [u for u in self.utterances if u.call_id in ids])


@dataclass(frozen=True, slots=True)
class Purged:
    """What ``purge()`` removed: timeline entries deleted, transcripts blanked, callers erased."""

    events: int
    transcripts: int
    callers: int


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What ``forget(number)`` deleted."""

    calls: int
    events: int
    utterances: int
