"""Suggested intents with the real sentence encoder: paraphrases of one new topic land in one
group, a stray sentence stays unassigned, each group names the existing intent it is closest to,
and caller utterances never reach the on-disk vector cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.core.config import ActionKind, Intent, IntentAction
from voicebot.matching.embedding_cache import Embeddings, cache_file
from voicebot.matching.encoder import default_encoder
from voicebot.matching.suggest import EXAMPLES, Said, cluster, suggest, tally

PARCEL = [
    "where is my parcel",
    "my package has not arrived",
    "i am still waiting for my delivery",
    "can you track my parcel",
    "the parcel never came",
    "has my package been shipped yet",
    "where is my order",
]
PASSWORD = [
    "i forgot my password",
    "i cannot log in",
    "my login does not work",
    "reset my password please",
    "the password is not accepted",
]
MOVING = [
    "i have moved to a new address",
    "i need to change my address",
    "update my home address",
    "i am moving next month where do i send my new address",
    "my address is wrong in your records",
    "new address",
]
CARD = [
    "my membership card is lost",
    "i lost my member card",
    "can i get a new membership card",
    "my card is broken",
    "the membership card never arrived",
    "i need a replacement card",
]
TOPICS = {"parcel": PARCEL, "password": PASSWORD, "moving": MOVING, "card": CARD}
STRAY = "is it going to rain tomorrow in paris"


def intent(name: str, *phrases: str) -> Intent:
    return Intent(name, name, phrases, (), IntentAction(ActionKind.TRANSFER, group="members"))


INTENTS = [
    intent("login_password", "i forgot my password", "i can't log in"),
    intent("invoice", "my invoice is wrong", "how much is the membership fee"),
]


@pytest.fixture
def embeddings(tmp_path: Path) -> Embeddings:
    """The real encoder with a cache file of its own, to see what gets written."""
    encoder = default_encoder()
    return Embeddings(encoder, cache_file(encoder.id, tmp_path))


def test_tally_merges_what_normalises_alike_and_sorts_by_count() -> None:
    said = tally([("Where is my parcel?", 2), ("where is my parcel", 3), ("", 4), ("hi", 0)])
    assert said == [Said("where is my parcel", 5)]
    assert tally([("b", 1), ("a", 1), ("c", 2)]) == [Said("c", 2), Said("a", 1), Said("b", 1)]


def test_paraphrases_group_by_meaning_and_a_stray_stays_apart(embeddings: Embeddings) -> None:
    said = tally([(t, 1) for texts in TOPICS.values() for t in texts] + [(STRAY, 1)])
    found = suggest(said, INTENTS, embeddings, stop=("my", "is", "the", "i", "a", "to", "in"))
    topic = {t: name for name, texts in TOPICS.items() for t in texts}
    majorities = []
    for g in found.groups:
        members = [topic[s.text] for s in g.utterances]
        majority = max(set(members), key=members.count)
        majorities.append(majority)
        assert members.count(majority) >= len(members) - 1, g  # at most one stranger
        assert g.count == len(members)
        assert set(g.examples) <= {s.text for s in g.utterances}
        assert len(g.examples) == min(EXAMPLES, len(members))
    assert set(majorities) == set(TOPICS)  # every topic found ...
    assert all(majorities.count(t) <= 2 for t in TOPICS)  # ... as one group, or two at most
    assert STRAY in {s.text for s in found.unassigned}
    assert found.callers == len(said)
    password = found.groups[majorities.index("password")]
    assert {s.text for s in password.utterances} <= set(PASSWORD)
    assert password.name != "login_password"  # never an existing intent's name
    # "phrases missing from an intent we have" is told from "a new topic" by the similarity
    assert password.nearest == "login_password"
    others = [g.similarity for g in found.groups if g is not password]
    assert password.similarity is not None and all(
        s is not None and s < password.similarity for s in others
    )


def test_caller_utterances_are_never_written_to_the_vector_cache(
    embeddings: Embeddings,
) -> None:
    said = tally([(t, 1) for t in PARCEL])
    suggest(said, INTENTS, embeddings)
    with np.load(embeddings.path) as data:
        stored = len(data["keys"])
    assert stored == 4  # the intents' four phrases, nothing a caller said
    again = Embeddings(embeddings.encoder, embeddings.path)
    assert again.texts(["where is my parcel"]).shape == (1, embeddings.dim)
    with np.load(embeddings.path) as data:
        assert len(data["keys"]) == 5  # that text was not there: it had to be encoded


def test_a_topic_few_callers_brought_is_not_a_group(embeddings: Embeddings) -> None:
    said = tally([(PARCEL[0], 1), (PARCEL[1], 1)])
    found = suggest(said, INTENTS, embeddings)
    assert found.groups == () and len(found.unassigned) == 2
    # ... but one sentence said by many callers is
    many = suggest(tally([(PARCEL[0], 5)]), INTENTS, embeddings)
    assert [g.count for g in many.groups] == [5] and many.unassigned == ()


def test_nothing_to_group() -> None:
    assert cluster(np.zeros((0, 384), np.float32), []).shape == (0,)
