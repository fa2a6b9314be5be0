"""The benchmark's recognition-error model (bench/asr_noise.py): seeded, at the error rate it
is asked for, and only ever hearing words of the config's own vocabulary."""

from __future__ import annotations

import sys
from pathlib import Path

from rapidfuzz.distance import Levenshtein

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.asr_noise import add_errors, vocabulary
from voicebot.core.text import words

ROOT = Path(__file__).resolve().parent.parent
ROWS = (ROOT / "bench/data/sv-support/test.csv").read_text(encoding="utf-8").splitlines()[1:]
TEXTS = [" ".join(words(row.split(",")[0])) for row in ROWS]
VOCAB = vocabulary(TEXTS)


def word_errors(said: list[str], heard: list[str]) -> int:
    return sum(Levenshtein.distance(a.split(), b.split()) for a, b in zip(said, heard, strict=True))


def test_the_same_seed_gives_the_same_transcripts_and_another_seed_others() -> None:
    assert add_errors(TEXTS, VOCAB, 0.2, 0) == add_errors(TEXTS, VOCAB, 0.2, 0)
    assert add_errors(TEXTS, VOCAB, 0.2, 0) != add_errors(TEXTS, VOCAB, 0.2, 1)


def test_the_word_error_rate_is_the_one_asked_for() -> None:
    words = sum(len(t.split()) for t in TEXTS)
    for wer in (0.1, 0.2):
        measured = word_errors(TEXTS, add_errors(TEXTS, VOCAB, wer, 0)) / words
        assert abs(measured - wer) < 0.03, (wer, measured)
    assert add_errors(TEXTS, VOCAB, 0.0, 0) == TEXTS


def test_misheard_words_come_from_the_vocabulary_and_sound_alike() -> None:
    heard = add_errors(TEXTS, VOCAB, 0.2, 0)
    assert {w for t in heard for w in t.split()} <= set(VOCAB)
    (wrong,) = add_errors(["räkningen"], ["räkningar", "räkningen", "lösenord", "adress"], 1.0, 0)
    assert wrong == "räkningar"
