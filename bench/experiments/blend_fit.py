"""Issue #22, full history: which fit of the plain regression to blend with the product's
log-probabilities is cheap enough to build into the matcher, from how many examples per intent
it pays, and with what share.

Valid split only (choices are made here). Configs as ``bench/eval_datasets.py`` builds them:
HWU64 and SNIPS with all training examples, and capped at CAPS examples per intent (seeded, as
``voicebot import --max-examples``). The shipped matcher is built once per config and its
log-probabilities (after its adjustments, before familiarity) captured for the utterances
(``full_history.capture``); each variant's regression is fitted on the config's texts, timed,
and its log-probabilities mixed with the product's at each share of SHARES; argmax route and
intent % are printed (no reject line: that is placed on the mixed scores by the matcher).

    python -m bench.experiments.blend_fit [--variants NAME ...] [--caps N ...]

Features as the matcher would have them: the sentence vector next to the spelling view's own
char 2-5 TF-IDF (its n-grams, df >= 2 from 2,000 texts, its idf), so nothing new is counted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench.eval_datasets as ev
from bench.experiments.full_history import Case, capture, features

SHARES = (0.25, 0.5, 0.75)
CAPS = (20, 50)


def _lr(c: float, steps: int, solver: str = "lbfgs", tol: float = 1e-4) -> Callable[..., Any]:
    from sklearn.linear_model import LogisticRegression

    def fit(x: Any, y: Any) -> Any:
        return LogisticRegression(C=c, max_iter=steps, solver=solver, tol=tol).fit(x, y)

    return fit


# name -> (features: "both" | "grams" | "vectors", fit)
VARIANTS: dict[str, tuple[str, Callable[..., Any]]] = {
    "both lbfgs C10 300": ("both", _lr(10.0, 300)),
    "both lbfgs C10 100": ("both", _lr(10.0, 100)),
    "both lbfgs C10 50": ("both", _lr(10.0, 50)),
    "grams lbfgs C10 100": ("grams", _lr(10.0, 100)),
    "grams lbfgs C30 100": ("grams", _lr(30.0, 100)),
    "both saga C10 10": ("both", _lr(10.0, 10, "saga", 1e-3)),
}


def figures(case: Case, log_p: Any) -> str:
    gold = case.route[case.label]
    arg = log_p.argmax(axis=1)
    return f"{100 * (case.route[arg] == gold).mean():.2f} / {100 * (arg == case.label).mean():.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--caps", nargs="*", type=int, default=list(CAPS))
    parser.add_argument("--datasets", nargs="+", default=["hwu64", "snips"])
    args = parser.parse_args()
    head = "| config | variant | fit s | " + " | ".join(f"share {s:g}" for s in SHARES)
    print(head + " |\n" + "|---" * (3 + len(SHARES)) + "|", flush=True)
    for dataset in args.datasets:
        with tempfile.TemporaryDirectory() as tmp:
            full = ev._clean_runs(ev.DEFAULT_DATA, dataset, "valid", Path(tmp))[0]
        folder = ev.DEFAULT_DATA / dataset
        routes = ev.HERE / "routes" / f"{dataset}.yaml"
        runs = [full] + [
            ev.Run(
                dataset,
                f"{cap} per intent",
                ev._import(folder / "train.csv", routes, cap),
                full.test,
            )
            for cap in args.caps
        ]
        for run in runs:
            case = capture(run)
            name = f"{dataset} {run.setting}"
            print(
                f"| {name} | product | - | {figures(case, case.test.log_p)} (share 0) |", flush=True
            )
            for variant in args.variants:
                kind, fit = VARIANTS[variant]
                x, y, q = features(run, case, kind)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = fit(x, y)
                took = time.perf_counter() - start
                log_lr = model.predict_log_proba(q)
                cells = [figures(case, (1 - s) * case.test.log_p + s * log_lr) for s in SHARES]
                print(
                    f"| {name} | {variant} | {took:.1f} | " + " | ".join(cells) + " |", flush=True
                )


if __name__ == "__main__":
    main()
