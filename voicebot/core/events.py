"""Events: what a shell observed on a call, the dialogue's only input.

Each carries the moment it happened (``at``), so the dialogue never reads a clock: replaying
the same events gives the same decisions. ``LookupResult`` lives with lookups
(``voicebot.core.lookup``), where the answer it carries is defined.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TypeAlias

from voicebot.core.lookup import LookupResult
from voicebot.core.recall import CallerHistory


@dataclass(frozen=True, slots=True)
class CallStarted:
    at: dt.datetime
    caller: str | None  # E.164 number, or None when withheld
    call_id: str = ""
    history: CallerHistory | None = None  # the caller's recent calls, when recall is on


@dataclass(frozen=True, slots=True)
class Utterance:
    alternatives: tuple[tuple[str, float], ...]  # n-best transcripts with confidence
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Partial:
    """The caller started speaking (a partial transcript): the cue for barge-in."""

    text: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class SilenceTimeout:
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class SmsResult:
    ok: bool
    detail: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class HangUp:
    """The caller hung up."""

    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Failure:
    """The shell hit an internal error; the caller must still reach a person."""

    error: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Overloaded:
    """The shell cannot serve this call in real time (it has no room for another call, or
    this call's audio waits too long to be decoded): a person takes over now rather than a
    slow robot. How busy is busy is the shell's business; the dialogue only decides where
    the caller goes. ``partial``: the words heard so far, which may already name the request.
    Before ``CallStarted`` it means the call is refused at the door (no greeting)."""

    at: dt.datetime
    partial: str = ""


Event: TypeAlias = (
    CallStarted
    | Utterance
    | Partial
    | Dtmf
    | SilenceTimeout
    | SmsResult
    | HangUp
    | Failure
    | Overloaded
    | LookupResult
)
