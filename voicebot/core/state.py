"""A call's state between events, and how it ended (``Outcome``) for the call log.

Immutable: every step of the dialogue returns a new ``State``, so a shell can keep the old one,
compare, or log what changed (``progress``) without copying.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from voicebot.core.match import Match, Scored
from voicebot.core.recall import CallerHistory


class OutcomeKind(StrEnum):
    TRANSFERRED = "transferred"
    SMS_SENT = "sms_sent"  # served by a texted link, then said goodbye
    ANNOUNCED = "announced"  # served by an announcement or a read answer, then said goodbye
    CLOSED = "closed"  # the group was closed and had no overflow: told so, then goodbye
    CALLER_HUNG_UP = "caller_hung_up"
    ERROR = "error"  # not even a transfer could be built (broken configuration)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the call ended, for the call log."""

    kind: OutcomeKind
    turns: int  # questions the bot asked
    reason: str | None = None  # transfer reason, or why the bot hung up
    group: str | None = None
    intent: str | None = None  # the last intent recognised
    after: str | None = None  # the last prompt before the end, e.g. "announcement:xmas"
    served: tuple[str, ...] = ()  # intents answered without a person, in order
    # (intent, answered) per lookup made: False when it failed and the caller was handed over
    lookups: tuple[tuple[str, bool], ...] = ()
    recalled: str | None = None  # the intent a repeat caller was asked about
    recall_answer: str | None = None  # "yes", "no", "other" (a request); None: no answer

    def __str__(self) -> str:
        parts = [self.kind.value, f"turns={self.turns}"]
        for name in ("reason", "group", "intent", "after"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value}")
        if self.served:
            parts.append("served=" + ",".join(self.served))
        if self.lookups:
            parts.append(
                "lookups=" + ",".join(f"{i}:{'ok' if ok else 'failed'}" for i, ok in self.lookups)
            )
        if self.recalled:
            parts.append(f"recalled={self.recalled}:{self.recall_answer or '-'}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Progress:
    """What a call has come to so far (``State.progress``): what a call log writes as it
    changes, so a call whose process dies still says what the caller asked for and got."""

    intent: str | None
    served: tuple[str, ...]
    after: str | None  # the last prompt
    turns: int


class Phase(StrEnum):
    NEW = "new"  # waiting for CallStarted
    ASKING = "asking"  # listening for why the caller calls
    CLARIFYING = "clarifying"  # listening for the answer to "A or B?"
    ANYTHING_ELSE = "anything_else"  # listening after the caller was served
    SMS_PENDING = "sms_pending"  # waiting for SmsResult
    LOOKUP_PENDING = "lookup_pending"  # waiting for LookupResult
    RECALLING = "recalling"  # listening for the answer to "are you calling about X again?"
    ENDED = "ended"


LISTENING = frozenset({Phase.ASKING, Phase.CLARIFYING, Phase.ANYTHING_ELSE, Phase.RECALLING})


class Awaiting(StrEnum):
    """What a call waits for from its shell (``State.waiting_for``)."""

    LISTEN = "listen"  # the caller's speech (or a key, or silence)
    SMS = "sms"  # the result of the SendSms just returned
    LOOKUP = "lookup"  # the result of the Lookup just returned


@dataclass(frozen=True, slots=True)
class State:
    phase: Phase = Phase.NEW
    caller: str | None = None
    call_id: str = ""
    turns: int = 0  # Listens issued; capped by config.max_turns
    failures: int = 0  # silences and misunderstandings since the last recognised request
    options: tuple[Scored, ...] = ()  # the two candidates while clarifying
    intent: str | None = None  # the intent being served (or last recognised)
    transcript: str | None = None  # what the caller said last
    confidence: float | None = None  # the recognised intent's score
    served: tuple[str, ...] = ()
    served_kind: OutcomeKind | None = None
    barge_in: bool = False  # a Partial now stops the bot's speech
    after: str = ""  # tag of the last prompt, for the outcome of a caller hang-up
    outcome: Outcome | None = None
    # The Match the latest event was classified as, for the call log; None when it was not
    # classified as a request (key, escape word, silence, a yes/no answer taken as such).
    # An ended call ignores events and keeps the last one's.
    match: Match | None = None
    history: CallerHistory | None = None  # the caller's recent calls (CallStarted.history)
    recalled: str | None = None  # the intent a repeat caller was asked about
    recall_answer: str | None = None
    lookups: tuple[tuple[str, bool], ...] = ()  # (intent, answered) per lookup
    noes: int = 0  # "no"s in a row to "is it A or B?"

    @property
    def ended(self) -> bool:
        return self.outcome is not None

    @property
    def progress(self) -> Progress:
        return Progress(self.intent, self.served, self.after or None, self.turns)

    @property
    def waiting_for(self) -> Awaiting | None:
        """What the shell should deliver next: speech, an SMS result, or nothing (ended)."""
        if self.phase in LISTENING:
            return Awaiting.LISTEN
        if self.phase is Phase.LOOKUP_PENDING:
            return Awaiting.LOOKUP
        return Awaiting.SMS if self.phase is Phase.SMS_PENDING else None
