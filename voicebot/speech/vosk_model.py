"""Loaded Vosk models: what a model directory offers, and one shared load of it per process.

Apart from the recogniser because a model is a process-wide resource (seconds to load, ~0.5 GB,
thread-safe) while a recogniser is per call: the registry, the static facts read from the
model's config files and the lazy ``vosk`` import live here; ``recognizer`` only decodes.
Models are loaded with Kaldi's dither off, see ``dither``. Fetching models is ``model_store``.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicebot.speech.dither import KALDI_DITHER, shadow_without_dither
from voicebot.speech.model_store import ModelError  # one error for every model problem

__all__ = [
    "REGISTRY",
    "ModelInfo",
    "ModelRegistry",
    "SpeechModel",
    "import_vosk",
    "inspect_model",
    "load_model",
]

_UNK_SPELLINGS = ("[unk]", "<unk>", "<UNK>")
_FEATURE_CONFS = ("mfcc.conf", "fbank.conf")


@dataclass(frozen=True)
class ModelInfo:
    """What a model directory offers, read from its small config files."""

    path: Path
    sample_rate: int
    supports_grammar: bool  # only models with graph/HCLr.fst + Gr.fst take a grammar
    endpoint_min_silence_s: float  # the earliest Vosk's own endpoint flag can rise
    dither: float = KALDI_DITHER  # the feature config's --dither (Kaldi's default when absent)
    features_conf: str | None = None  # conf/mfcc.conf or conf/fbank.conf, relative to path


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Check that ``path`` holds a Vosk model and read its static facts."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelError(f"speech model directory {p} does not exist")
    if _first_existing(p, "am/final.mdl", "final.mdl") is None:
        raise ModelError(f"{p} is not a Vosk model directory (no am/final.mdl)")
    grammar = all(_first_existing(p, f"graph/{n}", n) for n in ("HCLr.fst", "Gr.fst"))
    rate = _conf_value(p, "mfcc.conf", "--sample-frequency", 16000.0)  # Kaldi's default
    silence = min(
        _conf_value(p, "model.conf", f"--endpoint.rule{i}.min-trailing-silence", default)
        for i, default in ((1, 5.0), (2, 0.5), (3, 1.0), (4, 2.0))  # Kaldi's defaults
    )
    features = next((f"conf/{n}" for n in _FEATURE_CONFS if (p / "conf" / n).is_file()), None)
    dither = KALDI_DITHER
    if features is not None:
        dither = _conf_value(p, Path(features).name, "--dither", KALDI_DITHER)
    return ModelInfo(p.resolve(), int(rate), grammar, silence, dither, features)


def _first_existing(root: Path, *names: str) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def _conf_value(model: Path, name: str, key: str, default: float) -> float:
    conf = _first_existing(model, f"conf/{name}", name)
    if conf is None:
        return default
    for line in conf.read_text(encoding="utf-8", errors="replace").splitlines():
        k, _, value = line.strip().partition("=")
        if k == key:
            try:
                return float(value)
            except ValueError:
                raise ModelError(f"{conf}: bad setting {line.strip()!r}") from None
    return default


def import_vosk() -> Any:
    """Import vosk lazily: text-only tools (chat, eval, check) must start fast without it."""
    try:
        return importlib.import_module("vosk")
    except ImportError as exc:
        raise ModelError("speech recognition needs the vosk package: pip install vosk") from exc


class SpeechModel:
    """A loaded Vosk model, shared by every call in its language (Vosk models are thread-safe;
    recognisers are not)."""

    def __init__(self, info: ModelInfo, vosk_model: Any, *, dither: float = 0.0) -> None:
        self.info = info
        self.vosk_model = vosk_model
        self.dither = dither  # noise the recogniser adds (Kaldi's own is off), sample units
        self.unk_word = next((w for w in _UNK_SPELLINGS if self.has_word(w)), None)

    def __repr__(self) -> str:
        return f"SpeechModel({str(self.path)!r}, rate={self.sample_rate})"

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def supports_grammar(self) -> bool:
        return self.info.supports_grammar

    def has_word(self, word: str) -> bool:
        """Ask Vosk itself, the authority on what a grammar would keep."""
        return bool(word) and int(self.vosk_model.vosk_model_find_word(word)) >= 0


class ModelRegistry:
    """One loaded model per directory per process: each costs seconds and ~0.5 GB."""

    def __init__(self) -> None:
        self._models: dict[Path, SpeechModel] = {}
        self._lock = threading.Lock()

    def get(self, path: str | os.PathLike[str]) -> SpeechModel:
        info = inspect_model(path)
        with self._lock:  # held while loading, so concurrent first calls load once
            model = self._models.get(info.path)
            if model is None:
                model = self._models[info.path] = _load(info)
            return model

    def for_language(self, lang: str) -> SpeechModel:
        """The model for a language tag; ``models.MissingModelError`` says how to get it."""
        from voicebot.speech import model_store as models

        return self.get(models.require(lang))

    def loaded(self) -> list[Path]:
        with self._lock:
            return list(self._models)


def _load(info: ModelInfo) -> SpeechModel:
    vosk = import_vosk()
    if "VOICEBOT_VOSK_LOG" not in os.environ:
        vosk.SetLogLevel(-1)  # we report dropped grammar words ourselves
    # Without a feature config to patch, Kaldi dithers as it likes and we add nothing.
    patch = info.dither != 0 and info.features_conf is not None
    try:
        model = vosk.Model(str(_shadow(info) if patch else info.path))
    except Exception as exc:  # vosk raises a bare Exception
        raise ModelError(f"Vosk could not load the model in {info.path}: {exc}") from exc
    return SpeechModel(info, model, dither=info.dither if patch else 0.0)


def _shadow(info: ModelInfo) -> Path:
    assert info.features_conf is not None
    return shadow_without_dither(info.path, info.features_conf)


REGISTRY = ModelRegistry()
"""The process-wide registry that ``load_model`` uses."""


def load_model(path: str | os.PathLike[str]) -> SpeechModel:
    """Load (or reuse) the model in ``path`` from the process-wide registry."""
    return REGISTRY.get(path)
