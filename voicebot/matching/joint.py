"""The matcher's third view, for configs with a large history: one logistic regression on the
sentence vector and the spelling view's char n-gram TF-IDF side by side.

Why: with a hundred or more examples per intent (a deployment imported from its call history)
the two small views, each trained on its own features and mixed with fixed weights chosen on
few-shot sets, leave accuracy that one plain regression on both feature sets together finds
(it beat them on SNIPS, not on HWU64); mixed with them it routed better than either on HWU64
and SNIPS valid. With few examples per intent it did not (HWU64 at 20 per intent lost intent
accuracy), so it is used only when the typical intent has JOINT_FROM texts or more: the few-shot
configs ops start with are untouched by construction. Figures and commands: bench/README.md,
"Full history: the joint regression".

Its cost is the fit: ~25,000 n-gram columns next to the vector's 384, for 10,000 texts. SAGA for
JOINT_EPOCHS passes (seeded, so the same config gives the same weights) took 2-9 s where L-BFGS
to convergence took 12-32 s for the same valid accuracy (HWU64, SNIPS), and the matcher fits it
twice (its calibration model too, so the reject line is placed on the scores callers will get).
The weights are kept on disk beside the sentence vectors (``JointCache``), keyed by everything the
fit depends on, so a restart, ``voicebot eval`` or another instance of the same config reads
them in a fraction of a second instead of fitting again. A damaged file is set aside with a
warning and the regression fitted again, like the embedding cache: a cache never stops the bot.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import sklearn
from scipy import sparse
from scipy.special import log_softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from voicebot.atomic import write_atomic
from voicebot.matching.npz_file import READ_ERRORS, Want, read_arrays

__all__ = ["Joint", "JointCache", "wanted"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

JOINT_FROM = 50  # texts of the median intent from which the joint regression is used
JOINT_SHARE = 0.5  # weight of its log-probabilities against the two views' mix
JOINT_TEMPERATURE = 0.5  # its log-probabilities are scaled by this before they are mixed:
# unscaled, its sharp n-gram weights made held-out texts (near-copies of training texts in a
# large history) look surer than callers' words, and the reject line took more real requests
JOINT_C = 10.0  # inverse L2 strength (best of 10 / 30 / 100 on HWU64 valid)
JOINT_EPOCHS = 10  # SAGA passes over the texts: more moved valid accuracy by noise only
JOINT_TOL = 1e-3
JOINT_SEED = 0  # SAGA visits the texts in a seeded order: same config, same weights
FORMAT = 2  # of the cache file; part of its key (2: n-gram weights stored n-grams x classes)
KEEP = 32  # cached fits kept in the folder, most recently used first (~7 MB each at 64
# intents x 10,000 texts): the benchmark's 10 large configs x 2 fits stay cached
ANNOUNCE_FROM = 500  # texts from which a first fit is worth a line on stderr


def wanted(y: I64) -> bool:
    """Whether a config whose texts have intent indices ``y`` gets the joint regression."""
    counts = np.bincount(y)
    return bool(len(counts[counts > 0]) > 1 and np.median(counts[counts > 0]) >= JOINT_FROM)


@dataclass(frozen=True, slots=True)
class Joint:
    """The trained regression's weights, split by feature set (one row per class)."""

    vectors: F32  # classes x encoder dimension
    # the spelling view's n-gram columns x classes: a caller's few n-grams then pick rows of
    # one contiguous array (classes x columns, transposed for the product, was copied whole at
    # every utterance: ~10 ms at 100 intents)
    grams: F32
    intercept: F64

    def log_proba(self, vectors: F32, grams: sparse.csr_matrix) -> F64:
        """Per text (its sentence vector and its n-gram TF-IDF) and class, the log-probability."""
        # float32 like the weights: a float64 product would copy the whole weight matrix
        picked = np.asarray(sparse.csr_matrix(grams, dtype=np.float32) @ self.grams)
        logits = vectors @ self.vectors.T + picked + self.intercept
        out: F64 = log_softmax(logits.astype(np.float64), axis=1)
        return out


def fit(vectors: F32, grams: sparse.csr_matrix, column: I64, weight: F64) -> Joint:
    """Fit on the texts' ``vectors`` and n-gram TF-IDF ``grams``, text i of class ``column[i]``
    (0 ..) with ``weight[i]``."""
    x = sparse.hstack([sparse.csr_matrix(vectors, dtype=np.float64), grams], format="csr")
    model = LogisticRegression(
        C=JOINT_C, solver="saga", max_iter=JOINT_EPOCHS, tol=JOINT_TOL, random_state=JOINT_SEED
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # stopped early on purpose
        model.fit(x, column, sample_weight=weight)
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # two classes: one row, the second class's log-odds
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    dim = vectors.shape[1]
    return Joint(
        np.ascontiguousarray(coef[:, :dim], np.float32),
        np.ascontiguousarray(coef[:, dim:].T, np.float32),
        np.asarray(intercept, np.float64),
    )


class JointCache:
    """Fitted joint regressions on disk, one file per fit, named by a hash of all it depends
    on; ``fitted`` counts the fits this process could not read from the folder."""

    def __init__(
        self,
        folder: Path,
        *,
        warn: Callable[[str], None] | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.folder = folder
        self.fitted = 0
        self._warn = warn or (lambda msg: print(msg, file=sys.stderr))
        self._announce = announce or (lambda msg: print(msg, file=sys.stderr, flush=True))

    def get(
        self,
        encoder_id: str,
        texts: list[str],
        vectors: F32,
        gram_names: list[str],
        grams: Callable[[], sparse.csr_matrix],
        column: I64,
        weight: F64,
    ) -> Joint:
        """The regression for these texts, read from the folder or fitted (and saved).
        ``grams`` gives the texts' n-gram TF-IDF, asked for only when a fit needs it (~0.1 s at
        10,000 texts, twice a start: a second start reads the weights and needs none of it)."""
        path = self.folder / f"{_key(encoder_id, texts, gram_names, column, weight)}.npz"
        classes = int(column.max()) + 1
        found = self._read(path, classes, vectors.shape[1], len(gram_names))
        if found is not None:
            return found
        if len(texts) >= ANNOUNCE_FROM:
            self._announce(
                f"fitting the large-history regression on {len(texts)} config texts once "
                f"(cached in {self.folder})"
            )
        start = time.monotonic()
        joint = fit(vectors, grams(), column, weight)
        self.fitted += 1
        if len(texts) >= ANNOUNCE_FROM:
            self._announce(f"fitted in {time.monotonic() - start:.0f} s")
        self._save(path, joint)
        return joint

    def _read(self, path: Path, classes: int, dim: int, grams: int) -> Joint | None:
        if not path.exists():
            return None
        want: Want = {
            "vectors": (np.dtype(np.float32), (classes, dim)),
            "grams": (np.dtype(np.float32), (grams, classes)),
            "intercept": (np.dtype(np.float64), (classes,)),
        }
        try:
            arrays = read_arrays(path, want)
        except READ_ERRORS as exc:
            self._warn(f"warning: regression cache {path} is unreadable ({exc}); fitting again")
            with contextlib.suppress(OSError):  # kept for a look; the new fit replaces it
                path.replace(path.with_suffix(".corrupt"))
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: kept when the folder is pruned
        return Joint(arrays["vectors"], arrays["grams"], arrays["intercept"])

    def _save(self, path: Path, joint: Joint) -> None:
        def write(handle: BinaryIO) -> None:
            np.savez(handle, vectors=joint.vectors, grams=joint.grams, intercept=joint.intercept)

        try:
            write_atomic(path, write)
        except OSError as exc:  # read-only data folder: keep working, fit at every start
            self._warn(f"warning: cannot write regression cache {path}: {exc}")
            return
        self._prune()

    def _prune(self) -> None:
        """Keep the KEEP most recently used files: every edit of a large config adds two."""
        with contextlib.suppress(OSError):
            files = sorted(self.folder.glob("*.npz"), key=lambda p: p.stat().st_mtime)
            for old in files[:-KEEP]:
                old.unlink()


def _key(encoder_id: str, texts: list[str], gram_names: list[str], column: I64, weight: F64) -> str:
    """A hash of everything the fit depends on: the settings, the library that fits, the
    encoder, the texts, their classes and weights, and the n-gram columns."""
    digest = hashlib.sha256()
    settings = (FORMAT, JOINT_C, JOINT_EPOCHS, JOINT_TOL, JOINT_SEED, sklearn.__version__)
    for part in (repr(settings), encoder_id, "\x00".join(texts), "\x00".join(gram_names)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x01")
    digest.update(np.ascontiguousarray(column, np.int64).tobytes())
    digest.update(np.ascontiguousarray(weight, np.float64).tobytes())
    return digest.hexdigest()[:32]
