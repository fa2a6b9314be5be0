"""The matcher in the working tree next to the one in a git revision, on the same configs.

    python -m bench.experiments.compare [--split valid|test] [--rev HEAD] [--noise] [hwu64 snips]

Per setting: route / intent / in-scope accuracy and OOS recall (like ``voicebot eval``), plus the
share of bench/experiments/far_oos.py rejected, and the same for the example deployment.
"""

from __future__ import annotations

import argparse
import random
import time

import voicebot.matching.matcher as current
from bench.eval_datasets import at_revision
from bench.experiments.far_oos import FAR_OOS
from bench.experiments.harness import asr_noise, configs
from voicebot.core.match import Verdict
from voicebot.loading.loader import load_deployment
from voicebot.matching.evaluation import evaluate, route_map


def far_rejected(matcher) -> float:
    return sum(matcher.match(t).verdict is Verdict.REJECT for t in FAR_OOS) / len(FAR_OOS)


def pct(x: float | None) -> str:
    return "   -" if x is None else f"{100 * x:4.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("datasets", nargs="*", default=["hwu64", "snips"])
    parser.add_argument("--split", default="valid")
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--noise", action="store_true")
    args = parser.parse_args()
    old = at_revision(args.rev)
    versions = {args.rev: old, "new": current}
    print(
        "| dataset | setting | version | route | intent | in-scope | OOS recall | far-OOS rej "
        "| build s | ms/utt |"
    )
    print("|" + "---|" * 10)
    for dataset in args.datasets:
        for setting, config, rows in configs(dataset, args.split):
            if args.noise:
                rng = random.Random(0)
                rows = [(asr_noise(t, rng), i) for t, i in rows]
            intents = tuple(config.intents.values())
            for name, module in versions.items():
                t0 = time.perf_counter()
                m = module.Matcher(intents, config.thresholds)
                build = time.perf_counter() - t0
                t0 = time.perf_counter()
                r = evaluate(m, rows, route_map(config))
                ms = (time.perf_counter() - t0) / len(rows) * 1000
                print(
                    f"| {dataset} | {setting} | {name} | {pct(r.route_accuracy)} "
                    f"| {pct(r.intent_accuracy)} "
                    f"| {pct(r.in_scope_accuracy)} | {pct(r.oos_recall)} | {pct(far_rejected(m))} "
                    f"| {build:.2f} | {ms:.2f} |",
                    flush=True,
                )
    lang = load_deployment(None).language("en-US")
    for name, module in versions.items():
        m = module.Matcher(tuple(lang.intents.values()), lang.thresholds)
        print(f"| example en-US | far-OOS | {name} | | | | | {pct(far_rejected(m))} | | |")


if __name__ == "__main__":
    main()
