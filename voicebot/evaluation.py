"""Measure a matcher against labelled utterances: did each caller end up in the right place?

Intent accuracy is what ops tune, but route accuracy is what callers feel: two intents that send
the caller to the same group are interchangeable. Rows labelled ``oos`` should match nothing and
go to the fallback; a REJECT verdict counts as predicting ``oos``, a CLARIFY as its top intent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from voicebot.config import LanguageConfig
from voicebot.labelled import OOS, read_labelled
from voicebot.match import Match
from voicebot.matcher import route_key

__all__ = [
    "FALLBACK",
    "EvalReport",
    "Matches",
    "UnknownIntentError",
    "evaluate",
    "format_report",
    "read_labelled",
    "route_map",
]

FALLBACK = "fallback"  # the route of "oos": the default group after "sorry, I didn't get that"


class Matches(Protocol):
    """Anything that matches text: the Matcher, or a baseline to compare it with."""

    def match(self, text: str) -> Match: ...


class UnknownIntentError(ValueError):
    """Labelled rows name intents the config does not have."""


@dataclass(frozen=True)
class EvalReport:
    n: int
    intent_accuracy: float
    route_accuracy: float
    in_scope_accuracy: float | None  # None when every row is oos
    oos_recall: float | None  # None when no row is oos
    per_intent: dict[str, dict[str, Any]]  # expected intent -> n, correct, accuracy, precision
    confusions: list[dict[str, Any]]  # {expected, predicted, count}, most frequent first

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "intent_accuracy": self.intent_accuracy,
            "route_accuracy": self.route_accuracy,
            "in_scope_accuracy": self.in_scope_accuracy,
            "oos_recall": self.oos_recall,
            "per_intent": self.per_intent,
            "confusions": self.confusions,
        }


def route_map(config: LanguageConfig) -> dict[str, str]:
    """Intent name -> destination: group:<id>, sms:<link> or announce:<intent name>."""
    return {name: route_key(intent) for name, intent in config.intents.items()}


def evaluate(
    matcher: Matches, rows: Sequence[tuple[str, str]], route_of: Mapping[str, str]
) -> EvalReport:
    unknown = sorted({e for _, e in rows if e != OOS and e not in route_of})
    if unknown:
        shown = ", ".join(unknown[:10]) + (", …" if len(unknown) > 10 else "")
        raise UnknownIntentError(
            f"{len(unknown)} intent(s) in the labelled rows are not in the config: {shown}"
            f" (use {OOS!r} for utterances that should match nothing)"
        )
    routes = {**route_of, OOS: FALLBACK}
    pairs: list[tuple[str, str]] = []
    for text, expected in rows:
        found = matcher.match(text).intent
        pairs.append((expected, found if found is not None else OOS))

    n = len(pairs)
    correct = sum(e == p for e, p in pairs)
    routed = sum(routes.get(e) == routes.get(p) for e, p in pairs)
    in_scope = [(e, p) for e, p in pairs if e != OOS]
    oos = [(e, p) for e, p in pairs if e == OOS]

    expected_n = Counter(e for e, _ in pairs)
    predicted_n = Counter(p for _, p in pairs)
    hits = Counter(e for e, p in pairs if e == p)
    per_intent: dict[str, dict[str, Any]] = {}
    for name in sorted(expected_n):
        per_intent[name] = {
            "n": expected_n[name],
            "correct": hits[name],
            "accuracy": hits[name] / expected_n[name],
            "precision": hits[name] / predicted_n[name] if predicted_n[name] else None,
        }
    mistakes = Counter((e, p) for e, p in pairs if e != p)
    confusions = [
        {"expected": e, "predicted": p, "count": c}
        for (e, p), c in sorted(mistakes.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return EvalReport(
        n=n,
        intent_accuracy=correct / n if n else 0.0,
        route_accuracy=routed / n if n else 0.0,
        in_scope_accuracy=sum(e == p for e, p in in_scope) / len(in_scope) if in_scope else None,
        oos_recall=sum(p == OOS for _, p in oos) / len(oos) if oos else None,
        per_intent=per_intent,
        confusions=confusions,
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_report(report: EvalReport, max_confusions: int = 10) -> str:
    """The headline numbers, then a per-intent table, worst first, then the top confusions."""
    lines = [
        f"utterances        {report.n}",
        f"route accuracy    {_pct(report.route_accuracy)}",
        f"intent accuracy   {_pct(report.intent_accuracy)}",
        f"in-scope accuracy {_pct(report.in_scope_accuracy)}",
        f"oos recall        {_pct(report.oos_recall)}",
        "",
    ]
    width = max([len("intent"), *(len(k) for k in report.per_intent)])
    lines.append(f"{'intent':<{width}}  {'n':>5}  {'correct':>7}  {'acc':>6}  {'prec':>6}")
    worst = sorted(report.per_intent.items(), key=lambda kv: (kv[1]["accuracy"], kv[0]))
    for name, row in worst:
        lines.append(
            f"{name:<{width}}  {row['n']:>5}  {row['correct']:>7}  {_pct(row['accuracy']):>6}"
            f"  {_pct(row['precision']):>6}"
        )
    if report.confusions:
        lines += ["", "most frequent confusions (expected -> predicted):"]
        for c in report.confusions[:max_confusions]:
            lines.append(f"  {c['count']:>4}  {c['expected']} -> {c['predicted']}")
    return "\n".join(lines)
