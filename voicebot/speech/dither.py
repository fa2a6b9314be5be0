"""Reproducible dither: Kaldi's feature noise, moved out of Kaldi so the same audio gives the
same words.

Kaldi adds Gaussian noise to every sample before its features (``--dither``, 1.0 by default,
which the small Vosk models leave on), drawn from a generator seeded from the process-wide
``rand()``. So the same audio decoded twice in one process, or decoded while other calls decode,
gets different noise, and audio near a decision boundary (a mu-law telephone rendering of a short
word) came out as different words depending on what the process had decoded before: 5 of 15
identical decodes in a row heard the escape word, the rest did not. The model is therefore
loaded with ``--dither=0`` (from a shadow directory whose ``conf/`` is a patched copy,
``shadow_without_dither``) and the recogniser adds the same amount of noise itself
(``dithered``), from a fixed table indexed by the sample's position in the call: the noise a
sample gets depends only on when it was said, so the same audio gives the same words at 1 or 50
concurrent calls.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["KALDI_DITHER", "dither_table", "dithered", "shadow_without_dither"]

KALDI_DITHER = 1.0
"""Kaldi's default ``--dither``: standard deviation of the noise, in 16-bit sample units."""
_DITHER_TABLE_SIZE = 1 << 16


def shadow_without_dither(model: Path, features_conf: str) -> Path:
    """A shadow of the model directory ``model`` whose feature config (``features_conf``,
    relative to it) says ``--dither=0``: symlinks to everything but ``conf/``, which is copied
    and patched. Kaldi's own dither is not reproducible (see the module docstring); the
    recogniser adds the same noise itself."""
    shadow = Path(tempfile.mkdtemp(prefix="voicebot-model-"))
    atexit.register(shutil.rmtree, shadow, ignore_errors=True)
    for entry in model.iterdir():
        if entry.name != "conf":
            (shadow / entry.name).symlink_to(entry.resolve())
    conf = shadow / "conf"
    shutil.copytree(model / "conf", conf, symlinks=False)
    features = shadow / features_conf
    kept = [
        line
        for line in features.read_text(encoding="utf-8", errors="replace").splitlines()
        if not line.strip().startswith("--dither")
    ]
    features.write_text("\n".join([*kept, "--dither=0", ""]), encoding="utf-8")
    return shadow


def dither_table() -> NDArray[np.float32]:
    """Unit Gaussian noise, the same in every process (fixed seed)."""
    return np.random.default_rng(0x766F736B).standard_normal(_DITHER_TABLE_SIZE).astype(np.float32)


_DITHER = dither_table()


def dithered(block: NDArray[np.float32], first: int, amount: float) -> NDArray[np.float32]:
    """``block`` plus ``amount`` times the table's noise for its samples, where ``first`` is the
    position of the block's first sample in the call (model rate)."""
    at = (first + np.arange(len(block))) % _DITHER_TABLE_SIZE
    return block + amount * _DITHER[at]
