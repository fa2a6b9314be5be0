"""Issue #22, the lines ops start with: a few intents of a few examples each, drawn at random
from each dataset (seeded), every other intent's test utterances out of scope. In-scope
accuracy and out-of-scope recall, the mean over the draws, for the working tree's matcher and,
with ``--before REV``, that revision's, on the same configs.

Such lines (`voicebot init` writes one of three intents) are too small for one held-out part
to place the reject line (``calibration.MIN_CALIBRATION``); this measures what they do.

    python -m bench.experiments.tiny_lines [--intents 3] [--examples 4] [--draws 6]
        [--split valid|test] [--before REV]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import eval_datasets as ed

from voicebot.matching.evaluation import evaluate, read_labelled, route_map
from voicebot.matching.matcher import Matcher

DATASETS = ("hwu64", "snips", "sv-support", "sv-commands")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=3)
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--split", default="valid", choices=["valid", "test"])
    parser.add_argument("--before", metavar="REV")
    args = parser.parse_args()
    makers: dict[str, ed.MakeMatcher] = {"after": Matcher}
    if args.before:
        makers["before"] = ed.at_revision(args.before).Matcher
    print("| dataset | matcher | in-scope % | OOS recall % |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in DATASETS:
            own = dataset in ed.OWN_SETS  # the Swedish sets have a test file only
            folder = ed.OWN_DATA / dataset if own else ed.DEFAULT_DATA / dataset
            test = read_labelled(folder / ("test.csv" if own else f"{args.split}.csv"))
            train = read_labelled(folder / "train.csv")
            spec = yaml.safe_load((ed.HERE / "routes" / f"{dataset}.yaml").read_text())
            scores: dict[str, list[tuple[float, float]]] = {side: [] for side in makers}
            for k in range(args.draws):
                run = ed.line_run(
                    dataset,
                    "tiny",
                    args.intents,
                    args.examples,
                    100 + k,
                    train,
                    spec,
                    test,
                    Path(tmp),
                )
                for side, make in makers.items():
                    matcher = make(tuple(run.config.intents.values()), run.config.thresholds)
                    report = evaluate(matcher, run.test, route_map(run.config))
                    scores[side].append((report.in_scope_accuracy or 0.0, report.oos_recall or 0.0))
            for side, rows in scores.items():
                inside, recall = (100 * float(np.mean(col)) for col in zip(*rows, strict=True))
                print(f"| {dataset} | {side} | {inside:.1f} | {recall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
