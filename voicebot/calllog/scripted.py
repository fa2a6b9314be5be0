"""Calls made outside the server into the call log, logged step by step the way the server logs
a call, and recalled from it the way the server recalls a caller.

Demo data, the dashboard tests and the dashboard screenshot (docs/deployment.md) fill a log this
way: the real dialogue decides, only the caller's lines (and the matcher behind ``classify``) are
made up. ``voicebot chat --database`` and ``voicebot replay --database`` record their calls with
the same two helpers (``caller_recall``, ``start_logged_call``), so a second call of the same
caller is recalled in both exactly as on the phone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from voicebot.calllog.log import CallLog
from voicebot.core.actions import Action, SendSms
from voicebot.core.config import LanguageConfig
from voicebot.core.dialogue import Classify, Dialogue
from voicebot.core.events import CallStarted, Event, HangUp, SilenceTimeout, SmsResult, Utterance
from voicebot.core.recall import CallerHistory

__all__ = ["LoggedDialogue", "caller_recall", "log_text_call", "start_logged_call"]

RECALL_TIMEOUT_S = 5.0  # a tester's call may wait for the database longer than a caller would

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


def caller_recall(
    log: CallLog, config: LanguageConfig, caller: str | None, at: dt.datetime, call_id: str
) -> CallerHistory | None:
    """The caller's recent calls for ``CallStarted.history``, as the server looks them up;
    None with recall off (then nothing is read) or a withheld number."""
    if config.recall is None:
        return None
    return log.caller_history(caller, config.recall.days, at, call_id, timeout=RECALL_TIMEOUT_S)


def start_logged_call(
    log: CallLog,
    config: LanguageConfig,
    classify: Classify,
    call_id: str,
    at: dt.datetime,
    caller: str | None,
) -> LoggedDialogue:
    """Log the start of a call and return the dialogue that logs the rest of it; the caller
    logs ``call_ended`` once the dialogue has an outcome."""
    log.call_started(call_id, at, config.language, caller)
    return LoggedDialogue(config, classify, log, call_id)


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
    dialogue = start_logged_call(log, config, classify, call_id, start, caller)

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
