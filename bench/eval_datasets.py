"""Accuracy of the matcher on public intent datasets and the project's Swedish sets, before/after.

Goes the customer's way: ``voicebot import`` (train CSV + bench/routes/<dataset>.yaml) builds the
config, the matcher is trained from it, and the test CSV is scored like ``voicebot eval``.
Runs per dataset: all training examples, 10 per intent, and out-of-scope runs in which whole
scenarios are left out of training (all examples, 4 and 10 per intent) and their test
utterances are labelled ``oos``; for HWU64, three small lines (30 intents drawn at random, 5
examples each, every other intent's test utterances out of scope: near ones, the same
scenario's, included); the main runs again with the test utterances through a seeded
recognition-error model at 10% and 20% word error (bench/asr_noise.py); the Swedish
sets (bench/data/sv-support: a support line; sv-commands: assistant commands, written after the
matcher's settings were chosen) have 4 examples per intent. Far out-of-scope requests (English:
bench/experiments/far_oos.py, Swedish: bench/data/sv-support/far_oos.txt) are scored against the
example deployment (grammars/) and count as the share rejected.

``--before REV`` measures the matcher of that git revision on the same configs in the same run
(it must take ``Matcher(intents, thresholds)``), so the two columns are comparable.

    python bench/eval_datasets.py [--split test|valid] [--before REV] [--out FILE]
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import yaml

from voicebot.core.config import Intent, LanguageConfig, Thresholds
from voicebot.core.text import fold_diacritics
from voicebot.loading.importer import import_labelled
from voicebot.loading.loader import load_deployment, load_language_text
from voicebot.matching.evaluation import EvalReport, Matches, evaluate, read_labelled, route_map
from voicebot.matching.matcher import Matcher

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.asr_noise import add_errors, vocabulary

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = Path(os.environ.get("VOICEBOT_DATA", "/work/shared/data/text"))
OWN_DATA = HERE / "data"
SEED = 0
SHOTS = 10
SWEDISH = "sv-support"
PROBE = "sv-probe"  # Swedish probe set: valid/test rows per category (compound, ascii, ...)
OWN_SETS = (SWEDISH, "sv-commands", PROBE)  # the project's own Swedish sets in bench/data
# Whole scenarios held out for the out-of-scope run (documented in bench/README.md).
HELD_OUT = {"hwu64": ("weather", "cooking", "news"), "snips": ("GetWeather",)}
FOLDS = {"hwu64": 6}  # ... and its 18 scenarios held out 3 at a time, each once
NOISE = (0.1, 0.2)  # word error rates of the recognition-error rows (bench/asr_noise.py)
FEW = (4, SHOTS)  # examples per intent of the few-shot out-of-scope runs (folds too)
OWN_HELD_OUT = 0.25  # share of a Swedish set's intents held out (seeded) for its oos run
# A small line: SMALL_LINE[0] of the dataset's intents (seeded draws, SMALL_LINES of them) with
# SMALL_LINE[1] examples each; every other intent's test utterances are out of scope, the near
# ones (the same scenario) included: what an adopter's first config meets on a real line.
SMALL_LINE = (30, 5)
SMALL_LINES = {"hwu64": 3}

MakeMatcher = Callable[[Sequence[Intent], Thresholds], Matches]


def scenario(dataset: str, intent: str) -> str:
    return intent.split("_")[0] if dataset == "hwu64" else intent


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


def runs(data: Path, dataset: str, split: str, tmp: Path) -> list[Run]:
    """Every run of a dataset; then its main runs (all examples or 4-shot, and 10-shot) once
    more per NOISE level, the test utterances as a grammar-mode recogniser might hear them."""
    clean = _clean_runs(data, dataset, split, tmp)
    if dataset == PROBE:
        return clean
    noisy = [
        _with_errors(run, wer)
        for wer in NOISE
        for run in clean
        if run.setting in ("full", f"{SHOTS}-shot", "4-shot")
    ]
    return clean + noisy


def _with_errors(run: Run, wer: float) -> Run:
    """``run`` with its test utterances through the recognition-error model (bench/asr_noise.py)
    at word error rate ``wer``, substitutions drawn from the run's config's own vocabulary."""
    texts = [t for i in run.config.intents.values() for t in (*i.phrases, *i.examples)]
    heard = add_errors([t for t, _ in run.test], vocabulary(texts), wer, SEED)
    test = [(h, label) for h, (_, label) in zip(heard, run.test, strict=True)]
    return Run(run.dataset, f"{run.setting}, {wer:.0%} WER", run.config, test, run.held_out)


def _without_diacritics(run: Run) -> Run:
    """``run`` with its test utterances written without å, ä, ö (as an ASCII-only channel or a
    recogniser that hears "a"/"o" writes them); the config keeps its Swedish spelling."""
    test = [(fold_diacritics(t), label) for t, label in run.test]
    return Run(run.dataset, f"{run.setting}, ASCII", run.config, test, run.held_out)


def _clean_runs(data: Path, dataset: str, split: str, tmp: Path) -> list[Run]:
    if dataset == PROBE:
        return _probe_runs(split)
    if dataset in OWN_SETS:
        return _own_runs(dataset, tmp)
    folder = data / dataset
    routes = HERE / "routes" / f"{dataset}.yaml"
    test = read_labelled(folder / f"{split}.csv")
    result = [Run(dataset, "full", _import(folder / "train.csv", routes, None), test)]
    if (folder / f"train_{SHOTS}.csv").exists():  # the dataset's own few-shot split
        few = _import(folder / f"train_{SHOTS}.csv", routes, None)
    else:
        few = _import(folder / "train.csv", routes, SHOTS)
    result.append(Run(dataset, f"{SHOTS}-shot", few, test))

    train = read_labelled(folder / "train.csv")
    spec = yaml.safe_load(routes.read_text(encoding="utf-8"))
    held = HELD_OUT[dataset]
    for setting, cap in (("oos full", None), *((f"oos {n}-shot", n) for n in FEW)):
        result.append(_held_out_run(dataset, setting, held, cap, train, spec, test, tmp))
    if dataset in FOLDS:
        # Every scenario held out once, FOLDS[dataset] folds of them: a near-topic out-of-scope
        # figure over the whole test split instead of over the few utterances of three scenarios;
        # with all examples and with FEW per intent (the few-shot reject line).
        names = sorted({scenario(dataset, i) for _, i in train})
        order = np.random.default_rng(SEED + 1).permutation(names).tolist()
        for k in range(FOLDS[dataset]):
            fold = tuple(sorted(order[k :: FOLDS[dataset]]))
            for suffix, cap in (("", None), *((f" {n}-shot", n) for n in FEW)):
                name = f"oos fold {k + 1}{suffix}"
                result.append(_held_out_run(dataset, name, fold, cap, train, spec, test, tmp))
    size, cap = SMALL_LINE
    for k in range(SMALL_LINES.get(dataset, 0)):
        name = f"small line {k + 1} ({size} x {cap})"
        result.append(line_run(dataset, name, size, cap, SEED + 3 + k, train, spec, test, tmp))
    return result


def line_run(
    dataset: str,
    setting: str,
    size: int,
    cap: int,
    seed: int,
    train: list[tuple[str, str]],
    spec: dict[str, Any],
    test: list[tuple[str, str]],
    tmp: Path,
) -> Run:
    """A line of ``size`` of the dataset's intents (drawn with ``seed``; one fewer than all at
    most) with ``cap`` examples each; every other intent's test utterances are out of scope."""
    intents = sorted({i for _, i in train})
    drawn = np.random.default_rng(seed).choice(intents, min(size, len(intents) - 1), replace=False)
    held = tuple(sorted(set(intents) - set(drawn.tolist())))
    return _held_out_run(dataset, setting, held, cap, train, spec, test, tmp, by=str)


def _own_runs(dataset: str, tmp: Path) -> list[Run]:
    """A Swedish set of bench/data: all its intents; and an out-of-scope run with OWN_HELD_OUT
    of its intents left out (seeded), their test utterances (and for sv-support the Swedish far
    out-of-scope requests of far_oos.txt) labelled ``oos``: what an adopter's 4-phrase line does
    with what it does not cover, near and far."""
    folder = OWN_DATA / dataset
    routes = HERE / "routes" / f"{dataset}.yaml"
    test = read_labelled(folder / "test.csv")
    result = [Run(dataset, "4-shot", _import(folder / "train.csv", routes, None), test)]
    result.append(_without_diacritics(result[0]))
    train = read_labelled(folder / "train.csv")
    names = sorted({i for _, i in train})
    rng = np.random.default_rng(SEED + 2)
    held = tuple(sorted(rng.choice(names, round(len(names) * OWN_HELD_OUT), replace=False)))
    spec = yaml.safe_load(routes.read_text(encoding="utf-8"))
    run = _held_out_run(dataset, "oos 4-shot", held, None, train, spec, test, tmp)
    if dataset == SWEDISH:  # far for a support line; sv-commands covers weather, music, taxis
        run.test += [(t, "oos") for t in _swedish_far_oos()]
    result.append(run)
    return result


def _probe_runs(split: str) -> list[Run]:
    """bench/data/sv-probe: one config (4 phrases per intent), its ``split`` utterances scored
    all together and per category (compound words, no å/ä/ö, spoken numbers and dates, one-word
    answers; see its README)."""
    folder = OWN_DATA / PROBE
    config = _import(folder / "train.csv", HERE / "routes" / f"{PROBE}.yaml", None)
    with (folder / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
        rows = [(r["text"], r["intent"], r["category"]) for r in csv.DictReader(handle)]
    result = [Run(PROBE, "4-shot", config, [(t, i) for t, i, _ in rows])]
    for category in sorted({c for _, _, c in rows}):
        test = [(t, i) for t, i, c in rows if c == category]
        result.append(Run(PROBE, f"4-shot {category}", config, test))
    return result


def _swedish_far_oos() -> list[str]:
    path = OWN_DATA / SWEDISH / "far_oos.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _held_out_run(
    dataset: str,
    setting: str,
    held: tuple[str, ...],
    cap: int | None,
    train: list[tuple[str, str]],
    spec: dict[str, Any],
    test: list[tuple[str, str]],
    tmp: Path,
    by: Callable[[str], str] | None = None,
) -> Run:
    """Train on ``train`` without the ``held`` scenarios (at most ``cap`` examples per intent,
    routes from the dataset's routes ``spec``); their test utterances are labelled ``oos``.
    ``by``: what ``held`` names, from an intent (default: its scenario)."""
    key = by or (lambda intent: scenario(dataset, intent))
    kept = [r for r in train if key(r[1]) not in held]
    _write_csv(tmp / f"{dataset}-oos-train.csv", kept)
    routes = {k: v for k, v in spec["routes"].items() if key(k) not in held}
    (tmp / f"{dataset}-oos-routes.yaml").write_text(
        yaml.safe_dump({**spec, "routes": routes}), encoding="utf-8"
    )
    oos_test = [(t, "oos" if key(i) in held else i) for t, i in test]
    config = _import(tmp / f"{dataset}-oos-train.csv", tmp / f"{dataset}-oos-routes.yaml", cap)
    return Run(dataset, setting, config, oos_test, held)


def far_oos_runs() -> list[Run]:
    """The example deployment's languages against far out-of-scope requests in their language."""
    sys.path.insert(0, str(ROOT))
    from bench.experiments.far_oos import FAR_OOS

    swedish = _swedish_far_oos()
    deployment = load_deployment(ROOT / "grammars")
    texts = {"en-US": list(FAR_OOS), "sv-SE": swedish}
    return [
        Run(f"example {lang}", "far-OOS", config, [(t, "oos") for t in texts[lang]])
        for lang, config in sorted(deployment.languages.items())
        if lang in texts
    ]


def measure(run: Run, make: MakeMatcher) -> dict[str, Any]:
    intents = tuple(run.config.intents.values())
    start = time.perf_counter()
    matcher = make(intents, run.config.thresholds)
    build = time.perf_counter() - start
    start = time.perf_counter()
    report = evaluate(matcher, run.test, route_map(run.config))
    per_utt = (time.perf_counter() - start) / len(run.test) * 1000
    return {"build_s": round(build, 3), "ms_per_utterance": round(per_utt, 3), **_headline(report)}


def _headline(report: EvalReport) -> dict[str, float | None]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {
        "route_accuracy": r(report.route_accuracy),
        "intent_accuracy": r(report.intent_accuracy),
        "in_scope_accuracy": r(report.in_scope_accuracy),
        "oos_recall": r(report.oos_recall),
    }


def at_revision(rev: str) -> ModuleType:
    """The matcher module as committed in ``rev``. The ``voicebot.matching`` modules it imports
    itself (its spelling view, its calibration) are taken from ``rev`` too where they differ
    from the working tree, so a part split out of matcher.py is measured as it was; the rest
    (core, the encoder and its cache) comes from the working tree."""
    source = _show(rev, "voicebot/matching/matcher.py")
    package = importlib.import_module("voicebot.matching")
    replaced: dict[str, ModuleType | None] = {}  # part -> the working tree's module, if loaded
    try:
        for part in sorted(_matching_imports(source)):
            old = _show(rev, f"voicebot/matching/{part}.py")
            current = ROOT / "voicebot" / "matching" / f"{part}.py"
            if current.exists() and current.read_text(encoding="utf-8") == old:
                continue
            module = _load(f"{part}_{rev}", old)
            replaced[part] = sys.modules.get(f"voicebot.matching.{part}")
            sys.modules[f"voicebot.matching.{part}"] = module
            setattr(package, part, module)
        return _load(f"matcher_{rev}", source)  # binds the revision's parts as it runs
    finally:
        for part, kept in replaced.items():  # the working tree's again, for everyone else
            del sys.modules[f"voicebot.matching.{part}"]
            delattr(package, part)
            if kept is not None:
                sys.modules[f"voicebot.matching.{part}"] = kept
                setattr(package, part, kept)


def _matching_imports(source: str) -> set[str]:
    """The ``voicebot.matching`` modules a source file imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "voicebot.matching":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and str(node.module).startswith("voicebot.matching."):
            found.add(str(node.module).split(".")[2])
    return found


def _show(rev: str, path: str) -> str:
    command = ["git", "-C", str(ROOT), "show", f"{rev}:{path}"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def _load(name: str, source: str) -> ModuleType:
    path = Path(tempfile.gettempdir()) / f"voicebot_{name.replace('/', '_')}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _pair(r: dict[str, Any], key: str) -> str:
    after = _pct(r["after"][key])
    return f"{after} ({_pct(r['before'][key])})" if "before" in r else after


def table(results: Sequence[dict[str, Any]]) -> str:
    head = (
        "| dataset | setting | intents | examples | route % | intent % | in-scope % "
        "| OOS recall % | build s | ms/utt |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in results:
        a = r["after"]
        lines.append(
            f"| {r['dataset']} | {r['setting']} | {r['intents']} | {r['examples']} "
            f"| {_pair(r, 'route_accuracy')} | {_pair(r, 'intent_accuracy')} "
            f"| {_pair(r, 'in_scope_accuracy')} | {_pair(r, 'oos_recall')} "
            f"| {a['build_s']:.1f} | {a['ms_per_utterance']:.1f} |"
        )
    return "\n".join(lines)


def fold_means(results: Sequence[dict[str, Any]]) -> list[str]:
    """One line per dataset with folds (and one with small lines): the mean in-scope and OOS
    recall over them."""
    lines = []
    for dataset, suffix in ((d, s) for d in FOLDS for s in ("", *(f" {n}-shot" for n in FEW))):
        folds = [
            r
            for r in results
            if r["dataset"] == dataset
            and r["setting"].startswith("oos fold")
            and (r["setting"].endswith(suffix) if suffix else "shot" not in r["setting"])
        ]
        lines += _mean_line(dataset, f"oos folds{suffix or ' (all examples)'}", folds)
    for dataset in SMALL_LINES:
        lines += _mean_line(
            dataset,
            "small lines",
            [r for r in results if r["dataset"] == dataset and r["setting"].startswith("small")],
        )
    return lines


def _mean_line(dataset: str, label: str, runs: Sequence[dict[str, Any]]) -> list[str]:
    """ "<dataset> mean of N <label>: after in-scope x % / OOS recall y %; before ..."."""
    if not runs:
        return []
    cells = []
    for side in ("after", "before"):
        if side in runs[0]:
            ins = sum(r[side]["in_scope_accuracy"] for r in runs) / len(runs) * 100
            rec = sum(r[side]["oos_recall"] for r in runs) / len(runs) * 100
            cells.append(f"{side} in-scope {ins:.1f} % / OOS recall {rec:.1f} %")
    return [f"{dataset} mean of {len(runs)} {label}: " + "; ".join(cells)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="test", choices=["test", "valid"])
    parser.add_argument("--before", metavar="REV", help="also measure the matcher of this revision")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--datasets", nargs="+", default=["hwu64", "snips", *OWN_SETS, "far-OOS"])
    parser.add_argument(
        "--settings",
        nargs="+",
        metavar="SETTING",
        help="only the runs whose setting contains one of these (e.g. 4-shot 'oos fold')",
    )
    args = parser.parse_args(argv)
    out = args.out or HERE / "results" / f"eval_datasets_{args.split}.json"
    before: MakeMatcher | None = None
    if args.before:
        before = at_revision(args.before).Matcher
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        todo: list[Run] = []
        for dataset in args.datasets:
            if dataset == "far-OOS":
                todo += far_oos_runs()
            elif dataset in OWN_SETS or (args.data / dataset / "train.csv").exists():
                todo += runs(args.data, dataset, args.split, Path(tmp))
            else:
                print(
                    f"skipping {dataset}: no {args.data / dataset / 'train.csv'}", file=sys.stderr
                )
        if args.settings:
            todo = [r for r in todo if any(w in r.setting for w in args.settings)]
        for run in todo:
            intents = tuple(run.config.intents.values())
            result: dict[str, Any] = {
                "dataset": run.dataset,
                "setting": run.setting,
                "split": args.split if run.dataset in (*HELD_OUT, PROBE) else "test",
                "intents": len(intents),
                "destinations": len(set(route_map(run.config).values())),
                "examples": sum(len(i.examples) + len(i.phrases) for i in intents),
                "test": len(run.test),
                "held_out": list(run.held_out),
                "after": measure(run, Matcher),
            }
            if before is not None:
                result["before"] = measure(run, before)
                result["before_revision"] = args.before
            results.append(result)
            print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(results))
    for line in fold_means(results):
        print(line)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
