"""Scripted text calls into the call log, logged step by step the way the server logs a call.

Demo data, the dashboard tests and the dashboard screenshot (docs/deployment.md) fill a log this
way: the real dialogue decides, only the caller's lines (and the matcher behind ``classify``) are
made up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from voicebot.calllog.log import CallLog
from voicebot.core.config import LanguageConfig
from voicebot.core.dialogue import (
    Action,
    CallStarted,
    Classify,
    Dialogue,
    Event,
    HangUp,
    SendSms,
    SilenceTimeout,
    SmsResult,
    Utterance,
)

__all__ = ["LoggedDialogue", "log_text_call"]

Alternatives = tuple[tuple[str, float], ...]


class LoggedDialogue(Dialogue):
    """A dialogue that logs each event it handles (with the Match the dialogue reported) and
    then the actions it caused, as the server does: text shells (chat, scripted calls) leave
    the same timeline in a call log as a phone call."""

    def __init__(
        self, config: LanguageConfig, classify: Classify, log: CallLog, call_id: str
    ) -> None:
        super().__init__(config, classify)
        self.log = log
        self.call_id = call_id

    def handle(self, event: Event) -> list[Action]:
        actions = super().handle(event)
        self.log.event(self.call_id, event, self.match)
        self.log.actions(self.call_id, event.at, actions)
        return actions


def log_text_call(
    log: CallLog,
    config: LanguageConfig,
    classify: Classify,
    call_id: str,
    caller: str | None,
    start: dt.datetime,
    lines: Iterable[str],
    *,
    turn_s: float = 5.0,
    n_best: Callable[[str], Alternatives] = lambda line: ((line, 0.9),),
) -> Dialogue:
    """One call: a line per turn, ``turn_s`` apart ("" is silence, "/hangup" hangs up), until
    the dialogue ends or the lines run out; every SMS is sent a second later. Each event is
    logged with the Match the dialogue reported for it, then the actions it caused; the end
    is logged only when the call has an outcome."""
    dialogue = LoggedDialogue(config, classify, log, call_id)
    log.call_started(call_id, start, config.language, caller)

    def handle(event: Event) -> None:
        actions = dialogue.handle(event)
        for a in actions:
            if isinstance(a, SendSms):
                handle(SmsResult(True, "queued", event.at + dt.timedelta(seconds=1)))

    at = start
    handle(CallStarted(start, caller, call_id))
    for line in lines:
        if dialogue.ended:
            break
        at += dt.timedelta(seconds=turn_s)
        if line == "/hangup":
            handle(HangUp(at))
        elif line == "":
            handle(SilenceTimeout(at))
        else:
            handle(Utterance(n_best(line), at))
    if dialogue.outcome is not None:
        log.call_ended(call_id, at, dialogue.outcome)
    return dialogue
