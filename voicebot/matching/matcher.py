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
those unseen but in-scope texts fall under the reject threshold. What rejects is the top
intent's destination's probability times familiarity, the encoder's cosine with the closest
training text: a text torn between two known intents stays familiar and is asked about, while
"what's the weather in Paris" on a support line is unlike every example and goes to a person.
Out-of-scope examples are never needed.

A config of 10,000 texts builds in about 3 s once its vectors are cached: the final regression
starts from the calibration model's weights, so the two take FIRST_ITER + FINAL_ITER L-BFGS
steps together instead of ~90 each, and the n-grams are counted once per build.

Deterministic for a given config: the encoder gives the same vectors for the same text, the
solvers are deterministic and run on one BLAS thread (threadpoolctl).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz, process
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
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
FIRST_ITER = 30  # L-BFGS steps of the calibration model, from zero
FINAL_ITER = 15  # ... and of the final model, started from the calibration model's weights
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
ROUTE_POOL = 1.0  # share of its destination's other intents' probability the top intent gets
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
    chars: CountVectorizer  # counts the n-grams this model knows in caller text ...
    columns: I64  # ... which are these columns of the build's n-gram counts
    idf: F64  # their inverse document frequency
    log_prob: F64  # n-grams x classes: the naive Bayes log-likelihoods (0 x 0 for one class)
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
    counts: sparse.csr_matrix  # char n-gram counts over the config's vocabulary

    def take(self, rows: I64) -> _Texts:
        return _Texts(
            [self.texts[i] for i in rows.tolist()],
            self.vectors[rows],
            self.y[rows],
            self.phrase[rows],
            self.counts[rows],
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
        grams, counts = _count_grams(texts)
        data = _Texts(
            texts,
            self._embeddings.texts(texts),
            np.array(labels, np.int64),
            np.array(is_phrase, bool),
            counts,
        )
        with _one_thread():
            self._gamma, first = self._calibrate(grams, data)
            if first is None:  # too few texts to calibrate: the final model starts from zero
                self._trained = self._fit(grams, data, None, FIRST_ITER + FINAL_ITER)
            else:
                self._trained = self._fit(grams, data, first, FINAL_ITER)

    # -- training ------------------------------------------------------------------------------

    def _fit(
        self,
        grams: npt.NDArray[np.str_],
        data: _Texts,
        start: LogisticRegression | None,
        steps: int,
    ) -> _Trained:
        """Train both views on ``data``; the regression takes ``steps`` L-BFGS steps from
        ``start`` (the calibration model, trained on most of the same texts) or from zero."""
        classes, column = np.unique(data.y, return_inverse=True)
        weight = np.where(data.phrase, PHRASE_WEIGHT, 1.0)
        per_class = np.bincount(column, weights=weight)
        sample_weight = weight / per_class[column] * len(data.y) / len(classes)
        # The n-grams these texts have, weighted as a TfidfVectorizer fitted on these texts
        # alone would weight them (smooth idf).
        df = np.bincount(data.counts.indices, minlength=data.counts.shape[1])
        columns = np.flatnonzero(df >= (2 if len(data.texts) >= MIN_DF_FROM else 1))
        idf = np.log((1 + len(data.texts)) / (1 + df[columns])) + 1.0
        features = _tfidf(data.counts[:, columns], idf)
        meaning = None
        log_prob = np.zeros((0, 0))
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
                meaning.fit(data.vectors, column, sample_weight=sample_weight)
            log_prob = _naive_bayes(features, column, sample_weight, len(classes))
        word_owners: dict[str, set[int]] = {}
        for text, k in zip(data.texts, data.y.tolist(), strict=True):
            for word in set(text.split()):
                word_owners.setdefault(word, set()).add(k)
        return _Trained(
            classes=classes.astype(np.int64),
            meaning=meaning,
            chars=CountVectorizer(
                analyzer="char_wb",
                ngram_range=CHAR_NGRAMS,
                vocabulary=grams[columns].tolist(),
                dtype=np.float32,
            ),
            columns=columns.astype(np.int64),
            idf=idf,
            log_prob=log_prob,
            vectors=data.vectors,
            phrases=[t for t, p in zip(data.texts, data.phrase.tolist(), strict=True) if p],
            phrase_owner=data.y[data.phrase],
            word_owners={w: frozenset(ks) for w, ks in word_owners.items()},
        )

    def _calibrate(
        self, grams: npt.NDArray[np.str_], data: _Texts
    ) -> tuple[float, LogisticRegression | None]:
        """The exponent that puts the REJECT_QUANTILE of unseen in-scope texts at the reject
        threshold, measured by training without a held-out part of every intent; and that
        model, which the final one starts from."""
        rng = np.random.default_rng(SEED)
        y = data.y
        held = np.zeros(len(y), bool)
        for k in range(len(self._names)):
            members = np.flatnonzero(y == k)
            # At least one of every intent that can spare it: with four examples per intent
            # the calibration is otherwise left to DEFAULT_LOW.
            take = max(1, int(len(members) * HOLDOUT))
            if len(members) >= 3:
                held[rng.choice(members, take, replace=False)] = True
        low = DEFAULT_LOW
        trained = None
        if held.sum() >= MIN_CALIBRATION:
            trained = self._fit(grams, data.take(np.flatnonzero(~held)), None, FIRST_ITER)
            test = data.take(np.flatnonzero(held))
            counts = test.counts[:, trained.columns]
            log_c = self._log_confidence(trained, test.texts, test.vectors, counts)
            confidence = log_c.max(axis=1)
            right = log_c.argmax(axis=1) == test.y
            # Texts the model gets wrong are better rejected anyway: the budget is spent on the
            # ones it would have routed right.
            pool = confidence[right] if right.sum() >= MIN_CALIBRATION else confidence
            low = min(float(np.quantile(pool, REJECT_QUANTILE)), -1e-3)
        gamma = math.log(self._thresholds.reject) / low if low < 0 else 1.0
        return float(min(max(gamma, 0.15), 2.0)), trained.meaning if trained else None

    # -- scoring -------------------------------------------------------------------------------

    def _log_confidence(
        self, trained: _Trained, norms: Sequence[str], vectors: F32, counts: sparse.csr_matrix
    ) -> F64:
        """Per text and intent: log(probability) + NOVELTY_POWER * log(familiarity); ``counts``
        are the texts' counts of the model's n-grams (``_Trained.chars``)."""
        classes = len(self._names)
        n = len(norms)
        nearest = (vectors @ trained.vectors.T).max(axis=1).astype(np.float64)
        familiarity = np.clip((nearest - FAMILIAR_FLOOR) / (1 - FAMILIAR_FLOOR), 1e-6, 1.0)
        log_p = np.full((n, classes), -np.inf)
        if trained.meaning is None:
            # One intent: nothing to compare with, familiarity stands in for the probability.
            log_p[:, trained.classes] = 0.0
            alone: F64 = log_p + (1 + NOVELTY_POWER) * np.log(familiarity)[:, None]
            return alone
        # predict_log_proba by hand: its input checks took ~1 ms a call
        logits = vectors @ trained.meaning.coef_.T + trained.meaning.intercept_
        if logits.shape[1] == 1:  # two intents: one column, the second intent's log-odds
            logits = np.hstack([np.zeros_like(logits), logits])
        meaning = _log_softmax(logits.astype(np.float64))
        joint = np.asarray(_tfidf(counts, trained.idf) @ trained.log_prob)
        spelling = _log_softmax(CHAR_TEMPERATURE * joint)
        mixed = _log_softmax((1 - CHAR_SHARE) * meaning + CHAR_SHARE * spelling)
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
        log_p = np.log(np.maximum(p, 1e-30))
        out: F64 = log_p + NOVELTY_POWER * np.log(familiarity)[:, None]
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
        kept = [norms[i] for i in rows]
        vectors = self._embeddings.queries(kept)
        with _one_thread():
            counts = sparse.csr_matrix(self._trained.chars.transform(kept))
            log_c = self._log_confidence(self._trained, kept, vectors, counts)
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


def _naive_bayes(features: sparse.csr_matrix, column: I64, weight: F64, classes: int) -> F64:
    """Multinomial naive Bayes without class priors (what MultinomialNB(alpha=CHAR_ALPHA,
    fit_prior=False) learns), as n-grams x classes log-likelihoods: summing the features per
    class through a sparse one-hot matrix takes ~20 ms at 10,000 texts, where MultinomialNB's
    dense one-hot product took ~250 ms, twice per build."""
    onehot = sparse.csr_matrix((weight, (column, np.arange(len(column)))), (classes, len(column)))
    smoothed = (onehot @ features).toarray().astype(np.float64) + CHAR_ALPHA
    log_prob: F64 = np.log(smoothed) - np.log(smoothed.sum(axis=1, keepdims=True))
    return np.ascontiguousarray(log_prob.T)


def _tfidf(counts: sparse.csr_matrix, idf: F64) -> sparse.csr_matrix:
    """Sublinear tf x idf, rows L2-normalised: TfidfTransformer(sublinear_tf=True)'s weights,
    without its input checks, which took ~1.5 ms of the ~5 ms a caller's words cost outside
    the encoder."""
    out = sparse.csr_matrix(counts, dtype=np.float64, copy=True)
    rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
    out.data = (np.log(out.data) + 1.0) * idf[out.indices]
    norms = np.sqrt(np.bincount(rows, out.data**2, out.shape[0]))
    out.data /= np.where(norms > 0, norms, 1.0)[rows]
    return out


def _count_grams(texts: Sequence[str]) -> tuple[npt.NDArray[np.str_], sparse.csr_matrix]:
    """The config's char_wb n-grams and each text's counts of them. Those n-grams never cross
    a space, so a text's counts are the sum of its words' counts: each distinct word is cut into
    n-grams once (a few thousand words) instead of every word of every text, several times
    faster at 10,000 texts."""
    words = CountVectorizer(analyzer=str.split, dtype=np.float32)
    per_text = words.fit_transform(texts)
    grams = CountVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, dtype=np.float32)
    per_word = grams.fit_transform(words.get_feature_names_out().tolist())
    return grams.get_feature_names_out(), sparse.csr_matrix(per_text @ per_word)


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
