"""Issue #22, full history: where the shipped matcher loses routing with all examples, and
whether a plain logistic regression, another reject line or another reject score does better.

Valid split by default (choices are made there; ``--split test`` reports). Configs as
``bench/eval_datasets.py`` builds them: HWU64 and SNIPS with all training examples, and their
out-of-scope runs with all examples (held-out scenarios, HWU64's six folds). The matcher is built
once per config; its two parts of the reject score, log-probability and familiarity, are
captured for the calibration model's held-out texts and for the utterances, so each variant's
line is placed the product's way (the quantile of the held-out texts the calibration model
routes right) and then applied.

    python -m bench.experiments.full_history [--plain-lr] [--split test]

``--plain-lr`` also fits one multinomial logistic regression (scikit-learn, lbfgs) on the
sentence vectors next to the char n-gram TF-IDF of the spelling view, as the issue's baseline,
and prints the argmax routing and intent of the product's probabilities (share 0), of the
regression's (share 1) and of their even mix in log space (~1 min per fit here).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench.eval_datasets as ev
from voicebot.core.text import normalize
from voicebot.matching import calibration
from voicebot.matching import matcher as M
from voicebot.matching.evaluation import route_map
from voicebot.matching.spelling import MIN_DF_FROM, _char_grams, _tfidf, count_grams

QUANTILES = (0.01, 0.0075, 0.005, 0.0025, 0.001)
# (closest texts averaged, familiarity power, familiarity from the top destination's texts only)
BLEND = (0.0, 0.5, 1.0)  # share of the plain regression's log-probabilities against the product's
SCORES = ((4, 2.0, False), (16, 2.0, False), (4, 1.0, False), (4, 3.0, False), (4, 2.0, True))


@dataclass
class Part:
    log_p: Any  # per text and intent, log-probability after the matcher's adjustments
    vectors: Any  # the texts' sentence vectors
    training: Any  # the vectors of the model's training texts
    training_y: Any  # ... and their intent


@dataclass
class Case:
    name: str
    calib: Part
    calib_y: Any
    test: Part
    label: Any  # intent index, -1 for out of scope
    route: Any  # destination index per intent


def capture(run: ev.Run) -> Case:
    """Build the shipped matcher on ``run``'s config and keep both parts of its reject score."""
    calls: list[tuple[Any, Any, Any]] = []
    original = M.Matcher._log_confidence

    def spy(self: M.Matcher, trained: Any, norms: Any, vectors: Any, counts: Any = None) -> Any:
        power = M.NOVELTY_POWER
        M.NOVELTY_POWER = 0.0
        try:
            log_p = original(self, trained, norms, vectors, counts)
        finally:
            M.NOVELTY_POWER = power
        calls.append((log_p, vectors, trained.vectors))
        return original(self, trained, norms, vectors, counts)

    intents = tuple(run.config.intents.values())
    names = [i.name for i in intents]
    y = np.concatenate(
        [np.full(len(i.phrases) + len(i.examples), k) for k, i in enumerate(intents)]
    )
    held = calibration.held_out(y, len(names))
    M.Matcher._log_confidence = spy  # type: ignore[method-assign]
    try:
        matcher = M.Matcher(intents, run.config.thresholds)
        norms = [normalize(t) for t, _ in run.test]
        with M._threadpools().limit(limits=1):
            matcher._log_confidence(matcher._trained, norms, matcher._embeddings.queries(norms))
    finally:
        M.Matcher._log_confidence = original  # type: ignore[method-assign]
    (c_p, c_v, c_t), (t_p, t_v, t_t) = calls
    routes = route_map(run.config)
    route = np.unique([routes[n] for n in names], return_inverse=True)[1]
    label = np.array([names.index(lab) if lab != "oos" else -1 for _, lab in run.test])
    return Case(
        f"{run.dataset} {run.setting}",
        Part(c_p, c_v, c_t, y[~held]),
        y[held],
        Part(t_p, t_v, t_t, y),
        label,
        route,
    )


def score(part: Part, route: Any, k: int, power: float, own: bool) -> tuple[Any, Any]:
    """The reject score (top log-probability + power x log familiarity) and the top intent."""
    top = part.log_p.argmax(axis=1)
    cosines = part.vectors @ part.training.T
    if own:
        cosines = np.where(route[part.training_y][None, :] == route[top][:, None], cosines, -1.0)
    cosines.partition(cosines.shape[1] - k, axis=1)
    near = cosines[:, -k:].mean(axis=1)
    floor = M.FAMILIAR_FLOOR
    familiarity = np.clip((near - floor) / (1 - floor), 1e-6, 1.0)
    return part.log_p.max(axis=1) + power * np.log(familiarity), top


def figures(
    case: Case, quantile: float, k: int, power: float, own: bool, per: str = "", least: int = 0
) -> str:
    """Route %, or in-scope % / out-of-scope recall % when the case has out-of-scope texts.
    ``per`` "destination" or "intent": a line of its own for each destination (intent) whose
    held-out texts routed right number at least ``least``, the config's line for the others."""
    held, top = score(case.calib, case.route, k, power, own)
    right = top == case.calib_y
    low = min(float(np.quantile(held[right], quantile)), -1e-3)
    group = case.route if per == "destination" else np.arange(len(case.route))
    lows = np.full(group.max() + 1, low)
    if per:
        for g in range(len(lows)):
            pool = held[right & (group[top] == g)]
            if len(pool) >= least:
                lows[g] = min(float(np.quantile(pool, quantile)), -1e-3)
    s, arg = score(case.test, case.route, k, power, own)
    rejected = s < lows[group[arg]]
    inside = case.label >= 0
    right_route = case.route[arg] == case.route[np.maximum(case.label, 0)]
    if inside.all():
        return f"{100 * (~rejected & right_route).mean():.1f}"
    in_scope = 100 * (~rejected & (arg == case.label))[inside].mean()
    return f"{in_scope:.1f} / {100 * rejected[~inside].mean():.1f}"


def features(run: ev.Run, case: Case, kind: str) -> tuple[Any, Any, Any]:
    """Training matrix, labels and the utterances' matrix for ``kind``."""
    texts, y = [], []
    for k, intent in enumerate(run.config.intents.values()):
        for t in (*intent.phrases, *intent.examples):
            texts.append(normalize(t))
            y.append(k)
    names, counts = count_grams(texts)
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    columns = np.flatnonzero(df >= (2 if len(texts) >= MIN_DF_FROM else 1))
    idf = np.log((1 + len(texts)) / (1 + df[columns])) + 1.0
    counter = _char_grams(names[columns].tolist())
    queries = [normalize(t) for t, _ in run.test]
    grams = _tfidf(counts[:, columns], idf)
    q_grams = _tfidf(sparse.csr_matrix(counter.transform(queries)), idf)
    if kind == "grams":
        return grams, np.array(y), q_grams
    if kind == "vectors":
        return case.test.training, np.array(y), case.test.vectors
    x = sparse.hstack([sparse.csr_matrix(case.test.training), grams]).tocsr()
    q = sparse.hstack([sparse.csr_matrix(case.test.vectors), q_grams]).tocsr()
    return x, np.array(y), q


def plain_lr(run: ev.Run, case: Case) -> str:
    """Argmax routing of one regression on [sentence vectors, char TF-IDF] next to the product
    classifier's argmax, on the same texts."""
    from sklearn.linear_model import LogisticRegression

    x, y, q = features(run, case, "both")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=10.0, max_iter=300).fit(x, y)
    log_lr = model.predict_log_proba(q)
    gold = case.route[case.label]
    out = []
    for share in BLEND:
        arg = ((1 - share) * case.test.log_p + share * log_lr).argmax(axis=1)
        route = 100 * (case.route[arg] == gold).mean()
        out.append(
            f"LR share {share:g}: route {route:.2f} intent {100 * (arg == case.label).mean():.2f}"
        )
    return "; ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plain-lr", action="store_true")
    parser.add_argument("--split", default="valid", choices=("valid", "test"))
    args = parser.parse_args()
    cases: list[tuple[ev.Run, Case]] = []
    for dataset in ("hwu64", "snips"):
        with tempfile.TemporaryDirectory() as tmp:
            runs = ev._clean_runs(ev.DEFAULT_DATA, dataset, args.split, Path(tmp))
        for run in runs:
            if run.setting == "full" or (
                run.setting.startswith("oos") and "shot" not in run.setting
            ):
                cases.append((run, capture(run)))
    print("| line at | " + " | ".join(c.name for _, c in cases) + " |")
    print("|---" * (len(cases) + 1) + "|")
    for q in QUANTILES:
        row = [figures(c, q, 4, 2.0, False) for _, c in cases]
        print(f"| {q:.2%} | " + " | ".join(row) + " |")
    print()
    print("| reject score (1% line) | " + " | ".join(c.name for _, c in cases) + " |")
    print("|---" * (len(cases) + 1) + "|")
    for k, power, own in SCORES:
        row = [figures(c, 0.01, k, power, own) for _, c in cases]
        where = "its destination's texts" if own else "all texts"
        print(f"| {k} closest of {where}, power {power:g} | " + " | ".join(row) + " |")
    print()
    print("| line | " + " | ".join(c.name for _, c in cases) + " |")
    print("|---" * (len(cases) + 1) + "|")
    for per, least, q in (("destination", 100, 0.01), ("intent", 20, 0.01), ("intent", 20, 0.02)):
        row = [figures(c, q, 4, 2.0, False, per, least) for _, c in cases]
        print(f"| per {per} with {least}+ texts, at {q:.0%} | " + " | ".join(row) + " |")
    if args.plain_lr:
        print()
        for run, case in cases:
            if run.setting == "full":
                print(f"{case.name}: {plain_lr(run, case)}", flush=True)


if __name__ == "__main__":
    main()
