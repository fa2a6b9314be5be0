"""Issue #21 in the pure dialogue: an ``Overloaded`` event puts the caller through to a person.

The shell decides when the bot is too busy (no room at the door, a call's audio waiting too long
to be decoded); these tests pin where the caller then goes and what they hear, with the
scripted classifier of the dialogue tests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from test_dialogue import CLOSED, EN, OPEN, Call, Classifier, said, transfer_of

from voicebot.core.actions import HangUpCall, SendSms
from voicebot.core.config import LanguageConfig, Overflow
from voicebot.core.dialogue import Dialogue, Transition, step
from voicebot.core.events import Overloaded
from voicebot.core.state import OutcomeKind, State
from voicebot.loading.loader import load_language_text


def at_the_door(config: LanguageConfig = EN, at: dt.datetime = OPEN) -> Transition:
    state = State(caller="+46701234567", call_id="CA1")
    return step(state, Overloaded(at=at), config, Classifier())


def test_a_call_refused_at_the_door_goes_straight_to_the_default_group_unannounced() -> None:
    state, actions = at_the_door()
    transfer = transfer_of(actions)
    assert transfer.group == EN.default_group
    assert transfer.context.reason == "shed"
    assert said(actions) == []  # no greeting, no "putting you through": YAML says nothing
    assert state.outcome is not None
    assert (state.outcome.kind, state.outcome.reason) == (OutcomeKind.TRANSFERRED, "shed")


def test_the_overflow_section_names_the_group_and_the_words_at_the_door() -> None:
    config = replace(EN, overflow=Overflow(group="billing", say="All lines are busy."))
    _, actions = at_the_door(config)
    assert transfer_of(actions).group == "billing"
    assert said(actions) == ["All lines are busy."]


def test_a_closed_overflow_group_follows_its_when_closed_rules() -> None:
    state, actions = at_the_door(at=CLOSED)  # members is closed: told so, texted, goodbye
    assert isinstance(actions[-1], HangUpCall)
    assert any(isinstance(a, SendSms) for a in actions)
    assert state.outcome is not None and state.outcome.reason == "shed"


def test_mid_call_the_group_of_an_intent_the_words_so_far_name_clearly() -> None:
    call = Call()
    actions = call.send(Overloaded(at=call.at, partial="my invoice is wrong"))
    transfer = transfer_of(actions)
    assert transfer.group == "billing"
    assert transfer.context.reason == "overloaded"
    assert transfer.context.intent == "invoice"
    assert said(actions) == ["I'll put you through to the invoice team."]
    outcome = call.dialogue.outcome
    assert outcome is not None and (outcome.reason, outcome.intent) == ("overloaded", "invoice")


def test_mid_call_words_below_the_overflow_score_go_to_the_overflow_group() -> None:
    config = replace(EN, overflow=Overflow(min_score=0.85))
    call = Call(config=config)
    actions = call.send(Overloaded(at=call.at, partial="i paid twice"))  # accepted at 0.8
    transfer = transfer_of(actions)
    assert transfer.group == "members"
    assert transfer.context.intent is None
    assert transfer.context.transcript == "i paid twice"  # the agent still sees the words


def test_mid_call_without_words_to_the_overflow_group_saying_so() -> None:
    config = replace(EN, overflow=Overflow(group="courses"))
    call = Call(config=config)
    actions = call.send(Overloaded(at=call.at))
    assert transfer_of(actions).group == "courses"
    assert said(actions) == ["I'll put you through to course booking."]
    assert call.classify.calls == []  # nothing to match


def test_an_ended_call_ignores_overload() -> None:
    call = Call()
    call.press("0")
    assert call.send(Overloaded(at=call.at, partial="my invoice is wrong")) == []


def test_overflow_yaml_is_read_and_checked() -> None:
    base = (
        "language: en-US\ndefault_group: a\ngroups:\n  a: {number: '+46101234500', name: A}\n"
        "  b: {number: '+46101234501', name: B}\n"
        "intents:\n  x: {phrases: [hello], transfer: a}\n"
    )
    config = load_language_text(base + "overflow:\n  group: b\n  say: Busy.\n  min_score: 0.9\n")
    assert config.overflow == Overflow("b", "Busy.", 0.9)
    assert load_language_text(base).overflow == Overflow()
    for bad, message in (
        ("overflow:\n  group: c\n", "unknown agent group 'c'"),
        ("overflow:\n  min_score: 2\n", "'min_score' must be between 0 and 1"),
        ("overflow:\n  sey: hi\n", "unknown key 'sey'"),
    ):
        try:
            load_language_text(base + bad)
        except Exception as exc:
            assert message in str(exc), str(exc)
        else:
            raise AssertionError(f"accepted {bad!r}")


def test_the_dialogue_object_takes_overload_like_any_event() -> None:
    dialogue = Dialogue(EN, Classifier())
    actions = dialogue.handle(Overloaded(at=OPEN))
    assert transfer_of(actions).context.reason == "shed"
