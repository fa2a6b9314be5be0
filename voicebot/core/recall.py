"""Repeat callers: what the call log knows about a caller's recent calls, and what the bot does
with it.

The shell looks the caller's (hashed) number up in the call log when recall is on and hands the
result to the dialogue in ``CallStarted.history``; the dialogue decides. A caller whose last call
within ``recall.days`` went to an intent the robot did not solve is asked "are you calling about
<label> again?" instead of the open greeting. The agent who takes the call sees the history too
(``TransferContext.history``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from voicebot.core.config import LanguageConfig


@dataclass(frozen=True, slots=True)
class CallerHistory:
    """The caller's calls within ``recall.days`` before this one (this one not counted)."""

    calls: int
    last_intent: str | None  # the intent the last call was about; None when none was recognised
    last_at: dt.datetime | None  # when the last call started
    last_solved: bool  # the robot answered the last call's intent (announcement, SMS, lookup)

    def summary(self) -> str:
        """One line for an agent's screen and the chat: "2 calls, last 2026-05-04 (invoice)",
        or "none"."""
        if self.calls == 0:
            return "none"
        when = self.last_at.date().isoformat() if self.last_at is not None else "?"
        about = f" ({self.last_intent})" if self.last_intent else ""
        return f"{self.calls} call{'s' if self.calls != 1 else ''}, last {when}{about}"


def recall_intent(history: CallerHistory | None, config: LanguageConfig) -> str | None:
    """The intent to ask a repeat caller about, or None: recall off, no recent call, the last
    one was solved by the robot or had no intent, or its intent is gone from the config."""
    if config.recall is None or history is None or history.calls == 0:
        return None
    intent = history.last_intent
    if intent is None or history.last_solved or intent not in config.intents:
        return None
    return intent
