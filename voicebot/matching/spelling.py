"""The matcher's spelling view: character n-grams inside words under a multinomial naive Bayes.

Why: the recogniser mishears and drops letters. A misheard word ("invoce", "pasword") still
shares most of its 2-5-letter pieces with the right one, so counting pieces finds the intent
where the sentence encoder, which has never seen the misspelling, may not. The counts are weighted
by TF-IDF (sublinear tf, smooth idf), so pieces every text has say little, and the naive Bayes is
trained in one pass over the texts: even a config of 10,000 texts trains in a fraction of a second.

The arithmetic is scikit-learn's (``TfidfTransformer(sublinear_tf=True)``,
``MultinomialNB(alpha=CHAR_ALPHA, fit_prior=False)``) written out on the counts: their input
checks cost ~1.5 ms of the ~5 ms a caller's words took outside the encoder, and MultinomialNB's
dense one-hot product ~250 ms per training at 10,000 texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.special import log_softmax
from sklearn.feature_extraction.text import CountVectorizer

__all__ = ["Spelling", "count_grams"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Names = npt.NDArray[np.str_]

CHAR_NGRAMS = (2, 5)  # char n-grams inside word boundaries
CHAR_ALPHA = 0.1  # naive Bayes smoothing of the char n-gram counts
CHAR_TEMPERATURE = 0.3  # naive Bayes log-likelihoods are overconfident: scaled by this
MIN_DF_FROM = 2000  # from this many texts, n-grams seen in only one text are left out


def _char_grams(vocabulary: list[str] | None = None) -> CountVectorizer:
    """The n-gram settings in one place: a config's texts and caller text must be cut alike."""
    return CountVectorizer(
        analyzer="char_wb", ngram_range=CHAR_NGRAMS, vocabulary=vocabulary, dtype=np.float32
    )


def count_grams(texts: Sequence[str]) -> tuple[Names, sparse.csr_matrix]:
    """The n-grams of a config's texts and each text's counts of them, counted once per build
    for both models the matcher trains. The n-grams never cross a space, so a text's counts are
    the sum of its words' counts: each distinct word is cut into n-grams once (a few thousand
    words) instead of every word of every text, several times faster at 10,000 texts."""
    words = CountVectorizer(analyzer=str.split, dtype=np.float32)
    per_text = words.fit_transform(texts)
    grams = _char_grams()
    per_word = grams.fit_transform(words.get_feature_names_out().tolist())
    return grams.get_feature_names_out(), sparse.csr_matrix(per_text @ per_word)


@dataclass(frozen=True, slots=True)
class Spelling:
    """The trained view: which n-grams it knows, their idf, and per n-gram and class the naive
    Bayes log-likelihood."""

    counter: CountVectorizer  # counts the n-grams this model knows in caller text ...
    columns: I64  # ... which are these columns of count_grams' counts
    idf: F64
    log_prob: F64  # n-grams x classes

    @classmethod
    def fit(
        cls, names: Names, counts: sparse.csr_matrix, column: I64, weight: F64, classes: int
    ) -> Spelling:
        """Train on texts' ``counts`` of the n-grams ``names`` (from ``count_grams``), text i
        being of class ``column[i]`` with ``weight[i]``; the idf is the one a TfidfVectorizer
        fitted on these texts alone would give."""
        texts = counts.shape[0]
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        columns = np.flatnonzero(df >= (2 if texts >= MIN_DF_FROM else 1))
        idf = np.log((1 + texts) / (1 + df[columns])) + 1.0
        features = _tfidf(counts[:, columns], idf)
        # Features summed per class through a sparse one-hot matrix (~20 ms at 10,000 texts).
        onehot = sparse.csr_matrix((weight, (column, np.arange(len(column)))), (classes, texts))
        smoothed = (onehot @ features).toarray().astype(np.float64) + CHAR_ALPHA
        log_prob = np.log(smoothed) - np.log(smoothed.sum(axis=1, keepdims=True))
        return cls(
            _char_grams(names[columns].tolist()),
            columns.astype(np.int64),
            idf,
            np.ascontiguousarray(log_prob.T),
        )

    def count(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Caller texts' counts of the n-grams this model knows."""
        return sparse.csr_matrix(self.counter.transform(texts))

    def tfidf(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        """Texts' ``count`` as this model weighs them (the joint regression's n-gram features)."""
        return _tfidf(counts, self.idf)

    def log_proba(self, weighted: sparse.csr_matrix) -> F64:
        """Per text (its ``tfidf``: the matcher weighs a caller's counts once, for this view and
        the joint regression) and class, the log-probability, without class priors."""
        joint = np.asarray(weighted @ self.log_prob)
        out: F64 = log_softmax(CHAR_TEMPERATURE * joint, axis=1)
        return out


def _tfidf(counts: sparse.csr_matrix, idf: F64) -> sparse.csr_matrix:
    """Sublinear tf x idf, rows L2-normalised."""
    out = sparse.csr_matrix(counts, dtype=np.float64, copy=True)
    rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
    out.data = (np.log(out.data) + 1.0) * idf[out.indices]
    norms = np.sqrt(np.bincount(rows, out.data**2, out.shape[0]))
    out.data /= np.where(norms > 0, norms, 1.0)[rows]
    return out
