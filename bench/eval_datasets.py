"""Accuracy of the matcher on public intent datasets, next to the best-phrase fuzzy baseline.

Goes the customer's way: ``voicebot import`` (train CSV + bench/routes/<dataset>.yaml) builds the
config, the matcher is trained from it, and the test CSV is scored like ``voicebot eval``.
Runs per dataset: all training examples, 10 per intent, and an out-of-scope run in which whole
scenarios are left out of training and their test utterances are labelled ``oos``.

    python bench/eval_datasets.py [--data DIR] [--out bench/results/eval_datasets.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rapidfuzz import fuzz, process

from voicebot.core.config import Intent, LanguageConfig, Thresholds
from voicebot.core.match import Match, Scored, decide
from voicebot.core.text import normalize
from voicebot.loading.importer import import_labelled
from voicebot.loading.loader import load_language_text
from voicebot.matching.evaluation import EvalReport, evaluate, read_labelled, route_map
from voicebot.matching.matcher import Matcher

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("VOICEBOT_DATA", "/work/shared/data/text"))
SEED = 0
SHOTS = 10
# Whole scenarios held out for the out-of-scope run (documented in bench/README.md).
HELD_OUT = {"hwu64": ("weather", "cooking", "news"), "snips": ("GetWeather",)}


def scenario(dataset: str, intent: str) -> str:
    return intent.split("_")[0] if dataset == "hwu64" else intent


class Baseline:
    """The approach this matcher replaces: the intent of the closest single text by
    ``token_sort_ratio``, with the ratio (0..1) as the score."""

    def __init__(self, intents: Sequence[Intent], thresholds: Thresholds) -> None:
        self.names = [i.name for i in intents]
        self.texts: list[str] = []
        owner: list[int] = []
        for k, intent in enumerate(intents):
            for text in (*intent.phrases, *intent.examples):
                self.texts.append(normalize(text))
                owner.append(k)
        self.owner = np.array(owner)
        self.thresholds = thresholds

    def match(self, text: str) -> Match:
        ratios = process.cdist([normalize(text)], self.texts, scorer=fuzz.token_sort_ratio)[0]
        best = np.zeros(len(self.names))
        np.maximum.at(best, self.owner, ratios / 100.0)
        top = np.argsort(-best, kind="stable")[:5]
        ranked = tuple(Scored(self.names[i], float(best[i])) for i in top)
        return Match(text, ranked, decide(ranked, self.thresholds))


@dataclass
class Run:
    dataset: str
    setting: str
    config: LanguageConfig
    test: list[tuple[str, str]]
    held_out: tuple[str, ...] = ()


def _write_csv(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "intent"])
        writer.writerows(rows)


def _import(train: Path, routes: Path, max_examples: int | None) -> LanguageConfig:
    text = import_labelled(train, routes, max_examples, SEED)
    return load_language_text(text, f"<{train.name}>")


def runs(data: Path, dataset: str, tmp: Path) -> list[Run]:
    folder = data / dataset
    routes = HERE / "routes" / f"{dataset}.yaml"
    test = read_labelled(folder / "test.csv")
    result = [Run(dataset, "full", _import(folder / "train.csv", routes, None), test)]
    if (folder / f"train_{SHOTS}.csv").exists():  # the dataset's own few-shot split
        few = _import(folder / f"train_{SHOTS}.csv", routes, None)
    else:
        few = _import(folder / "train.csv", routes, SHOTS)
    result.append(Run(dataset, f"{SHOTS}-shot", few, test))

    held = HELD_OUT[dataset]
    train = [r for r in read_labelled(folder / "train.csv") if scenario(dataset, r[1]) not in held]
    _write_csv(tmp / f"{dataset}-oos-train.csv", train)
    spec = yaml.safe_load(routes.read_text(encoding="utf-8"))
    spec["routes"] = {k: v for k, v in spec["routes"].items() if scenario(dataset, k) not in held}
    (tmp / f"{dataset}-oos-routes.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    oos_test = [(t, "oos" if scenario(dataset, i) in held else i) for t, i in test]
    for setting, cap in (("oos full", None), (f"oos {SHOTS}-shot", SHOTS)):
        config = _import(tmp / f"{dataset}-oos-train.csv", tmp / f"{dataset}-oos-routes.yaml", cap)
        result.append(Run(dataset, setting, config, oos_test, held))
    return result


def measure(run: Run) -> dict[str, Any]:
    intents = tuple(run.config.intents.values())
    start = time.perf_counter()
    matcher = Matcher(intents, run.config.thresholds)
    build = time.perf_counter() - start
    routes = route_map(run.config)
    start = time.perf_counter()
    report = evaluate(matcher, run.test, routes)
    per_utt = (time.perf_counter() - start) / len(run.test) * 1000
    base = evaluate(Baseline(intents, run.config.thresholds), run.test, routes)
    return {
        "dataset": run.dataset,
        "setting": run.setting,
        "intents": len(intents),
        "destinations": len(set(routes.values())),
        "examples": sum(len(i.examples) for i in intents),
        "test": len(run.test),
        "held_out": list(run.held_out),
        "build_s": round(build, 3),
        "ms_per_utterance": round(per_utt, 3),
        "matcher": _headline(report),
        "baseline": _headline(base),
    }


def _headline(report: EvalReport) -> dict[str, float | None]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {
        "route_accuracy": r(report.route_accuracy),
        "intent_accuracy": r(report.intent_accuracy),
        "in_scope_accuracy": r(report.in_scope_accuracy),
        "oos_recall": r(report.oos_recall),
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def table(results: Sequence[dict[str, Any]]) -> str:
    head = (
        "| dataset | setting | intents | examples | route % (base) | intent % (base) "
        "| in-scope % | OOS recall % (base) | build s | ms/utt |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in results:
        m, b = r["matcher"], r["baseline"]
        lines.append(
            f"| {r['dataset']} | {r['setting']} | {r['intents']} | {r['examples']} "
            f"| {_pct(m['route_accuracy'])} ({_pct(b['route_accuracy'])}) "
            f"| {_pct(m['intent_accuracy'])} ({_pct(b['intent_accuracy'])}) "
            f"| {_pct(m['in_scope_accuracy'])} "
            f"| {_pct(m['oos_recall'])} ({_pct(b['oos_recall'])}) "
            f"| {r['build_s']:.2f} | {r['ms_per_utterance']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "eval_datasets.json")
    parser.add_argument("--datasets", nargs="+", default=["hwu64", "snips"])
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            if not (args.data / dataset / "train.csv").exists():
                print(
                    f"skipping {dataset}: no {args.data / dataset / 'train.csv'}", file=sys.stderr
                )
                continue
            for run in runs(args.data, dataset, Path(tmp)):
                results.append(measure(run))
                print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
