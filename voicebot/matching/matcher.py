"""Match a transcript to an intent: a small text classifier trained when the config loads.

Why not plain fuzzy matching: callers paraphrase, and the recogniser drops or mishears words, so
the best-phrase ``token_sort_ratio`` routes only about half of real calls. Instead each text is a
TF-IDF vector of words, word pairs and character n-grams (a misheard word still shares most of its
n-grams with the right one), and a softmax regression learns which of those features point at
which intent from the ops-written phrases and the imported examples. Two things are mixed into
its probabilities: a rapidfuzz ratio against the phrases, so a near-verbatim phrase wins even with
few examples, and a vote of the nearest training texts (cosine), which is what carries a config
with ten examples per intent. When the top intent's destination is clearly outweighed by another
destination's intents together, that destination's best intent goes first (callers feel where
they end up, not the intent name).

The score handed to the dialogue is calibrated per config: part of the examples is held out, a
first model is trained without them, and the scores are shaped so that only about one in two
hundred of those unseen but in-scope texts falls under the reject threshold. What rejects is
familiarity (cosine with the closest intent centroid or training text) times probability: a text
torn between two known intents stays familiar and is asked about, while text unlike anything the
intents know is rejected, whatever the number of intents.

Only numpy and rapidfuzz: sparse matrices are plain CSR arrays and training is a few epochs of
mini-batch Adam, deterministic for a given config.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz, process

from voicebot.core.config import ActionKind, Intent, Thresholds
from voicebot.core.match import Match, Scored, Verdict, decide
from voicebot.core.text import normalize

__all__ = ["Matcher", "route_key"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

CHAR_SIZES = (2, 3, 4, 5)  # char n-grams inside word boundaries, like char_wb 2-5
WORD_WEIGHT = 1.0  # weight of the word block (unigrams + bigrams) against the char block
CHAR_WEIGHT = 1.0
PHRASE_WEIGHT = 2.0  # a phrase counts as much as this many examples of the same intent
STEPS = 150  # optimiser steps, whatever the data size (the epochs follow from the batch size)
LEARNING_RATE = 0.05
L2 = 1e-5
L2_TEXTS = 0.064  # extra L2 of this over the number of texts: few texts, smoother weights
L2_MAX_EXTRA = 5e-5  # tiny configs: more would flatten the probabilities that reject
MIN_EPOCHS = 3
MAX_EPOCHS = 40
MIN_DF_FROM = 2000  # from this many texts, features seen in only one are not trained
DENSE_FROM = 16  # intents from which training batches are densified (see _adam)
FUZZ_FLOOR = 80.0  # rapidfuzz ratio (0..100) above which a phrase starts to pull its intent
FUZZ_SHARE = 0.5  # share of the probability a verbatim phrase hands to its intent
NOVELTY_POWER = 1.0  # how much similarity to what the intents know counts against probability
NEIGHBOURS = 30  # nearest training texts that vote
NEIGHBOUR_SHARE = 0.2  # share of the probability handed to their vote
NEIGHBOUR_TEMPERATURE = 0.1  # cosine gap at which a neighbour's vote falls by a factor e
INDEX_DF_SHARE = 0.05  # see _Index
INDEX_DF_MIN = 50
ROUTE_MARGIN = 0.1  # destination probability mass by which another destination must lead
HOLDOUT = 0.2  # share of each intent's texts held out to calibrate scores
REJECT_QUANTILE = 0.005  # share of unseen, rightly matched texts allowed under the reject line
MIN_CALIBRATION = 8  # held-out texts needed to trust the calibration; else DEFAULT_LOW is used
DEFAULT_LOW = math.log(0.1)  # typical low confidence (log) of in-scope text, for tiny configs
RANKED = 5
SEED = 20240611


def route_key(intent: Intent) -> str:
    """Where an intent sends the caller: intents with the same key go to the same place."""
    action = intent.action
    if action.kind is ActionKind.TRANSFER:
        return f"group:{action.group}"
    if action.kind is ActionKind.SMS:
        return f"sms:{action.link}"
    return f"announce:{intent.name}"


# ---------------------------------------------------------------------------------------------
# Features


@dataclass(frozen=True, slots=True)
class _Csr:
    indices: I64
    data: F32
    indptr: I64

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1

    def keep(self, mask: npt.NDArray[np.bool_]) -> _Csr:
        """The same rows with only the non-zeros where ``mask`` is true."""
        row = np.repeat(np.arange(self.rows), np.diff(self.indptr))[mask]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=self.rows))])
        return _Csr(self.indices[mask], self.data[mask], indptr.astype(np.int64))


class _Features:
    """Vocabulary-indexed TF-IDF (not hashed, so results never depend on PYTHONHASHSEED)."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.vocab: dict[str, int] = {}
        self._word_grams: dict[str, list[int]] = {}
        flat: list[int] = []
        lengths: list[int] = []
        for text in texts:
            before = len(flat)
            words = normalize(text).split()
            for feature in self._word_features(words):
                flat.append(self.vocab.setdefault(feature, len(self.vocab)))
            for word in words:
                grams = self._word_grams.get(word)
                if grams is None:
                    grams = [self.vocab.setdefault(g, len(self.vocab)) for g in _char_grams(word)]
                    self._word_grams[word] = grams
                flat.extend(grams)
            lengths.append(len(flat) - before)
        n, size = len(texts), len(self.vocab)
        self.is_word = np.zeros(size, bool)
        self.is_word[[i for f, i in self.vocab.items() if f.startswith(("w:", "b:"))]] = True
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
        keys, counts = np.unique(rows * size + np.array(flat, np.int64), return_counts=True)
        rows, ids = keys // size, keys % size
        df = np.bincount(ids, minlength=size)
        self.df = df
        self.idf = (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)
        # Words the intents never saw still count in a text's norm: mostly-unknown text scores low.
        self.unknown_idf = math.log(1 + n) + 1
        values = (1 + np.log(counts)) * self.idf[ids]
        block = rows * 2 + self.is_word[ids]
        norms = np.sqrt(np.bincount(block, weights=values * values, minlength=2 * n))
        weight = np.where(self.is_word[ids], WORD_WEIGHT, CHAR_WEIGHT)
        present = (norms > 0).reshape(n, 2) * np.array([CHAR_WEIGHT, WORD_WEIGHT]) ** 2
        total = np.sqrt(present.sum(axis=1))
        values = values * weight / norms[block] / total[rows]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        self.train = _Csr(ids.astype(np.int64), values.astype(np.float32), indptr.astype(np.int64))

    @property
    def size(self) -> int:
        return len(self.vocab)

    @staticmethod
    def _word_features(words: Sequence[str]) -> list[str]:
        pairs = [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
        return [f"w:{w}" for w in words] + pairs

    def row(self, text: str) -> tuple[list[int], list[float]]:
        """Feature ids and weights of a new text, exactly as a training row would get them."""
        words = normalize(text).split()
        chars = [g for w in words for g in _char_grams(w)]
        ids: list[int] = []
        values: list[float] = []
        weights = []
        for block, weight in ((chars, CHAR_WEIGHT), (self._word_features(words), WORD_WEIGHT)):
            if not block:
                continue
            start = len(values)
            unknown = 0.0
            for feature, count in Counter(block).items():
                tf = 1.0 + math.log(count)
                index = self.vocab.get(feature)
                if index is None:
                    unknown += (tf * self.unknown_idf) ** 2
                else:
                    ids.append(index)
                    values.append(tf * float(self.idf[index]))
            norm = math.sqrt(sum(v * v for v in values[start:]) + unknown)
            values[start:] = [v * weight / norm for v in values[start:]]
            weights.append(weight)
        total = math.sqrt(sum(w * w for w in weights)) or 1.0
        return ids, [v / total for v in values]


def _char_grams(word: str) -> list[str]:
    padded = f" {word} "
    return [padded[i : i + n] for n in CHAR_SIZES for i in range(len(padded) - n + 1)]


class _Index:
    """Inverted index over the training rows: a text's cosine with every one of them at once,
    touching only the rows that share a feature with it. Features in more than INDEX_DF_SHARE of
    the texts (" th", "the ") are left out: they add little to any cosine but most of the work."""

    def __init__(self, x: _Csr, features: int, df: I64) -> None:
        common = df > max(INDEX_DF_SHARE * x.rows, INDEX_DF_MIN)
        x = x.keep(~common[x.indices])
        order = np.argsort(x.indices, kind="stable")
        self._rows = np.repeat(np.arange(x.rows, dtype=np.int64), np.diff(x.indptr))[order]
        self._values = x.data[order]
        counts = np.bincount(x.indices, minlength=features)
        self._start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._n = x.rows

    def cosines(self, index: I64, value: F32) -> npt.NDArray[np.float64]:
        starts = self._start[index]
        lengths = self._start[index + 1] - starts
        offsets = np.cumsum(lengths) - lengths
        positions = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
        weights = self._values[positions] * np.repeat(value, lengths)
        cosines = np.bincount(self._rows[positions], weights=weights, minlength=self._n)
        return cosines.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True, slots=True)
class _Model:
    weights: F32  # features x intents
    bias: F32
    centroids: F32  # features x intents, each intent's mean TF-IDF vector, L2-normalised


def _train(x: _Csr, y: I64, sample_weight: F32, classes: int, features: int) -> _Model:
    """Softmax regression by mini-batch Adam; each batch is densified over its own features only,
    so the heavy work is two small BLAS products instead of sparse gathers over all columns."""
    rng = np.random.default_rng(SEED)
    n = x.rows
    weights = np.zeros((features, classes), np.float32)
    bias = np.zeros(classes, np.float32)
    if classes > 1 and n > 0:
        batch = int(min(256, max(32, n * 3 // STEPS)))
        epochs = max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(STEPS * batch / n)))
        with _one_blas_thread():
            weights, bias = _adam(x, y, sample_weight, weights, bias, rng, batch, epochs)
    flat = x.indices * classes + np.repeat(y, np.diff(x.indptr))
    sums = np.bincount(flat, weights=x.data, minlength=features * classes)
    sums = sums.reshape(features, classes)
    norms = np.linalg.norm(sums, axis=0)
    centroids = (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return _Model(weights, bias, centroids)


def _adam(
    x: _Csr,
    y: I64,
    sample_weight: F32,
    weights: F32,
    bias: F32,
    rng: np.random.Generator,
    batch: int,
    epochs: int,
) -> tuple[F32, F32]:
    """Lazy Adam: only the rows of features present in a batch are read and updated.

    Segment sums run along the last axis of C x nnz arrays, where ``np.add.reduceat`` is fast.
    """
    n, classes = x.rows, weights.shape[1]
    l2 = L2 + min(L2_TEXTS / max(n, 1), L2_MAX_EXTRA)
    onehot = np.eye(classes, dtype=np.float32)
    lengths = np.diff(x.indptr)
    order = rng.permutation(n)
    batches = []
    for start in range(0, n, batch):
        rows = order[start : start + batch]
        row_lengths = lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(row_lengths)[:-1]])
        positions = np.repeat(x.indptr[rows] - offsets, row_lengths) + np.arange(row_lengths.sum())
        ids, values = x.indices[positions], x.data[positions]
        by_feature = np.argsort(ids, kind="stable")
        sorted_ids = ids[by_feature]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        owner = np.repeat(np.arange(len(rows)), row_lengths)[by_feature]
        batches.append(
            (rows, ids, values, offsets, sorted_ids[starts], owner, values[by_feature], starts)
        )
    m, v = np.zeros_like(weights), np.zeros_like(weights)
    mb, vb = np.zeros_like(bias), np.zeros_like(bias)
    b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
    # Many intents: densify each batch over its own features and let BLAS do both products.
    # Few intents: the dense block would cost more than it saves; gather per non-zero instead.
    dense = classes >= DENSE_FROM
    total = epochs * len(batches)
    for _ in range(epochs):
        for k in rng.permutation(len(batches)):
            rows, ids, values, offsets, used, owner, owner_values, starts = batches[k]
            w = weights[used]
            if dense:
                block = np.zeros((len(rows), len(used)), np.float32)
                block[
                    owner, np.repeat(np.arange(len(used)), np.diff(np.r_[starts, len(owner)]))
                ] = owner_values
                logits = block @ w + bias
            else:
                spread = np.ascontiguousarray((weights[ids] * values[:, None]).T)
                logits = np.add.reduceat(spread, offsets, axis=1).T + bias
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            sw = sample_weight[rows]
            residual = (p - onehot[y[rows]]) * (sw / sw.sum())[:, None]
            if dense:
                grad = block.T @ residual
            else:
                grad = np.add.reduceat(residual.T[:, owner] * owner_values, starts, axis=1).T
            grad += l2 * w
            step += 1
            # Cosine decay to zero: the last steps settle instead of leaving mini-batch noise
            # in the weights (which would favour whichever intent came in the last batches).
            decay = 0.5 * (1 + math.cos(math.pi * (step - 1) / total))
            lr = LEARNING_RATE * decay * math.sqrt(1 - b2**step) / (1 - b1**step)
            mu = b1 * m[used] + (1 - b1) * grad
            vu = b2 * v[used] + (1 - b2) * grad * grad
            m[used], v[used] = mu, vu
            weights[used] = w - lr * mu / (np.sqrt(vu) + eps)
            gb = residual.sum(axis=0)
            mb = b1 * mb + (1 - b1) * gb
            vb = b2 * vb + (1 - b2) * gb * gb
            bias -= lr * mb / (np.sqrt(vb) + eps)
    return weights, bias


# ---------------------------------------------------------------------------------------------
# BLAS threads


@functools.cache
def _blas_threads() -> tuple[Callable[[int], object], Callable[[], int]] | None:
    """numpy's OpenBLAS thread setter and getter, if that is the BLAS in this process."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted(
                {ln.split()[-1] for ln in maps if "openblas" in ln.lower() and ".so" in ln}
            )
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "_64_", ""):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    getter.restype = ctypes.c_int
                    return setter, getter
    return None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Train on one BLAS thread: the batches are small, and on a busy box (the recogniser runs
    next to us) OpenBLAS threads waiting for each other made training several times slower."""
    control = _blas_threads()
    if control is None:
        yield
        return
    setter, getter = control
    before = int(getter())
    setter(1)
    try:
        yield
    finally:
        setter(before)


# ---------------------------------------------------------------------------------------------
# Matcher


@dataclass(frozen=True, slots=True)
class _Trained:
    features: _Features
    model: _Model
    phrases: list[str]  # normalised, for the rapidfuzz ratio
    phrase_owner: I64  # intent index of each phrase
    index: _Index  # over the training texts, for the nearest-neighbour vote and novelty
    owner: I64  # intent index of each training text


class Matcher:
    """Scores every intent for a transcript; see the module docstring for how."""

    def __init__(self, intents: Sequence[Intent], thresholds: Thresholds) -> None:
        self._names = tuple(i.name for i in intents)
        self._thresholds = thresholds
        keys = [route_key(i) for i in intents]
        self._route = np.array([keys.index(k) for k in keys], np.int64)
        texts: list[str] = []
        labels: list[int] = []
        is_phrase: list[bool] = []
        for k, intent in enumerate(intents):
            for phrases, phrase in ((intent.phrases, True), (intent.examples, False)):
                for text in phrases:
                    if normalize(text):
                        texts.append(text)
                        labels.append(k)
                        is_phrase.append(phrase)
        y = np.array(labels, np.int64)
        phrase_mask = np.array(is_phrase, bool)
        self._gamma = 1.0
        self._trained: _Trained | None = None
        if not texts:
            return
        self._gamma = self._calibrate(texts, y, phrase_mask)
        self._trained = self._fit(texts, y, phrase_mask)

    # -- training ------------------------------------------------------------------------------

    def _fit(self, texts: Sequence[str], y: I64, phrase_mask: npt.NDArray[np.bool_]) -> _Trained:
        features = _Features(texts)
        x = features.train
        if len(texts) >= MIN_DF_FROM:
            x = x.keep(features.df[x.indices] >= 2)
        classes = len(self._names)
        weight = np.where(phrase_mask, PHRASE_WEIGHT, 1.0)
        per_class = np.bincount(y, weights=weight, minlength=classes)
        sample_weight = (weight / per_class[y]).astype(np.float32)
        sample_weight *= len(y) / sample_weight.sum()
        model = _train(x, y, sample_weight, classes, features.size)
        phrases = [normalize(t) for t, p in zip(texts, phrase_mask.tolist(), strict=True) if p]
        index = _Index(features.train, features.size, features.df)
        return _Trained(features, model, phrases, y[phrase_mask], index, y)

    def _calibrate(self, texts: Sequence[str], y: I64, phrase_mask: npt.NDArray[np.bool_]) -> float:
        """The exponent that puts the REJECT_QUANTILE of unseen in-scope texts at the reject
        threshold, measured by training without a held-out part of every intent."""
        rng = np.random.default_rng(SEED)
        held = np.zeros(len(y), bool)
        for k in range(len(self._names)):
            members = np.flatnonzero(y == k)
            take = int(len(members) * HOLDOUT)
            if len(members) >= 3 and take > 0:
                held[rng.choice(members, take, replace=False)] = True
        low = DEFAULT_LOW
        if held.sum() >= MIN_CALIBRATION:
            keep = np.flatnonzero(~held)
            trained = self._fit([texts[i] for i in keep.tolist()], y[keep], phrase_mask[keep])
            confidence, right = [], []
            for i in np.flatnonzero(held).tolist():
                log_c = self._log_confidence(trained, texts[i], normalize(texts[i]))
                confidence.append(float(np.max(log_c)))
                right.append(int(np.argmax(log_c)) == y[i])
            # Texts the model gets wrong are better rejected anyway: the budget is spent on the
            # ones it would have routed right.
            pool = (
                np.array(confidence)[np.array(right)]
                if sum(right) >= MIN_CALIBRATION
                else confidence
            )
            low = min(float(np.quantile(pool, REJECT_QUANTILE)), -1e-3)
        gamma = math.log(self._thresholds.reject) / low if low < 0 else 1.0
        return float(min(max(gamma, 0.15), 2.0))

    # -- scoring -------------------------------------------------------------------------------

    def _log_confidence(self, trained: _Trained, text: str, norm: str) -> F32:
        """Per intent: log(probability) + NOVELTY_POWER * log(familiarity).

        Familiarity is the geometric mean of the cosine with the closest intent centroid and with
        the closest training text: low only when the text is unlike every intent, so it is what
        rejects, not a split between two known intents. It also rejects when there are only one
        or two intents to choose from (their probabilities then say little).
        """
        ids, values = trained.features.row(text)
        classes = len(self._names)
        if not ids:
            return np.full(classes, -np.inf, np.float32)
        index = np.array(ids, np.int64)
        value = np.array(values, np.float32)
        model = trained.model
        centroid = max(float(np.max(value @ model.centroids[index])), 1e-6)
        cosines = trained.index.cosines(index, value)
        near = np.arange(len(cosines))
        if len(cosines) > NEIGHBOURS:
            near = np.argpartition(-cosines, NEIGHBOURS)[:NEIGHBOURS]
        near = near[np.lexsort((near, -cosines[near]))]  # best first, ties by position
        familiarity = max(centroid, float(cosines[near[0]]))
        if classes == 1:  # nothing to compare with: familiarity stands in for the probability
            return np.full(1, (1 + NOVELTY_POWER) * math.log(familiarity), np.float32)
        logits = value @ model.weights[index] + model.bias
        p = np.exp(logits - logits.max())
        p /= p.sum()
        if trained.phrases and norm:
            pull = self._fuzzy(trained, norm)
            if pull.max() > 0:
                # A near-verbatim phrase takes a share of the probability for its intent; the
                # same phrase under two intents splits that share evenly, so the bot asks.
                share = FUZZ_SHARE * float(pull.max())
                p = (1 - share) * p + share * pull / pull.sum()
        # The closest training texts vote: with ten examples an intent's words are too few for
        # the regression, but one close example is telling.
        vote = np.bincount(
            trained.owner[near],
            weights=np.exp((cosines[near] - cosines[near[0]]) / NEIGHBOUR_TEMPERATURE),
            minlength=classes,
        )
        p = (1 - NEIGHBOUR_SHARE) * p + NEIGHBOUR_SHARE * vote / vote.sum()
        p = self._prefer_heavier_route(p)
        log_p = np.log(np.maximum(p, 1e-30))
        log_score: F32 = (log_p + NOVELTY_POWER * math.log(familiarity)).astype(np.float32)
        return log_score

    def _prefer_heavier_route(self, p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Callers feel the destination, not the intent: when another destination's intents
        together clearly outweigh the top intent's, that destination's best intent swaps
        probabilities with the top one."""
        mass = np.bincount(self._route, weights=p)
        top = int(np.argmax(p))
        heavier = int(np.argmax(mass))
        if mass[heavier] <= mass[self._route[top]] + ROUTE_MARGIN:
            return p
        best = int(np.argmax(np.where(self._route == heavier, p, -1.0)))
        swapped = p.copy()
        swapped[[top, best]] = p[[best, top]]
        return swapped

    def _fuzzy(self, trained: _Trained, norm: str) -> F32:
        """Per intent, how near-verbatim its closest ops-written phrase is (0 far, 1 verbatim)."""
        ratios = process.cdist([norm], trained.phrases, scorer=fuzz.ratio, dtype=np.float32)[0]
        pull = np.clip((ratios - FUZZ_FLOOR) / (100.0 - FUZZ_FLOOR), 0.0, 1.0) ** 2
        best = np.zeros(len(self._names), np.float32)
        np.maximum.at(best, trained.phrase_owner, pull.astype(np.float32))
        return best

    def scores(self, text: str) -> F32:
        """Per intent score on the 0..1 scale of ``Thresholds``; all zero for empty text."""
        norm = normalize(text)
        if self._trained is None or not norm:
            return np.zeros(len(self._names), np.float32)
        log_c = self._log_confidence(self._trained, text, norm)
        return np.exp(self._gamma * np.minimum(log_c, 0.0)).astype(np.float32)

    def _result(self, text: str, scores: F32) -> Match:
        top = np.argsort(-scores, kind="stable")[:RANKED]
        ranked = tuple(Scored(self._names[i], round(float(scores[i]), 4)) for i in top)
        ranked = tuple(r for r in ranked if r.score > 0)
        return Match(text, ranked, decide(ranked, self._thresholds))

    def match(self, text: str) -> Match:
        return self._result(text, self.scores(text))

    def match_alternatives(self, alternatives: Sequence[tuple[str, float]]) -> Match:
        """Combine the recogniser's n-best: each transcript's scores weighted by its confidence;
        the transcript reported is the one that backs the winning intent most."""
        usable = [(t, max(float(c), 0.0)) for t, c in alternatives if normalize(t)]
        if not usable:
            text = alternatives[0][0] if alternatives else ""
            return Match(text, (), Verdict.REJECT)
        weights = np.array([c for _, c in usable], np.float32)
        total = float(weights.sum())
        weights = (
            weights / total if total > 0 else np.full(len(usable), 1 / len(usable), np.float32)
        )
        each = np.stack([self.scores(t) for t, _ in usable])
        combined = (weights[:, None] * each).sum(axis=0).astype(np.float32)
        best = int(np.argmax(combined))
        backer = int(np.argmax(weights * each[:, best]))
        return self._result(usable[backer][0], combined)
