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

from voicebot.core.config import LanguageConfig
from voicebot.core.match import Match, Verdict
from voicebot.errors import VoicebotError
from voicebot.matching.labelled import OOS, read_labelled

__all__ = [
    "FALLBACK",
    "Comparison",
    "EvalReport",
    "Judged",
    "Matches",
    "UnknownIntentError",
    "compare",
    "evaluate",
    "format_comparison",
    "format_report",
    "read_labelled",
    "route_map",
]

FALLBACK = "fallback"  # the route of "oos": the default group after "sorry, I didn't get that"


class Matches(Protocol):
    """Anything that matches text: the Matcher, or a baseline to compare it with."""

    def match(self, text: str) -> Match: ...


class UnknownIntentError(VoicebotError, ValueError):
    """Labelled rows name intents the config does not have."""


@dataclass(frozen=True)
class Judged:
    """One labelled utterance and where the matcher sent it."""

    text: str
    expected: str
    predicted: str  # an intent, or "oos" for the fallback
    routed: bool  # the caller reached the same destination as the label's
    score: float | None = None  # the top intent's score (also when it was rejected)
    verdict: str | None = None  # accept, clarify (the caller was asked "A or B?") or reject

    def to_json(self) -> dict[str, str]:
        return {"text": self.text, "expected": self.expected, "predicted": self.predicted}

    def to_json_scored(self) -> dict[str, Any]:
        return {**self.to_json(), "score": self.score, "verdict": self.verdict}


@dataclass(frozen=True)
class EvalReport:
    n: int
    intent_accuracy: float
    route_accuracy: float
    in_scope_accuracy: float | None  # None when every row is oos
    oos_recall: float | None  # None when no row is oos
    per_intent: dict[str, dict[str, Any]]  # expected intent -> n, correct, accuracy, precision
    confusions: list[dict[str, Any]]  # {expected, predicted, count}, most frequent first
    judged: tuple[Judged, ...] = ()  # row by row, in the CSV's order

    @property
    def clarification_rate(self) -> float:
        """Share of utterances answered with "is it about A or B?": each costs the caller a
        turn, so tuning that raises accuracy by asking more is visible."""
        asked = sum(j.verdict == Verdict.CLARIFY for j in self.judged)
        return asked / len(self.judged) if self.judged else 0.0

    @property
    def misrouted(self) -> tuple[Judged, ...]:
        """The utterances whose caller ended up somewhere else than the label says."""
        return tuple(j for j in self.judged if not j.routed)

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "intent_accuracy": self.intent_accuracy,
            "route_accuracy": self.route_accuracy,
            "in_scope_accuracy": self.in_scope_accuracy,
            "oos_recall": self.oos_recall,
            "clarification_rate": self.clarification_rate,
            "per_intent": self.per_intent,
            "confusions": self.confusions,
            "misrouted": [j.to_json_scored() for j in self.misrouted],
        }


def route_map(config: LanguageConfig) -> dict[str, str]:
    """Intent name -> destination: group:<id>, sms:<link> or announce:<intent name>."""
    return {name: intent.route for name, intent in config.intents.items()}


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
    matches: list[Match] = []
    for text, expected in rows:
        match = matcher.match(text)
        matches.append(match)
        found = match.intent
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
    judged = tuple(
        Judged(
            text,
            e,
            p,
            routes.get(e) == routes.get(p),
            m.best.score if m.best is not None else None,
            m.verdict.value,
        )
        for (text, _), (e, p), m in zip(rows, pairs, matches, strict=True)
    )
    return EvalReport(
        n=n,
        intent_accuracy=correct / n if n else 0.0,
        route_accuracy=routed / n if n else 0.0,
        in_scope_accuracy=sum(e == p for e, p in in_scope) / len(in_scope) if in_scope else None,
        oos_recall=sum(p == OOS for _, p in oos) / len(oos) if oos else None,
        per_intent=per_intent,
        confusions=confusions,
        judged=judged,
    )


@dataclass(frozen=True)
class Comparison:
    """The same utterances through two configurations: what an edit to the intents changed."""

    new: EvalReport
    old: EvalReport
    fixed: tuple[Judged, ...]  # routed wrong before, right now (as judged now)
    broken: tuple[Judged, ...]  # routed right before, wrong now

    def to_json(self) -> dict[str, Any]:
        headline = ("route_accuracy", "intent_accuracy", "in_scope_accuracy", "oos_recall")
        old = self.old.to_json()
        return {
            **self.new.to_json(),
            "against": {key: old[key] for key in ("n", *headline)},
            "fixed": [j.to_json() for j in self.fixed],
            "broken": [j.to_json() for j in self.broken],
        }


def compare(new: EvalReport, old: EvalReport) -> Comparison:
    """Pair two reports on the same rows; each row is judged by its own configuration's routes,
    so an intent moved to another group counts as intended."""
    if [(j.text, j.expected) for j in new.judged] != [(j.text, j.expected) for j in old.judged]:
        raise ValueError("the reports are not over the same labelled rows")
    pairs = list(zip(new.judged, old.judged, strict=True))
    return Comparison(
        new,
        old,
        fixed=tuple(n for n, o in pairs if n.routed and not o.routed),
        broken=tuple(n for n, o in pairs if o.routed and not n.routed),
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_report(report: EvalReport, max_confusions: int = 10, max_rows: int = 20) -> str:
    """The headline numbers, then a per-intent table, worst first, the top confusions, and the
    misrouted utterances themselves (what ops add phrases for)."""
    lines = [
        f"utterances        {report.n}",
        f"route accuracy    {_pct(report.route_accuracy)}",
        f"intent accuracy   {_pct(report.intent_accuracy)}",
        f"in-scope accuracy {_pct(report.in_scope_accuracy)}",
        f"oos recall        {_pct(report.oos_recall)}",
        f"clarification     {_pct(report.clarification_rate)} (asked 'is it about A or B?')",
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
    wrong = report.misrouted
    if wrong:
        lines += ["", f"misrouted ({len(wrong)}): score  expected -> got  text"]
        for j in wrong[:max_rows]:
            score = "-" if j.score is None else f"{j.score:.2f}"
            lines.append(f"  {score:>5}  {j.expected} -> {j.predicted}  {j.text!r}")
        if len(wrong) > max_rows:
            lines.append(f"  ... and {len(wrong) - max_rows} more (--json lists them all)")
    return "\n".join(lines)


def _delta(new: float | None, old: float | None) -> str:
    if new is None or old is None:
        return ""
    return f"{100 * (new - old):+.1f}"


def format_comparison(c: Comparison, max_rows: int = 20) -> str:
    """Before and after, then the utterances whose routing the change fixed or broke."""
    lines = [f"{'':18}{'before':>8}{'now':>8}{'change':>8}"]
    for label, key in (
        ("route accuracy", "route_accuracy"),
        ("intent accuracy", "intent_accuracy"),
        ("in-scope accuracy", "in_scope_accuracy"),
        ("oos recall", "oos_recall"),
    ):
        new, old = getattr(c.new, key), getattr(c.old, key)
        lines.append(f"{label:<18}{_pct(old):>8}{_pct(new):>8}{_delta(new, old):>8}")
    for title, rows in (("now routed right", c.fixed), ("now routed wrong", c.broken)):
        lines += ["", f"{title} ({len(rows)}):"]
        for j in rows[:max_rows]:
            lines.append(f"  {j.text!r}: {j.expected} -> {j.predicted}")
        if len(rows) > max_rows:
            lines.append(f"  ... and {len(rows) - max_rows} more (--json lists them all)")
    return "\n".join(lines)
