"""Matcher speed at the size of a large deployment: 100 intents x 100 examples.

Real text when the HWU64 and SNIPS training sets are there (their 71 intents plus 29 more made by
splitting the largest ones, 100 examples each; queries from their test sets); otherwise synthetic
sentences. Reports the build time (what every ``voicebot chat`` / ``eval`` run and every server
start pays, the config's sentence vectors already in memory) and the second start (the
embedding cache and the large-history regressions read from disk, then the build; filled by a
first build, whose time is kept in the JSON as ``first_build_s``), ms per utterance (p50,
p95) with the sentence encoder's share measured separately on the same utterances, and the
resident memory the encoder adds to the process (once, not per call). Everything on one thread.
``--before REV`` measures the matcher of that git revision on the same config in the same run.

    python bench/bench_matcher.py [--data DIR] [--before REV] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from voicebot.core.config import ActionKind, Intent, IntentAction, Thresholds
from voicebot.matching.embedding_cache import Embeddings, shared_embeddings
from voicebot.matching.encoder import default_encoder
from voicebot.matching.labelled import read_labelled
from voicebot.matching.matcher import Matcher

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.eval_datasets import at_revision

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("VOICEBOT_DATA", "/work/shared/data/text"))
INTENTS, EXAMPLES, QUERIES, SEED = 100, 100, 1000, 0


def _intent(name: str, examples: Sequence[str], k: int) -> Intent:
    return Intent(
        name=name,
        label=name,
        phrases=tuple(examples[:5]),
        examples=tuple(examples[5:]),
        action=IntentAction(ActionKind.TRANSFER, group=f"g{k % 9}"),
    )


def real(data: Path, rng: random.Random) -> tuple[list[Intent], list[str]] | None:
    pools: dict[str, list[str]] = {}
    queries: list[str] = []
    for dataset in ("hwu64", "snips"):
        if not (data / dataset / "train.csv").exists():
            return None
        for text, name in read_labelled(data / dataset / "train.csv"):
            pools.setdefault(f"{dataset}.{name}", []).append(text)
        queries += [t for t, _ in read_labelled(data / dataset / "test.csv")]
    names = sorted(pools, key=lambda n: (-len(pools[n]), n))
    while len(names) < INTENTS:  # split the largest pool in two
        big = names.pop(0)
        texts = pools.pop(big)
        pools[f"{big}.a"], pools[f"{big}.b"] = texts[::2], texts[1::2]
        names = sorted(pools, key=lambda n: (-len(pools[n]), n))
    intents = []
    for k, name in enumerate(sorted(names[:INTENTS])):
        texts = pools[name]
        intents.append(_intent(name, rng.sample(texts, min(EXAMPLES, len(texts))), k))
    return intents, rng.sample(queries, QUERIES)


def synthetic(rng: random.Random) -> tuple[list[Intent], list[str]]:
    vocab = [
        f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "su", "ta", "vo", "ri") for b in "mnprstvx"
    ]
    stop = ["i", "want", "to", "my", "the", "a", "please", "can", "you", "about", "is", "it"]
    intents = []
    for k in range(INTENTS):
        topic = rng.sample(vocab, 4)
        texts = [
            " ".join(rng.sample(stop, 3) + rng.sample(topic, 2) + rng.sample(vocab, 2))
            for _ in range(EXAMPLES)
        ]
        intents.append(_intent(f"intent_{k}", texts, k))
    queries = [" ".join(rng.sample(stop + vocab, 7)) for _ in range(QUERIES)]
    return intents, queries


def _p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[max(int(0.95 * len(ordered)) - 1, 0)]


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(
    make: Callable[..., Any], intents: Sequence[Intent], queries: Sequence[str]
) -> dict[str, Any]:
    shared = shared_embeddings()
    shared.texts([t for i in intents for t in (*i.phrases, *i.examples)])  # fill the cache
    start = time.perf_counter()
    make(intents, Thresholds(), embeddings=shared)  # ... and the regression cache, if it has one
    first_build = time.perf_counter() - start
    # Its own Embeddings: the cache file is read as at a second start, and the utterance memory
    # starts empty, so no matcher of the run scores utterances another one has encoded.
    embeddings = Embeddings(shared.encoder, shared.path)
    start = time.perf_counter()
    matcher = make(intents, Thresholds(), embeddings=embeddings)
    second_start = time.perf_counter() - start
    start = time.perf_counter()
    make(intents, Thresholds(), embeddings=embeddings)  # vectors in memory: the build alone
    build = time.perf_counter() - start
    encoder = default_encoder()
    for i in range(20):  # warm-up, on texts the measured loop does not use
        matcher.match(f"warm up {i}")
    total, encode = [], []
    for text in queries:
        t0 = time.perf_counter()
        encoder.encode([text])  # the encoder alone, on the same utterance
        t1 = time.perf_counter()
        matcher.match(text)  # not in the utterance memory yet: encoded again
        t2 = time.perf_counter()
        encode.append((t1 - t0) * 1000)
        total.append((t2 - t1) * 1000)
    rest = [t - e for t, e in zip(total, encode, strict=True)]
    alternatives = [(f"{q} okay", 0.6) for q in queries[:3]]  # three texts not seen before
    t0 = time.perf_counter()
    matcher.match_alternatives(alternatives)
    nbest = (time.perf_counter() - t0) * 1000  # ms per 3-best call
    return {
        "intents": len(intents),
        "examples": sum(len(i.phrases) + len(i.examples) for i in intents),
        "queries": len(queries),
        "first_build_s": round(first_build, 3),  # the large-history fit when not cached yet
        "build_s": round(build, 3),
        "second_start_s": round(second_start, 3),
        "ms_p50": round(statistics.median(total), 3),
        "ms_p95": round(_p95(total), 3),
        "ms_mean": round(statistics.fmean(total), 3),
        "encoder_ms_p50": round(statistics.median(encode), 3),
        "encoder_ms_p95": round(_p95(encode), 3),
        "rest_ms_p50": round(statistics.median(rest), 3),
        "rest_ms_p95": round(_p95(rest), 3),
        "ms_3best": round(nbest, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_matcher.json")
    parser.add_argument("--queries", type=int, default=QUERIES)
    parser.add_argument("--before", metavar="REV", help="also measure the matcher of this revision")
    args = parser.parse_args(argv)
    rng = random.Random(SEED)
    makers: list[tuple[str, Callable[..., Any]]] = [("current", Matcher)]
    if args.before:
        makers.insert(0, (args.before, at_revision(args.before).Matcher))
    with threadpool_limits(1):
        before = rss_mb()
        default_encoder().encode([f"warm up {i}" for i in range(8)])
        added = rss_mb() - before
        found = real(args.data, rng)
        if found is not None:
            text, (intents, queries) = "hwu64+snips", found
        else:  # synthetic text only without the datasets: encoding it is a 6-minute first run
            text, (intents, queries) = "synthetic", synthetic(rng)
        results: list[dict[str, Any]] = []
        for name, make in makers:
            result = measure(make, intents, queries[: args.queries])
            results.append({"matcher": name, "text": text, **result})
    print(
        "| matcher | text | intents | examples | second start s | build s | ms p50 | ms p95 "
        "| encoder ms p50 / p95 | rest ms p50 / p95 | ms 3-best |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['matcher']} | {r['text']} | {r['intents']} | {r['examples']} "
            f"| {r['second_start_s']:.2f} | {r['build_s']:.2f} "
            f"| {r['ms_p50']:.1f} | {r['ms_p95']:.1f} "
            f"| {r['encoder_ms_p50']:.1f} / {r['encoder_ms_p95']:.1f} "
            f"| {r['rest_ms_p50']:.1f} / {r['rest_ms_p95']:.1f} | {r['ms_3best']:.1f} |"
        )
    print(f"resident memory added by the encoder (loaded and run once): {added:.0f} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = {"encoder_rss_mb": round(added, 1), "runs": results}
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
