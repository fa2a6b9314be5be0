"""A config with a large history gets the joint regression, fitted once and read from disk on
every later start; a few-shot config is built as before (no regression, nothing on disk)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_matcher import SUPPORT, intent

from voicebot.core.config import Intent, Thresholds
from voicebot.matching import joint
from voicebot.matching.embedding_cache import Embeddings, cache_file, shared_embeddings
from voicebot.matching.matcher import Matcher

OPENERS = ("hi", "hello", "excuse me", "good morning", "um", "so")
CLOSERS = ("please", "today", "right now", "if you can", "thanks", "as soon as possible")
CORES = {
    "invoice": ("my invoice is wrong", "i was billed twice", "the bill amount looks too high"),
    "password": ("i forgot my password", "i cannot log in", "my account is locked"),
    "address": ("i moved house", "change my address", "update my postal address"),
    "opening": ("when are you open", "what are your opening hours", "are you open on sunday"),
}


def _history() -> tuple[Intent, ...]:
    """Four intents of 108 imported examples each: what `voicebot import` makes of a call log."""
    return tuple(
        intent(
            name,
            [cores[0]],
            [f"{o} {c} {e}" for o, c, e in itertools.product(OPENERS, cores, CLOSERS)],
        )
        for name, cores in CORES.items()
    )


LARGE = _history()
SAID = ("uh i got billed two times", "i cannot log in to my account", "i moved to a new house")


def _embeddings(tmp_path: Path) -> Embeddings:
    """The session's encoder with a cache folder of this test's own (vectors and regressions)."""
    shared = shared_embeddings()
    vectors = Embeddings(shared.encoder, cache_file(shared.id, tmp_path))
    vectors.texts([t for i in LARGE for t in (*i.phrases, *i.examples)])  # encoded once here
    return vectors


def test_a_large_history_is_fitted_once_and_read_from_disk_at_the_next_start(
    tmp_path: Path,
) -> None:
    first = Matcher(LARGE, Thresholds(), embeddings=_embeddings(tmp_path))
    assert first.joint_fits == 2  # the calibration model's and the final model's
    cached = sorted((tmp_path / "embeddings" / "regressions").glob("*.npz"))
    assert len(cached) == 2

    second = Matcher(LARGE, Thresholds(), embeddings=_embeddings(tmp_path))
    assert second.joint_fits == 0  # both read from the folder
    for text in SAID:
        assert np.array_equal(first.scores(text), second.scores(text))
    assert [first.match(t).intent for t in SAID] == ["invoice", "password", "address"]


def test_the_joint_regression_takes_part_in_a_large_configs_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_joint = Matcher(LARGE, Thresholds(), embeddings=_embeddings(tmp_path))
    monkeypatch.setattr(joint, "JOINT_FROM", 10_000)
    without = Matcher(LARGE, Thresholds(), embeddings=_embeddings(tmp_path))
    assert without.joint_fits == 0
    assert not any(np.allclose(with_joint.scores(t), without.scores(t)) for t in SAID)


def test_an_edited_config_is_fitted_again(tmp_path: Path) -> None:
    Matcher(LARGE, Thresholds(), embeddings=_embeddings(tmp_path))
    edited = (replace(LARGE[0], examples=(*LARGE[0].examples, "this invoice is not mine")),)
    again = Matcher(edited + LARGE[1:], Thresholds(), embeddings=_embeddings(tmp_path))
    assert again.joint_fits == 2


def test_a_damaged_regression_file_is_fitted_again_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = Matcher(LARGE, Thresholds(), embeddings=_embeddings(tmp_path))
    folder = tmp_path / "embeddings" / "regressions"
    damaged = sorted(folder.glob("*.npz"))[0]
    damaged.write_bytes(b"PK\x03\x04 truncated")
    capsys.readouterr()

    rebuilt = Matcher(LARGE, Thresholds(), embeddings=_embeddings(tmp_path))
    assert rebuilt.joint_fits == 1  # the damaged one only
    warning = capsys.readouterr().err
    assert "regression cache" in warning and "unreadable" in warning
    for text in SAID:
        assert np.array_equal(clean.scores(text), rebuilt.scores(text))
    assert Matcher(LARGE, Thresholds(), embeddings=_embeddings(tmp_path)).joint_fits == 0


def test_a_few_shot_config_has_no_joint_regression(tmp_path: Path) -> None:
    matcher = Matcher(SUPPORT, Thresholds(), embeddings=_embeddings(tmp_path))
    assert matcher.joint_fits == 0
    assert not (tmp_path / "embeddings" / "regressions").exists()


def test_a_two_intent_history_routes_both_ways(tmp_path: Path) -> None:
    # Two classes: the regression has one row of log-odds, stored as two rows of weights.
    matcher = Matcher(LARGE[:2], Thresholds(), embeddings=_embeddings(tmp_path))
    assert matcher.joint_fits == 2
    assert [matcher.match(t).intent for t in SAID[:2]] == ["invoice", "password"]
