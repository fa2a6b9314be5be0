"""What the recogniser reports: partial and final transcripts, no-speech timeouts, and how
Vosk's JSON results become them.

Its own module so the pipeline, the shells and the tests can read and build these plain frozen
values without the decoder; every event spells an out-of-vocabulary stretch ``UNK``, whatever
the model calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "UNK",
    "Alternative",
    "EndReason",
    "Final",
    "NoSpeech",
    "PartialTranscript",
    "RecognizerEvent",
    "Word",
    "normalise_text",
    "parse_result",
]

UNK = "[unk]"
"""How an out-of-vocabulary stretch is spelled in every event, whatever the model calls it."""

EndReason = Literal["end_of_speech", "early_end", "max_length", "end_of_stream"]


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    conf: float | None  # None in n-best mode, where Vosk gives no per-word confidence


@dataclass(frozen=True)
class Alternative:
    """One hypothesis. ``confidence`` is in [0, 1]: the mean word posterior with a single
    hypothesis, the share of the n-best probability mass with several. Grammar mode forces
    out-of-grammar speech onto grammar words, so do not reject on this number alone."""

    text: str
    confidence: float
    words: tuple[Word, ...]


@dataclass(frozen=True)
class PartialTranscript:
    text: str
    time: float  # stream time (s since call start) when this hypothesis was current


@dataclass(frozen=True)
class Final:
    alternatives: tuple[Alternative, ...]  # best first, never empty
    start: float  # first word start, s since call start
    end: float  # last word end
    time: float  # stream time when the utterance was closed
    reason: EndReason

    @property
    def text(self) -> str:
        return self.alternatives[0].text

    @property
    def confidence(self) -> float:
        return self.alternatives[0].confidence


@dataclass(frozen=True)
class NoSpeech:
    """Nothing was said for ``no_speech_timeout_s``; the clock restarts after this."""

    start: float
    time: float


RecognizerEvent = PartialTranscript | Final | NoSpeech


def normalise_text(text: str, unk_word: str | None) -> str:
    if unk_word is None or unk_word == UNK or unk_word not in text:
        return text
    return " ".join(UNK if w == unk_word else w for w in text.split())


def parse_result(obj: dict[str, Any], unk_word: str | None) -> tuple[Alternative, ...]:
    def words_of(items: list[dict[str, Any]]) -> tuple[Word, ...]:
        return tuple(
            Word(
                UNK if w["word"] == unk_word else str(w["word"]),
                float(w["start"]),
                float(w["end"]),
                float(w["conf"]) if "conf" in w else None,
            )
            for w in items
        )

    if "alternatives" not in obj:  # single best, with word posteriors
        words = words_of(obj.get("result") or [])
        text = normalise_text(obj.get("text", ""), unk_word)
        if not text:
            return ()
        conf = sum(w.conf or 0.0 for w in words) / len(words) if words else 0.0
        return (Alternative(text, conf, words),)

    # n-best: Vosk gives total log-likelihoods; turn them into shares of the listed mass and
    # merge hypotheses that differ only in timing.
    alts = obj["alternatives"]
    if not alts:
        return ()
    scores = np.array([float(a.get("confidence", 0.0)) for a in alts])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    merged: dict[str, tuple[float, tuple[Word, ...]]] = {}
    for a, p in zip(alts, probs.tolist(), strict=True):
        text = normalise_text(a.get("text", ""), unk_word)
        if not text:  # "nothing said" keeps its share of the mass, but is no alternative
            continue
        share, words = merged.get(text, (0.0, words_of(a.get("result") or [])))
        merged[text] = (share + p, words)
    ranked = sorted(merged.items(), key=lambda kv: -kv[1][0])
    return tuple(Alternative(t, p, w) for t, (p, w) in ranked)
