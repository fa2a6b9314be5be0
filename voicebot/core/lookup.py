"""Self-service lookups: what the dialogue asks the organisation's system, and what it accepts back.

A ``lookup`` intent makes the dialogue return a ``Lookup`` action (the shell POSTs it, see
``voicebot.shells.lookup``) and wait for a ``LookupResult`` event. The core never does I/O, but
it decides what an answer may do: ``answer_problem`` is the one rule both the shell (so the
logged event says what was wrong) and the dialogue (so a shell that forgot cannot make the bot
say something broken) apply. Whatever is wrong, the caller hears no error: the dialogue puts
them through to the intent's ``otherwise`` group.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from voicebot.core.config import LanguageConfig

# A spoken answer longer than this is a page read aloud, not an answer: the endpoint is broken
# (or returned a document), and a person serves the caller better. ~20 s of speech.
MAX_SAY_CHARS = 300
MAX_SMS_CHARS = 640  # four SMS segments; beyond that the text is not meant for a phone


@dataclass(frozen=True, slots=True)
class Lookup:
    """Action: POST this request to ``url`` and report a ``LookupResult`` within ``timeout_s``.
    ``caller`` is pseudonymised in the call log like every number field."""

    url: str
    intent: str
    transcript: str
    language: str
    caller: str | None
    call_id: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    """The endpoint's answer, parsed: ``say`` is spoken, then optionally ``sms`` is texted,
    the call ``transfer``red to a group, or hung up (``hangup``)."""

    say: str
    sms: str | None = None
    transfer: str | None = None
    hangup: bool = False


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Event: how the lookup went. ``answer`` is None when it failed; ``error`` says why
    (timeout, HTTP status, bad JSON, ...) for the call log."""

    answer: LookupAnswer | None
    error: str
    at: dt.datetime

    @property
    def ok(self) -> bool:
        return self.answer is not None


def answer_problem(answer: LookupAnswer, config: LanguageConfig) -> str | None:
    """Why the dialogue must not act on ``answer`` (None: it may)."""
    if not answer.say.strip():
        return "the answer has no 'say'"
    if len(answer.say) > MAX_SAY_CHARS:
        return f"'say' is {len(answer.say)} characters, more than {MAX_SAY_CHARS}"
    if answer.sms is not None and not answer.sms.strip():
        return "'sms' is empty"
    if answer.sms is not None and len(answer.sms) > MAX_SMS_CHARS:
        return f"'sms' is {len(answer.sms)} characters, more than {MAX_SMS_CHARS}"
    if answer.transfer is not None and answer.transfer not in config.groups:
        return f"'transfer' names the unknown group {answer.transfer!r}"
    if sum((answer.sms is not None, answer.transfer is not None, answer.hangup)) > 1:
        return "the answer may have only one of 'sms', 'transfer' and 'hangup'"
    return None
