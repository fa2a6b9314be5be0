"""Properties every call must keep, whatever callers, recognisers and gateways do.

Callers are never trapped: a call either waits for something that will come (speech or an SMS
result) with a bounded number of questions asked, or has ended in exactly one decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.core.actions import Action, HangUpCall, Listen, Say, SendSms, StopSpeaking, Transfer
from voicebot.core.config import ActionKind, LanguageConfig
from voicebot.core.dialogue import Dialogue
from voicebot.core.events import (
    CallStarted,
    Dtmf,
    Event,
    Failure,
    HangUp,
    Partial,
    SilenceTimeout,
    SmsResult,
    Utterance,
)
from voicebot.core.match import Match, Scored, Verdict
from voicebot.loading.loader import load_deployment

STOCKHOLM = ZoneInfo("Europe/Stockholm")
TIMES = (
    dt.datetime(2026, 11, 24, 10, 0, tzinfo=STOCKHOLM),  # all open
    dt.datetime(2026, 11, 24, 20, 0, tzinfo=STOCKHOLM),  # all closed
    dt.datetime(2026, 11, 27, 15, 30, tzinfo=STOCKHOLM),  # billing closed, overflow to members
    dt.datetime(2026, 12, 15, 12, 30, tzinfo=STOCKHOLM),  # Christmas notice, courses at lunch
    dt.datetime(2027, 3, 10, 10, 0, tzinfo=STOCKHOLM),  # tax reminder
)
OPEN_TIMES = (TIMES[0], TIMES[2], TIMES[4])  # the default group is open
CALLERS = ("+46701234567", "+15551234567", "+46701234567", "+4681234567", None, "+266696687")
DEPLOYMENT = load_deployment(None)
CONFIGS = (DEPLOYMENT.language("en-US"), DEPLOYMENT.language("sv-SE"))

# What callers say: scripted texts plus words the dialogue understands by itself.
SCRIPTED = tuple(f"utterance {i}" for i in range(8))
SPOKEN = (
    *SCRIPTED,
    "crash",  # the classifier raises
    "ghost",  # the classifier names an intent the config lacks
    "",
    "agent",
    "människa",
    "yes",
    "ja",
    "no",
    "nej",
    "the first one",
    "den andra",
    "invoices",
    "försäkringar",
)


class Crash(Exception):
    pass


@dataclass
class ScriptedClassifier:
    script: dict[str, Match]

    def __call__(self, alternatives: Sequence[tuple[str, float]]) -> Match:
        text = alternatives[0][0]
        if text == "crash":
            raise Crash(text)
        if text == "ghost":
            return Match(text, (Scored("ghost", 0.9),), Verdict.ACCEPT)
        return self.script.get(text, Match(text, (), Verdict.REJECT))


@st.composite
def matches(draw: st.DrawFn, text: str, intents: Sequence[str]) -> Match:
    names = draw(st.lists(st.sampled_from(intents), min_size=2, max_size=3, unique=True))
    scores = sorted(draw(st.lists(st.floats(0, 1), min_size=len(names), max_size=len(names))))
    ranked = tuple(Scored(n, s) for n, s in zip(names, reversed(scores), strict=True))
    verdict = draw(
        st.sampled_from([Verdict.ACCEPT, Verdict.ACCEPT, Verdict.CLARIFY, Verdict.REJECT])
    )
    return Match(text, ranked, verdict)


@st.composite
def calls(draw: st.DrawFn) -> tuple[LanguageConfig, ScriptedClassifier, CallStarted]:
    config = draw(st.sampled_from(CONFIGS))
    config = replace(config, max_turns=draw(st.sampled_from([1, 2, 3, 4, 4, 5, 6])))
    # self-service intents twice as likely, so "anything else?" and goodbyes are reached often
    served = [i.name for i in config.intents.values() if i.action.kind != ActionKind.TRANSFER]
    intents = [*config.intents, *served, *served]
    script = {t: draw(matches(t, intents)) for t in SCRIPTED}
    start = CallStarted(at=draw(st.sampled_from(TIMES)), caller=draw(st.sampled_from(CALLERS)))
    return config, ScriptedClassifier(script), start


def utterances(at: dt.datetime) -> st.SearchStrategy[Event]:
    return st.builds(
        lambda text, conf: Utterance(alternatives=((text, conf),), at=at),
        st.sampled_from(SPOKEN),
        st.floats(0, 1),
    )


def events(at: dt.datetime) -> st.SearchStrategy[Event]:
    """Mostly speech and its absence; shell failures and hang-ups now and then."""
    rare: st.SearchStrategy[Event] = st.sampled_from(
        [Failure(error="shell", at=at), HangUp(at=at), Dtmf(digit="0", at=at)]
    )
    return st.one_of(
        utterances(at),
        utterances(at),
        utterances(at),
        st.just(SilenceTimeout(at=at)),
        st.sampled_from("123456789*#").map(lambda d: Dtmf(digit=d, at=at)),
        st.just(Partial(text="uh", at=at)),
        st.booleans().map(lambda ok: SmsResult(ok=ok, detail="", at=at)),
        rare,
    )


class Observer:
    """Drives a Dialogue and checks each batch of actions against the call-level invariants."""

    def __init__(self, config: LanguageConfig, classify: ScriptedClassifier, start: CallStarted):
        self.config = config
        self.dialogue = Dialogue(config, classify)
        self.decisions: list[Action] = []
        self.history: list[Action] = []
        self.stopped = False
        self.check(start, self.dialogue.start(start))

    def send(self, event: Event) -> list[Action]:
        if self.dialogue.ended:
            before = self.dialogue.state
            actions = self.dialogue.handle(event)
            assert actions == [] and self.dialogue.state == before
            return actions
        return self.check(event, self.dialogue.handle(event))

    def check(self, event: Event, actions: list[Action]) -> list[Action]:
        state = self.dialogue.state
        for a in actions:
            if isinstance(a, Say):
                assert (a.voice, a.language) == (self.config.voice, self.config.language)
        stops = [a for a in actions if isinstance(a, StopSpeaking)]
        if stops:  # barge-in: only on the caller's speech, once per prompt
            assert isinstance(event, Partial) and actions == [StopSpeaking()]
            assert not self.stopped, "StopSpeaking twice for one prompt"
            self.stopped = True
        elif any(isinstance(a, Listen) for a in actions):
            self.stopped = False
        decisions = [a for a in actions if isinstance(a, Transfer | HangUpCall)]
        self.decisions += decisions
        self.history += actions
        assert len(self.decisions) <= 1, self.history
        assert state.turns <= max(1, self.config.max_turns)
        if state.ended:
            assert state.outcome is not None
            if isinstance(event, HangUp) and not decisions:
                assert actions == []
                assert state.outcome.kind == "caller_hung_up"
            else:
                assert len(decisions) == 1 and actions[-1] is decisions[0], actions
                self.assert_not_silent_end(actions)
        else:
            assert not decisions
            assert state.waiting_for in ("listen", "sms")
            meaningful = [a for a in actions if not isinstance(a, StopSpeaking)]
            if meaningful:  # a turn that did something must leave the bot waiting for it
                expected = Listen if state.waiting_for == "listen" else SendSms
                assert isinstance(meaningful[-1], expected), actions
        return actions

    def assert_not_silent_end(self, actions: list[Action]) -> None:
        last = actions[-1]
        if isinstance(last, HangUpCall) and last.reason != "error":
            spoken = [a for a in actions if isinstance(a, Say)]
            assert spoken and spoken[-1].text == self.config.prompts.goodbye, actions

    @property
    def ended(self) -> bool:
        return self.dialogue.ended


@settings(max_examples=200, deadline=None)
@given(calls(), st.data())
def test_arbitrary_events_never_trap_or_crash(
    call: tuple[LanguageConfig, ScriptedClassifier, CallStarted], data: st.DataObject
) -> None:
    config, classify, start = call
    observer = Observer(config, classify, start)
    for event in data.draw(st.lists(events(start.at), min_size=4, max_size=30)):
        observer.send(event)
    if observer.ended:
        assert observer.dialogue.outcome is not None
    # once ended, every kind of event is ignored
    if observer.ended:
        for event in data.draw(st.lists(events(start.at), min_size=1, max_size=5)):
            assert observer.send(event) == []


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(CONFIGS),
    st.integers(1, 6),
    st.sampled_from(OPEN_TIMES),
    st.sampled_from(CALLERS),
)
def test_silence_alone_is_transferred_within_two_timeouts(
    config: LanguageConfig, max_turns: int, at: dt.datetime, caller: str | None
) -> None:
    config = replace(config, max_turns=max_turns)
    observer = Observer(config, ScriptedClassifier({}), CallStarted(at=at, caller=caller))
    actions: list[Action] = []
    for _ in range(2):
        if not observer.ended:
            actions = observer.send(SilenceTimeout(at=at))
    assert observer.ended
    last = actions[-1]
    assert isinstance(last, Transfer) and last.group == config.default_group
    assert last.context.reason in ("no_speech", "max_turns")


@settings(max_examples=200, deadline=None)
@given(calls(), st.data())
def test_every_call_without_a_hang_up_ends_within_two_answers_per_turn(
    call: tuple[LanguageConfig, ScriptedClassifier, CallStarted], data: st.DataObject
) -> None:
    """Answering whatever the bot waits for, the call reaches a decision in 2·max_turns + 2."""
    config, classify, start = call
    at = start.at
    observer = Observer(config, classify, start)
    answers = 0
    noise = st.one_of(
        st.just(Partial(text="hm", at=at)),
        st.sampled_from("123456789*#").map(lambda d: Dtmf(digit=d, at=at)),
        st.booleans().map(lambda ok: SmsResult(ok=ok, detail="", at=at)),
    )
    listen_answers = st.one_of(
        utterances(at),
        utterances(at),
        st.just(SilenceTimeout(at=at)),
        st.sampled_from([Dtmf(digit="0", at=at), Failure(error="shell", at=at)]),
    )
    while not observer.ended:
        assert answers < 2 * config.max_turns + 2, observer.history
        for event in data.draw(st.lists(noise, max_size=2)):
            observer.send(event)
        if observer.ended:
            break
        if observer.dialogue.state.waiting_for == "sms":
            answer = data.draw(st.booleans().map(lambda ok: SmsResult(ok=ok, detail="", at=at)))
        else:
            answer = data.draw(listen_answers)
        observer.send(answer)
        answers += 1
    assert len(observer.decisions) == 1
