"""Where the matcher's reject line falls, set per config from the config's own texts.

Why: how sure the matcher is of a caller's words depends on the config. With four examples per
intent the right intent may get 0.4, with a hundred 0.95, so one fixed line would either send
most callers of a small config to a person or let a large config route what it has never seen.
Instead part of every intent's texts is held out, the matcher trains a first model without them,
and its scores are raised to the power that puts the REJECT_QUANTILE of those unseen but in-scope
texts at REFERENCE, the default reject threshold. Out-of-scope examples are never needed.
A config too small for one held-out part to say anything (fewer than MIN_CALIBRATION texts
in it: `voicebot init`'s line of three intents) holds out every text once, in ``folds``; only
a config with fewer texts than that altogether falls back to DEFAULT_LOW. (Until then such a
config always used DEFAULT_LOW, which accepted almost anything: issue #22.)

The power does not depend on the config's own ``thresholds.reject``, on purpose: the scores are
then the same whatever the thresholds, and raising ``reject`` above REFERENCE rejects more
callers, lowering it fewer, on every config size. (Until issue #22 the power put the calibrated
point at the config's own ``reject``, so the line stayed where it was whatever ops set, and a
higher ``reject`` only raised every score, which made the bot accept more.)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from voicebot.core.config import Thresholds

__all__ = ["MIN_CALIBRATION", "exponent", "held_out", "typical_low"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

HOLDOUT = 0.2  # share of each intent's texts held out to calibrate scores
REJECT_QUANTILE = 0.01  # share of unseen, rightly matched texts allowed under the reject line
REFERENCE = Thresholds().reject  # score given to the calibrated point: the default reject line
MIN_BELOW = 2.0  # held-out texts that must lie under the line: a line set by one text is noise
MAX_SHARE = 0.05  # ... but never more than this share of them (a pool of 13 would give 15%)
MIN_CALIBRATION = 8  # held-out texts needed to trust the calibration; else ``folds``
DEFAULT_LOW = math.log(0.05)  # typical low confidence (log) of in-scope text, if folds are few
SEED = 20240611


def held_out(y: I64, intents: int) -> npt.NDArray[np.bool_]:
    """Which texts (of intent ``y[i]``) to hold out: HOLDOUT of every intent that has three or
    more, and at least one of each, or with four examples per intent the calibration would be
    left to ``folds``. The same texts every build (fixed seed)."""
    rng = np.random.default_rng(SEED)
    held = np.zeros(len(y), bool)
    for k in range(intents):
        members = np.flatnonzero(y == k)
        if len(members) >= 3:
            held[rng.choice(members, max(1, int(len(members) * HOLDOUT)), replace=False)] = True
    return held


def folds(y: I64, intents: int) -> list[npt.NDArray[np.bool_]]:
    """Held-out parts that together hold out every text of each intent with three or more, one
    text of each such intent per part (seeded order), for configs too small for ``held_out``."""
    rng = np.random.default_rng(SEED)
    order = [rng.permutation(np.flatnonzero(y == k)) for k in range(intents)]
    order = [members for members in order if len(members) >= 3]
    parts = []
    for f in range(max((len(m) for m in order), default=0)):
        held = np.zeros(len(y), bool)
        for members in order:
            if f < len(members):
                held[members[f]] = True
        parts.append(held)
    return parts


def typical_low(log_confidence: F64, y: I64) -> float:
    """The REJECT_QUANTILE of the held-out texts' top log-confidence (per text and intent in
    ``log_confidence``, of the first model). Texts that model gets wrong are better rejected
    anyway, so the quantile is taken over the ones it routes right when there are enough.

    With fewer than MIN_BELOW / REJECT_QUANTILE texts (200) the 1% quantile is the lowest text
    or below it: one phrase that happens to score badly without itself would set the line, and
    a four-phrase config would then accept almost anything. So the quantile is at least the one
    that puts MIN_BELOW texts under the line (2 of 100 held-out texts: 2%), up to MAX_SHARE:
    in a pool of a dozen texts two are 15%, and SNIPS at 10 examples per intent (7 intents)
    then lost 12 points of routing on test. Held-out texts are scored by a model that lacks them
    (with four phrases, a quarter of their intent's), so callers' in-scope requests fare better
    than this share says."""
    top = log_confidence.max(axis=1)
    right = log_confidence.argmax(axis=1) == y
    pool = top[right] if right.sum() >= MIN_CALIBRATION else top
    share = min(max(REJECT_QUANTILE, MIN_BELOW / len(pool)), MAX_SHARE)
    return min(float(np.quantile(pool, share)), -1e-3)


def exponent(low: float = DEFAULT_LOW) -> float:
    """The power that takes the log-confidence ``low`` (< 0) to the score REFERENCE, bounded so
    that one odd config cannot make every score 0 or 1."""
    return float(min(max(math.log(REFERENCE) / low, 0.15), 2.0))
