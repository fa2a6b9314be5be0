"""What the server tells the call log about each call, as a typed interface.

The hooks are methods of a ``Protocol`` called directly (not looked up by name), so mypy checks
every call against the call log's signatures. ``NoObserver`` is the default, so the call path
has no "is there an observer?" branches; ``GuardedObserver`` wraps the real one because a call
log that fails (disk full, database gone) must never take a call down with it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Protocol

from voicebot.core.actions import Action
from voicebot.core.events import Event
from voicebot.core.match import Match
from voicebot.core.state import Outcome, Progress

__all__ = ["CallObserver", "GuardedObserver", "NoObserver"]

log = logging.getLogger(__name__)


class CallObserver(Protocol):
    """Hook for the call log (``voicebot.calllog.log.CallLog`` fits): must not block or raise.

    Per call: ``call_started``, then each dialogue event (with the Match an Utterance got)
    followed by the actions it caused (and ``call_progress`` when what the call has come to
    changed), then ``call_ended`` once the call has an outcome. Several
    instances may observe parts of one call. ``call_closed``: Twilio reported the end of a call
    no session here holds; the outcome stands only if no instance logged the real one.
    ``transfer_transcript`` is the one read: it may block briefly (run it in a thread).
    """

    def call_started(
        self, call_id: str, at: dt.datetime, language: str | None, caller: str | None
    ) -> None: ...

    def event(self, call_id: str, event: Event, match: Match | None = None) -> None: ...

    def actions(self, call_id: str, at: dt.datetime, actions: Iterable[Action]) -> None: ...

    def call_progress(self, call_id: str, at: dt.datetime, progress: Progress) -> None:
        """What the call has come to so far (intent, what was served, last prompt, turns),
        each time it changes: kept in the call's row if its process dies before the end."""
        ...

    def call_ended(self, call_id: str, at: dt.datetime, outcome: Outcome) -> None: ...

    def transfer_transcript(self, call_id: str) -> str | None:
        """What the caller said before the call's last transfer, for the agent's whisper on
        any instance; None when unknown."""
        ...

    def call_closed(self, call_id: str, at: dt.datetime, outcome: Outcome) -> None: ...


class NoObserver:
    """Nobody is listening (tests, the benchmark): every hook does nothing."""

    def call_started(
        self, call_id: str, at: dt.datetime, language: str | None, caller: str | None
    ) -> None:
        pass

    def event(self, call_id: str, event: Event, match: Match | None = None) -> None:
        pass

    def actions(self, call_id: str, at: dt.datetime, actions: Iterable[Action]) -> None:
        pass

    def call_progress(self, call_id: str, at: dt.datetime, progress: Progress) -> None:
        pass

    def call_ended(self, call_id: str, at: dt.datetime, outcome: Outcome) -> None:
        pass

    def transfer_transcript(self, call_id: str) -> str | None:
        return None

    def call_closed(self, call_id: str, at: dt.datetime, outcome: Outcome) -> None:
        pass


class GuardedObserver:
    """Passes each hook on to ``inner``; an exception there is logged, never raised."""

    def __init__(self, inner: CallObserver) -> None:
        self.inner = inner

    def call_started(
        self, call_id: str, at: dt.datetime, language: str | None, caller: str | None
    ) -> None:
        try:
            self.inner.call_started(call_id, at, language, caller)
        except Exception:
            log.exception("call observer call_started failed")

    def event(self, call_id: str, event: Event, match: Match | None = None) -> None:
        try:
            self.inner.event(call_id, event, match)
        except Exception:
            log.exception("call observer event failed")

    def actions(self, call_id: str, at: dt.datetime, actions: Iterable[Action]) -> None:
        try:
            self.inner.actions(call_id, at, actions)
        except Exception:
            log.exception("call observer actions failed")

    def call_progress(self, call_id: str, at: dt.datetime, progress: Progress) -> None:
        try:
            self.inner.call_progress(call_id, at, progress)
        except Exception:
            log.exception("call observer call_progress failed")

    def call_ended(self, call_id: str, at: dt.datetime, outcome: Outcome) -> None:
        try:
            self.inner.call_ended(call_id, at, outcome)
        except Exception:
            log.exception("call observer call_ended failed")

    def transfer_transcript(self, call_id: str) -> str | None:
        try:
            return self.inner.transfer_transcript(call_id)
        except Exception:
            log.warning("call observer transfer_transcript failed", exc_info=True)
            return None

    def call_closed(self, call_id: str, at: dt.datetime, outcome: Outcome) -> None:
        try:
            self.inner.call_closed(call_id, at, outcome)
        except Exception:
            log.exception("call observer call_closed failed")
