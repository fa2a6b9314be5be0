"""Suggested new intents: what callers said that the bot did not understand, grouped by meaning.

A real line's unmatched list is hundreds of different sentences that mean a few things ("where
is my parcel", "my package hasn't arrived"). Ops want the few topics, how many callers each
brought, and whether a topic is new or only phrasing missing from an intent they already have.

How (chosen by measurement on HWU64 train/valid, see bench/bench_suggest.py and docs/suggest.md):

- each distinct normalised utterance gets the matcher's sentence vector (the same encoder and
  cache, no second model); caller utterances go through ``Embeddings.queries``, which keeps
  them in memory only, so nothing a caller said is written anywhere new;
- the vectors are centred on their mean (steadied by the config's, see ``centred``) and scaled
  back to unit length: e5 puts every sentence in a narrow cone (cosines of unrelated requests
  sit above 0.8), and removing the shared direction spreads them out so one distance threshold
  means the same thing on any set;
- average-linkage agglomerative clustering (scikit-learn) on cosine distance, cut at
  ``THRESHOLD``: no number of groups to guess, and the cut does not drift with the number of
  utterances (Ward's did: right for 300 utterances, 140 groups for 2,400). HDBSCAN left a third
  of a small set as noise and scored lower on every size tried;
- groups that brought fewer than ``MIN_CALLERS`` callers (or ``MIN_SHARE`` of them, on a large
  list) are not topics: their utterances are unassigned, then each joins the group whose centre
  is nearest if that is close enough (``ATTACH``), and the rest stay ``unassigned``, listed
  apart rather than forced into a group.

Each group gets a proposed name (its most distinctive words), up to ``EXAMPLES`` representative
utterances (nearest its centre) and the existing intent it sits closest to: per intent, the mean
over the group's utterances of the cosine with that intent's closest phrase or example.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.cluster import AgglomerativeClustering

from voicebot.core.config import Intent
from voicebot.core.text import normalize
from voicebot.matching.embedding_cache import Embeddings

__all__ = ["Group", "Said", "Suggestions", "centred", "cluster", "group", "suggest", "tally"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

THRESHOLD = 0.8  # cosine distance (average linkage, centred vectors) below which groups merge
MIN_CALLERS = 3  # a group fewer callers brought is no topic yet
MIN_SHARE = 0.005  # ... nor one that brought less than this share of all callers
PRIOR = 30  # utterances' worth of weight the config's centre has in the centring
ATTACH = 0.3  # centred cosine with a group's centre at which an unassigned utterance joins it
EXAMPLES = 5  # representative utterances shown per group
NAME_WORDS = 2  # words in a proposed intent name
ENCODE_CHUNK = 32  # utterances per encoder call: calls being answered get the encoder between
_NAME_CHARS = re.compile(r"[^\w]+")


@dataclass(frozen=True, slots=True)
class Said:
    """One distinct normalised utterance and how many times callers said it."""

    text: str
    count: int


@dataclass(frozen=True, slots=True)
class Group:
    name: str  # proposed intent name
    count: int  # callers: the utterances' counts added up
    utterances: tuple[Said, ...]  # most frequent first
    examples: tuple[str, ...]  # up to EXAMPLES, the most typical first
    nearest: str | None  # the existing intent the group sits closest to
    similarity: float | None  # ... and how close (cosine, 0..1)


@dataclass(frozen=True, slots=True)
class Suggestions:
    groups: tuple[Group, ...]  # most callers first
    unassigned: tuple[Said, ...]  # fit no group; most frequent first

    @property
    def callers(self) -> int:
        return sum(g.count for g in self.groups) + sum(s.count for s in self.unassigned)


def tally(utterances: Iterable[tuple[str, int]]) -> list[Said]:
    """Normalise and merge repeats (empty texts and non-positive counts dropped), most frequent
    first, ties in text order so the result does not depend on input order."""
    counts: Counter[str] = Counter()
    for text, count in utterances:
        norm = normalize(text)
        if norm and count > 0:
            counts[norm] += count
    return [Said(t, n) for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _unit(x: npt.NDArray[np.floating]) -> F32:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: F32 = (x / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def centred(vectors: F32, config: F32 | None = None) -> F32:
    """``vectors`` less their centre, at unit length. The centre is their mean, drawn towards
    the config texts' mean as if those were ``PRIOR`` more utterances: a short list about two or
    three topics, centred on its own mean alone, is pushed apart along the lines between its
    topics ("where is my parcel" and "my package never arrived" end up opposite); on hundreds of
    utterances the config's pull is negligible (centring on all the config texts alike scored
    lower on HWU64 valid: ARI 0.67 against 0.69)."""
    if len(vectors) == 0:  # nothing was misunderstood (a quiet day): no centre to take
        return vectors
    centre = vectors.mean(axis=0, dtype=np.float64)
    if config is not None and len(config):
        n = len(vectors)  # even a few phrases show the direction all e5 vectors share
        centre = (n * centre + PRIOR * config.mean(axis=0, dtype=np.float64)) / (n + PRIOR)
    return _unit(vectors - centre)


def cluster(points: F32, counts: Sequence[int]) -> I64:
    """A group number per row of ``centred`` vectors (0, 1, ... most callers first), -1 for
    unassigned."""
    n = len(points)
    if n == 0:
        return np.zeros(0, np.int64)
    weight = np.asarray(counts, np.int64)
    least = max(MIN_CALLERS, math.ceil(MIN_SHARE * int(weight.sum())))
    if n == 1:
        labels = np.zeros(1, np.int64)
    else:
        found = AgglomerativeClustering(
            n_clusters=None, distance_threshold=THRESHOLD, metric="cosine", linkage="average"
        ).fit(points)
        labels = np.asarray(found.labels_, np.int64)
    sizes = np.bincount(labels, weights=weight)
    labels = np.where(sizes[labels] >= least, labels, -1)
    return _renumber(_attach(points, labels), weight)


def _attach(points: F32, labels: I64) -> I64:
    """Unassigned rows join the group with the nearest centre when it is near enough."""
    kept = np.unique(labels[labels >= 0])
    alone = np.flatnonzero(labels < 0)
    if not len(kept) or not len(alone):
        return labels
    centres = _unit(np.stack([points[labels == g].mean(axis=0) for g in kept.tolist()]))
    cosines = points[alone] @ centres.T
    best = cosines.argmax(axis=1)
    near = cosines[np.arange(len(alone)), best] >= ATTACH
    out = labels.copy()
    out[alone[near]] = kept[best[near]]
    return out


def _renumber(labels: I64, weight: I64) -> I64:
    """Groups numbered by callers, most first (ties: the group whose first row comes first)."""
    kept = [int(g) for g in np.unique(labels[labels >= 0])]
    order = sorted(
        kept, key=lambda g: (-int(weight[labels == g].sum()), int(np.argmax(labels == g)))
    )
    mapping = {g: i for i, g in enumerate(order)}
    return np.array([mapping.get(int(g), -1) for g in labels], np.int64)


def group(
    said: Sequence[Said],
    vectors: F32,
    known: Mapping[str, F32],
    *,
    stop: Iterable[str] = (),
) -> Suggestions:
    """Group ``said`` (one vector row each); ``known``: each existing intent's text vectors,
    for the nearest intent; ``stop``: words never used in a proposed name ("my", "the")."""
    counts = [s.count for s in said]
    config = np.concatenate(list(known.values())) if known else None
    points = centred(vectors, config)
    labels = cluster(points, counts)
    members = [np.flatnonzero(labels == g) for g in range(int(labels.max(initial=-1)) + 1)]
    names = _names([[said[i] for i in rows.tolist()] for rows in members], set(stop), known)
    groups = []
    for rows, name in zip(members, names, strict=True):
        centre = _unit(points[rows].mean(axis=0, keepdims=True))[0]
        typical = rows[np.argsort(-(points[rows] @ centre), kind="stable")][:EXAMPLES]
        nearest, similarity = _nearest(vectors[rows], np.asarray(counts)[rows], known)
        groups.append(
            Group(
                name=name,
                count=sum(counts[i] for i in rows.tolist()),
                utterances=tuple(said[i] for i in rows.tolist()),  # ``said`` is sorted
                examples=tuple(said[i].text for i in typical.tolist()),
                nearest=nearest,
                similarity=similarity,
            )
        )
    alone = tuple(said[i] for i in np.flatnonzero(labels < 0).tolist())
    return Suggestions(tuple(groups), alone)


def _nearest(
    vectors: F32, counts: npt.NDArray[np.int64], known: Mapping[str, F32]
) -> tuple[str | None, float | None]:
    """The intent whose closest text is, on average over the group (by callers), closest."""
    best: tuple[str | None, float | None] = (None, None)
    for name, texts in known.items():
        if not len(texts):
            continue
        closest = (vectors @ texts.T).max(axis=1)
        mean = float(np.average(closest, weights=counts))
        if best[1] is None or mean > best[1]:
            best = (name, round(mean, 4))
    return best


def _names(groups: Sequence[Sequence[Said]], stop: set[str], known: Mapping[str, F32]) -> list[str]:
    """Each group's most distinctive words (class-based TF-IDF: frequent in the group, rare in
    the others), joined with ``_``; unique among themselves and the existing intents."""
    words = [Counter[str]() for _ in groups]
    for counter, members in zip(words, groups, strict=True):
        for s in members:
            for w in set(s.text.split()):
                if w not in stop and not w.isdigit():
                    counter[w] += s.count
    spread = Counter(w for counter in words for w in counter)
    taken = set(known)
    out = []
    for k, counter in enumerate(words):
        total = max(1, sum(s.count for s in groups[k]))
        score = {w: n / total * math.log(1 + len(groups) / spread[w]) for w, n in counter.items()}
        top = sorted(score, key=lambda w: (-score[w], w))[:NAME_WORDS]
        base = _NAME_CHARS.sub("_", "_".join(top)).strip("_") or "topic"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        out.append(name)
    return out


def intent_vectors(intents: Sequence[Intent], embeddings: Embeddings) -> dict[str, F32]:
    """Each intent's phrases and examples as vectors (the config-text cache the matcher fills)."""
    texts = {i.name: [n for t in (*i.phrases, *i.examples) if (n := normalize(t))] for i in intents}
    flat = [t for ts in texts.values() for t in ts]
    matrix = embeddings.texts(flat)
    out, start = {}, 0
    for name, ts in texts.items():
        out[name] = matrix[start : start + len(ts)]
        start += len(ts)
    return out


def suggest(
    said: Sequence[Said],
    intents: Sequence[Intent],
    embeddings: Embeddings,
    *,
    stop: Iterable[str] = (),
) -> Suggestions:
    """Encode (caller utterances in memory only) and ``group``."""
    chunks = [
        embeddings.queries([s.text for s in said[i : i + ENCODE_CHUNK]])
        for i in range(0, len(said), ENCODE_CHUNK)
    ]
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, embeddings.dim), np.float32)
    return group(said, vectors, intent_vectors(intents, embeddings), stop=stop)
