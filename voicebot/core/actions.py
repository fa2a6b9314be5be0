"""Actions: what the dialogue tells a shell to do, in order.

Plain data with no behaviour: the Twilio server turns them into TwiML, Media Streams frames and
REST calls, the chat shell into printed lines, replay into a report. ``Lookup`` lives with
lookups (``voicebot.core.lookup``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

from voicebot.core.config import Destination
from voicebot.core.lookup import Lookup


@dataclass(frozen=True, slots=True)
class Say:
    text: str
    voice: str
    language: str
    barge_in: bool = True  # the caller may interrupt it by speaking


@dataclass(frozen=True, slots=True)
class Play:
    url: str
    barge_in: bool = True


@dataclass(frozen=True, slots=True)
class Listen:
    timeout_s: float


@dataclass(frozen=True, slots=True)
class StopSpeaking:
    """Drop the rest of the queued speech: the caller talks over the bot."""


@dataclass(frozen=True, slots=True)
class SendSms:
    to: str
    body: str
    intent: str  # for the call log; "" when not tied to an intent


class TransferReason(StrEnum):
    INTENT = "intent"  # the caller's request belongs to this group
    ESCAPE = "escape"  # the caller asked for a person
    DTMF = "dtmf"  # the caller pressed 0
    NO_MATCH = "no_match"  # not understood twice
    NO_SPEECH = "no_speech"  # nothing heard twice
    MAX_TURNS = "max_turns"  # too many questions already
    ERROR = "error"  # the bot failed internally
    CLOSED_OVERFLOW = "closed_overflow"  # the intended group was closed; its overflow group
    SMS_FALLBACK = "sms_fallback"  # the answer could not be texted
    SHED = "shed"  # no room for another call: put through at the door, without the bot
    OVERLOADED = "overloaded"  # mid-call, the bot could not keep up with the caller
    LOOKUP = "lookup"  # a lookup's answer sent the caller to a group
    LOOKUP_FAILED = "lookup_failed"  # a lookup could not answer: its ``otherwise`` group
    ANNOYED_NO = "annoyed_no"  # two "no"s in a row to "is it A or B?"
    ANNOYED_REPEAT = "annoyed_repeat"  # the caller repeated a request


@dataclass(frozen=True, slots=True)
class TransferContext:
    """What the agent's screen shows, so the caller need not repeat themselves."""

    intent: str | None
    transcript: str | None
    confidence: float | None
    language: str
    reason: TransferReason
    # The caller's calls within recall.days (recall on, number known): how many, the last one's
    # intent and day (ISO date). Flat values: they become TaskRouter attributes and the whisper.
    recent_calls: int | None = None
    last_intent: str | None = None
    last_call: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    group: str
    destination: Destination
    context: TransferContext


class HangUpReason(StrEnum):
    GOODBYE = "goodbye"  # the caller was served and has nothing else
    CLOSED = "closed"  # the group was closed and had no overflow
    ERROR = "error"  # not even a transfer could be built


@dataclass(frozen=True, slots=True)
class HangUpCall:
    reason: HangUpReason


Action: TypeAlias = Say | Play | Listen | StopSpeaking | SendSms | Transfer | HangUpCall | Lookup
