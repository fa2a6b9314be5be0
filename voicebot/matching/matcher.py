"""Match a transcript to an intent: two small classifiers trained when the config loads.

Why not plain fuzzy matching: callers paraphrase, and the recogniser drops or mishears words.
Two views of a text are combined:

- its meaning: a multilingual sentence encoder (``voicebot.matching.encoder``) turns it into a
  vector in which paraphrases lie close, in English and Swedish alike; a logistic regression
  (scikit-learn) learns which directions point at which intent. This is what carries a config
  with four examples per intent ("my bike got nicked" for an insurance claim). In a config
  without a large history every text is also read the encoder's other way (E5's ``passage:``
  prefix besides ``query:``) and added as a lighter training row: a second look at each
  example, at no cost per caller, whose words are read once;
- its spelling: character n-grams under a naive Bayes (``voicebot.matching.spelling``), so a
  misheard word ("invoce", "pasword") still points at the right intent.

Their log-probabilities are mixed with fixed weights (measured on HWU64/SNIPS valid, see
bench/README.md). A config with a large history (the typical intent has ``joint.JOINT_FROM``
texts or more) also gets a third view, one regression on both feature sets together
(``voicebot.matching.joint``), mixed in with the first two: what the data itself can give when
there is enough of it; its weights are cached on disk, so only the first start pays its fit.
Then, as before: a near-verbatim ops-written phrase pulls its intent (rapidfuzz
ratio), and when the top intent's destination is clearly outweighed by another destination's
intents together, that destination's best intent goes first (callers feel where they end up).

A request of one word that the texts of several intents share ("membership": the fee, or
cancelling?) says nothing about which of them is meant, so those intents tie and the bot asks.

The score handed to the dialogue is calibrated per config (``voicebot.matching.calibration``):
a first model trained without a held-out part of the texts sets how scores are shaped. What
rejects is the top intent's destination's probability times familiarity, the encoder's mean
cosine with the few closest training texts: a text torn between two known intents stays familiar
and is asked about, while "what's the weather in Paris" on a support line is unlike every example
and goes to a person. A mean over several texts rather than the one closest, because a single
stray example near an unrelated request should not make it familiar, while a real request lies
near several texts of its intent. Out-of-scope examples are never needed.

A config of 10,000 texts builds in about 3 s once its vectors (and its large-history
regressions' weights, ``joint.JointCache``) are cached: the final regression starts from the
calibration model's weights, so the two take FIRST_ITER + FINAL_ITER L-BFGS steps together
instead of ~90 each, and the n-grams are counted once per build.

Deterministic for a given config: the encoder gives the same vectors for the same text, the
solvers are deterministic and run on one BLAS thread (threadpoolctl).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz, process
from scipy import sparse
from scipy.special import log_softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import ThreadpoolController

from voicebot.core.config import Intent, Thresholds
from voicebot.core.match import Match, Scored, Verdict, decide
from voicebot.core.text import normalize
from voicebot.matching import calibration, joint
from voicebot.matching.embedding_cache import Embeddings, shared_embeddings
from voicebot.matching.respell import Respeller
from voicebot.matching.spelling import Names, Spelling, count_grams

__all__ = ["Matcher"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

MEANING_C = 30.0  # inverse L2 strength of the regression on sentence vectors
FIRST_ITER = 30  # L-BFGS steps of the calibration model, from zero
FINAL_ITER = 15  # ... and of the final model, started from the calibration model's weights
CHAR_SHARE = 0.25  # weight of the spelling view's log-probabilities against the meaning view's
PHRASE_WEIGHT = 2.0  # a phrase counts as much as this many examples of the same intent
# Weight of a text's second reading (the encoder's passage: prefix) as an extra training row of
# the meaning view, in configs without the large-history regression (bench/README.md, #22)
PASSAGE_WEIGHT = 0.3
FUZZ_FLOOR = 80.0  # rapidfuzz ratio (0..100) above which a phrase starts to pull its intent
FUZZ_SHARE = 0.5  # share of the probability a verbatim phrase hands to its intent
FAMILIAR_FLOOR = 0.72  # encoder cosine (closest training texts) that counts as "unfamiliar"
FAMILIAR_K = 4  # familiarity: mean cosine with this many closest training texts, at most
# half the texts a typical intent has (see _familiar_k)
FAMILIAR_BLOCK = 256  # texts whose cosines with every training text are held at once
NOVELTY_POWER = 2.0  # how much unfamiliarity counts against probability
SHARED_WORD_MAX = 0.5  # a one-word request ties intents only if at most this share has the word
ROUTE_MARGIN = 0.1  # destination probability mass by which another destination must lead
ROUTE_POOL = 1.0  # share of its destination's other intents' probability the top intent gets
RANKED = 5


@dataclass(frozen=True, slots=True)
class _Trained:
    classes: I64  # intent index of each column of the two models (intents that have texts)
    # meaning, spelling, joint (large configs only); None when only one intent has texts
    views: tuple[LogisticRegression, Spelling, joint.Joint | None] | None
    vectors: F32  # training texts' sentence vectors, for familiarity
    phrases: list[str]  # normalised, for the rapidfuzz ratio
    phrase_owner: I64  # intent index of each phrase
    word_owners: dict[str, frozenset[int]]  # word -> intents whose texts contain it


@dataclass(frozen=True, slots=True)
class _Texts:
    """A config's texts as the models see them, row by row."""

    texts: list[str]  # normalised
    vectors: F32
    y: I64  # intent index
    phrase: npt.NDArray[np.bool_]  # ops-written phrase rather than example
    counts: sparse.csr_matrix  # char n-gram counts over the config's n-grams (count_grams)
    # the encoder's second reading of each text (passage: prefix), extra rows for the meaning
    # view; None for large configs and encoders that read one way
    passages: F32 | None = None

    def take(self, mask: npt.NDArray[np.bool_]) -> _Texts:
        rows = np.flatnonzero(mask)
        return _Texts(
            [self.texts[i] for i in rows.tolist()],
            self.vectors[rows],
            self.y[rows],
            self.phrase[rows],
            self.counts[rows],
            None if self.passages is None else self.passages[rows],
        )


class Matcher:
    """Scores every intent for a transcript; see the module docstring for how."""

    def __init__(
        self,
        intents: Sequence[Intent],
        thresholds: Thresholds,
        *,
        embeddings: Embeddings | None = None,
    ) -> None:
        self._names = tuple(i.name for i in intents)
        self._thresholds = thresholds
        self._embeddings = embeddings if embeddings is not None else shared_embeddings()
        keys = [i.route for i in intents]
        self._route = np.array([keys.index(k) for k in keys], np.int64)
        self._route_of = dict(zip(self._names, keys, strict=True))
        texts: list[str] = []
        labels: list[int] = []
        is_phrase: list[bool] = []
        for k, intent in enumerate(intents):
            for phrases, phrase in ((intent.phrases, True), (intent.examples, False)):
                for text in phrases:
                    norm = normalize(text)
                    if norm:
                        texts.append(norm)
                        labels.append(k)
                        is_phrase.append(phrase)
        self._gamma = 1.0
        self._trained: _Trained | None = None
        self._respell = Respeller(texts)  # callers' words without å/ä/ö meet the config's
        if not texts:
            return
        # How many closest texts familiarity averages, from the whole config: the calibration
        # model (trained without a held-out part) scores it the way the final model will.
        self._familiar_k = _familiar_k(np.array(labels, np.int64))
        # The joint regression for both models or neither: the calibration model places the
        # reject line on the scores the final model gives.
        self._joints = (
            joint.JointCache(self._embeddings.path.parent / "regressions")
            if joint.wanted(np.array(labels, np.int64))
            else None
        )
        grams, counts = count_grams(texts)
        # A second reading of every text helps few-shot configs; a large history has the joint
        # regression instead (and would pay a second encoding of all its texts on first start).
        wants = self._joints is None and PASSAGE_WEIGHT > 0
        second = self._embeddings.passages() if wants else None
        data = _Texts(
            texts,
            self._embeddings.texts(texts),
            np.array(labels, np.int64),
            np.array(is_phrase, bool),
            counts,
            None if second is None else second.texts(texts),
        )
        with _threadpools().limit(limits=1):
            self._gamma, first = self._calibrate(grams, data)
            if first is None:  # too few texts to calibrate: the final model starts from zero
                self._trained = self._fit(grams, data, None, FIRST_ITER + FINAL_ITER)
            else:
                self._trained = self._fit(grams, data, first, FINAL_ITER)

    # -- training ------------------------------------------------------------------------------

    def _fit(
        self, grams: Names, data: _Texts, start: LogisticRegression | None, steps: int
    ) -> _Trained:
        """Train both views on ``data``; the regression takes ``steps`` L-BFGS steps from
        ``start`` (the calibration model, trained on most of the same texts) or from zero."""
        classes, column = np.unique(data.y, return_inverse=True)
        weight = np.where(data.phrase, PHRASE_WEIGHT, 1.0)
        per_class = np.bincount(column, weights=weight)
        sample_weight = weight / per_class[column] * len(data.y) / len(classes)
        views = None
        if len(classes) > 1:
            meaning = LogisticRegression(C=MEANING_C, max_iter=steps)
            if start is not None and len(start.classes_) == len(classes):
                meaning.set_params(warm_start=True)
                meaning.coef_ = start.coef_.copy()
                meaning.intercept_ = start.intercept_.copy()
            with warnings.catch_warnings():
                # Stopped early on purpose: each L-BFGS step at 10,000 texts x 100 intents
                # costs ~30 ms, and steps past these move valid accuracy by noise only.
                warnings.simplefilter("ignore", ConvergenceWarning)
                meaning.fit(*_meaning_rows(data, column, sample_weight))
            spelling = Spelling.fit(grams, data.counts, column, sample_weight, len(classes))
            views = meaning, spelling, self._joint(grams, data, spelling, column, sample_weight)
        word_owners: dict[str, set[int]] = {}
        for text, k in zip(data.texts, data.y.tolist(), strict=True):
            for word in set(text.split()):
                word_owners.setdefault(word, set()).add(k)
        return _Trained(
            classes=classes.astype(np.int64),
            views=views,
            vectors=data.vectors,
            phrases=[t for t, p in zip(data.texts, data.phrase.tolist(), strict=True) if p],
            phrase_owner=data.y[data.phrase],
            word_owners={w: frozenset(ks) for w, ks in word_owners.items()},
        )

    def _joint(
        self, grams: Names, data: _Texts, spelling: Spelling, column: I64, weight: F64
    ) -> joint.Joint | None:
        """The joint regression on ``data`` when the config is large enough, read from its
        cache when this config was fitted before."""
        if self._joints is None:
            return None
        return self._joints.get(
            self._embeddings.id,
            data.texts,
            data.vectors,
            grams[spelling.columns].tolist(),
            lambda: spelling.tfidf(data.counts[:, spelling.columns]),
            column,
            weight,
        )

    @property
    def joint_fits(self) -> int:
        """How many joint regressions this build fitted rather than read from the cache."""
        return 0 if self._joints is None else self._joints.fitted

    def _calibrate(self, grams: Names, data: _Texts) -> tuple[float, LogisticRegression | None]:
        """The exponent for scores (``calibration``), measured on texts held out of a first
        model; and that model's regression, which the final one starts from. A config too
        small for one held-out part (a starter line: a few intents of four or five phrases)
        holds every text out once, one first model per part (``calibration.folds``), so its
        line is its own rather than DEFAULT_LOW, which let such a line accept almost anything;
        the final model then starts from zero (each fold's model lacks texts of every intent)."""
        held = calibration.held_out(data.y, len(self._names))
        if held.sum() >= calibration.MIN_CALIBRATION:
            parts = [held]
        else:
            parts = calibration.folds(data.y, len(self._names))
        if sum(int(part.sum()) for part in parts) < calibration.MIN_CALIBRATION:
            return calibration.exponent(), None  # too few texts even held out one by one
        pools: list[F64] = []
        labels: list[I64] = []
        first: _Trained | None = None
        for part in parts:
            first = self._fit(grams, data.take(~part), None, FIRST_ITER)
            test = data.take(part)
            pools.append(self._log_confidence(first, test.texts, test.vectors, test.counts))
            labels.append(test.y)
        low = calibration.typical_low(np.vstack(pools), np.concatenate(labels))
        start = None
        if len(parts) == 1 and first is not None and first.views is not None:
            start = first.views[0]
        return calibration.exponent(low), start

    # -- scoring -------------------------------------------------------------------------------

    def _log_confidence(
        self,
        trained: _Trained,
        norms: Sequence[str],
        vectors: F32,
        counts: sparse.csr_matrix | None = None,
    ) -> F64:
        """Per text and intent: log(probability) + NOVELTY_POWER * log(familiarity). ``counts``:
        the texts' counts of the build's n-grams when known (held-out texts), else counted."""
        classes = len(self._names)
        n = len(norms)
        nearest = _closest_mean(vectors, trained.vectors, self._familiar_k)
        familiarity = np.clip((nearest - FAMILIAR_FLOOR) / (1 - FAMILIAR_FLOOR), 1e-6, 1.0)
        if trained.views is None:
            # One intent: nothing to compare with, familiarity stands in for the probability.
            alone = np.full((n, classes), -np.inf)
            alone[:, trained.classes] = 0.0
            out: F64 = alone + (1 + NOVELTY_POWER) * np.log(familiarity)[:, None]
            return out
        meaning, spelling, large = trained.views
        known = spelling.count(norms) if counts is None else counts[:, spelling.columns]
        weighted = spelling.tfidf(known)
        mixed = log_softmax(
            (1 - CHAR_SHARE) * _log_proba(meaning, vectors)
            + CHAR_SHARE * spelling.log_proba(weighted),
            axis=1,
        )
        if large is not None:
            both = joint.JOINT_TEMPERATURE * large.log_proba(vectors, weighted)
            mixed = log_softmax((1 - joint.JOINT_SHARE) * mixed + joint.JOINT_SHARE * both, axis=1)
        p = np.zeros((n, classes))
        p[:, trained.classes] = np.exp(mixed)
        pulls = self._fuzzy(trained, norms)
        for row, norm in enumerate(norms):
            p[row] = self._adjust(trained, norm, p[row], pulls[row])
        # Callers feel the destination: the top intent's confidence is its destination's, so a
        # text split between two intents of one destination is not rejected for it.
        rows, top = np.arange(n), p.argmax(axis=1)
        same = self._route[None, :] == self._route[top][:, None]
        p[rows, top] += ROUTE_POOL * ((p * same).sum(axis=1) - p[rows, top])
        # An ops-written phrase said (nearly) word for word is familiar whatever its neighbours:
        # an intent with one phrase next to one with hundreds would else average those in.
        familiarity = np.maximum(familiarity, pulls[rows, top])
        out = np.log(np.maximum(p, 1e-30)) + NOVELTY_POWER * np.log(familiarity)[:, None]
        return out

    def _adjust(self, trained: _Trained, norm: str, p: F64, pull: F64) -> F64:
        """Phrase pull, shared single word, heavier destination: in that order."""
        if pull.max() > 0:
            # A near-verbatim phrase takes a share of the probability for its intent; the
            # same phrase under two intents splits that share evenly, so the bot asks.
            share = FUZZ_SHARE * float(pull.max())
            p = (1 - share) * p + share * pull / pull.sum()
        words = norm.split()
        owners = trained.word_owners.get(words[0], frozenset()) if len(words) == 1 else frozenset()
        if 1 < len(owners) <= max(2, SHARED_WORD_MAX * len(trained.classes)):
            # One word several intents use: no evidence for one of them, so they tie.
            members = np.array(sorted(owners), np.int64)
            p = p.copy()
            p[members] = p[members].max()
            p /= p.sum()
            return p
        return self._prefer_heavier_route(p)

    def _prefer_heavier_route(self, p: F64) -> F64:
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

    def _fuzzy(self, trained: _Trained, norms: Sequence[str]) -> F64:
        """Per text and intent, how near-verbatim its closest ops-written phrase is (0 far,
        1 verbatim); one rapidfuzz call for all texts."""
        best = np.zeros((len(norms), len(self._names)))
        if not trained.phrases:
            return best
        ratios = process.cdist(norms, trained.phrases, scorer=fuzz.ratio, dtype=np.float32)
        pull = np.clip((ratios - FUZZ_FLOOR) / (100.0 - FUZZ_FLOOR), 0.0, 1.0) ** 2
        np.maximum.at(best.T, trained.phrase_owner, pull.T.astype(np.float64))
        return best

    def scores_many(self, texts: Sequence[str]) -> F32:
        """Per text and intent, the score on the 0..1 scale of ``Thresholds``; zero for empty
        text. One encoder call for all texts (the n-best)."""
        out = np.zeros((len(texts), len(self._names)), np.float32)
        norms = [normalize(t) for t in texts]
        rows = [i for i, n in enumerate(norms) if n]
        if self._trained is None or not rows:
            return out
        kept = [self._respell(norms[i]) for i in rows]
        vectors = self._embeddings.queries(kept)
        with _threadpools().limit(limits=1):
            log_c = self._log_confidence(self._trained, kept, vectors)
        out[rows] = np.exp(self._gamma * np.minimum(log_c, 0.0))
        return out

    def scores(self, text: str) -> F32:
        """Per intent score on the 0..1 scale of ``Thresholds``; all zero for empty text."""
        row: F32 = self.scores_many([text])[0]
        return row

    def _result(self, text: str, scores: F32) -> Match:
        top = np.argsort(-scores, kind="stable")[:RANKED]
        ranked = tuple(Scored(self._names[i], round(float(scores[i]), 4)) for i in top)
        ranked = tuple(r for r in ranked if r.score > 0)
        return Match(text, ranked, decide(ranked, self._thresholds, self._route_of))

    def match(self, text: str) -> Match:
        return self._result(text, self.scores(text))

    def match_alternatives(self, alternatives: Sequence[tuple[str, float]]) -> Match:
        """Combine the recogniser's n-best: each transcript's scores weighted by its confidence;
        the transcript reported is the one that backs the winning intent most."""
        usable = [(t, max(float(c), 0.0)) for t, c in alternatives if normalize(t)]
        if not usable or not self._names:
            text = alternatives[0][0] if alternatives else ""
            return Match(text, (), Verdict.REJECT)
        weights = np.array([c for _, c in usable], np.float32)
        total = float(weights.sum())
        weights = (
            weights / total if total > 0 else np.full(len(usable), 1 / len(usable), np.float32)
        )
        each = self.scores_many([t for t, _ in usable])
        combined = (weights[:, None] * each).sum(axis=0).astype(np.float32)
        best = int(np.argmax(combined))
        backer = int(np.argmax(weights * each[:, best]))
        return self._result(usable[backer][0], combined)


def _log_proba(model: LogisticRegression, vectors: F32) -> F64:
    """``model.predict_log_proba(vectors)`` from its weights: its input checks took ~1 ms a
    call."""
    logits = vectors @ model.coef_.T + model.intercept_
    if logits.shape[1] == 1:  # two intents: one column, the second intent's log-odds
        logits = np.hstack([np.zeros_like(logits), logits])
    out: F64 = log_softmax(logits.astype(np.float64), axis=1)
    return out


def _meaning_rows(data: _Texts, column: I64, weight: F64) -> tuple[F32, I64, F64]:
    """The meaning view's training rows: every text's vector, then (when there is one) its
    second reading at PASSAGE_WEIGHT. Measured on HWU64/SNIPS/sv-probe valid: out-of-scope
    recall rises at the same in-scope routing, as a second look at each example would."""
    if data.passages is None:
        return data.vectors, column, weight
    return (
        np.vstack([data.vectors, data.passages]),
        np.concatenate([column, column]),
        np.concatenate([weight, weight * PASSAGE_WEIGHT]),
    )


def _familiar_k(y: I64) -> int:
    """FAMILIAR_K, but at most half the texts of the median intent: with two or three phrases
    per intent, the next closest texts belong to other intents, and averaging them in would make
    a caller who says one phrase word for word sound unfamiliar."""
    counts = np.bincount(y)
    typical = int(np.median(counts[counts > 0]))
    return max(1, min(FAMILIAR_K, typical // 2))


def _closest_mean(vectors: F32, training: F32, k: int) -> F64:
    """Per row of ``vectors``, the mean of its ``k`` largest cosines with ``training`` (all of
    them when there are fewer). In blocks of rows, partitioned in place: the held-out texts of
    a 10,000-text config against the rest would otherwise hold (and copy) a 100 MB matrix."""
    k = min(k, len(training))
    out = np.empty(len(vectors), np.float64)
    for start in range(0, len(vectors), FAMILIAR_BLOCK):
        cosines = vectors[start : start + FAMILIAR_BLOCK] @ training.T
        cosines.partition(cosines.shape[1] - k, axis=1)
        out[start : start + FAMILIAR_BLOCK] = cosines[:, -k:].mean(axis=1, dtype=np.float64)
    return out


@functools.cache
def _threadpools() -> ThreadpoolController:
    """Found once: looking the thread pools up reads /proc/self/maps, ~6 ms a time. Limited to
    one thread around the models: BLAS threads would only wait for each other on problems this
    small, and the recogniser needs the other cores."""
    return ThreadpoolController()
