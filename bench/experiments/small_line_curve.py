"""Issue #22, a small line: how far moving the reject line alone could take near out-of-scope
recall on ``bench/eval_datasets.py``'s HWU64 small lines (30 intents drawn at random, 5
examples each; every other intent's test utterances out of scope, the same scenario's among
them), and what it would cost the callers the line covers.

For each small line the shipped matcher is built once and every test utterance matched; the
line is then put where it rejects 50, 70 and 90 % of the out-of-scope utterances, and the
in-scope accuracy (the right intent, not rejected) read there, beside the shipped line's.

    python -m bench.experiments.small_line_curve [--split valid|test]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import eval_datasets as ed

from voicebot.matching.matcher import Matcher

RECALLS = (0.5, 0.7, 0.9)


def curve(run: ed.Run) -> str:
    """One small line's row: top-1, the shipped line, and the line at each of RECALLS."""
    matcher = Matcher(tuple(run.config.intents.values()), run.config.thresholds)
    line = run.config.thresholds.reject
    right: list[bool] = []
    kept: list[float] = []  # in-scope utterances' scores
    outside: list[float] = []  # out-of-scope utterances' scores
    for text, label in run.test:
        best = matcher.match(text).best
        score = best.score if best is not None else 0.0
        if label == "oos":
            outside.append(score)
        else:
            right.append(best is not None and best.intent == label)
            kept.append(score)
    ok, scores, oos = np.array(right), np.array(kept), np.array(outside)

    def in_scope(at: float) -> float:
        return float(100 * np.mean(ok & (scores >= at)))

    cells = [
        f"{100 * ok.mean():.1f}",
        f"{in_scope(line):.1f} / {100 * np.mean(oos < line):.1f}",
    ]
    for recall in RECALLS:
        at = float(np.quantile(oos, recall))
        cells.append(f"{in_scope(at):.1f} (line {at:.2f})")
    return f"| {run.setting} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="valid", choices=["valid", "test"])
    args = parser.parse_args()
    head = ["small line", "top-1 in-scope %", "shipped line: in-scope % / OOS recall %"]
    head += [f"in-scope % at {r:.0%} OOS recall" for r in RECALLS]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for run in ed.runs(ed.DEFAULT_DATA, "hwu64", args.split, Path(tmp)):
            if run.setting.startswith("small line"):
                print(curve(run), flush=True)


if __name__ == "__main__":
    main()
