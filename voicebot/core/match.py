"""What the matcher tells the dialogue: ranked intents and a verdict.

Kept apart from the matcher itself so the dialogue, the evaluator and the call log depend only on
this small result type, not on how scores are computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from voicebot.core.config import Thresholds


class Verdict(StrEnum):
    ACCEPT = "accept"  # route to ranked[0] at once
    CLARIFY = "clarify"  # ask "is it about ranked[0] or ranked[1]?"
    REJECT = "reject"  # nothing matched well enough


@dataclass(frozen=True, slots=True)
class Scored:
    intent: str
    score: float  # 0..1, comparable with the thresholds


@dataclass(frozen=True, slots=True)
class Match:
    text: str  # the transcript that was matched (the best of the alternatives)
    ranked: tuple[Scored, ...]  # best first; at most a handful
    verdict: Verdict

    @property
    def best(self) -> Scored | None:
        return self.ranked[0] if self.ranked else None

    @property
    def runner_up(self) -> Scored | None:
        return self.ranked[1] if len(self.ranked) > 1 else None

    @property
    def intent(self) -> str | None:
        """The predicted intent, or None when rejected (the caller goes to the fallback)."""
        if self.verdict is Verdict.REJECT or not self.ranked:
            return None
        return self.ranked[0].intent


def option(
    ranked: tuple[Scored, ...], thresholds: Thresholds, route_of: Mapping[str, str] | None = None
) -> Scored | None:
    """The intent worth offering next to ``ranked[0]`` in "is it about A or B?": the best other
    one at or above the reject line whose route (``route_of``: intent -> where it sends the
    caller) differs. Asking between two intents that end the same way changes nothing for the
    caller, and one under the reject line was not understood."""
    if not ranked:
        return None
    first = ranked[0].intent
    where = route_of.get(first, first) if route_of is not None else None
    for other in ranked[1:]:
        if other.intent == first or other.score < thresholds.reject:
            continue
        if route_of is None or route_of.get(other.intent, other.intent) != where:
            return other
    return None


def decide(
    ranked: tuple[Scored, ...], thresholds: Thresholds, route_of: Mapping[str, str] | None = None
) -> Verdict:
    """Accept a clear winner, clarify a close or lukewarm one, reject a weak one.

    Like hassil and Rasa, two near-equal intents are never guessed between: the caller is asked,
    but only when there is a question worth asking (``option``); else a lukewarm winner is
    served, since the alternatives were either not understood or end the same way.
    """
    if not ranked or ranked[0].score < thresholds.reject:
        return Verdict.REJECT
    other = option(ranked, thresholds, route_of)
    if other is None:
        return Verdict.ACCEPT
    close = ranked[0].score - other.score < thresholds.clarify_margin
    if close or ranked[0].score < thresholds.accept:
        return Verdict.CLARIFY
    return Verdict.ACCEPT
