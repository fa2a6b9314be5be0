"""Issue #20: what ``serve --coalesce-ms`` saves on the event loop, and what it costs the caller.

For each wait (0: asyncio's own loop), a ``voicebot serve --dev`` pinned to one core (the
simulator on the other, as in ``bench/bench_capacity.py``): the event-loop thread's CPU per
inbound 20 ms frame while 20 real-time calls go through it (``bench_transport``'s product row),
then the caller's wait at ``--half`` calls (end of speech -> the bot's first reaction, p50 and
p95, pooled over 4 runs, as ``bench_capacity``'s half-capacity row). Variants run in a shuffled
order each round (seeded), because the order of runs moves a figure as much as a small change.

    python -m bench.experiments.coalesce [--waits 0,10,20] [--rounds 3] [--half 14]
    python -m bench.experiments.coalesce --waits 0,20,uvloop
    python -m bench.experiments.coalesce --waits 0,20 --load 28,31,34

``--load``: instead, for each wait and each n, ``bench_capacity``'s burst trial (three rounds of
n calls starting 50 ms apart) and its busy-line trial (``--steady``: n lines of 5 calls each),
each with its p95 of decisions: does the loop's saving show as calls one core holds?

Prints a table, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import bench_capacity as bc  # noqa: E402
import bench_transport as bt  # noqa: E402


def start(wait: str, data: Path, core: int) -> bc.Server:
    """``serve`` with ``wait``: a ``--coalesce-ms`` value, or ``uvloop`` (no coalescing, uvloop's
    loop installed before ``serve``: the other way to a cheaper loop)."""
    uvloop = wait == "uvloop"
    args = (*bc.NO_ADMISSION, "--coalesce-ms", "0" if uvloop else wait)
    launcher = bt.UVLOOP_LAUNCHER if uvloop else ("-m", "voicebot")
    return bc.Server(core, bc.CONFIG, data, args=args, launcher=launcher)


def trial(wait: str, half: int, server_core: int, load_core: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = start(wait, Path(tmp), server_core)
        try:
            bc.simulate(server, load_core, len(bc.MIX), [bc.AUDIO / m for m in bc.MIX])
            loop_us = bt.loop_us_per_frame(server, load_core, 20)
            waited = bc.half_capacity(server, load_core, half, 4)["reaction_ms"]
        finally:
            server.stop()
    return {"loop_us": round(loop_us, 1), "p50": waited["p50"], "p95": waited["p95"]}


def load(wait: str, calls: list[int], server_core: int, load_core: int) -> dict[str, Any]:
    """p95 of decisions (ms, the histogram's bucket bound) per n, burst and busy line."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = start(wait, Path(tmp), server_core)
        try:
            warm = bc.simulate(server, load_core, len(bc.MIX), [bc.AUDIO / m for m in bc.MIX])
            burst = bc.serve_trial(server, load_core)
            steady = bc.steady_trial(server, load_core, bc.call_audio(warm))
            for n in calls:
                out[str(n)] = {"burst": burst(n)[1]["p95_ms"], "steady": steady(n)[1]["p95_ms"]}
        finally:
            server.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--waits", default="0,10,20", help="--coalesce-ms values, ms; 'uvloop': uvloop's loop"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--half", type=int, default=14, help="calls for the caller's wait")
    parser.add_argument("--nice", type=int, default=-10)
    parser.add_argument("--load", help="call counts: p95 of decisions, burst and busy line")
    args = parser.parse_args()
    bc.NICE = args.nice
    cores = sorted(os.sched_getaffinity(0))
    waits = args.waits.split(",")
    if args.load:
        calls = [int(n) for n in args.load.split(",")]
        result = {w: load(w, calls, cores[0], cores[-1]) for w in waits}
        heads = [f"{n} calls: burst / busy line" for n in calls]
        print("| --coalesce-ms | " + " | ".join(heads) + " |")
        print("|---:|" + "---|" * len(calls))
        for w, row in result.items():
            cells = [f"≤ {row[str(n)]['burst']} / ≤ {row[str(n)]['steady']} ms" for n in calls]
            print(f"| {w} | " + " | ".join(cells) + " |")
        print(json.dumps({"p95_ms": result}))
        return 0
    runs: dict[str, list[dict[str, Any]]] = {w: [] for w in waits}
    rng = random.Random(0)
    for r in range(args.rounds):
        order = waits[:]
        rng.shuffle(order)
        for w in order:
            runs[w].append(trial(w, args.half, cores[0], cores[-1]))
            print(f"  round {r + 1}, {w}: {runs[w][-1]}", file=sys.stderr)
    print("| --coalesce-ms | loop µs per frame (runs) | caller wait p50, ms (runs) | p95, ms |")
    print("|---:|---|---|---|")
    summary = {}
    for w in waits:
        us = [x["loop_us"] for x in runs[w]]
        p50 = [x["p50"] for x in runs[w]]
        p95 = [x["p95"] for x in runs[w]]
        summary[w] = {
            "loop_us": statistics.median(us),
            "p50_ms": statistics.median(p50),
            "p95_ms": statistics.median(p95),
        }
        print(
            f"| {w} | {statistics.median(us):.1f} ({', '.join(map(str, us))})"
            f" | {statistics.median(p50):.1f} ({', '.join(map(str, p50))})"
            f" | {statistics.median(p95):.1f} |"
        )
    print(json.dumps({"half_calls": args.half, "rounds": args.rounds, "waits": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
