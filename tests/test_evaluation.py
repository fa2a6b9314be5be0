"""``voicebot eval`` numbers: what ops read to decide whether the intents are good enough."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from voicebot.core.config import Thresholds
from voicebot.core.match import Match, Scored, Verdict
from voicebot.loading.loader import load_language_text
from voicebot.matching.evaluation import (
    UnknownIntentError,
    evaluate,
    format_report,
    read_labelled,
    route_map,
)
from voicebot.matching.matcher import Matcher

CONFIG = load_language_text(
    textwrap.dedent(
        """\
        language: en-US
        default_group: members
        groups:
          members: {number: "+46101234567"}
          billing: {queue: billing}
        intents:
          invoice:
            transfer: billing
            phrases: [my invoice, the bill is wrong, how much is the fee]
          payment:
            transfer: billing
            phrases: [I paid twice, my payment did not go through]
          login:
            sms: {link: "https://example.org/login", say: "I've texted you a link."}
            phrases: [I can't log in, I forgot my password]
          hours:
            announce: We are open weekdays from 8 to 5.
            phrases: [what are your opening hours, when are you open]
        """
    ),
    "<test>",
)


class Scripted:
    """A matcher whose answers are written out, so the expected numbers can be worked by hand."""

    def __init__(self, answers: dict[str, tuple[str | None, Verdict]]) -> None:
        self.answers = answers

    def match(self, text: str) -> Match:
        intent, verdict = self.answers[text]
        ranked = () if intent is None else (Scored(intent, 0.9), Scored("hours", 0.1))
        return Match(text, ranked, verdict)


def test_route_map_names_where_each_intent_sends_the_caller() -> None:
    assert route_map(CONFIG) == {
        "invoice": "group:billing",
        "payment": "group:billing",
        "login": "sms:https://example.org/login",
        "hours": "announce:hours",
    }


def test_metrics_worked_by_hand() -> None:
    answers: dict[str, tuple[str | None, Verdict]] = {
        "a": ("invoice", Verdict.ACCEPT),  # invoice: right
        "b": ("payment", Verdict.ACCEPT),  # invoice: wrong intent, same group -> right route
        "c": ("login", Verdict.CLARIFY),  # login: clarify counts as its top intent -> right
        "d": (None, Verdict.REJECT),  # hours: rejected -> predicted oos, wrong
        "e": (None, Verdict.REJECT),  # oos: right
        "f": ("hours", Verdict.ACCEPT),  # oos: wrong, not rejected
    }
    rows = [("a", "invoice"), ("b", "invoice"), ("c", "login"), ("d", "hours")]
    rows += [("e", "oos"), ("f", "oos")]
    report = evaluate(Scripted(answers), rows, route_map(CONFIG))
    assert report.n == 6
    assert report.intent_accuracy == pytest.approx(3 / 6)  # a, c, e
    assert report.route_accuracy == pytest.approx(4 / 6)  # a, b, c, e
    assert report.in_scope_accuracy == pytest.approx(2 / 4)
    assert report.oos_recall == pytest.approx(1 / 2)
    assert report.per_intent["invoice"] == {
        "n": 2,
        "correct": 1,
        "accuracy": 0.5,
        "precision": 1.0,
    }
    assert report.per_intent["oos"]["precision"] == pytest.approx(1 / 2)  # d and e predicted oos
    assert report.confusions[0]["count"] == 1
    assert {(c["expected"], c["predicted"]) for c in report.confusions} == {
        ("invoice", "payment"),
        ("hours", "oos"),
        ("oos", "hours"),
    }
    assert json.loads(json.dumps(report.to_json()))["route_accuracy"] == report.route_accuracy


def test_no_oos_rows_means_no_oos_recall() -> None:
    report = evaluate(
        Scripted({"a": ("invoice", Verdict.ACCEPT)}), [("a", "invoice")], route_map(CONFIG)
    )
    assert report.oos_recall is None
    assert report.in_scope_accuracy == 1.0


def test_confusions_are_sorted_most_frequent_first() -> None:
    answers: dict[str, tuple[str | None, Verdict]] = {
        "x": ("payment", Verdict.ACCEPT),
        "y": ("hours", Verdict.ACCEPT),
    }
    rows = [("x", "invoice"), ("y", "login"), ("y", "login"), ("x", "invoice"), ("y", "login")]
    report = evaluate(Scripted(answers), rows, route_map(CONFIG))
    assert [(c["expected"], c["count"]) for c in report.confusions] == [
        ("login", 3),
        ("invoice", 2),
    ]


def test_unknown_expected_intents_are_named() -> None:
    rows = [("my invoice", "invoice"), ("hi", "greeting"), ("yo", "smalltalk"), ("x", "greeting")]
    with pytest.raises(UnknownIntentError, match=r"2 intent.*greeting, smalltalk"):
        evaluate(Scripted({}), rows, route_map(CONFIG))


def test_real_matcher_end_to_end_and_the_printed_report(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(
        "text,intent\n"
        "the bill is wrong,invoice\n"
        "i forgot my pasword,login\n"
        "when are you open,hours\n"
        "what's the weather in Paris,oos\n",
        encoding="utf-8",
    )
    rows = read_labelled(path)
    matcher = Matcher(tuple(CONFIG.intents.values()), Thresholds())
    report = evaluate(matcher, rows, route_map(CONFIG))
    assert report.in_scope_accuracy == 1.0
    assert report.oos_recall == 1.0
    text = format_report(report)
    assert "route accuracy    100.0%" in text
    assert "oos recall        100.0%" in text
    assert "invoice" in text
