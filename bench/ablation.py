"""What each part of the matcher adds: the same configs with one part switched off at a time.

Each variant sets constants of the matching modules (``matcher``, ``spelling``, ``calibration``
of ``voicebot.matching``, each where it is defined; as JSON) and scores the
valid split of HWU64/SNIPS and the Swedish set the way bench/eval_datasets.py does. With no
arguments it runs the ablation in bench/README.md:

    python bench/ablation.py [--split valid] ['{"CHAR_SHARE": 0.0}' ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import voicebot.matching.calibration as calibration
import voicebot.matching.matcher as matcher
import voicebot.matching.spelling as spelling
from voicebot.matching.evaluation import evaluate, route_map

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.eval_datasets import DEFAULT_DATA, HERE, SWEDISH, Run, runs

VARIANTS: tuple[dict[str, Any], ...] = (
    {},  # the matcher as shipped
    {"CHAR_SHARE": 0.0},  # meaning only: no char n-gram naive Bayes
    {"CHAR_SHARE": 1.0},  # spelling only: no sentence-vector regression
    {"ROUTE_MARGIN": 99.0},  # no route-aware choice
    {"NOVELTY_POWER": 0.0},  # reject on probability alone, no familiarity
    {"ROUTE_POOL": 0.0},  # reject on the top intent's probability, not its destination's
)
# (dataset, index into eval_datasets.runs): full, 10-shot, oos full; the Swedish 4-shot
SETTINGS = (
    ("hwu64", 0),
    ("hwu64", 1),
    ("hwu64", 2),
    ("snips", 0),
    ("snips", 1),
    ("snips", 2),
    (SWEDISH, 0),
)


MODULES = (matcher, spelling, calibration)  # where the matcher's constants are defined


def _home(key: str) -> Any:
    """The matching module that defines constant ``key`` (each is read where it is defined)."""
    for module in MODULES:
        if hasattr(module, key) and key.isupper():
            return module
    names = ", ".join(m.__name__.rsplit(".", 1)[1] for m in MODULES)
    raise SystemExit(f"ablation: no constant {key} in {names}")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "variants",
        nargs="*",
        help="JSON objects of matcher constants, e.g. '{\"REJECT_QUANTILE\": 0.05}' "
        "(matcher, spelling or calibration)",
    )
    parser.add_argument("--split", default="valid", choices=["valid", "test"])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ablation.json")
    args = parser.parse_args(argv)
    variants = [json.loads(v) for v in args.variants] or list(VARIANTS)
    shipped = {k: getattr(_home(k), k) for v in variants for k in v}
    with tempfile.TemporaryDirectory() as tmp:
        todo: list[Run] = []
        for dataset, index in SETTINGS:
            todo.append(runs(DEFAULT_DATA, dataset, args.split, Path(tmp))[index])
    head = " | ".join(f"{r.dataset} {r.setting}" for r in todo)
    print(f"| variant | {head} |\n|" + "---|" * (len(todo) + 1))
    results = []
    for variant in variants:
        for key, value in {**shipped, **variant}.items():
            setattr(_home(key), key, value)
        cells: list[dict[str, Any]] = []
        for run in todo:
            built = matcher.Matcher(tuple(run.config.intents.values()), run.config.thresholds)
            report = evaluate(built, run.test, route_map(run.config))
            cells.append(
                {
                    "dataset": run.dataset,
                    "setting": run.setting,
                    "route_accuracy": report.route_accuracy,
                    "intent_accuracy": report.intent_accuracy,
                    "in_scope_accuracy": report.in_scope_accuracy,
                    "oos_recall": report.oos_recall,
                }
            )
        results.append({"variant": variant, "results": cells})
        shown = [
            f"{_pct(c['in_scope_accuracy'])} / {_pct(c['oos_recall'])}"
            if c["oos_recall"] is not None
            else f"{_pct(c['route_accuracy'])} / {_pct(c['intent_accuracy'])}"
            for c in cells
        ]
        print(f"| {json.dumps(variant) if variant else 'as shipped'} | {' | '.join(shown)} |")
        sys.stdout.flush()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
