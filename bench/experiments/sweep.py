"""Try matcher settings (module constants) on the same configs, valid split by default.

    python -m bench.experiments.sweep [--split valid] [--datasets hwu64 snips] \
        'REJECT_QUANTILE=0.005' 'REJECT_QUANTILE=0.01,NEIGHBOUR_SHARE=0.3' ...

Each argument is one variant: comma-separated NAME=value assignments to voicebot.matching.matcher.
"""

from __future__ import annotations

import argparse
import time

import voicebot.matching.matcher as matcher
from bench.experiments.compare import far_rejected, pct
from bench.experiments.harness import configs
from voicebot.loading.loader import load_deployment
from voicebot.matching.evaluation import evaluate, route_map


def apply(variant: str) -> dict[str, object]:
    before = {}
    for part in filter(None, variant.split(",")):
        name, value = part.split("=")
        before[name] = getattr(matcher, name)
        setattr(matcher, name, type(before[name])(float(value)))
    return before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--datasets", nargs="+", default=["hwu64", "snips"])
    parser.add_argument("--settings", nargs="+", default=None)
    args = parser.parse_args()
    print(
        "| dataset | setting | variant | route | intent | in-scope | OOS recall | far-OOS rej "
        "| build s | ms/utt |"
    )
    print("|" + "---|" * 10)
    lang = load_deployment(None).language("en-US")
    for variant in args.variants:
        before = apply(variant)
        m = matcher.Matcher(tuple(lang.intents.values()), lang.thresholds)
        print(f"| example en-US | far-OOS | {variant} | | | | | {pct(far_rejected(m))} | | |")
        for k, v in before.items():
            setattr(matcher, k, v)
    for dataset in args.datasets:
        for setting, config, rows in configs(dataset, args.split):
            if args.settings and setting not in args.settings:
                continue
            intents = tuple(config.intents.values())
            for variant in args.variants:
                before = apply(variant)
                t0 = time.perf_counter()
                m = matcher.Matcher(intents, config.thresholds)
                build = time.perf_counter() - t0
                t0 = time.perf_counter()
                r = evaluate(m, rows, route_map(config))
                ms = (time.perf_counter() - t0) / len(rows) * 1000
                print(
                    f"| {dataset} | {setting} | {variant} | {pct(r.route_accuracy)} "
                    f"| {pct(r.intent_accuracy)} | {pct(r.in_scope_accuracy)} "
                    f"| {pct(r.oos_recall)} | {pct(far_rejected(m))} | {build:.2f} | {ms:.2f} |",
                    flush=True,
                )
                for k, v in before.items():
                    setattr(matcher, k, v)


if __name__ == "__main__":
    main()
