"""Match a transcript to an intent: two small classifiers trained when the config loads.

Why not plain fuzzy matching: callers paraphrase, and the recogniser drops or mishears words.
Two views of a text are combined:

- its meaning: a multilingual sentence encoder (``voicebot.matching.encoder``) turns it into a
  vector in which paraphrases lie close, in English and Swedish alike; a logistic regression
  (scikit-learn) learns which directions point at which intent. This is what carries a config
  with four examples per intent ("my bike got nicked" for an insurance claim);
- its spelling: character n-grams inside words (TF-IDF, sublinear tf) under a multinomial naive
  Bayes, so a misheard word ("invoce", "pasword") still shares most of its n-grams with the
  right one. It is trained in one pass over the texts, so even large configs build in seconds.

Their log-probabilities are mixed with fixed weights (measured on HWU64/SNIPS valid, see
bench/README.md). Then, as before: a near-verbatim ops-written phrase pulls its intent (rapidfuzz
ratio), and when the top intent's destination is clearly outweighed by another destination's
intents together, that destination's best intent goes first (callers feel where they end up).

A request of one word that the texts of several intents share ("membership": the fee, or
cancelling?) says nothing about which of them is meant, so those intents tie and the bot asks.

The score handed to the dialogue is calibrated per config: part of the examples is held out, a
first model is trained without them, and the scores are shaped so that only REJECT_QUANTILE of
those unseen but in-scope texts fall under the reject threshold. What rejects is probability
times familiarity, the encoder's cosine with the closest training text: a text torn between two
known intents stays familiar and is asked about, while "what's the weather in Paris" on a support
line is unlike every example and goes to a person. Out-of-scope examples are never needed.

Deterministic for a given config: the encoder gives the same vectors for the same text, the
solvers are deterministic and run on one BLAS thread (threadpoolctl).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz, process
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB
from threadpoolctl import ThreadpoolController

from voicebot.core.config import ActionKind, Intent, Thresholds
from voicebot.core.match import Match, Scored, Verdict, decide
from voicebot.core.text import normalize
from voicebot.matching.embedding_cache import Embeddings, shared_embeddings

__all__ = ["Matcher", "route_key"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

MEANING_C = 30.0  # inverse L2 strength of the regression on sentence vectors
MAX_ITER = 300
CHAR_NGRAMS = (2, 5)  # char n-grams inside word boundaries
CHAR_ALPHA = 0.1  # naive Bayes smoothing of the char n-gram counts
CHAR_TEMPERATURE = 0.3  # naive Bayes log-likelihoods are overconfident: scaled by this
CHAR_SHARE = 0.25  # weight of the spelling view's log-probabilities against the meaning view's
MIN_DF_FROM = 2000  # from this many texts, n-grams seen in only one text are left out
PHRASE_WEIGHT = 2.0  # a phrase counts as much as this many examples of the same intent
FUZZ_FLOOR = 80.0  # rapidfuzz ratio (0..100) above which a phrase starts to pull its intent
FUZZ_SHARE = 0.5  # share of the probability a verbatim phrase hands to its intent
FAMILIAR_FLOOR = 0.8  # encoder cosine (closest training text) that counts as "unfamiliar"
NOVELTY_POWER = 2.0  # how much unfamiliarity counts against probability
SHARED_WORD_MAX = 0.5  # a one-word request ties intents only if at most this share has the word
ROUTE_MARGIN = 0.1  # destination probability mass by which another destination must lead
HOLDOUT = 0.2  # share of each intent's texts held out to calibrate scores
REJECT_QUANTILE = 0.01  # share of unseen, rightly matched texts allowed under the reject line
MIN_CALIBRATION = 8  # held-out texts needed to trust the calibration; else DEFAULT_LOW is used
DEFAULT_LOW = math.log(0.05)  # typical low confidence (log) of in-scope text, for tiny configs
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


@dataclass(frozen=True, slots=True)
class _Trained:
    classes: I64  # intent index of each column of the two models (intents that have texts)
    meaning: LogisticRegression | None  # None when only one intent has texts
    chars: TfidfVectorizer
    spelling: MultinomialNB | None
    log_prob: F64  # n-grams x classes, the naive Bayes weights laid out for one product per text
    vectors: F32  # training texts' sentence vectors, for familiarity
    phrases: list[str]  # normalised, for the rapidfuzz ratio
    phrase_owner: I64  # intent index of each phrase
    word_owners: dict[str, frozenset[int]]  # word -> intents whose texts contain it


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
        keys = [route_key(i) for i in intents]
        self._route = np.array([keys.index(k) for k in keys], np.int64)
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
        if not texts:
            return
        vectors = self._embeddings.texts(texts)
        y = np.array(labels, np.int64)
        phrase_mask = np.array(is_phrase, bool)
        with _one_thread():
            self._gamma = self._calibrate(texts, vectors, y, phrase_mask)
            self._trained = self._fit(texts, vectors, y, phrase_mask)

    # -- training ------------------------------------------------------------------------------

    def _fit(
        self, texts: Sequence[str], vectors: F32, y: I64, phrase_mask: npt.NDArray[np.bool_]
    ) -> _Trained:
        classes, column = np.unique(y, return_inverse=True)
        weight = np.where(phrase_mask, PHRASE_WEIGHT, 1.0)
        per_class = np.bincount(column, weights=weight)
        sample_weight = weight / per_class[column] * len(y) / len(classes)
        chars = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=CHAR_NGRAMS,
            sublinear_tf=True,
            min_df=2 if len(texts) >= MIN_DF_FROM else 1,
            dtype=np.float32,
        )
        counts = chars.fit_transform(texts)
        meaning = spelling = None
        if len(classes) > 1:
            meaning = LogisticRegression(C=MEANING_C, max_iter=MAX_ITER)
            meaning.fit(vectors, column, sample_weight=sample_weight)
            spelling = MultinomialNB(alpha=CHAR_ALPHA, fit_prior=False)
            spelling.fit(counts, column, sample_weight=sample_weight)
        word_owners: dict[str, set[int]] = {}
        for text, k in zip(texts, y.tolist(), strict=True):
            for word in set(text.split()):
                word_owners.setdefault(word, set()).add(k)
        return _Trained(
            classes=classes.astype(np.int64),
            meaning=meaning,
            chars=chars,
            spelling=spelling,
            log_prob=np.ascontiguousarray(
                spelling.feature_log_prob_.T if spelling is not None else np.zeros((0, 0))
            ),
            vectors=vectors,
            phrases=[t for t, p in zip(texts, phrase_mask.tolist(), strict=True) if p],
            phrase_owner=y[phrase_mask],
            word_owners={w: frozenset(ks) for w, ks in word_owners.items()},
        )

    def _calibrate(
        self, texts: Sequence[str], vectors: F32, y: I64, phrase_mask: npt.NDArray[np.bool_]
    ) -> float:
        """The exponent that puts the REJECT_QUANTILE of unseen in-scope texts at the reject
        threshold, measured by training without a held-out part of every intent."""
        rng = np.random.default_rng(SEED)
        held = np.zeros(len(y), bool)
        for k in range(len(self._names)):
            members = np.flatnonzero(y == k)
            # At least one of every intent that can spare it: with four examples per intent
            # the calibration is otherwise left to DEFAULT_LOW.
            take = max(1, int(len(members) * HOLDOUT))
            if len(members) >= 3:
                held[rng.choice(members, take, replace=False)] = True
        low = DEFAULT_LOW
        if held.sum() >= MIN_CALIBRATION:
            keep = np.flatnonzero(~held)
            trained = self._fit(
                [texts[i] for i in keep.tolist()], vectors[keep], y[keep], phrase_mask[keep]
            )
            rows = np.flatnonzero(held)
            log_c = self._log_confidence(trained, [texts[i] for i in rows.tolist()], vectors[rows])
            confidence = log_c.max(axis=1)
            right = log_c.argmax(axis=1) == y[rows]
            # Texts the model gets wrong are better rejected anyway: the budget is spent on the
            # ones it would have routed right.
            pool = confidence[right] if right.sum() >= MIN_CALIBRATION else confidence
            low = min(float(np.quantile(pool, REJECT_QUANTILE)), -1e-3)
        gamma = math.log(self._thresholds.reject) / low if low < 0 else 1.0
        return float(min(max(gamma, 0.15), 2.0))

    # -- scoring -------------------------------------------------------------------------------

    def _log_confidence(self, trained: _Trained, norms: Sequence[str], vectors: F32) -> F64:
        """Per text and intent: log(probability) + NOVELTY_POWER * log(familiarity)."""
        classes = len(self._names)
        n = len(norms)
        counts = trained.chars.transform(norms)
        nearest = (vectors @ trained.vectors.T).max(axis=1).astype(np.float64)
        familiarity = np.clip((nearest - FAMILIAR_FLOOR) / (1 - FAMILIAR_FLOOR), 1e-6, 1.0)
        log_p = np.full((n, classes), -np.inf)
        if trained.meaning is None or trained.spelling is None:
            # One intent: nothing to compare with, familiarity stands in for the probability.
            log_p[:, trained.classes] = 0.0
            alone: F64 = log_p + (1 + NOVELTY_POWER) * np.log(familiarity)[:, None]
            return alone
        meaning = trained.meaning.predict_log_proba(vectors)
        joint = np.asarray(sparse.csr_matrix(counts) @ trained.log_prob)
        spelling = _log_softmax(CHAR_TEMPERATURE * joint)
        mixed = _log_softmax((1 - CHAR_SHARE) * meaning + CHAR_SHARE * spelling)
        p = np.zeros((n, classes))
        p[:, trained.classes] = np.exp(mixed)
        for row, norm in enumerate(norms):
            p[row] = self._adjust(trained, norm, p[row])
        log_p = np.log(np.maximum(p, 1e-30))
        out: F64 = log_p + NOVELTY_POWER * np.log(familiarity)[:, None]
        return out

    def _adjust(self, trained: _Trained, norm: str, p: F64) -> F64:
        """Phrase pull, shared single word, heavier destination: in that order."""
        if trained.phrases:
            pull = self._fuzzy(trained, norm)
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

    def _fuzzy(self, trained: _Trained, norm: str) -> F64:
        """Per intent, how near-verbatim its closest ops-written phrase is (0 far, 1 verbatim)."""
        ratios = process.cdist([norm], trained.phrases, scorer=fuzz.ratio, dtype=np.float32)[0]
        pull = np.clip((ratios - FUZZ_FLOOR) / (100.0 - FUZZ_FLOOR), 0.0, 1.0) ** 2
        best = np.zeros(len(self._names))
        np.maximum.at(best, trained.phrase_owner, pull.astype(np.float64))
        return best

    def scores_many(self, texts: Sequence[str]) -> F32:
        """Per text and intent, the score on the 0..1 scale of ``Thresholds``; zero for empty
        text. One encoder call for all texts (the n-best)."""
        out = np.zeros((len(texts), len(self._names)), np.float32)
        norms = [normalize(t) for t in texts]
        rows = [i for i, n in enumerate(norms) if n]
        if self._trained is None or not rows:
            return out
        kept = [norms[i] for i in rows]
        vectors = self._embeddings.queries(kept)
        with _one_thread():
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
        each = self.scores_many([t for t, _ in usable])
        combined = (weights[:, None] * each).sum(axis=0).astype(np.float32)
        best = int(np.argmax(combined))
        backer = int(np.argmax(weights * each[:, best]))
        return self._result(usable[backer][0], combined)


@functools.cache
def _threadpools() -> ThreadpoolController:
    """Found once: looking the thread pools up reads /proc/self/maps, ~6 ms a time."""
    return ThreadpoolController()


def _one_thread() -> AbstractContextManager[object]:
    """Small problems: BLAS threads would only wait for each other, and the recogniser needs the
    other cores."""
    limiter: AbstractContextManager[object] = _threadpools().limit(limits=1)
    return limiter


def _log_softmax(z: F64) -> F64:
    z = z - z.max(axis=1, keepdims=True)
    out: F64 = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return out
