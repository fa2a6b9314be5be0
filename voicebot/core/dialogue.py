"""The call dialogue: every decision a call makes, as a pure state machine.

Shells (Twilio, WAV replay, microphone, text chat) turn the world into events and carry out the
returned actions; none of them decides anything, so a call behaves the same everywhere and every
rule can be tested without audio or a network. ``step`` never raises: whatever goes wrong, the
caller is put through to a person rather than left in silence.

Its vocabulary lives beside it: ``events`` (what the shell observed), ``actions`` (what the
shell must do) and ``state`` (a call between events, and its outcome). The transitions stay in
this one module, long on purpose: every transition is a small function calling the others (ask,
fail, clarify, serve, route, end), so splitting them would scatter one call's path over files
that only make sense together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeAlias

from voicebot.core.actions import (
    Action,
    HangUpCall,
    HangUpReason,
    Listen,
    Play,
    Say,
    SendSms,
    StopSpeaking,
    Transfer,
    TransferContext,
    TransferReason,
)
from voicebot.core.config import (
    ActionKind,
    AgentGroup,
    Announcement,
    IntentAction,
    LanguageConfig,
    SmsFallback,
    default_sms_text,
)
from voicebot.core.events import (
    CallStarted,
    Dtmf,
    Event,
    Failure,
    HangUp,
    Overloaded,
    Partial,
    SilenceTimeout,
    SmsResult,
    Utterance,
)
from voicebot.core.lookup import Lookup, LookupResult, answer_problem
from voicebot.core.match import Match, Scored, Verdict, option
from voicebot.core.phone import can_receive_sms
from voicebot.core.recall import CallerHistory, recall_intent
from voicebot.core.state import LISTENING, Outcome, OutcomeKind, Phase, State
from voicebot.core.text import contains_phrase, words

MAX_FAILURES = 2  # silences or misunderstandings per request before a person takes over
ANNOYED_NOES = 2  # "no"s in a row to "is it A or B?" before the caller is put through

Classify: TypeAlias = Callable[[Sequence[tuple[str, float]]], Match]
Transition: TypeAlias = tuple[State, list[Action]]  # the next state, and what to do

# Transfers that follow from what the caller asked (their context names the intent).
_ROUTED_REASONS = frozenset(
    {
        TransferReason.INTENT,
        TransferReason.CLOSED_OVERFLOW,
        TransferReason.SMS_FALLBACK,
        TransferReason.LOOKUP,
        TransferReason.LOOKUP_FAILED,
        TransferReason.ANNOYED_NO,
        TransferReason.ANNOYED_REPEAT,
    }
)

# ---------------------------------------------------------------------------------------------
# Public entry points


def step(state: State, event: Event, config: LanguageConfig, classify: Classify) -> Transition:
    """The next state and the actions to carry out; never raises."""
    if state.ended:
        return state, []
    state = replace(state, match=None)
    if isinstance(event, Failure):
        return _error(state, config)
    try:
        new, actions = _dispatch(state, event, _Ctx(config, event.at, classify))
        return _settle(new, actions)
    except Exception:
        return _error(state, config)


class Dialogue:
    """Keeps the current state of one call for shells that prefer an object."""

    def __init__(self, config: LanguageConfig, classify: Classify) -> None:
        self.config = config
        self.classify = classify
        self.state = State()

    def start(self, event: CallStarted) -> list[Action]:
        return self.handle(event)

    def handle(self, event: Event) -> list[Action]:
        self.state, actions = step(self.state, event, self.config, self.classify)
        return actions

    @property
    def ended(self) -> bool:
        return self.state.ended

    @property
    def outcome(self) -> Outcome | None:
        return self.state.outcome

    @property
    def match(self) -> Match | None:
        """What the last event handled was classified as (``State.match``)."""
        return self.state.match


# ---------------------------------------------------------------------------------------------
# Dispatch


@dataclass(frozen=True, slots=True)
class _Ctx:
    config: LanguageConfig
    at: dt.datetime
    classify: Classify

    def say(self, text: str) -> Say:
        return Say(text, self.config.voice, self.config.language)

    def listen(self) -> Listen:
        """Silence longer than the language's no-speech timeout makes the shell send
        SilenceTimeout; chat shows the figure, audio shells enforce it in the recogniser."""
        return Listen(self.config.speech.no_speech_timeout_s)


def _dispatch(s: State, e: Event, c: _Ctx) -> Transition:
    if isinstance(e, HangUp):
        outcome = Outcome(
            OutcomeKind.CALLER_HUNG_UP,
            s.turns,
            intent=s.intent,
            after=s.after or None,
            served=s.served,
        )
        return _end(s, outcome), []
    if isinstance(e, Overloaded):
        return _overloaded(s, e, c)
    if s.phase is Phase.NEW:
        return _start(s, e, c) if isinstance(e, CallStarted) else (s, [])
    if isinstance(e, Partial):
        if s.barge_in and s.phase in LISTENING:
            return replace(s, barge_in=False), [StopSpeaking()]
        return s, []
    if isinstance(e, Dtmf):
        return _dtmf(s, e, c)
    if isinstance(e, SmsResult):
        return _sms_result(s, e, c) if s.phase is Phase.SMS_PENDING else (s, [])
    if isinstance(e, LookupResult):
        return _lookup_result(s, e, c) if s.phase is Phase.LOOKUP_PENDING else (s, [])
    if isinstance(e, SilenceTimeout):
        return _silence(s, c) if s.phase in LISTENING else (s, [])
    if isinstance(e, Utterance):
        return _utterance(s, e, c)
    return s, []


def _settle(s: State, actions: list[Action]) -> Transition:
    """Prompts followed by Listen may be interrupted; speech before a transfer or hang-up not."""
    if not any(isinstance(a, Say | Play | Listen) for a in actions):
        return s, actions
    listening = isinstance(actions[-1], Listen)
    out: list[Action] = []
    for a in actions:
        if isinstance(a, Say | Play):
            out.append(replace(a, barge_in=listening))
        else:
            out.append(a)
    return replace(s, barge_in=listening), out


def _start(s: State, e: CallStarted, c: _Ctx) -> Transition:
    s = replace(s, caller=e.caller, call_id=e.call_id, phase=Phase.ASKING, turns=1)
    s, greeting, after = _recall_greeting(replace(s, history=e.history), c)
    actions: list[Action] = [c.say(greeting)]
    for a in c.config.active_announcements(c.at):
        actions.append(_announcement(c, a))
        after = f"announcement:{a.id}"
    actions.append(c.listen())
    return replace(s, after=after), actions


def _dtmf(s: State, e: Dtmf, c: _Ctx) -> Transition:
    if e.digit == "0":
        return _route(s, c, None, TransferReason.DTMF, [])
    if s.phase is Phase.CLARIFYING and e.digit in ("1", "2") and len(s.options) == 2:
        return _serve(s, c, s.options[int(e.digit) - 1])
    return s, []  # no menu is offered, so other keys mean nothing


def _utterance(s: State, e: Utterance, c: _Ctx) -> Transition:
    if s.phase not in LISTENING and s.phase is not Phase.SMS_PENDING:
        return s, []
    alternatives = sorted(
        ((text, conf) for text, conf in e.alternatives if words(text)), key=lambda a: -a[1]
    )
    if not alternatives:
        return _silence(s, c) if s.phase in LISTENING else (s, [])
    top = alternatives[0][0]
    previous = s.transcript
    s = replace(s, transcript=top)
    if c.config.words.asks_for_person(top):
        return _route(s, c, None, TransferReason.ESCAPE, [])
    if s.phase is Phase.SMS_PENDING:
        return s, []
    if s.phase is Phase.RECALLING:
        return _recall_answer(s, alternatives, c)
    if _repeated(previous, top, c.config):
        return _annoyed(_classify(s, alternatives, c)[0], c, TransferReason.ANNOYED_REPEAT)
    if s.phase is Phase.CLARIFYING:
        return _clarify_answer(s, alternatives, c)
    if s.phase is Phase.ANYTHING_ELSE:
        return _anything_else_answer(s, alternatives, c)
    if _only(top, c.config.words.yes) or _only(top, c.config.words.no):
        # A bare "yes" or "no" to "what are you calling about?" names no request, whatever it
        # scores: with a few phrases per intent the matcher can accept one ("nej" scored 0.305
        # against a reject line of 0.3 on a Swedish set), and the caller would be put through
        # to a group they never asked for instead of being asked again.
        return _failed(_answered(s), c, TransferReason.NO_MATCH)
    s, m = _classify(s, alternatives, c)
    return _request(s, m, c)


def _silence(s: State, c: _Ctx) -> Transition:
    if s.phase is Phase.ANYTHING_ELSE:
        return _goodbye(s, c)
    return _failed(s, c, TransferReason.NO_SPEECH, clarify_again=s.phase is Phase.CLARIFYING)


# ---------------------------------------------------------------------------------------------
# Understanding


def _classify(s: State, alternatives: Sequence[tuple[str, float]], c: _Ctx) -> tuple[State, Match]:
    match = c.classify(alternatives)
    return replace(s, transcript=match.text or alternatives[0][0], match=match), match


def _answered(s: State) -> State:
    """The utterance was taken as a yes or no to the bot's question: it was no request, so
    its Match is not reported (a bare "no" must not count as a request nobody understood)."""
    return replace(s, match=None)


def _request(s: State, m: Match, c: _Ctx) -> Transition:
    """A fresh request: serve a clear winner, ask about a close pair, else count a failure."""
    best = m.best
    if best is not None and m.verdict is not Verdict.REJECT:
        other = _option(m, c.config)
        if m.verdict is Verdict.CLARIFY and other is not None:
            return _clarify(replace(s, options=(best, other)), c, [])
        return _serve(s, c, best)
    return _failed(s, c, TransferReason.NO_MATCH)


def _option(m: Match, config: LanguageConfig) -> Scored | None:
    """The second option of "A or B?", if one is worth asking about (``match.option``): the
    matcher's verdict may come from a matcher that did not look at routes."""
    routes = {name: intent.route for name, intent in config.intents.items()}
    return option(m.ranked, config.thresholds, routes)


def _clarify_answer(s: State, alternatives: Sequence[tuple[str, float]], c: _Ctx) -> Transition:
    top = alternatives[0][0]
    noes, s = s.noes, replace(s, noes=0)  # counts "no"s in a row only
    picked = _pick(top, s.options, c.config)
    if picked is not None:
        return _serve(s, c, s.options[picked])
    if _only(top, c.config.words.yes):  # "yes" to "A or B?" names neither: ask which one
        return _failed(_answered(s), c, TransferReason.NO_MATCH, clarify_again=True)
    s, m = _classify(s, alternatives, c)
    best, runner = m.best, m.runner_up
    names = {o.intent for o in s.options}
    if best is not None and m.verdict is Verdict.ACCEPT:  # one of the two, or a new clear request
        return _serve(s, c, best)
    clarified = m.verdict is Verdict.CLARIFY and best is not None
    picked_one = runner is None or runner.intent not in names
    if clarified and best is not None and best.intent in names and picked_one:
        return _serve(s, c, best)  # the fresh answer favours one of the two
    if _says(top, c.config.words.no):  # neither: ask openly again
        s = replace(_answered(s), noes=noes + 1)
        if s.noes >= ANNOYED_NOES:
            return _annoyed(s, c, TransferReason.ANNOYED_NO)
        return _failed(s, c, TransferReason.NO_MATCH)
    other = _option(m, c.config)
    if clarified and best is not None and other is not None:
        s = replace(s, options=(best, other))  # a different close pair: ask about that instead
    return _failed(s, c, TransferReason.NO_MATCH, clarify_again=True)


def _anything_else_answer(
    s: State, alternatives: Sequence[tuple[str, float]], c: _Ctx
) -> Transition:
    top = alternatives[0][0]
    s, m = _classify(s, alternatives, c)
    # "No, but ..." with a request the matcher accepts is that request; nothing but words for
    # no is a no, whatever the matcher makes of it (it once accepted Korean "아니오").
    no = c.config.words.no
    if _says(top, no) and (m.verdict is not Verdict.ACCEPT or _only(top, no)):
        return _goodbye(_answered(s), c)
    if m.best is not None and m.verdict is Verdict.ACCEPT and m.best.intent in s.served:
        return _annoyed(s, c, TransferReason.ANNOYED_REPEAT)  # the answer did not help
    if m.verdict is not Verdict.REJECT:
        return _request(s, m, c)
    if _says(top, c.config.words.yes):  # "yes" and a pause: the request usually follows
        return _ask(_answered(s), c, [], None, Phase.ASKING, "listen")
    return _failed(s, c, TransferReason.NO_MATCH)


_ORDINAL_MAX_WORDS = 8  # "I think it is the first one"; longer answers are requests


def _pick(text: str, options: tuple[Scored, ...], config: LanguageConfig) -> int | None:
    """Which of two options an answer names, by label ("invoices") or position ("the second")."""
    said = words(text)
    stop = frozenset(w for entry in config.words.stop for w in words(entry))
    hits = [_label_hits(said, config.intents[o.intent].label, stop) for o in options]
    best = max(hits, default=0)
    if best > 0:
        return hits.index(best) if hits.count(best) == 1 else None
    if len(said) > _ORDINAL_MAX_WORDS:
        return None
    first = _says(text, config.words.first)
    second = _says(text, config.words.second)
    return (0 if first else 1) if first != second else None


def _label_hits(said: list[str], label: str, stop: frozenset[str]) -> int:
    """Content words of ``label`` the caller said, allowing endings ("invoice" ~ "invoices");
    the language's ``words.stop`` ("the", "my") never count."""
    content = [w for w in words(label) if len(w) >= 3 and w not in stop]
    return sum(any(_same_word(w, s) for s in said) for w in content)


def _same_word(a: str, b: str) -> bool:
    short, long = sorted((a, b), key=len)
    if len(short) < 4:
        return short == long
    common = 0
    while common < len(short) and short[common] == long[common]:
        common += 1
    return common >= 4 and common >= 0.75 * len(short)


def _says(text: str, phrases: Sequence[str]) -> bool:
    return any(contains_phrase(text, p) for p in phrases)


def _only(text: str, phrases: Sequence[str]) -> bool:
    """True when every word of ``text`` is a word of ``phrases`` ("ja", "ja ja", "yes right")."""
    said = words(text)
    known = {w for p in phrases for w in words(p)}
    return bool(said) and all(w in known for w in said)


# ---------------------------------------------------------------------------------------------
# Asking


def _ask(
    s: State, c: _Ctx, actions: Sequence[Action], prompt: str | None, phase: Phase, tag: str
) -> Transition:
    """Ask one more question, unless the caller has been asked enough: then a person takes over."""
    if s.turns >= max(1, c.config.max_turns):
        return _route(s, c, None, TransferReason.MAX_TURNS, actions)
    out = [*actions, *([c.say(prompt)] if prompt else []), c.listen()]
    return replace(s, phase=phase, turns=s.turns + 1, after=tag), out


def _failed(
    s: State, c: _Ctx, reason: TransferReason, *, clarify_again: bool = False
) -> Transition:
    """One more silence or misunderstanding: try again once, then hand over."""
    s = replace(s, failures=s.failures + 1)
    if s.failures >= MAX_FAILURES:
        return _route(s, c, None, reason, [])
    if clarify_again and len(s.options) == 2:
        return _clarify(s, c, [])
    prompts = c.config.prompts
    if reason is TransferReason.NO_SPEECH:
        return _ask(s, c, [], prompts.reprompt, Phase.ASKING, "reprompt")
    text = _fill(prompts.no_match, hints=_hints(s, c.config))
    return _ask(s, c, [], text, Phase.ASKING, "no_match")


def _clarify(s: State, c: _Ctx, actions: Sequence[Action]) -> Transition:
    a, b = (c.config.intents[o.intent].label for o in s.options)
    text = _fill(c.config.prompts.clarify, a=a, b=b)
    return _ask(s, c, actions, text, Phase.CLARIFYING, "clarify")


def _hints(s: State, config: LanguageConfig) -> str:
    """Two or three topics the caller could name, skipping what they already got."""
    labels = [i.label for i in config.intents.values() if i.name not in s.served][:3]
    if len(labels) < 2:
        return "".join(labels)
    template = config.prompts.clarify
    i, j = template.find("{a}"), template.find("{b}")
    conjunction = template[i + 3 : j] if 0 <= i < j <= i + 15 else ", "
    return ", ".join(labels[:-1]) + conjunction + labels[-1]


def _fill(template: str, **values: str) -> str:
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


# ---------------------------------------------------------------------------------------------
# Serving a recognised request


def _serve(s: State, c: _Ctx, chosen: Scored) -> Transition:
    intent = c.config.intents[chosen.intent]
    s = replace(s, intent=intent.name, confidence=chosen.score, options=(), failures=0)
    reminders = [_announcement(c, a) for a in c.config.active_announcements(c.at, intent.name)]
    action = intent.action
    if action.kind is ActionKind.TRANSFER:
        return _route(s, c, action.group, TransferReason.INTENT, reminders)
    if action.kind is ActionKind.ANNOUNCE:
        spoken = [_speak(c, action.text, action.audio_url), *reminders]
        return _anything_else(_served(s, OutcomeKind.ANNOUNCED), c, spoken)
    if action.kind is ActionKind.LOOKUP:
        return _lookup(s, c, action, reminders)
    if action.link is not None and _can_text(s):
        template = action.sms_text or default_sms_text(action.text or c.config.prompts.sms_sent)
        sms = SendSms(s.caller or "", _fill(template, link=action.link), intent.name)
        return replace(s, phase=Phase.SMS_PENDING, after=f"sms:{intent.name}"), [*reminders, sms]
    # Known before anything was promised (withheld or landline): no apology for a text the
    # caller never expected, just the fallback.
    return _sms_fallback(s, c, action, reminders, apologise=False)


def _can_text(s: State) -> bool:
    """Whether to try an SMS at all: decided before the caller is told about one."""
    return s.caller is not None and can_receive_sms(s.caller)


def _sms_result(s: State, e: SmsResult, c: _Ctx) -> Transition:
    assert s.intent is not None
    action = c.config.intents[s.intent].action
    if action.kind is ActionKind.LOOKUP:
        return _lookup_sms_result(s, e, c)
    if e.ok:
        said = c.say(action.text or c.config.prompts.sms_sent)
        return _anything_else(_served(s, OutcomeKind.SMS_SENT), c, [said])
    return _sms_fallback(s, c, action, [])


def _sms_fallback(
    s: State,
    c: _Ctx,
    action: IntentAction,
    actions: Sequence[Action],
    *,
    apologise: bool = True,
) -> Transition:
    out = [*actions, *([c.say(c.config.prompts.sms_failed)] if apologise else [])]
    if action.fallback is SmsFallback.READ and action.answer:
        out.append(c.say(action.answer))
        return _anything_else(_served(s, OutcomeKind.ANNOUNCED), c, out)
    return _route(s, c, action.group, TransferReason.SMS_FALLBACK, out)


def _served(s: State, kind: OutcomeKind) -> State:
    assert s.intent is not None
    return replace(s, served=(*s.served, s.intent), served_kind=kind)


def _anything_else(s: State, c: _Ctx, actions: Sequence[Action]) -> Transition:
    s = replace(s, failures=0)
    prompt = c.config.prompts.anything_else
    return _ask(s, c, actions, prompt, Phase.ANYTHING_ELSE, "anything_else")


def _announcement(c: _Ctx, a: Announcement) -> Say | Play:
    return _speak(c, a.text, a.audio_url)


def _speak(c: _Ctx, text: str | None, audio_url: str | None) -> Say | Play:
    if audio_url:
        return Play(audio_url)
    if text:
        return c.say(text)
    raise ValueError("nothing to say: neither text nor audio_url")


# ---------------------------------------------------------------------------------------------
# Too busy


def _overloaded(s: State, e: Overloaded, c: _Ctx) -> Transition:
    """Put the caller through now. At the door (no call started yet): to the overflow group,
    with the overflow's words if it has any. Mid-call: to the group of the intent the words so
    far already name clearly (accepted at ``overflow.min_score`` or more), else to the overflow
    group, with the usual "putting you through"."""
    overflow = c.config.overflow
    if s.phase is Phase.NEW:
        said = [c.say(overflow.say)] if overflow.say else []
        return _route(s, c, overflow.group, TransferReason.SHED, said)
    partial = e.partial.strip()
    if partial and s.phase in LISTENING:
        s, m = _classify(s, [(partial, 1.0)], c)
        best = m.best
        if m.verdict is Verdict.ACCEPT and best is not None and best.score >= overflow.min_score:
            intent = c.config.intents[best.intent]
            s = replace(s, intent=intent.name, confidence=best.score)
            return _route(
                s, c, intent.action.group or overflow.group, TransferReason.OVERLOADED, []
            )
        s = replace(s, match=None)  # not a request the caller finished: not judged
    return _route(s, c, overflow.group, TransferReason.OVERLOADED, [])


# ---------------------------------------------------------------------------------------------
# Ending the call


def _route(
    s: State,
    c: _Ctx,
    group_id: str | None,
    reason: TransferReason,
    actions: Sequence[Action],
    visited: tuple[str, ...] = (),
) -> Transition:
    """Transfer to a group, or follow its when_closed rules when it is closed now."""
    group = c.config.group(group_id)
    closed = group.when_closed
    if closed is None or group.is_open(c.at):
        return _transfer(s, c, group, reason, actions)
    seen = (*visited, group.id)
    overflow = closed.transfer_to if closed.transfer_to not in seen else None  # no cycles
    if overflow is not None and not _reaches_person(c, overflow, seen):
        # "I'll put you through to member services" then "member services are closed" is two
        # stories: when the overflow is closed too, the caller hears only where it ends
        return _route(s, c, overflow, TransferReason.CLOSED_OVERFLOW, actions, seen)
    texting = closed.sms is not None and _can_text(s)
    if closed.sms and not texting and closed.say_without_sms:
        out = [*actions, c.say(closed.say_without_sms)]  # no text promised that cannot arrive
    else:
        out = [*actions, c.say(closed.say)]
        if closed.sms and texting:
            out.append(SendSms(s.caller or "", closed.sms, s.intent or ""))
        elif closed.sms and overflow is None:
            out.append(c.say(c.config.prompts.sms_failed))
    if overflow is not None:
        return _route(s, c, overflow, TransferReason.CLOSED_OVERFLOW, out, seen)
    out += [c.say(c.config.prompts.goodbye), HangUpCall(HangUpReason.CLOSED)]
    outcome = Outcome(
        OutcomeKind.CLOSED, s.turns, reason.value, group.id, s.intent, s.after, s.served
    )
    return _end(s, outcome), out


def _reaches_person(c: _Ctx, group_id: str, visited: tuple[str, ...]) -> bool:
    """Whether routing to ``group_id`` now ends in a transfer (it, or its overflow, is open)."""
    group = c.config.group(group_id)
    closed = group.when_closed
    if closed is None or group.is_open(c.at):
        return True
    seen = (*visited, group.id)
    overflow = closed.transfer_to if closed.transfer_to not in seen else None
    return overflow is not None and _reaches_person(c, overflow, seen)


def _transfer(
    s: State, c: _Ctx, group: AgentGroup, reason: TransferReason, actions: Sequence[Action]
) -> Transition:
    # An overloaded call carries its intent only when the words so far named it (``match``).
    routed = reason in _ROUTED_REASONS or (
        reason is TransferReason.OVERLOADED and s.match is not None
    )
    context = TransferContext(
        intent=s.intent if routed else None,
        transcript=s.transcript,
        confidence=s.confidence if routed else None,
        language=c.config.language,
        reason=reason,
    )
    context = _with_history(context, s.history)
    out = list(actions)
    # when_closed.say already explained it; a call shed at the door says what overflow says
    if reason not in (TransferReason.CLOSED_OVERFLOW, TransferReason.SHED):
        out.append(c.say(_fill(c.config.prompts.transfer, group=group.name)))
    out.append(Transfer(group.id, group.destination, context))
    outcome = Outcome(
        OutcomeKind.TRANSFERRED, s.turns, reason.value, group.id, s.intent, s.after, s.served
    )
    return _end(s, outcome), out


def _goodbye(s: State, c: _Ctx) -> Transition:
    kind = s.served_kind or OutcomeKind.ANNOUNCED
    outcome = Outcome(kind, s.turns, HangUpReason.GOODBYE.value, None, s.intent, s.after, s.served)
    return _end(s, outcome), [c.say(c.config.prompts.goodbye), HangUpCall(HangUpReason.GOODBYE)]


def _end(s: State, outcome: Outcome) -> State:
    outcome = replace(
        outcome, lookups=s.lookups, recalled=s.recalled, recall_answer=s.recall_answer
    )
    return replace(s, phase=Phase.ENDED, outcome=outcome, barge_in=False)


def _error(s: State, config: LanguageConfig) -> Transition:
    """Apologise and transfer to the default group; with a broken config, at least transfer."""
    try:
        group = config.groups[config.default_group]
        context = TransferContext(
            None,
            s.transcript,
            None,
            config.language,
            TransferReason.ERROR,
        )
        context = _with_history(context, s.history)
        transfer = Transfer(group.id, group.destination, context)
    except Exception:
        outcome = Outcome(
            OutcomeKind.ERROR, s.turns, HangUpReason.ERROR.value, after=s.after, served=s.served
        )
        return _end(s, outcome), [HangUpCall(HangUpReason.ERROR)]
    outcome = Outcome(
        OutcomeKind.TRANSFERRED,
        s.turns,
        TransferReason.ERROR.value,
        group.id,
        s.intent,
        s.after,
        s.served,
    )
    try:
        apology: list[Action] = [Say(config.prompts.error, config.voice, config.language, False)]
    except Exception:
        apology = []
    return _end(s, outcome), [*apology, transfer]


# ---------------------------------------------------------------------------------------------
# Self-service lookups (``voicebot.core.lookup``): ask, wait with a filler, act on the answer


def _lookup(s: State, c: _Ctx, action: IntentAction, reminders: Sequence[Action]) -> Transition:
    assert s.intent is not None and action.url is not None
    request = Lookup(
        url=action.url,
        intent=s.intent,
        transcript=s.transcript or "",
        language=c.config.language,
        caller=s.caller,
        call_id=s.call_id,
        timeout_s=action.timeout_s,
    )
    filler = [c.say(c.config.prompts.lookup_wait)] if c.config.prompts.lookup_wait else []
    s = replace(s, phase=Phase.LOOKUP_PENDING, after=f"lookup:{s.intent}")
    return s, [*reminders, *filler, request]


def _lookup_result(s: State, e: LookupResult, c: _Ctx) -> Transition:
    """Act on the answer; anything wrong with it puts the caller through to ``otherwise``
    without a word about the failure (the event, logged, says what went wrong)."""
    intent = s.intent
    assert intent is not None
    action = c.config.intents[intent].action
    answer = e.answer
    if answer is None or answer_problem(answer, c.config) is not None:
        s = replace(s, lookups=(*s.lookups, (intent, False)))
        return _route(s, c, action.group, TransferReason.LOOKUP_FAILED, [])
    s = replace(s, lookups=(*s.lookups, (intent, True)))
    said: list[Action] = [c.say(answer.say)]
    if answer.transfer is not None:
        return _route(s, c, answer.transfer, TransferReason.LOOKUP, said)
    s = _served(s, OutcomeKind.ANNOUNCED)
    if answer.hangup:
        s, bye = _goodbye(s, c)
        return s, [*said, *bye]
    if answer.sms is None:
        return _anything_else(s, c, said)
    if not _can_text(s):  # nothing was promised by us; the endpoint's text cannot arrive
        return _route(s, c, action.group, TransferReason.SMS_FALLBACK, said)
    sms = SendSms(s.caller or "", answer.sms, intent)
    return replace(s, phase=Phase.SMS_PENDING, after=f"sms:{intent}"), [*said, sms]


def _lookup_sms_result(s: State, e: SmsResult, c: _Ctx) -> Transition:
    """The text a lookup answer asked for: sent, anything else; not sent, apologise and hand
    over to ``otherwise`` (the sms action's ``fallback: transfer``)."""
    assert s.intent is not None
    if e.ok:
        return _anything_else(replace(s, served_kind=OutcomeKind.SMS_SENT), c, [])
    group = c.config.intents[s.intent].action.group
    sorry = [c.say(c.config.prompts.sms_failed)]
    return _route(s, c, group, TransferReason.SMS_FALLBACK, sorry)


# ---------------------------------------------------------------------------------------------
# Repeat callers (``voicebot.core.recall``): "are you calling about X again?"


def _recall_greeting(s: State, c: _Ctx) -> tuple[State, str, str]:
    """The state, first prompt and its tag: the recall question for a repeat caller whose last
    call the robot did not solve, else the greeting."""
    intent = recall_intent(s.history, c.config)
    if intent is None:
        return s, c.config.prompts.greeting, "greeting"
    question = _fill(c.config.prompts.recall, label=c.config.intents[intent].label)
    return replace(s, phase=Phase.RECALLING, recalled=intent), question, "recall"


def _recall_answer(s: State, alternatives: Sequence[tuple[str, float]], c: _Ctx) -> Transition:
    """Yes: that intent at once. A bare no: the open question. Anything else: a request."""
    top = alternatives[0][0]
    recalled = s.recalled
    assert recalled is not None
    s, m = _classify(s, alternatives, c)
    other = m.best is not None and m.verdict is Verdict.ACCEPT and m.best.intent != recalled
    if _says(top, c.config.words.yes) and not _says(top, c.config.words.no) and not other:
        s = replace(_answered(s), recall_answer="yes")
        return _serve(s, c, Scored(recalled, 1.0))
    if _says(top, c.config.words.no) and m.verdict is not Verdict.ACCEPT:
        s = replace(_answered(s), recall_answer="no")
        return _ask(s, c, [], c.config.prompts.greeting, Phase.ASKING, "greeting")
    return _request(replace(s, recall_answer="other", phase=Phase.ASKING), m, c)


def _with_history(context: TransferContext, history: CallerHistory | None) -> TransferContext:
    """The context with the caller's recent calls, for the agent (unchanged without them)."""
    if history is None:
        return context
    last = history.last_at.date().isoformat() if history.last_at is not None else None
    return replace(
        context, recent_calls=history.calls, last_intent=history.last_intent, last_call=last
    )


# ---------------------------------------------------------------------------------------------
# Callers getting annoyed: two "no"s to "A or B?", or the same request again → a person now


def _repeated(previous: str | None, text: str, config: LanguageConfig) -> bool:
    """The caller said the same request again (a bare yes or no is no request)."""
    said = words(text)
    if not previous or not said or said != words(previous):
        return False
    return not (_says(text, config.words.yes) or _says(text, config.words.no)) or len(said) > 3


def _annoyed(s: State, c: _Ctx, reason: TransferReason) -> Transition:
    """Put the caller through at once: to the group of the intent that matches best (what they
    said now, else the first of "A or B?", else the last recognised), or the default group."""
    m = s.match
    intent: str | None = None
    if m is not None and m.best is not None and m.verdict is not Verdict.REJECT:
        intent = m.best.intent
    elif s.options:
        intent = s.options[0].intent
    else:
        intent = s.intent
    group = _group_of(c.config, intent)
    return _route(replace(s, intent=intent or s.intent), c, group, reason, [])


def _group_of(config: LanguageConfig, intent: str | None) -> str | None:
    """The agent group an intent leads to when a person has to take over (None: default)."""
    if intent is None or intent not in config.intents:
        return None
    action = config.intents[intent].action
    if action.kind is ActionKind.SMS and action.fallback is SmsFallback.READ:
        return None
    return action.group
