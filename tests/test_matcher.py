"""The matcher as a caller meets it: what they say, where they end up, and when they are asked."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from voicebot.core.config import ActionKind, Intent, IntentAction, Thresholds
from voicebot.core.match import Verdict
from voicebot.loading.loader import load_deployment
from voicebot.matching.labelled import read_labelled
from voicebot.matching.matcher import Matcher

DATA = Path("/work/shared/data/text/hwu64")


def intent(
    name: str, phrases: Sequence[str], examples: Sequence[str] = (), group: str = ""
) -> Intent:
    return Intent(
        name=name,
        label=name.replace("_", " "),
        phrases=tuple(phrases),
        examples=tuple(examples),
        action=IntentAction(ActionKind.TRANSFER, group=group or name),
    )


SUPPORT = (
    intent(
        "invoice",
        [
            "my invoice",
            "I have a question about my invoice",
            "the amount on the bill is wrong",
            "how much is the membership fee",
            "I want a copy of my invoice",
            "when is my fee due",
        ],
        ["why did you send me two bills", "the invoice says I owe too much", "my bill is too high"],
    ),
    intent(
        "login",
        [
            "I can't log in",
            "I forgot my password",
            "reset my password",
            "my account is locked",
            "the login doesn't work",
            "I never got the verification code",
        ],
        ["the app will not let me sign in", "it says wrong password every time"],
    ),
    intent(
        "change_address",
        [
            "I've moved",
            "change my address",
            "new address",
            "update my phone number",
            "change my contact details",
            "you have my old address",
        ],
        ["we moved house last month", "my email address is new"],
    ),
    intent(
        "cancel_membership",
        [
            "I want to cancel my membership",
            "end my membership",
            "leave the union",
            "I don't want to be a member anymore",
            "quit my membership",
        ],
        ["please terminate my membership", "i am resigning from the union"],
    ),
    intent(
        "insurance",
        [
            "I have a question about my insurance",
            "I want to make an insurance claim",
            "what does the insurance cover",
            "home insurance",
            "my claim hasn't been paid",
        ],
        [
            "my bike was stolen am i covered",
            "water damage in my flat, can i claim",
            "someone broke into my car",
        ],
    ),
    intent(
        "opening_hours",
        [
            "what are your opening hours",
            "when are you open",
            "what time do you close",
            "are you open on saturday",
        ],
        ["until what time can i call", "is the office open tomorrow"],
    ),
)


@pytest.fixture(scope="module")
def support() -> Matcher:
    return Matcher(SUPPORT, Thresholds())


def test_a_phrase_said_as_written_is_accepted(support: Matcher) -> None:
    for text, expected in [
        ("reset my password", "login"),
        ("Change my address.", "change_address"),
        ("what are your opening hours", "opening_hours"),
        ("I want to make an insurance claim", "insurance"),
    ]:
        result = support.match(text)
        assert (result.intent, result.verdict) == (expected, Verdict.ACCEPT), result


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("i forgot my pasword", "login"),  # misspelt by the recogniser
        ("reset password", "login"),  # a word dropped
        ("change my adress please", "change_address"),
        ("a question about the invoce", "invoice"),
        ("cancel membership", "cancel_membership"),
        ("what time do you clothes", "opening_hours"),  # misheard word
    ],
)
def test_misrecognised_words_still_route(support: Matcher, text: str, expected: str) -> None:
    result = support.match(text)
    assert result.intent == expected, result


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my bicycle got stolen, is that covered", "insurance"),
        ("i sent you two payments and got two bills", "invoice"),
        ("we moved to a new house", "change_address"),
        ("the app won't let me sign in", "login"),
        ("is the office open on sunday", "opening_hours"),
    ],
)
def test_paraphrases_route_through_the_examples(support: Matcher, text: str, expected: str) -> None:
    result = support.match(text)
    assert result.intent == expected, result


@pytest.mark.parametrize(
    "text",
    [
        "what's the weather in Paris",
        "play some jazz music",
        "how tall is mount everest",
        "xqzv brrrp glonk",
    ],
)
def test_out_of_scope_requests_go_to_the_fallback(support: Matcher, text: str) -> None:
    result = support.match(text)
    assert result.verdict is Verdict.REJECT, result
    assert result.intent is None


@pytest.mark.parametrize("text", ["", "   ", "?!", "..."])
def test_empty_text_is_rejected_not_an_error(support: Matcher, text: str) -> None:
    result = support.match(text)
    assert result.verdict is Verdict.REJECT
    assert result.ranked == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # No content word in common with the intent's phrases: only the meaning links them.
        ("someone nicked my bike from the garage", "insurance"),
        ("I'd like to quit the union", "cancel_membership"),
        ("I'm locked out of my profile", "login"),
        ("till what hour can I reach you", "opening_hours"),
        ("I'm relocating to another city", "change_address"),
    ],
)
def test_paraphrases_without_shared_words_route_by_meaning(
    support: Matcher, text: str, expected: str
) -> None:
    """The meaning puts the right intent first. Whether it is sure enough to act on is the
    reject line's business: on this six-intent line, as on every line since the small ones
    are calibrated too, about one paraphrase in twenty of what ops wrote scores under it."""
    result = support.match(text)
    assert result.ranked[0].intent == expected, result
    assert result.verdict is not Verdict.ACCEPT or result.intent == expected, result


def test_a_word_several_intents_share_is_asked_about_not_guessed(support: Matcher) -> None:
    # "membership" is in the invoice phrases (the fee) and in every cancel_membership phrase.
    result = support.match("membership")
    assert result.verdict is Verdict.CLARIFY, result
    assert {r.intent for r in result.ranked[:2]} == {"invoice", "cancel_membership"}
    # A word only one intent uses still goes straight there.
    assert support.match("password").intent == "login"
    assert support.match("password").verdict is Verdict.ACCEPT


SWEDISH = (
    intent(
        "faktura",
        [
            "jag har en fråga om min faktura",
            "fakturan är fel",
            "varför är räkningen så hög",
            "jag har fått två räkningar",
        ],
    ),
    intent(
        "losenord",
        [
            "jag har glömt mitt lösenord",
            "jag kan inte logga in",
            "kontot är låst",
            "återställ mitt lösenord",
        ],
    ),
    intent(
        "adress",
        ["jag har flyttat", "jag vill ändra min adress", "ny adress", "ni har fel adress till mig"],
    ),
    intent(
        "saga_upp",
        [
            "jag vill säga upp mitt medlemskap",
            "jag vill gå ur förbundet",
            "avsluta mitt medlemskap",
            "jag vill inte vara medlem längre",
        ],
    ),
    intent(
        "skada",
        [
            "jag vill anmäla en skada",
            "min cykel har blivit stulen",
            "det har varit inbrott hemma",
            "vattenläcka i lägenheten",
        ],
    ),
)


@pytest.fixture(scope="module")
def swedish() -> Matcher:
    return Matcher(SWEDISH, Thresholds())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("appen släpper inte in mig", "losenord"),
        ("vi har bytt bostad", "adress"),
        ("någon har stulit min bil", "skada"),
        ("jag vill lämna facket", "saga_upp"),
        ("det står fel belopp på räkningen", "faktura"),
    ],
)
def test_swedish_paraphrases_route_with_four_phrases_per_intent(
    swedish: Matcher, text: str, expected: str
) -> None:
    result = swedish.match(text)
    assert result.intent == expected, result


def test_swedish_out_of_scope_goes_to_the_fallback(swedish: Matcher) -> None:
    result = swedish.match("vad blir det för väder i morgon")
    assert result.verdict is Verdict.REJECT, result


def test_two_near_identical_intents_make_the_bot_ask(support: Matcher) -> None:
    twins = (
        *SUPPORT,
        intent("cancel_course", ["cancel my booking", "I can't come to the course"], group="c"),
        intent("cancel_trip", ["cancel my booking", "I can't come to the trip"], group="t"),
    )
    result = Matcher(twins, Thresholds()).match("cancel my booking")
    assert result.verdict is Verdict.CLARIFY, result
    assert {r.intent for r in result.ranked[:2]} == {"cancel_course", "cancel_trip"}
    assert result.runner_up is not None
    assert result.ranked[0].score >= result.runner_up.score


def test_two_near_identical_intents_of_one_group_are_not_asked_about() -> None:
    # Asking "course or trip?" changes nothing when both go to the same group: route at once.
    twins = (
        *SUPPORT,
        intent("cancel_course", ["cancel my booking", "I can't come to the course"], group="b"),
        intent("cancel_trip", ["cancel my booking", "I can't come to the trip"], group="b"),
    )
    result = Matcher(twins, Thresholds()).match("cancel my booking")
    assert result.verdict is Verdict.ACCEPT, result
    assert result.intent in ("cancel_course", "cancel_trip")


def test_ranked_is_short_best_first_and_on_the_threshold_scale(support: Matcher) -> None:
    result = support.match("my invoice is wrong")
    assert 1 <= len(result.ranked) <= 5
    scores = [r.score for r in result.ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_n_best_alternatives_are_combined(support: Matcher) -> None:
    # The recogniser's first guess is garbled; the second carries the meaning.
    result = support.match_alternatives([("reset my pass ward", 0.5), ("reset my password", 0.4)])
    assert result.intent == "login"
    assert result.text in ("reset my pass ward", "reset my password")
    # Two weak transcripts that agree beat one that points elsewhere.
    agreed = support.match_alternatives(
        [("home insurance", 0.35), ("my invoice", 0.4), ("home insurances", 0.3)]
    )
    assert agreed.intent == "insurance"
    assert agreed.text in ("home insurance", "home insurances")


def test_n_best_with_nothing_usable_is_rejected(support: Matcher) -> None:
    assert support.match_alternatives([]).verdict is Verdict.REJECT
    assert support.match_alternatives([("", 0.9), ("  ", 0.1)]).verdict is Verdict.REJECT
    # Empty transcripts are skipped, not averaged in as "nothing matched".
    assert support.match_alternatives([("", 0.9), ("reset my password", 0.1)]).intent == "login"


def test_same_config_gives_the_same_answers() -> None:
    texts = ["i forgot my pasword", "we moved to a new house", "what's the weather in Paris"]
    first = Matcher(SUPPORT, Thresholds())
    second = Matcher(SUPPORT, Thresholds())
    assert [first.match(t) for t in texts] == [second.match(t) for t in texts]
    for text in texts:  # not only the same verdicts: the same scores to the last bit
        assert np.array_equal(first.scores(text), second.scores(text))


def test_one_intent_config_still_rejects_what_it_does_not_know() -> None:
    only = Matcher(SUPPORT[1:2], Thresholds())
    assert only.match("I forgot my password").verdict is Verdict.ACCEPT
    assert only.match("what's the weather in Paris").verdict is Verdict.REJECT


def test_single_phrase_intent_next_to_one_with_hundreds_of_examples() -> None:
    rng = random.Random(1)
    topics = ["bill", "invoice", "payment", "fee", "charge", "refund", "direct debit", "receipt"]
    verbs = ["question about my", "problem with the", "help with my", "why is my", "where is the"]
    bulk = [f"{rng.choice(verbs)} {rng.choice(topics)} {i}" for i in range(300)]
    config = (
        intent("billing", ["billing question"], bulk),
        intent("lost_card", ["I lost my membership card"]),
    )
    matcher = Matcher(config, Thresholds())
    assert matcher.match("I lost my membership card").intent == "lost_card"
    assert matcher.match("problem with the refund").intent == "billing"


def test_intent_without_any_text_is_never_chosen() -> None:
    matcher = Matcher((intent("empty", []), *SUPPORT[:2]), Thresholds())
    assert matcher.match("reset my password").intent == "login"
    nothing = Matcher((), Thresholds())
    assert nothing.match("reset my password").verdict is Verdict.REJECT
    assert nothing.match_alternatives([("reset my password", 0.9)]).verdict is Verdict.REJECT


@pytest.mark.skipif(not DATA.exists(), reason=f"shared dataset {DATA} is not on this machine")
def test_ten_examples_per_intent_beat_the_fuzzy_baseline_on_hwu64() -> None:
    # The best-phrase token_sort_ratio baseline gets about 47% of these intents right.
    train = read_labelled(DATA / "train_10.csv")
    by_intent: dict[str, list[str]] = {}
    for text, name in train:
        by_intent.setdefault(name, []).append(text)
    intents = tuple(
        intent(name, [], texts, group=name.split("_")[0]) for name, texts in by_intent.items()
    )
    matcher = Matcher(intents, Thresholds())
    test = read_labelled(DATA / "test.csv")[::4]
    top = [matcher.match(text).ranked[0].intent == name for text, name in test]
    assert sum(top) / len(test) >= 0.6


@pytest.fixture(scope="module")
def example_deployment() -> dict[str, Matcher]:
    deployment = load_deployment(None)
    return {
        lang: Matcher(tuple(config.intents.values()), config.thresholds)
        for lang, config in deployment.languages.items()
    }


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en-US", "book a table for two"),
        ("en-US", "book a flight to london"),
        ("en-US", "read me the news"),
        ("sv-SE", "berätta ett skämt"),
    ],
)
def test_unrelated_requests_go_to_a_person_not_a_question(
    example_deployment: dict[str, Matcher], lang: str, text: str
) -> None:
    # A caller booking a flight is not asked "did you mean course booking?": one phrase near
    # the words ("I want to book a course") does not make a request familiar, the few closest
    # texts together do. These four were asked about while familiarity was the closest text.
    result = example_deployment[lang].match(text)
    assert result.verdict is Verdict.REJECT, result


def test_the_example_deployment_still_routes_its_own_kind_of_request(
    example_deployment: dict[str, Matcher],
) -> None:
    assert example_deployment["en-US"].match("I want to book a course").intent == "course_booking"


STARTER = (  # the size of `voicebot init`'s line: three intents of four or five phrases
    intent(
        "invoice",
        [
            "I have a question about my invoice",
            "the invoice is wrong",
            "I got a reminder although I have paid",
            "when is the invoice due",
            "I want a copy of my invoice",
        ],
    ),
    intent(
        "opening_hours",
        [
            "when are you open",
            "what are your opening hours",
            "are you open on saturday",
            "when do you close",
        ],
    ),
    intent(
        "change_address",
        ["I have moved", "change my address", "I have a new phone number", "update my details"],
    ),
)


def test_a_starter_line_rejects_what_it_does_not_cover_and_keeps_what_it_does() -> None:
    """A line of three intents is too small for one held-out part, and its scores used a fixed
    default that accepted, or asked "is it A or B?" about, almost anything (on `voicebot init`'s
    English line, 7 of 8 off-topic requests of ours). Each phrase held out once in turn gives
    it a line of its own."""
    matcher = Matcher(STARTER, Thresholds())
    off_topic = [
        "what's the weather tomorrow",
        "book me a taxi",
        "play some music",
        "I'd like to complain about a handler",
    ]
    for text in off_topic:
        assert matcher.match(text).verdict is Verdict.REJECT, matcher.match(text)
    for text, expected in [
        ("I have a question about my bill", "invoice"),
        ("why is my invoice so expensive", "invoice"),
        ("are you open on sunday", "opening_hours"),
        ("what are your hours at christmas", "opening_hours"),
        ("I am moving", "change_address"),
        ("you have my old address", "change_address"),
    ]:
        result = matcher.match(text)
        assert (result.intent, result.verdict) == (expected, Verdict.ACCEPT), result
