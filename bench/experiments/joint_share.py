"""Issue #22, full history: the joint regression's share and temperature, measured with the
reject line the matcher places (valid split only; choices are made here).

The regression's weights do not depend on either (they are read from its cache after the first
build), so each variant is the shipped matcher rebuilt with ``joint.JOINT_SHARE`` and
``joint.JOINT_TEMPERATURE`` set, on the configs where the regression is used: HWU64 and SNIPS
with all examples, their out-of-scope runs with all examples and HWU64's six folds. Share 0 is
the matcher without it. Route % (all in scope) or in-scope % / out-of-scope recall %.

    python -m bench.experiments.joint_share [--variants SHARE:TEMPERATURE ...]

(A variant in which the mix only picked the top intent, which took the score the two views gave
their own top intent, was measured at commit 9bb2b89 with ``0.5:1:rank``; not kept.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench.eval_datasets as ev
from voicebot.matching import joint
from voicebot.matching.matcher import Matcher


def cell(result: dict[str, float | None]) -> str:
    if result["oos_recall"] is None:
        return f"{100 * (result['route_accuracy'] or 0):.1f}"
    return f"{100 * (result['in_scope_accuracy'] or 0):.1f} / {100 * result['oos_recall']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    variants = ["0:1", "0.5:1", "0.25:1", "0.5:0.5", "0.75:1"]
    parser.add_argument("--variants", nargs="+", default=variants)
    parser.add_argument("--datasets", nargs="+", default=["hwu64", "snips"])
    args = parser.parse_args()
    runs: list[ev.Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            for run in ev._clean_runs(ev.DEFAULT_DATA, dataset, "valid", Path(tmp)):
                if "shot" not in run.setting:
                    runs.append(run)
    names = [f"{r.dataset} {r.setting}" for r in runs]
    print("| share:temperature | " + " | ".join(names) + " |")
    print("|---" * (len(runs) + 1) + "|", flush=True)
    for variant in args.variants:
        share, temperature = variant.split(":")
        joint.JOINT_SHARE, joint.JOINT_TEMPERATURE = float(share), float(temperature)
        cells = [cell(ev.measure(run, Matcher)) for run in runs]
        print(f"| {variant} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
