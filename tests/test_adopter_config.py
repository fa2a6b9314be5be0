"""The matcher on the kind of config an adopter starts with (Swedish, 3 groups, 8 intents, 4-6
phrases each): ``thresholds.reject`` moves the line the way its name says (here and on the
shipped example), and questions are asked only when the answer changes where the caller goes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from voicebot.core.config import ActionKind, Intent, IntentAction, Thresholds
from voicebot.core.match import Scored, Verdict, decide
from voicebot.core.text import fold_diacritics
from voicebot.loading.importer import import_labelled
from voicebot.loading.loader import load_deployment, load_language_text
from voicebot.matching.labelled import read_labelled
from voicebot.matching.matcher import Matcher

ROOT = Path(__file__).resolve().parent.parent


def intent(name: str, group: str, phrases: Sequence[str]) -> Intent:
    action = (
        IntentAction(ActionKind.ANNOUNCE, text="Vi har öppet vardagar 8 till 17.")
        if group == "announce"
        else IntentAction(ActionKind.TRANSFER, group=group)
    )
    return Intent(name=name, label=name, phrases=tuple(phrases), examples=(), action=action)


# Written the way a new adopter starts: three groups, eight intents, four to six phrases each
# (fakturor and betalningar both go to ekonomi).
ADOPTER = (
    intent(
        "fakturor",
        "ekonomi",
        [
            "jag har en fråga om min faktura",
            "fakturan är fel",
            "varför är räkningen så hög",
            "jag har fått två fakturor",
            "jag vill ha en kopia på fakturan",
        ],
    ),
    intent(
        "betalningar",
        "ekonomi",
        [
            "jag har betalat två gånger",
            "betalningen gick inte igenom",
            "jag fick en påminnelse fast jag har betalat",
            "jag vill betala med autogiro",
        ],
    ),
    intent(
        "losenord",
        "teknik",
        [
            "jag har glömt mitt lösenord",
            "jag kan inte logga in",
            "kontot är låst",
            "återställa lösenordet",
            "jag får ingen kod",
        ],
    ),
    intent(
        "appen",
        "teknik",
        [
            "appen fungerar inte",
            "appen kraschar hela tiden",
            "jag kan inte ladda ner appen",
            "appen startar inte",
        ],
    ),
    intent(
        "adress",
        "kundtjanst",
        [
            "jag har flyttat",
            "jag vill ändra min adress",
            "ny adress",
            "ni har fel adress till mig",
            "uppdatera mitt telefonnummer",
        ],
    ),
    intent(
        "uppsagning",
        "kundtjanst",
        [
            "jag vill säga upp mitt avtal",
            "avsluta mitt abonnemang",
            "jag vill inte vara kund längre",
            "säga upp",
        ],
    ),
    intent(
        "leverans",
        "kundtjanst",
        [
            "mitt paket har inte kommit",
            "var är min beställning",
            "leveransen är försenad",
            "jag har fått fel vara",
            "paketet kom aldrig fram",
            "spåra min leverans",
        ],
    ),
    intent(
        "oppettider",
        "announce",
        ["när har ni öppet", "vilka öppettider har ni", "har ni öppet på lördag", "när stänger ni"],
    ),
)

# Off topic for this line: the three, then our own.
OFF_TOPIC = (
    "vad blir det för väder i morgon",
    "jag vill beställa en taxi",
    "kan du spela lite musik",
    "vem vann matchen igår",
    "hur lagar man köttbullar",
    "boka ett bord för två",
    "vad är klockan i new york",
    "berätta ett skämt",
    "jag vill köpa en ny bil",
    "hur mår du idag",
)

IN_SCOPE = (
    ("räkningen stämmer inte", "fakturor"),
    ("ni har dragit pengar två gånger", "betalningar"),
    ("jag kommer inte in på mina sidor", "losenord"),
    ("appen hänger sig", "appen"),
    ("vi har bytt bostad", "adress"),
    ("jag vill avsluta mitt konto hos er", "uppsagning"),
    ("min leverans har inte kommit fram", "leverans"),
    ("hur dags öppnar ni", "oppettider"),
    ("jag glömde lösenordet", "losenord"),
    ("fakturan har fel belopp", "fakturor"),
    ("paketet är försenat", "leverans"),
)


def rejected(intents: Sequence[Intent], reject: float, texts: Sequence[str]) -> set[str]:
    """The texts a matcher built with this reject threshold sends to the fallback."""
    matcher = Matcher(tuple(intents), Thresholds(accept=max(0.5, reject), reject=reject))
    return {t for t in texts if matcher.match(t).verdict is Verdict.REJECT}


def assert_raising_reject_rejects_more(intents: Sequence[Intent], texts: Sequence[str]) -> None:
    low, mid, high = (rejected(intents, r, texts) for r in (0.2, 0.35, 0.5))
    assert low <= mid <= high, (low, mid, high)
    assert len(high) > len(low), (low, high)


def test_raising_reject_rejects_more_on_a_few_shot_swedish_config() -> None:
    # Before issue #22 the three sets were the same: the line sat at the calibrated point
    # whatever ops set, and a higher reject only made the bot accept more.
    texts = [*OFF_TOPIC, *(t for t, _ in IN_SCOPE)]
    assert_raising_reject_rejects_more(ADOPTER, texts)


def test_raising_reject_rejects_more_on_the_example_deployment() -> None:
    swedish = load_deployment(ROOT / "grammars").languages["sv-SE"]
    far = (ROOT / "bench/data/sv-support/far_oos.txt").read_text(encoding="utf-8").splitlines()
    texts = [t for t in far if t and not t.startswith("#")][:10]
    texts += ["jag har flyttat till stockholm", "när kommer pengarna från a-kassan"]
    assert_raising_reject_rejects_more(tuple(swedish.intents.values()), texts)


def test_the_scores_do_not_depend_on_the_thresholds() -> None:
    # What moves is the line, not the scores: the same caller gets the same score under any
    # thresholds, so `voicebot eval` figures of one setting predict the others.
    default = Matcher(ADOPTER, Thresholds())
    strict = Matcher(ADOPTER, replace(Thresholds(), reject=0.45, accept=0.6))
    for text in ("fakturan är fel", "jag vill beställa en taxi"):
        assert (default.scores(text) == strict.scores(text)).all()


@pytest.fixture(scope="module")
def adopter() -> Matcher:
    return Matcher(ADOPTER, Thresholds())


@pytest.mark.parametrize(
    "text",
    ["en fråga om pengar", "jag har en fråga om pengar", "det gäller en betalning på fakturan"],
)
def test_a_lukewarm_money_question_goes_to_ekonomi_without_a_question(
    adopter: Matcher, text: str
) -> None:
    # Was "fakturor eller betalningar?" (or a question naming an intent under the reject line):
    # both go to ekonomi, so the answer would change nothing.
    result = adopter.match(text)
    assert result.verdict is Verdict.ACCEPT, result
    assert result.intent in ("fakturor", "betalningar")


def test_the_shipped_swedish_example_does_not_ask_about_money() -> None:
    # "en fråga om pengar" was "Gäller det fakturor och medlemsavgifter eller ett problem med
    # en betalning?": both go to the billing team.
    swedish = load_deployment(ROOT / "grammars").languages["sv-SE"]
    result = Matcher(tuple(swedish.intents.values()), swedish.thresholds).match(
        "en fråga om pengar"
    )
    assert result.verdict is Verdict.ACCEPT, result
    assert swedish.intents[str(result.intent)].action.group == "billing"


def test_an_intent_under_the_reject_line_is_never_offered() -> None:
    routes = {"a": "group:x", "b": "group:y"}
    lukewarm = (Scored("a", 0.45), Scored("b", 0.2))
    assert decide(lukewarm, Thresholds(), routes) is Verdict.ACCEPT
    both = (Scored("a", 0.45), Scored("b", 0.35))
    assert decide(both, Thresholds(), routes) is Verdict.CLARIFY
    same = (Scored("a", 0.45), Scored("b", 0.44))
    assert decide(same, Thresholds(), {"a": "group:x", "b": "group:x"}) is Verdict.ACCEPT


def test_a_four_phrase_config_rejects_what_it_does_not_cover(adopter: Matcher) -> None:
    rejected = [t for t in OFF_TOPIC if adopter.match(t).verdict is Verdict.REJECT]
    assert {"vad blir det för väder i morgon", "kan du spela lite musik"} <= set(rejected)
    assert len(rejected) >= 8, rejected
    routed = [t for t, name in IN_SCOPE if adopter.match(t).intent == name]
    assert len(routed) >= len(IN_SCOPE) - 1, routed


def test_a_27_intent_four_example_line_rejects_far_requests_and_still_routes() -> None:
    # bench/data/sv-support (27 intents x 4 examples) against the Swedish far out-of-scope
    # requests: 13 of 24 were rejected while the line sat at the lowest held-out text.
    folder = ROOT / "bench" / "data" / "sv-support"
    config = load_language_text(
        import_labelled(folder / "train.csv", ROOT / "bench/routes/sv-support.yaml"), "<sv>"
    )
    matcher = Matcher(tuple(config.intents.values()), config.thresholds)
    lines = (folder / "far_oos.txt").read_text(encoding="utf-8").splitlines()
    far = [t for t in lines if t and not t.startswith("#")]
    rejected = sum(matcher.match(t).verdict is Verdict.REJECT for t in far)
    assert rejected >= 0.6 * len(far), rejected
    test = read_labelled(folder / "test.csv")
    routes = {name: intent.route for name, intent in config.intents.items()}
    routed = sum(routes.get(str(matcher.match(t).intent)) == routes[name] for t, name in test)
    assert routed >= 0.78 * len(test), routed


def routes(matcher: Matcher, text: str, expected: str) -> bool:
    result = matcher.match(text)
    return result.intent == expected and result.verdict is not Verdict.REJECT


@pytest.mark.parametrize(
    ("text", "expected"),
    [("räkningen stämmer inte", "fakturor"), ("ni har dragit pengar två gånger", "betalningar")],
)
def test_the_requests_the_respeller_was_built_for_route_without_a_ring_and_dots(
    adopter: Matcher, text: str, expected: str
) -> None:
    # A chat typed on an ASCII keyboard, or a recogniser hearing "a"/"o". Before the respeller
    # the encoder took such words for unknown ones, and these two (the bill that "stammer
    # inte", paid "tva ganger") went to a person.
    assert routes(adopter, fold_diacritics(text), expected)


def test_callers_words_without_a_ring_and_dots_route_like_swedish_spelling(
    adopter: Matcher,
) -> None:
    # Every request the Swedish spelling routes is routed as heard without å/ä/ö, but one at
    # most, as the clean-text test above allows one: a word the config does not write
    # ("hänger" in "appen hänger sig") reaches only the encoder, which scored "appen hanger
    # sig" 0.2999 against the reject line's 0.3 on one machine (its engine's arithmetic
    # differs by CPU) and just above it on another.
    clean = [(t, name) for t, name in IN_SCOPE if routes(adopter, t, name)]
    assert len(clean) >= len(IN_SCOPE) - 1, clean
    lost = [t for t, name in clean if not routes(adopter, fold_diacritics(t), name)]
    assert len(lost) <= 1, lost
