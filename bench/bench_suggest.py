"""How well ``voicebot suggest`` finds the topics nobody planned for, and how fast.

A labelled set (HWU64 by default) stands in for a line: a config is built from the training
examples of some intents only, and the test utterances of the intents left out are fed to the
grouping as what the bot did not understand. The groups are scored against the true intents:

- ``ari``: adjusted Rand index, each unassigned utterance counted as a group of its own;
- ``purity``: share of ALL the utterances (unassigned ones count against it) that sit in a
  group whose majority intent is their own;
- ``coverage``: share of left-out intents that are the majority of at least one group;
- ``groups``: how many groups (ops do not want 200 suggestions for 17 topics).

Several seeded splits (``--seeds``), the mean reported. ``seconds`` is the grouping of
``--timing`` utterances (HWU64 training texts of every intent, vectors from the cache: the
encoder's cost is measured apart, per fresh utterance, and extrapolated). One thread.

The algorithm and its constants (voicebot/matching/suggest.py) were chosen on train/valid
(``--split valid``); report ``--split test``.

    python bench/bench_suggest.py [--data DIR] [--split test|valid] [--seeds 5] [--left 17]
                                  [--timing 5000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from voicebot.core.config import ActionKind, Intent, IntentAction
from voicebot.core.text import normalize
from voicebot.matching.embedding_cache import Embeddings, shared_embeddings
from voicebot.matching.labelled import read_labelled
from voicebot.matching.suggest import Said, Suggestions, group, intent_vectors

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("VOICEBOT_DATA", "/work/shared/data/text")) / "hwu64"
ENCODE_SAMPLE = 64  # fresh utterances timed through the encoder


def config(rows: Sequence[tuple[str, str]], keep: set[str]) -> list[Intent]:
    by: dict[str, list[str]] = {}
    for text, name in rows:
        if name in keep:
            by.setdefault(name, []).append(text)
    return [
        Intent(name, name, (), tuple(texts), IntentAction(ActionKind.TRANSFER, group="g"))
        for name, texts in sorted(by.items())
    ]


def unmatched(rows: Sequence[tuple[str, str]], left: set[str]) -> tuple[list[Said], list[str]]:
    """Distinct normalised utterances of the left-out intents (count 1 each) and their intents;
    a text that two intents share keeps the first."""
    truth: dict[str, str] = {}
    for text, name in rows:
        norm = normalize(text)
        if name in left and norm:
            truth.setdefault(norm, name)
    return [Said(t, 1) for t in truth], list(truth.values())


def score(found: Suggestions, said: Sequence[Said], truth: Sequence[str]) -> dict[str, float]:
    of = {s.text: k for k, s in enumerate(said)}
    labels = [f"u{k}" for k in range(len(said))]  # unassigned: a group of one
    pure, covered = 0, set()
    for g, members in enumerate(found.groups):
        rows = [of[s.text] for s in members.utterances]
        for k in rows:
            labels[k] = f"g{g}"
        majority, n = Counter(truth[k] for k in rows).most_common(1)[0]
        pure += n
        covered.add(majority)
    return {
        "ari": float(adjusted_rand_score(truth, labels)),
        "purity": pure / len(said),
        "coverage": len(covered) / len(set(truth)),
        "groups": len(found.groups),
        "unassigned": len(found.unassigned) / len(said),
    }


def split(
    train: Sequence[tuple[str, str]],
    test: Sequence[tuple[str, str]],
    n_left: int,
    seed: int,
    embeddings: Embeddings,
) -> dict[str, Any]:
    names = sorted({name for _, name in train})
    left = set(random.Random(seed).sample(names, n_left))
    intents = config(train, set(names) - left)
    said, truth = unmatched(test, left)
    vectors = embeddings.texts([s.text for s in said])  # a data set, not callers: cached
    start = time.perf_counter()
    found = group(said, vectors, intent_vectors(intents, embeddings))
    seconds = time.perf_counter() - start
    return (
        {"seed": seed, "left_out": n_left, "utterances": len(said)}
        | score(found, said, truth)
        | {"seconds": seconds}
    )


def timing(train: Sequence[tuple[str, str]], n: int, embeddings: Embeddings) -> dict[str, Any]:
    """Grouping ``n`` utterances (vectors cached), and the encoder's cost per fresh one."""
    texts = sorted({t for text, _ in train if (t := normalize(text))})
    picked = random.Random(0).sample(texts, min(n, len(texts)))
    said = [Said(t, 1) for t in picked]
    vectors = embeddings.texts(picked)
    names = sorted({name for _, name in train})
    known = intent_vectors(config(train, set(names[: len(names) // 2])), embeddings)
    start = time.perf_counter()
    found = group(said, vectors, known)
    seconds = time.perf_counter() - start
    fresh = [f"{t} {i}" for i, t in enumerate(picked[:ENCODE_SAMPLE])]  # never seen: no cache
    start = time.perf_counter()
    embeddings.encoder.encode(fresh)
    per_text = (time.perf_counter() - start) / len(fresh)
    return {
        "utterances": len(said),
        "seconds": seconds,
        "groups": len(found.groups),
        "encode_ms_per_utterance": 1000 * per_text,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="train.csv + test.csv")
    parser.add_argument("--split", default="test", help="test (report) or valid (tuning)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--left", type=int, default=17, help="intents left out of the config")
    parser.add_argument("--timing", type=int, default=5000, help="utterances timed (0: skip)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_suggest.json")
    args = parser.parse_args(argv)
    train = read_labelled(args.data / "train.csv")
    test = read_labelled(args.data / f"{args.split}.csv")
    n_left = min(args.left, len({name for _, name in train}) // 2)
    embeddings = shared_embeddings()
    with threadpool_limits(1):
        runs = [split(train, test, n_left, seed, embeddings) for seed in range(args.seeds)]
        timed = timing(train, args.timing, embeddings) if args.timing else None
    keys = ("ari", "purity", "coverage", "groups", "unassigned", "seconds")
    print(f"{args.data.name} {args.split}: {n_left} intents left out of the config\n")
    print("| seed | utterances | " + " | ".join(keys) + " |")
    print("|---:|---:|" + "---:|" * len(keys))
    for r in runs:
        print(f"| {r['seed']} | {r['utterances']} | " + " | ".join(_fmt(r[k]) for k in keys) + " |")
    mean = {k: float(np.mean([r[k] for r in runs])) for k in (*keys, "utterances")}
    print("| mean | " + " | ".join(_fmt(mean[k]) for k in ("utterances", *keys)) + " |")
    out: dict[str, Any] = {
        "data": args.data.name,
        "split": args.split,
        "left_out": n_left,
        "seeds": args.seeds,
        **{k: round(v, 4) for k, v in mean.items() if k != "seconds"},
        "seconds_per_split": round(mean["seconds"], 3),
        "runs": runs,
    }
    if timed is not None:
        print(
            f"\ngrouping {timed['utterances']} utterances (vectors cached): "
            f"{timed['seconds']:.1f} s, {timed['groups']} groups; encoding a new utterance: "
            f"{timed['encode_ms_per_utterance']:.0f} ms (one thread)"
        )
        out["seconds"] = round(timed["seconds"], 2)
        out["timing"] = timed
    else:
        out["seconds"] = round(mean["seconds"], 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    summary = {k: v for k, v in out.items() if k != "runs"}
    print(json.dumps(summary))
    return 0


def _fmt(value: float) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
