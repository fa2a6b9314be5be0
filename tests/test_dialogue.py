"""The call dialogue, rule by rule, on the example deployment with a scripted classifier.

The classifier is a fake (text → Match) so these tests pin the dialogue's decisions, not the
matcher's scores.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import cast
from zoneinfo import ZoneInfo

import pytest

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
from voicebot.core.config import AgentGroup, Announcement, LanguageConfig, Prompts
from voicebot.core.dialogue import Dialogue, step
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
from voicebot.core.state import OutcomeKind, Phase, State
from voicebot.loading.loader import load_deployment, load_language_text

STOCKHOLM = ZoneInfo("Europe/Stockholm")
OPEN = dt.datetime(2026, 11, 24, 10, 0, tzinfo=STOCKHOLM)  # Tuesday morning: all groups open
CLOSED = dt.datetime(2026, 11, 24, 20, 0, tzinfo=STOCKHOLM)  # Tuesday evening: all closed
FRIDAY_PM = dt.datetime(2026, 11, 27, 15, 30, tzinfo=STOCKHOLM)  # billing closed, members open
CHRISTMAS = dt.datetime(2026, 12, 15, 10, 0, tzinfo=STOCKHOLM)  # closing notice is active
TAX_SEASON = dt.datetime(2027, 3, 10, 10, 0, tzinfo=STOCKHOLM)  # tax reminder is active
MOBILE = "+46701234567"
LANDLINE = "+4681234567"

SHIPPED_EN = load_deployment(None).language("en-US")
SHIPPED_SV = load_deployment(None).language("sv-SE")


def payments_apart(config: LanguageConfig) -> LanguageConfig:
    """The example deployment with payment problems handled by their own group ("payments", at
    billing's number): the shipped one sends invoices and payment problems to billing alike, so
    the bot never asks between them, and the rules of asking are pinned on this pair here."""
    payments = replace(config.groups["billing"], id="payments")
    problem = config.intents["payment_problem"]
    moved = replace(problem, action=replace(problem.action, group="payments"))
    return replace(
        config,
        groups={**config.groups, "payments": payments},
        intents={**config.intents, "payment_problem": moved},
    )


EN = payments_apart(SHIPPED_EN)
SV = payments_apart(SHIPPED_SV)


def accept(intent: str, score: float = 0.9) -> Match:
    return Match(intent, (Scored(intent, score),), Verdict.ACCEPT)


def clarify(a: str, b: str) -> Match:
    return Match(f"{a} or {b}", (Scored(a, 0.48), Scored(b, 0.45)), Verdict.CLARIFY)


SCRIPT: dict[str, Match] = {
    "my invoice is wrong": accept("invoice"),
    "i paid twice": accept("payment_problem", 0.8),
    "a bill": clarify("invoice", "payment_problem"),
    "paid the bill": clarify("payment_problem", "insurance"),
    "something about money": clarify("invoice", "insurance"),
    "when are you open": accept("opening_hours"),
    "i forgot my password": accept("login_password"),
    "i moved": accept("change_address"),
    "my tax statement": accept("tax_statement"),
    "my home insurance": accept("insurance"),
    "my personal details": accept("change_address"),
    "the fee": accept("invoice"),
    "kurs": accept("course_booking"),
    "faktura": clarify("invoice", "payment_problem"),
}


class Classifier:
    """Scripted classifier that also records what it was asked."""

    def __init__(self, script: dict[str, Match] | None = None) -> None:
        self.script = SCRIPT if script is None else script
        self.calls: list[str] = []

    def __call__(self, alternatives: Sequence[tuple[str, float]]) -> Match:
        text = alternatives[0][0]
        self.calls.append(text)
        return replace(self.script.get(text, Match(text, (), Verdict.REJECT)), text=text)


class Call:
    """A call driven one event at a time, with a clock that moves a few seconds per event."""

    def __init__(
        self,
        config: LanguageConfig = EN,
        at: dt.datetime = OPEN,
        caller: str | None = MOBILE,
        classify: Classifier | None = None,
    ) -> None:
        self.config = config
        self.at = at
        self.classify = classify or Classifier()
        self.dialogue = Dialogue(config, self.classify)
        self.first = self.dialogue.start(CallStarted(at=at, caller=caller, call_id="CA1"))

    def send(self, event: Event) -> list[Action]:
        self.at += dt.timedelta(seconds=5)
        return self.dialogue.handle(event)

    def say(self, text: str, confidence: float = 0.9) -> list[Action]:
        return self.send(Utterance(alternatives=((text, confidence),), at=self.at))

    def silence(self) -> list[Action]:
        return self.send(SilenceTimeout(at=self.at))

    def press(self, digit: str) -> list[Action]:
        return self.send(Dtmf(digit=digit, at=self.at))

    def sms(self, ok: bool) -> list[Action]:
        return self.send(SmsResult(ok=ok, detail="test", at=self.at))

    def hang_up(self) -> list[Action]:
        return self.send(HangUp(at=self.at))


def said(actions: Sequence[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


def transfer_of(actions: Sequence[Action]) -> Transfer:
    transfers = [a for a in actions if isinstance(a, Transfer)]
    assert len(transfers) == 1, actions
    assert actions[-1] == transfers[0], "a transfer is the last thing a call does"
    return transfers[0]


def hints_of(text: str) -> list[str]:
    labels = [i.label for i in EN.intents.values()]
    return [label for label in labels if label in text]


# --- start ------------------------------------------------------------------------------------


def test_start_greets_then_listens_with_the_configured_voice() -> None:
    call = Call()
    assert said(call.first) == [EN.prompts.greeting]
    assert isinstance(call.first[-1], Listen)
    say = call.first[0]
    assert isinstance(say, Say)
    assert (say.voice, say.language) == ("Polly.Joanna", "en-US")


def test_start_plays_the_active_general_announcement_after_the_greeting() -> None:
    call = Call(at=CHRISTMAS)
    texts = said(call.first)
    assert texts[0] == EN.prompts.greeting
    assert len(texts) == 2 and "Christmas" in texts[1]
    assert isinstance(call.first[-1], Listen)


def test_announcement_with_audio_is_played_not_said() -> None:
    audio = Announcement("strike", "text", "https://example.org/strike.mp3", None, None)
    config = replace(EN, announcements=(audio,))
    call = Call(config=config)
    assert call.first[1] == Play("https://example.org/strike.mp3")


def test_intent_announcements_are_not_played_at_the_start() -> None:
    assert said(Call(at=TAX_SEASON).first) == [EN.prompts.greeting]


# --- silence and no match ---------------------------------------------------------------------


def test_silence_reprompts_once_then_transfers_to_the_default_group() -> None:
    call = Call()
    first = call.silence()
    assert said(first) == [EN.prompts.reprompt]
    assert isinstance(first[-1], Listen)
    second = call.silence()
    assert said(second) == ["I'll put you through to member services."]
    transfer = transfer_of(second)
    assert transfer.group == "members"
    assert str(transfer.destination) == "number:+46101234500"
    assert transfer.context.reason == "no_speech"
    assert call.dialogue.ended


@pytest.mark.parametrize("alternatives", [(), (("", 0.9),), (("  ...  ", 0.5),)])
def test_an_empty_utterance_counts_as_silence(alternatives: tuple[tuple[str, float], ...]) -> None:
    call = Call()
    actions = call.send(Utterance(alternatives=alternatives, at=call.at))
    assert said(actions) == [EN.prompts.reprompt]
    assert call.classify.calls == []


def test_no_match_reprompts_with_two_or_three_topics_then_transfers() -> None:
    call = Call()
    first = call.say("blah blah")
    (text,) = said(first)
    assert text.startswith("Sorry, I didn't get that. You can say, for example, ")
    assert 2 <= len(hints_of(text)) <= 3
    assert " or " in text
    second = call.say("more blah")
    assert transfer_of(second).context.reason == "no_match"
    assert transfer_of(second).context.transcript == "more blah"


def test_silence_then_no_match_is_the_second_failure() -> None:
    call = Call()
    call.silence()
    assert transfer_of(call.say("blah")).context.reason == "no_match"


# --- clarification ----------------------------------------------------------------------------


def test_clarify_names_the_two_best_intents_by_label() -> None:
    call = Call()
    actions = call.say("a bill")
    assert said(actions) == ["Is it about invoices and membership fees or a payment problem?"]
    assert isinstance(actions[-1], Listen)


@pytest.mark.parametrize(
    ("answer", "intent"),
    [
        ("the first one", "invoice"),
        ("the second one", "payment_problem"),
        ("invoices", "invoice"),
        ("it's the payment", "payment_problem"),
        ("a payment problem", "payment_problem"),
        ("no it's about the membership fees", "invoice"),
        ("i paid twice", "payment_problem"),  # a fresh utterance matching one of the two
        ("the invoice from last month", "invoice"),  # a label beats a stray ordinal
        ("I think it is the last one", "payment_problem"),
    ],
)
def test_clarification_answers_are_understood(answer: str, intent: str) -> None:
    call = Call()
    call.say("a bill")
    transfer = transfer_of(call.say(answer))
    assert transfer.group == EN.intents[intent].action.group
    assert transfer.context.intent == intent
    assert transfer.context.reason == "intent"


def test_a_bare_yes_to_a_or_b_asks_again_which_one() -> None:
    call = Call()
    question = said(call.say("a bill"))
    actions = call.say("yes")
    assert not any(isinstance(a, Transfer) for a in actions)
    assert said(actions) == question  # "is it about A or B?" once more
    assert call.dialogue.state.phase is Phase.CLARIFYING
    transfer = transfer_of(call.say("the second one"))
    assert transfer.context.intent == "payment_problem"


def test_yes_to_a_or_b_twice_goes_to_a_person() -> None:
    call = Call()
    call.say("a bill")
    call.say("yes")
    transfer = transfer_of(call.say("yes"))
    assert (transfer.group, transfer.context.reason) == ("members", "no_match")
    assert transfer.context.intent is None


def test_a_fresh_utterance_favouring_one_option_resolves_the_clarification() -> None:
    call = Call()
    call.say("a bill")
    transfer = transfer_of(call.say("paid the bill"))
    assert transfer.context.intent == "payment_problem"


def test_a_different_clear_request_during_clarification_is_served() -> None:
    call = Call()
    call.say("a bill")
    actions = call.say("i forgot my password")
    assert next(a for a in actions if isinstance(a, SendSms)).intent == "login_password"


def test_dtmf_can_pick_an_option() -> None:
    call = Call()
    call.say("a bill")
    assert transfer_of(call.press("2")).context.intent == "payment_problem"


def test_no_to_both_options_asks_openly_with_hints() -> None:
    call = Call()
    call.say("a bill")
    (text,) = said(call.say("no"))
    assert hints_of(text)
    assert call.dialogue.state.phase is Phase.ASKING


def test_a_failed_clarification_asks_again_then_counts_as_the_second_failure() -> None:
    call = Call()
    call.say("blah")  # failure 1
    actions = call.say("a bill")
    assert "Is it about" in said(actions)[0]
    assert transfer_of(call.say("hmm")).context.reason == "no_match"


def test_a_silent_clarification_repeats_the_question() -> None:
    call = Call()
    call.say("a bill")
    assert said(call.silence()) == [
        "Is it about invoices and membership fees or a payment problem?"
    ]
    assert transfer_of(call.silence()).context.reason == "no_speech"


def test_swedish_clarification_by_position() -> None:
    call = Call(config=SV)
    actions = call.say("faktura")
    assert said(actions) == [
        "Gäller det fakturor och medlemsavgifter eller ett problem med en betalning?"
    ]
    transfer = transfer_of(call.say("den andra"))
    assert transfer.context.intent == "payment_problem"
    assert transfer.context.language == "sv-SE"


def test_the_shipped_deployment_does_not_ask_between_two_intents_of_billing() -> None:
    # Invoices and payment problems both go to the billing team: "A or B?" changes nothing.
    call = Call(config=SHIPPED_EN)
    actions = call.say("a bill")
    assert not any("Is it about" in text for text in said(actions))
    transfer = transfer_of(actions)
    assert (transfer.group, transfer.context.intent) == ("billing", "invoice")


def test_an_option_under_the_reject_line_is_never_offered() -> None:
    # A matcher's CLARIFY whose runner-up was not understood: serve the one that was.
    weak = Match("x", (Scored("invoice", 0.45), Scored("insurance", 0.2)), Verdict.CLARIFY)
    call = Call(classify=Classifier({"x": weak}))
    transfer = transfer_of(call.say("x"))
    assert (transfer.group, transfer.context.intent) == ("billing", "invoice")


@pytest.mark.parametrize(
    ("config", "yes"),
    [(SHIPPED_EN, "yes"), (SHIPPED_SV, "ja"), (SHIPPED_EN, "no"), (SHIPPED_SV, "nej")],
)
def test_a_bare_yes_or_no_as_the_first_answer_is_no_request(
    config: LanguageConfig, yes: str
) -> None:
    # Even when the matcher would score it for some intent: "yes" or "no" names nothing.
    call = Call(config=config, classify=Classifier({yes: accept("invoice")}))
    actions = call.say(yes)
    assert not any(isinstance(a, Transfer) for a in actions)
    assert call.classify.calls == []
    assert call.dialogue.state.phase is Phase.ASKING
    assert call.dialogue.match is None


def test_ja_to_an_either_or_question_picks_neither() -> None:
    # The matcher scoring "ja" for one of the two must not answer the question for the caller.
    call = Call(config=SV, classify=Classifier({**SCRIPT, "ja": accept("invoice")}))
    question = said(call.say("faktura"))
    actions = call.say("ja")
    assert not any(isinstance(a, Transfer) for a in actions)
    assert said(actions) == question


# --- escape -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["agent", "I want to talk to a Human!", "a real person please"])
def test_escape_words_transfer_at_once(text: str) -> None:
    call = Call()
    transfer = transfer_of(call.say(text))
    assert (transfer.group, transfer.context.reason) == ("members", "escape")
    assert call.classify.calls == []


def test_escape_words_match_whole_words_only() -> None:
    call = Call()
    actions = call.say("my personal details")
    assert not any(isinstance(a, Transfer) for a in actions)
    assert call.classify.calls == ["my personal details"]


def test_escape_during_clarification_and_while_an_sms_is_pending() -> None:
    call = Call()
    call.say("a bill")
    assert transfer_of(call.say("operator")).context.reason == "escape"
    call = Call()
    call.say("i forgot my password")
    assert call.dialogue.state.waiting_for == "sms"
    assert transfer_of(call.say("representative")).context.reason == "escape"


def test_dtmf_zero_transfers_even_during_the_announcements() -> None:
    call = Call(at=CHRISTMAS)
    transfer = transfer_of(call.press("0"))
    assert (transfer.group, transfer.context.reason) == ("members", "dtmf")


def test_other_keys_are_ignored_outside_clarification() -> None:
    call = Call()
    assert call.press("5") == []
    assert call.dialogue.state.waiting_for == "listen"


def test_swedish_escape_speaks_swedish() -> None:
    call = Call(config=SV)
    actions = call.say("jag vill prata med en människa")
    assert said(actions) == ["Jag kopplar dig till medlemsservice."]
    say = actions[0]
    assert isinstance(say, Say) and (say.voice, say.language) == ("Polly.Astrid", "sv-SE")
    assert transfer_of(actions).context.reason == "escape"


def test_escape_when_the_default_group_is_closed_explains_and_texts_the_help_link() -> None:
    call = Call(at=CLOSED)
    actions = call.say("agent")
    assert not any(isinstance(a, Transfer) for a in actions)
    assert "closed" in said(actions)[0]
    assert [a.body for a in actions if isinstance(a, SendSms)] == [
        "Our help pages: https://example.org/help"
    ]
    assert actions[-1] == HangUpCall("closed")


# --- transfer intents and closed groups -------------------------------------------------------


def test_accepted_transfer_intent_goes_to_its_group_with_context() -> None:
    call = Call()
    actions = call.say("my invoice is wrong")
    assert said(actions) == ["I'll put you through to the invoice team."]
    transfer = transfer_of(actions)
    assert transfer.group == "billing"
    assert str(transfer.destination) == "sip:billing@pbx.example.org"  # one scheme
    context = transfer.context
    assert (context.intent, context.transcript, context.language) == (
        "invoice",
        "my invoice is wrong",
        "en-US",
    )
    assert context.confidence == pytest.approx(0.9)
    outcome = call.dialogue.outcome
    assert outcome is not None
    assert (outcome.kind, outcome.group, outcome.intent, outcome.turns) == (
        OutcomeKind.TRANSFERRED,
        "billing",
        "invoice",
        1,
    )


def test_closed_group_says_so_texts_its_link_and_says_goodbye() -> None:
    call = Call(at=CLOSED)
    actions = call.say("my home insurance")
    texts = said(actions)
    assert texts[0].startswith("The insurance team is closed right now.")
    assert texts[-1] == EN.prompts.goodbye
    sms = [a for a in actions if isinstance(a, SendSms)]
    assert [(s.to, s.body) for s in sms] == [
        (MOBILE, "Report an insurance claim: https://example.org/insurance/claim")
    ]
    assert actions[-1] == HangUpCall("closed")
    outcome = call.dialogue.outcome
    assert outcome is not None and outcome.kind is OutcomeKind.CLOSED


@pytest.mark.parametrize("caller", [None, LANDLINE, "+266696687", "anonymous"])
def test_closed_group_does_not_promise_a_text_to_a_caller_who_cannot_take_one(
    caller: str | None,
) -> None:
    call = Call(at=CLOSED, caller=caller)
    actions = call.say("my home insurance")
    assert not any(isinstance(a, SendSms) for a in actions)
    closed = EN.groups["insurance"].when_closed
    assert closed is not None and closed.say_without_sms is not None
    assert said(actions) == [closed.say_without_sms, EN.prompts.goodbye]
    assert not any("text" in line for line in said(actions)), said(actions)
    assert actions[-1] == HangUpCall("closed")


def test_closed_group_without_a_no_sms_text_admits_it_cannot_text() -> None:
    insurance = EN.groups["insurance"]
    assert insurance.when_closed is not None
    bare = replace(insurance, when_closed=replace(insurance.when_closed, say_without_sms=None))
    config = replace(EN, groups={**EN.groups, "insurance": bare})
    actions = Call(config, at=CLOSED, caller=None).say("my home insurance")
    assert said(actions) == [
        insurance.when_closed.say,
        EN.prompts.sms_failed,
        EN.prompts.goodbye,
    ]


def test_closed_group_overflowing_elsewhere_does_not_promise_a_text_either() -> None:
    courses = EN.groups["courses"]
    assert courses.when_closed is not None
    overflowing = replace(courses, when_closed=replace(courses.when_closed, transfer_to="members"))
    config = replace(EN, groups={**EN.groups, "courses": overflowing})
    lunch = dt.datetime(2026, 11, 24, 12, 30, tzinfo=STOCKHOLM)  # courses closed, members open
    actions = Call(config, at=lunch, caller=None).say("kurs")
    assert said(actions)[0] == courses.when_closed.say_without_sms
    assert not any(isinstance(a, SendSms) for a in actions)
    assert transfer_of(actions).group == "members"


def test_closed_group_overflows_to_its_transfer_to_group() -> None:
    call = Call(at=FRIDAY_PM)
    actions = call.say("my invoice is wrong")
    assert said(actions) == [EN.groups["billing"].when_closed.say]  # type: ignore[union-attr]
    transfer = transfer_of(actions)
    assert (transfer.group, transfer.context.reason) == ("members", "closed_overflow")
    assert transfer.context.intent == "invoice"


def test_when_closed_cycles_end_politely_instead_of_looping() -> None:
    members = EN.groups["members"]
    assert members.when_closed is not None
    looped: AgentGroup = replace(
        members, when_closed=replace(members.when_closed, transfer_to="billing")
    )
    config = replace(EN, groups={**EN.groups, "members": looped})
    call = Call(config=config, at=CLOSED)
    actions = call.say("my invoice is wrong")
    assert not any(isinstance(a, Transfer) for a in actions)
    assert actions[-1] == HangUpCall("closed")
    assert said(actions)[-1] == EN.prompts.goodbye


def test_a_closed_group_without_when_closed_is_still_transferred_to() -> None:
    billing = replace(EN.groups["billing"], when_closed=None)
    call = Call(config=replace(EN, groups={**EN.groups, "billing": billing}), at=CLOSED)
    assert transfer_of(call.say("my invoice is wrong")).group == "billing"


def test_intent_announcement_plays_before_the_transfer() -> None:
    reminder = Announcement("vat", "Remember the VAT change.", None, None, None, ("invoice",))
    call = Call(config=replace(EN, announcements=(reminder,)))
    assert said(call.say("my invoice is wrong")) == [
        "Remember the VAT change.",
        "I'll put you through to the invoice team.",
    ]


# --- announce ---------------------------------------------------------------------------------


def test_announce_reads_the_text_then_asks_anything_else() -> None:
    call = Call()
    actions = call.say("when are you open")
    texts = said(actions)
    assert texts[0].startswith("Member services and the insurance team are open")
    assert texts[-1] == EN.prompts.anything_else
    assert isinstance(actions[-1], Listen)


@pytest.mark.parametrize("answer", ["no", "no thank you", None])
def test_no_or_silence_after_anything_else_says_goodbye(answer: str | None) -> None:
    call = Call()
    call.say("when are you open")
    actions = call.silence() if answer is None else call.say(answer)
    assert said(actions) == [EN.prompts.goodbye]
    assert actions[-1] == HangUpCall("goodbye")
    outcome = call.dialogue.outcome
    assert outcome is not None
    assert outcome.kind is OutcomeKind.ANNOUNCED
    assert outcome.served == ("opening_hours",)


def test_a_bare_no_after_anything_else_says_goodbye_whatever_the_matcher_makes_of_it() -> None:
    """The recogniser writes a bare "no" in more than one way and the matcher may take one for
    a request (Korean "아니오" was accepted as the intent just served, and the caller, who had
    said no, was put through to a person as if annoyed): nothing but words for no is no."""
    call = Call(classify=Classifier({**SCRIPT, "no": accept("opening_hours", 0.36)}))
    call.say("when are you open")
    actions = call.say("no")
    assert said(actions) == [EN.prompts.goodbye] and actions[-1] == HangUpCall("goodbye")


def test_a_new_request_after_anything_else_is_a_new_turn() -> None:
    call = Call()
    call.say("when are you open")
    transfer = transfer_of(call.say("my invoice is wrong"))
    assert transfer.context.intent == "invoice"
    outcome = call.dialogue.outcome
    assert outcome is not None and outcome.turns == 2


def test_a_bare_yes_after_anything_else_listens_for_the_request() -> None:
    call = Call()
    call.say("when are you open")
    actions = call.say("yes")
    assert len(actions) == 1 and isinstance(actions[0], Listen)
    assert transfer_of(call.say("i paid twice")).context.intent == "payment_problem"


def test_an_announce_intent_plays_its_announcements_after_the_text() -> None:
    reminder = Announcement(
        "xmas", "We close early on Friday.", None, None, None, ("opening_hours",)
    )
    call = Call(config=replace(EN, announcements=(reminder,)))
    texts = said(call.say("when are you open"))
    assert texts[1:] == ["We close early on Friday.", EN.prompts.anything_else]


# --- sms --------------------------------------------------------------------------------------


def test_sms_intent_texts_the_link_and_waits_for_the_result() -> None:
    call = Call()
    actions = call.say("i forgot my password")
    assert actions == [
        SendSms(
            MOBILE,
            "Log in and reset your password here: https://example.org/help/login",
            "login_password",
        )
    ]
    assert call.dialogue.state.waiting_for == "sms"
    done = call.sms(ok=True)
    assert said(done) == [
        "I've texted you a link that explains how to log in and reset your password.",
        EN.prompts.anything_else,
    ]
    call.say("no")
    outcome = call.dialogue.outcome
    assert outcome is not None and outcome.kind is OutcomeKind.SMS_SENT


def test_failed_sms_with_read_fallback_reads_the_answer() -> None:
    call = Call()
    call.say("i forgot my password")
    texts = said(call.sms(ok=False))
    assert texts[0] == EN.prompts.sms_failed
    assert texts[1].startswith("Go to example dot org")
    assert texts[2] == EN.prompts.anything_else


def test_failed_sms_with_transfer_fallback_transfers() -> None:
    call = Call()
    call.say("i moved")
    actions = call.sms(ok=False)
    assert said(actions)[0] == EN.prompts.sms_failed
    transfer = transfer_of(actions)
    assert (transfer.group, transfer.context.reason) == ("members", "sms_fallback")
    assert transfer.context.intent == "change_address"


@pytest.mark.parametrize("caller", [None, "", LANDLINE, "+266696687", "12345"])
def test_sms_intent_without_a_mobile_number_falls_back_at_once(caller: str | None) -> None:
    call = Call(caller=caller)
    actions = call.say("i forgot my password")
    assert not any(isinstance(a, SendSms) for a in actions)
    # never offered a text, so no apology for one: straight to the answer read aloud
    assert EN.prompts.sms_failed not in said(actions)
    assert said(actions)[0].startswith("Go to example dot org")
    assert said(actions)[-1] == EN.prompts.anything_else


def test_sms_intent_without_a_mobile_number_transfers_without_apologising() -> None:
    actions = Call(caller=None).say("i moved")
    assert said(actions) == ["I'll put you through to member services."]
    transfer = transfer_of(actions)
    assert (transfer.group, transfer.context.reason) == ("members", "sms_fallback")


def test_tax_reminder_is_played_before_the_sms_during_tax_season() -> None:
    call = Call(at=TAX_SEASON)
    actions = call.say("my tax statement")
    assert said(actions) == [EN.announcements[0].text]
    assert isinstance(actions[-1], SendSms)
    assert said(Call(at=OPEN).say("my tax statement")) == []


# --- max turns --------------------------------------------------------------------------------


def test_max_turns_hands_the_caller_to_a_person() -> None:
    call = Call()
    assert EN.max_turns == 4
    # questions 2, 3, 4: "anything else?", "didn't get that", "anything else?" (varied: the
    # same request twice in a row is an annoyed caller, put through at once)
    for text in ("when are you open", "purple elephants dancing", "when are you open"):
        assert isinstance(call.say(text)[-1], Listen)
    actions = call.say("purple elephants dancing")
    assert EN.prompts.anything_else not in said(actions)
    transfer = transfer_of(actions)
    assert (transfer.group, transfer.context.reason) == ("members", "max_turns")
    outcome = call.dialogue.outcome
    assert outcome is not None and outcome.turns == 4


def test_max_turns_of_one_transfers_on_the_first_reprompt() -> None:
    call = Call(config=replace(EN, max_turns=1))
    assert transfer_of(call.silence()).context.reason == "max_turns"


# --- hang-up and the end ----------------------------------------------------------------------


def test_caller_hang_up_records_where_it_happened_and_ends_quietly() -> None:
    call = Call(at=CHRISTMAS)
    assert call.hang_up() == []
    outcome = call.dialogue.outcome
    assert outcome is not None
    assert outcome.kind is OutcomeKind.CALLER_HUNG_UP
    assert outcome.after == "announcement:christmas_closing"


def test_caller_hang_up_after_being_served_keeps_what_was_served() -> None:
    call = Call()
    call.say("when are you open")
    call.hang_up()
    outcome = call.dialogue.outcome
    assert outcome is not None
    assert (outcome.kind, outcome.served) == (OutcomeKind.CALLER_HUNG_UP, ("opening_hours",))


@pytest.mark.parametrize(
    "event",
    [
        Utterance(alternatives=(("agent", 1.0),), at=OPEN),
        SilenceTimeout(at=OPEN),
        Dtmf(digit="0", at=OPEN),
        SmsResult(ok=True, detail="", at=OPEN),
        Failure(error="boom", at=OPEN),
        HangUp(at=OPEN),
        Partial(text="hello", at=OPEN),
    ],
)
def test_events_after_the_end_do_nothing(event: Event) -> None:
    call = Call()
    call.say("my invoice is wrong")
    outcome = call.dialogue.outcome
    assert call.send(event) == []
    assert call.dialogue.outcome == outcome


# --- barge-in ---------------------------------------------------------------------------------


def test_partial_speech_stops_the_prompt_once_per_turn() -> None:
    call = Call()
    assert all(a.barge_in for a in call.first if isinstance(a, Say))
    assert call.send(Partial(text="I", at=call.at)) == [StopSpeaking()]
    assert call.send(Partial(text="I have", at=call.at)) == []
    call.silence()
    assert call.send(Partial(text="my", at=call.at)) == [StopSpeaking()]


def test_speech_before_a_transfer_cannot_be_interrupted() -> None:
    call = Call()
    actions = call.say("my invoice is wrong")
    assert not any(a.barge_in for a in actions if isinstance(a, Say))


def test_partial_while_an_sms_is_pending_does_nothing() -> None:
    call = Call()
    call.say("i forgot my password")
    assert call.send(Partial(text="hello", at=call.at)) == []


# --- the match reported for the call log -------------------------------------------------------


def scripted(text: str) -> Match:
    """What the scripted classifier answers for ``text``."""
    return Classifier()(((text, 0.9),))


def test_a_request_reports_the_classifiers_match_until_the_next_event() -> None:
    call = Call(classify=Classifier({"hm": clarify("invoice", "insurance")}))
    assert call.dialogue.match is None  # the greeting classified nothing
    call.say("hm")
    assert call.dialogue.match == Match(
        "hm", (Scored("invoice", 0.48), Scored("insurance", 0.45)), Verdict.CLARIFY
    )
    call.silence()  # clarification asked again
    assert call.dialogue.match is None
    call.say("the second one")  # picked by position: not classified
    assert call.dialogue.match is None and call.dialogue.outcome is not None


def test_a_request_nobody_understood_reports_the_reject() -> None:
    call = Call()
    call.say("where is my parcel")
    assert call.dialogue.match == scripted("where is my parcel")
    assert call.dialogue.match.verdict is Verdict.REJECT
    call.say("yes")  # not an answer to a question here, and no request either: fails again
    assert call.dialogue.match is None
    assert call.dialogue.outcome is not None and call.dialogue.outcome.reason == "no_match"


@pytest.mark.parametrize("event", ["silence", "dtmf", "escape", "empty"])
def test_events_that_are_no_request_report_no_match(event: str) -> None:
    call = Call()
    call.say("a bill")  # "A or B?": the match of "a bill" is reported
    assert call.dialogue.match is not None
    if event == "silence":
        call.silence()
    elif event == "dtmf":
        call.press("1")
    elif event == "escape":
        call.say("agent")
    else:
        call.say("  ")
    assert call.dialogue.match is None
    assert call.dialogue.state.match is None


@pytest.mark.parametrize("answer", ["yes", "no", "no thank you", "Yes."])
def test_a_yes_or_no_to_anything_else_reports_no_match(answer: str) -> None:
    call = Call()
    call.say("when are you open")
    assert call.dialogue.match == scripted("when are you open")
    call.say(answer)
    assert call.classify.calls[-1] == answer  # asked, in case it was a request after all
    assert call.dialogue.match is None  # but answered the question: no request to report


def test_a_request_after_anything_else_reports_its_match() -> None:
    call = Call()
    call.say("when are you open")
    call.say("i paid twice")
    assert call.dialogue.match == scripted("i paid twice")


@pytest.mark.parametrize("answer", ["yes", "no"])
def test_a_yes_or_no_to_a_clarification_reports_no_match(answer: str) -> None:
    call = Call()
    call.say("a bill")
    call.say(answer)
    assert call.dialogue.match is None


# --- errors -----------------------------------------------------------------------------------


def _raise(alternatives: Sequence[tuple[str, float]]) -> Match:
    raise RuntimeError("matcher crashed")


def test_a_crashing_classifier_apologises_and_transfers() -> None:
    dialogue = Dialogue(EN, _raise)
    dialogue.start(CallStarted(at=OPEN, caller=MOBILE))
    actions = dialogue.handle(Utterance(alternatives=(("my invoice", 0.9),), at=OPEN))
    assert said(actions) == [EN.prompts.error]
    transfer = transfer_of(actions)
    assert (transfer.group, transfer.context.reason) == ("members", "error")
    assert dialogue.ended


def test_an_intent_missing_from_the_config_is_an_error_not_a_crash() -> None:
    call = Call(classify=Classifier({"x": accept("no_such_intent")}))
    assert transfer_of(call.say("x")).context.reason == "error"


def test_a_failure_event_transfers_even_before_the_call_started() -> None:
    dialogue = Dialogue(EN, Classifier())
    actions = dialogue.handle(Failure(error="websocket closed", at=OPEN))
    assert transfer_of(actions).context.reason == "error"


def test_with_broken_prompts_the_error_path_still_transfers() -> None:
    broken = replace(EN, prompts=cast(Prompts, None))
    state, actions = step(State(), CallStarted(at=OPEN, caller=None), broken, Classifier())
    assert actions == [transfer_of(actions)]
    assert transfer_of(actions).group == "members"
    assert state.ended


def test_with_no_default_group_the_bot_still_ends_the_call() -> None:
    broken = replace(EN, default_group="nowhere")
    state, actions = step(State(), Failure(error="x", at=OPEN), broken, Classifier())
    assert actions == [HangUpCall("error")]
    assert state.outcome is not None and state.outcome.kind is OutcomeKind.ERROR


# --- purity -----------------------------------------------------------------------------------


def test_step_does_not_change_the_state_it_is_given() -> None:
    classify = Classifier()
    state, _ = step(State(), CallStarted(at=OPEN, caller=MOBILE), EN, classify)
    before = state
    event = Utterance(alternatives=(("my invoice is wrong", 0.9),), at=OPEN)
    first = step(state, event, EN, classify)
    second = step(state, event, EN, classify)
    assert state == before and not state.ended
    assert first == second


def test_outcome_prints_one_readable_line() -> None:
    call = Call()
    call.say("my invoice is wrong")
    assert str(call.dialogue.outcome) == (
        "transferred turns=1 reason=intent group=billing intent=invoice after=greeting"
    )


GERMAN = """\
language: de-DE
voice: Polly.Vicki
prompts:
  greeting: Hallo! Worum geht es?
  reprompt: Ich habe nichts gehört. Worum geht es?
  no_match: Das habe ich nicht verstanden. Sagen Sie zum Beispiel {hints}.
  clarify: Geht es um {a} oder {b}?
  anything_else: Kann ich sonst noch helfen?
  transfer: Ich verbinde Sie mit {group}.
  sms_sent: Ich habe Ihnen eine SMS geschickt.
  sms_failed: Ich konnte Ihnen keine SMS schicken.
  goodbye: Auf Wiederhören!
  error: Etwas ist schiefgegangen. Ich verbinde Sie.
words:
  escape: [mitarbeiter]
  yes: [ja]
  no: [nein]
  first: [erste, ersten, erstere]
  second: [zweite, zweiten, letztere]
  stop: [die, der, das, meine, mein]
default_group: service
groups:
  service:
    queue: service
  kasse:
    queue: kasse
intents:
  rechnung:
    label: die Rechnung
    phrases: [meine rechnung]
    transfer: service
  zahlung:
    label: die Zahlung
    phrases: [meine zahlung]
    transfer: kasse
"""


@pytest.mark.parametrize(
    ("answer", "intent"), [("die erste", "rechnung"), ("die letztere bitte", "zahlung")]
)
def test_a_language_without_built_in_words_can_pick_by_position(answer: str, intent: str) -> None:
    """Ordinals are per-language words, not English and Swedish built into the dialogue."""
    config = load_language_text(GERMAN, "de-DE.yaml")
    classify = Classifier({"geld": clarify("rechnung", "zahlung")})
    call = Call(config=config, classify=classify)
    assert said(call.say("geld")) == ["Geht es um die Rechnung oder die Zahlung?"]
    assert transfer_of(call.say(answer)).context.intent == intent


@pytest.mark.parametrize(
    ("text", "phrase", "expected"),
    [
        ("kan jag få prata lite med någon", "prata med någon", True),
        ("prata med dem eller någon", "prata med någon", True),  # two words between
        ("prata med dem eller kanske någon", "prata med någon", False),  # three
        ("någon prata med", "prata med någon", False),  # order matters
        ("en riktig människan", "människa", False),  # no endings given
        ("kundtjänsten", "kundtjänst", True),  # "en" is one of the endings below
        ("medarbetarna", "medarbetare", False),  # an ending that is not in the list
    ],
)
def test_escape_phrases_match_in_order_with_small_gaps_and_endings(
    text: str, phrase: str, expected: bool
) -> None:
    from voicebot.core.text import says_phrase

    endings = ("en",) if phrase == "kundtjänst" else ()
    assert says_phrase(text, phrase, endings) is expected
