"""What the matcher tells the dialogue: ranked intents and a verdict.

Kept apart from the matcher itself so the dialogue, the evaluator and the call log depend only on
this small result type, not on how scores are computed.
"""

from __future__ import annotations

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


def decide(ranked: tuple[Scored, ...], thresholds: Thresholds) -> Verdict:
    """Accept a clear winner, clarify a close or lukewarm one, reject a weak one.

    Like hassil and Rasa, two near-equal intents are never guessed between: the caller is asked.
    """
    if not ranked or ranked[0].score < thresholds.reject:
        return Verdict.REJECT
    top = ranked[0].score
    second = ranked[1].score if len(ranked) > 1 else 0.0
    close = (
        len(ranked) > 1 and second >= thresholds.reject and top - second < thresholds.clarify_margin
    )
    if close or top < thresholds.accept:
        return Verdict.CLARIFY if len(ranked) > 1 else Verdict.ACCEPT
    return Verdict.ACCEPT
