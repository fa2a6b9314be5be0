"""Text simulator: a person types what a caller says and sees what the bot does.

It is a shell around the same dialogue core the telephone uses; it only turns lines of text into
events and actions into printed lines. Simulated time advances a few seconds per turn so opening
hours and announcement windows behave as on a real call made at ``--at``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

from voicebot.calllog.log import CallLog
from voicebot.calllog.scripted import start_logged_call
from voicebot.core.actions import (
    Action,
    HangUpCall,
    Listen,
    Play,
    Say,
    SendSms,
    StopSpeaking,
    Transfer,
)
from voicebot.core.config import LanguageConfig
from voicebot.core.dialogue import Dialogue
from voicebot.core.events import (
    CallStarted,
    Dtmf,
    Event,
    HangUp,
    SilenceTimeout,
    SmsResult,
    Utterance,
)
from voicebot.core.lookup import Lookup
from voicebot.core.match import Match
from voicebot.core.recall import CallerHistory
from voicebot.matching.matcher import Matcher
from voicebot.shells.lookup import lookup

SECONDS_PER_TURN = 6

HELP = (
    "Type what the caller says. An empty line is silence; digits (0-9, *, #) are key presses;"
    " /hangup hangs up; /help shows this."
)


@dataclass(frozen=True, slots=True)
class ChatOptions:
    caller: str | None
    at: dt.datetime
    sms_works: bool = True  # False simulates an SMS gateway failure
    explain: bool = False  # print the matcher's top intents and scores for each utterance
    top: int = 3  # how many intents ``explain`` shows
    lookup_secret: str | None = None  # signs lookups (``voicebot.shells.lookup``)
    call_id: str = ""
    history: CallerHistory | None = None  # the caller's recent calls (``--database``, recall)


def describe(action: Action) -> str:
    """One line a tester can read (and grep) per action."""
    match action:
        case Say(text=text):
            return f"bot: {text}"
        case Play(url=url):
            return f"bot: [plays {url}]"
        case Listen(timeout_s=timeout):
            return f"(listening, {timeout:g} s)"
        case StopSpeaking():
            return "(stops speaking)"
        case SendSms(to=to, body=body):
            return f"SMS to {to}: {body}"
        case Transfer(group=group, destination=destination, context=context):
            recent = ""
            if context.recent_calls is not None:
                recent = (
                    f" recent_calls={context.recent_calls}"
                    f" last_intent={context.last_intent or '-'} last_call={context.last_call}"
                )
            return (
                f"TRANSFER to {group} ({destination}) reason={context.reason}"
                f" intent={context.intent or '-'}{recent}"
            )
        case HangUpCall(reason=reason):
            return f"HANG UP ({reason})"
        case Lookup(url=url, intent=intent):
            return f"LOOKUP {intent}: POST {url}"
    return repr(action)


def explain(match: Match, top: int = 3) -> str:
    """One line on how an utterance was understood: the verdict and the best intents' scores,
    so a tester sees how close the runner-up was and which phrase to add where."""
    ranked = "  ".join(f"{s.intent} {s.score:.2f}" for s in match.ranked[:top]) or "no intent"
    return f"  (matched {match.text!r}: {match.verdict.value}; {ranked})"


def line_to_event(line: str, at: dt.datetime) -> Event | None:
    """Parse one typed line; None for a command the chat handles itself."""
    text = line.strip()
    if text == "":
        return SilenceTimeout(at=at)
    if text == "/hangup":
        return HangUp(at=at)
    if all(ch in "0123456789*#" for ch in text):
        return Dtmf(digit=text[0], at=at)
    if text.startswith("/"):
        return None
    return Utterance(alternatives=((text, 1.0),), at=at)


def run_chat(
    config: LanguageConfig,
    matcher: Matcher,
    options: ChatOptions,
    lines: Iterable[str],
    out: TextIO,
    prompt: str = "",
    log: CallLog | None = None,
) -> Dialogue:
    """Drive one call from typed lines until it ends or input runs out (which hangs up); with
    ``log``, the call is recorded in that call log as the server records a phone call."""
    matched: list[Match] = []

    def classify(alternatives: Sequence[tuple[str, float]]) -> Match:
        match = matcher.match_alternatives(alternatives)
        matched.append(match)
        return match

    at = options.at
    dialogue = Dialogue(config, classify)
    if log is not None:
        dialogue = start_logged_call(log, config, classify, options.call_id, at, options.caller)
    if options.history is not None:
        out.write(f"(caller's recent calls: {options.history.summary()})\n")
    started = CallStarted(at, options.caller, options.call_id, options.history)
    emit(dialogue.start(started), dialogue, options, out)
    iterator = iter(lines)
    while not dialogue.ended:
        if prompt:
            out.write(prompt)
            out.flush()
        line = next(iterator, None)
        at += dt.timedelta(seconds=SECONDS_PER_TURN)
        if line is None:
            emit(dialogue.handle(HangUp(at=at)), dialogue, options, out)
            break
        event = line_to_event(line, at)
        if event is None:
            out.write(HELP + "\n")
            continue
        if isinstance(event, Dtmf):
            for digit in line.strip():
                emit(dialogue.handle(Dtmf(digit=digit, at=at)), dialogue, options, out)
            continue
        actions = dialogue.handle(event)
        if options.explain:
            for match in matched:
                out.write(explain(match, options.top) + "\n")
        matched.clear()
        emit(actions, dialogue, options, out)
    if dialogue.outcome is not None:
        out.write(f"outcome: {dialogue.outcome}\n")
        if log is not None:
            log.call_ended(options.call_id, at, dialogue.outcome)
    return dialogue


def emit(actions: list[Action], dialogue: Dialogue, options: ChatOptions, out: TextIO) -> None:
    """Print actions; an SMS is "sent" by the chat and its result fed back to the core after;
    a lookup is made for real and its result (or why it failed) shown and fed back."""
    sms = [a for a in actions if isinstance(a, SendSms)]
    for action in actions:
        out.write(describe(action) + "\n")
    for request in (a for a in actions if isinstance(a, Lookup)):
        looked = lookup(request, dialogue.config, options.at, secret=options.lookup_secret)
        out.write(f"(lookup {'answered' if looked.ok else 'failed: ' + looked.error})\n")
        emit(dialogue.handle(looked), dialogue, options, out)
    for _ in sms:
        detail = "sent" if options.sms_works else "simulated gateway failure"
        result = SmsResult(ok=options.sms_works, detail=detail, at=options.at)
        emit(dialogue.handle(result), dialogue, options, out)
