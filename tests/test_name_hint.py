"""Intent names as a hint for the few-shot matcher: a name that reads as words helps route a
request its intent's few phrases do not cover; a name that is not words changes nothing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from voicebot.core.config import ActionKind, Intent, IntentAction, Thresholds
from voicebot.core.match import Verdict
from voicebot.matching.matcher import Matcher
from voicebot.matching.name_hint import name_text


def intent(name: str, phrases: Sequence[str]) -> Intent:
    return Intent(
        name=name,
        label=name.replace("_", " "),
        phrases=tuple(phrases),
        examples=(),
        action=IntentAction(ActionKind.TRANSFER, group=name),
    )


PHRASES = {
    "invoice": [
        "why is my bill so high",
        "I was charged twice",
        "the amount is wrong",
        "I want a copy of my bill",
    ],
    "login_password": [
        "I can't get into my account",
        "the app says access denied",
        "I'm locked out",
        "sign in does not work",
    ],
    "change_address": [
        "I've moved house",
        "update my details",
        "I have a new home",
        "my post goes to the old place",
    ],
    "cancel_membership": [
        "I want to quit",
        "end my subscription",
        "I don't want to be a member",
        "stop everything",
    ],
    "course_booking": [
        "I want to sign up for the training",
        "is there a seat on the workshop",
        "register me for the class",
        "when is the next seminar",
    ],
}


def config(names: Sequence[str]) -> tuple[Intent, ...]:
    """The same phrases under other intent names."""
    return tuple(intent(n, p) for n, p in zip(names, PHRASES.values(), strict=True))


@pytest.fixture(scope="module")
def named() -> Matcher:
    return Matcher(config(list(PHRASES)), Thresholds())


def test_a_request_that_only_the_intent_name_covers_is_routed(named: Matcher) -> None:
    # "password" is in none of login_password's four phrases (nor in any other intent's);
    # without the name the bot did not understand it and the caller went to a person.
    result = named.match("password")
    assert result.verdict is not Verdict.REJECT
    assert result.best is not None and result.best.intent == "login_password"


def test_the_same_request_is_not_understood_when_the_names_say_nothing() -> None:
    unnamed = Matcher(config([f"intent_{k}" for k in range(len(PHRASES))]), Thresholds())
    assert unnamed.match("password").verdict is Verdict.REJECT


def test_names_that_are_not_words_change_no_score(named: Matcher) -> None:
    numbered = Matcher(config([f"intent_{k}" for k in range(len(PHRASES))]), Thresholds())
    short = Matcher(config([f"q{k}" for k in range(len(PHRASES))]), Thresholds())
    texts = ["password", "I forgot my login", "book me on a course", "what is the weather"]
    assert np.array_equal(numbered.scores_many(texts), short.scores_many(texts))
    assert not np.array_equal(numbered.scores_many(texts), named.scores_many(texts))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("login_password", "login password"),
        ("AddToPlaylist", "add to playlist"),
        ("course-booking", "course booking"),
        ("IOTLights", "iot lights"),
        ("invoice", "invoice"),
        ("intent_7", ""),
        ("q1", ""),
        ("q_a", ""),
    ],
)
def test_a_name_is_read_as_words_or_not_at_all(name: str, text: str) -> None:
    assert name_text(name) == text
