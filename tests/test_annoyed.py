"""Callers getting annoyed go to a person sooner (issue #23): two "no"s in a row to "is it A or
B?", or the same request again, put the caller through at once to the group of the intent that
matches best (or the default group), with the reason in the transfer and the outcome."""

from __future__ import annotations

from test_dialogue import EN, SCRIPT, Call, Classifier, accept, said, transfer_of

from voicebot.core.actions import Listen, Transfer


def test_two_noes_in_a_row_to_a_clarifying_question_go_to_the_best_intents_group() -> None:
    call = Call()
    assert said(call.say("a bill")) == [
        "Is it about invoices and membership fees or a payment problem?"
    ]
    assert isinstance(call.say("no")[-1], Listen)  # the first "no": asked openly again
    call.say("something about money")  # invoices or insurance?
    actions = call.say("no")
    transfer = transfer_of(actions)
    assert (transfer.group, transfer.context.reason) == ("billing", "annoyed_no")
    assert transfer.context.intent == "invoice"  # the first of the pair, the better match
    assert said(actions) == ["I'll put you through to the invoice team."]
    outcome = call.dialogue.outcome
    assert outcome is not None and outcome.reason == "annoyed_no" and outcome.group == "billing"


def test_a_no_followed_by_a_pick_is_not_two_in_a_row() -> None:
    call = Call()
    call.say("a bill")
    call.say("no")
    call.say("something about money")
    actions = call.say("the first one")
    assert transfer_of(actions).context.reason == "intent"


def test_the_same_request_after_an_answer_goes_to_a_person() -> None:
    call = Call()
    assert EN.intents["opening_hours"].action.kind.value == "announce"
    assert isinstance(call.say("when are you open")[-1], Listen)  # announced, anything else?
    transfer = transfer_of(call.say("when are you open"))
    # The announcement did not help: no group of its own, so the default group.
    assert (transfer.group, transfer.context.reason) == ("members", "annoyed_repeat")
    assert transfer.context.intent == "opening_hours"


def test_the_same_intent_in_other_words_after_its_answer_also_counts() -> None:
    call = Call(classify=Classifier({**SCRIPT, "what are your hours": accept("opening_hours")}))
    call.say("when are you open")
    transfer = transfer_of(call.say("what are your hours"))
    assert transfer.context.reason == "annoyed_repeat"


def test_repeating_a_request_instead_of_answering_a_b_goes_to_the_best_group() -> None:
    call = Call()
    call.say("a bill")
    transfer = transfer_of(call.say("a bill"))
    assert (transfer.group, transfer.context.reason) == ("billing", "annoyed_repeat")


def test_repeating_what_was_not_understood_goes_to_the_default_group_at_once() -> None:
    call = Call()
    assert isinstance(call.say("purple elephants dancing")[-1], Listen)
    transfer = transfer_of(call.say("purple elephants dancing"))
    assert (transfer.group, transfer.context.reason) == ("members", "annoyed_repeat")


def test_different_requests_are_not_a_repeat() -> None:
    call = Call()
    call.say("when are you open")
    actions = call.say("i forgot my password")
    assert not any(isinstance(a, Transfer) for a in actions)
