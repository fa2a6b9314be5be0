"""A seeded model of what a grammar-mode recogniser does to a caller's words, for the benchmark.

Vosk in grammar mode (voicebot's default) can only hear words of the config's own vocabulary, and
it writes no punctuation. Its errors on in-vocabulary speech are mostly of two kinds, which is
all this model makes (insertions and words outside the vocabulary are left out):

- a word is not heard at all (deletion), or
- a word is heard as another word of the vocabulary that sounds alike (substitution).

For a target word error rate ``wer``, every word of an utterance independently becomes an error
with probability ``wer``: a deletion or a substitution with equal odds (a one-word utterance is
never deleted whole). A substitution picks, with the seeded generator, one of the SIMILAR words
of the vocabulary whose rough sound (``_sound``: lower case, doubled letters single, voiced
consonants unvoiced, Swedish å/ä/ö as o/e/o, ...) is closest to the word's by rapidfuzz ratio
and at least ALIKE (else the single closest), never the word itself. The same (texts,
vocabulary, wer, seed) always give the same output.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

from rapidfuzz import fuzz, process

from voicebot.core.text import words

__all__ = ["add_errors", "vocabulary"]

SIMILAR = 5  # a substitution picks among this many closest-sounding vocabulary words ...
ALIKE = 60.0  # ... those at least this alike (rapidfuzz ratio of _sound), else the closest one
_SOUNDS = (
    ("å", "o"),
    ("ä", "e"),
    ("ö", "o"),
    ("ph", "f"),
    ("ck", "k"),
    ("th", "t"),
    ("b", "p"),
    ("d", "t"),
    ("g", "k"),
    ("v", "f"),
    ("w", "f"),
    ("z", "s"),
    ("c", "k"),
    ("q", "k"),
    ("y", "i"),
)


def _sound(word: str) -> str:
    """A rough key of how a word sounds, so "bill"/"pill" and "hyra"/"höra" come out near."""
    out = word.lower()
    for a, b in _SOUNDS:
        out = out.replace(a, b)
    return re.sub(r"(.)\1+", r"\1", out)


def vocabulary(texts: Iterable[str]) -> list[str]:
    """The distinct words of a config's texts, sorted (what a grammar lets the recogniser say)."""
    return sorted({w for t in texts for w in words(t)})


def add_errors(texts: Sequence[str], vocab: Sequence[str], wer: float, seed: int) -> list[str]:
    """``texts`` as a recogniser with word error rate ``wer`` might hear them (see above)."""
    rng = random.Random(seed)
    keys = [_sound(v) for v in vocab]
    near: dict[str, list[str]] = {}
    out = []
    for text in texts:
        said = words(text)
        heard: list[str] = []
        for word in said:
            if rng.random() >= wer:
                heard.append(word)
            elif rng.random() < 0.5 and len(said) > 1:
                continue  # deleted
            else:
                if word not in near:
                    found = process.extract(
                        _sound(word), keys, scorer=fuzz.ratio, limit=SIMILAR + 1
                    )
                    others = [(score, vocab[i]) for _, score, i in found if vocab[i] != word]
                    alike = [v for score, v in others[:SIMILAR] if score >= ALIKE]
                    near[word] = alike or [v for _, v in others[:1]]
                heard.append(rng.choice(near[word]) if near[word] else word)
        out.append(" ".join(heard) if heard else text)
    return out
