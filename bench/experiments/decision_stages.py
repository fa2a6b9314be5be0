"""Issue #20: where a decision's time goes when many callers speak at once.

``bench/bench_capacity.py``'s voicebot trial (``voicebot serve --dev`` pinned to one core,
``voicebot simulate --realtime`` on the other, n calls starting 50 ms apart, three rounds after
a warm-up) with the server started through this file, which wraps three places of the product
(no copy of their code) and writes, per decision, when the chunk that completed the utterance
was spoken (``due``), when the decoder took it up and finished it, when the event loop got the
actions and when they left the server; plus every garbage collection's pause.

    python -m bench.experiments.decision_stages [--calls 24,30] [--rounds 3] [--no-freeze]

``--no-freeze``: the server without ``freeze_startup_objects`` (what a full collection cost
before it).

Prints, per n: the decision latency split into the wait for the decoder, decoding that chunk,
the hop back to the event loop and carrying the actions out (p50 / p95 / max, ms), the
decoding thread's busiest 0.5 s, and the longest collection of each generation.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import runpy
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT_VAR = "DECISION_STAGES_OUT"
NO_FREEZE_VAR = "DECISION_STAGES_NO_FREEZE"


def instrument() -> None:
    """In the server process: record the stages of every decision and every collection."""
    from voicebot.cli import serve
    from voicebot.speech import pipeline
    from voicebot.telephony import session

    if os.environ.get(NO_FREEZE_VAR):
        serve.freeze_startup_objects = lambda: None

    lock = threading.Lock()
    chunks: list[tuple[float, float, float]] = []  # due, decode start, decode end
    acted: dict[float, tuple[float, float]] = {}  # due -> the decode that acted on it
    on_loop: dict[float, float] = {}
    decisions: list[tuple[float, float, float, float, float]] = []
    pauses: list[tuple[float, float, int]] = []
    last = threading.local()

    feed = pipeline.CallPipeline.feed

    def timed_feed(self: Any, pcm: Any) -> Any:
        last.start = time.perf_counter()
        actions = feed(self, pcm)
        last.end = time.perf_counter()
        return actions

    init = pipeline.AudioQueue.__init__

    def wrapped_init(self: Any, p: Any, on_actions: Any, **kwargs: Any) -> None:
        decoded = kwargs.get("on_decoded")

        def on_decoded(seconds: float, waited: float) -> None:
            end = time.perf_counter()
            with lock:
                chunks.append((end - seconds - waited, end - seconds, end))
            if decoded is not None:
                decoded(seconds, waited)

        def actions(found: Any, due: float) -> None:
            acted[due] = (last.start, last.end)
            on_actions(found, due)

        kwargs["on_decoded"] = on_decoded
        init(self, p, actions, **kwargs)

    handed = session.CallSession._on_decoded

    def wrapped_on_decoded(self: Any, found: Any, due: float) -> None:
        on_loop[due] = time.perf_counter()
        handed(self, found, due)

    left = session.CallSession._left

    def wrapped_left(self: Any) -> None:
        due = self.decision_from
        if due is not None and due in acted:
            start, end = acted[due]
            decisions.append((due, start, end, on_loop.get(due, end), time.perf_counter()))
        left(self)

    began = [0.0]

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append((began[0], time.perf_counter() - began[0], info["generation"]))

    pipeline.CallPipeline.feed = timed_feed  # type: ignore[method-assign]
    pipeline.AudioQueue.__init__ = wrapped_init  # type: ignore[method-assign]
    session.CallSession._on_decoded = wrapped_on_decoded  # type: ignore[method-assign]
    session.CallSession._left = wrapped_left  # type: ignore[method-assign]
    gc.callbacks.append(collected)

    def dump() -> None:
        record = {"chunks": chunks, "decisions": decisions, "gc": pauses}
        Path(os.environ[OUT_VAR]).write_text(json.dumps(record), encoding="utf-8")

    atexit.register(dump)


def report(record: dict[str, Any], n: int, t0: float, t1: float) -> None:
    rows = [d for d in record["decisions"] if t0 < d[0] < t1]
    if not rows:
        print(f"{n} calls: no decisions recorded")
        return
    a = 1000 * np.array([[s - t, e - s, hop - e, out - hop, out - t] for t, s, e, hop, out in rows])
    print(f"\n{n} calls, {len(rows)} decisions (ms: p50 / p95 / max)")
    names = ("waiting for the decoder", "decoding that chunk", "hop to the event loop")
    names += ("carrying the actions out", "decision latency")
    for name, col in zip(names, a.T, strict=True):
        p50, p95 = np.percentile(col, [50, 95])
        print(f"  {name:26s} {p50:7.1f} / {p95:7.1f} / {col.max():7.1f}")
    chunks = np.array([c for c in record["chunks"] if t0 < c[0] < t1])
    start, end = chunks[:, 1], chunks[:, 2]
    windows = np.floor((start - start.min()) / 0.5).astype(int)
    busy = np.bincount(windows, weights=end - start) / 0.5
    print(f"  decoding thread busiest 0.5 s: {busy.max():.2f} of it (wall clock)")
    for gen in range(3):
        pauses = [p for b, p, g in record["gc"] if g == gen and t0 < b < t1]
        if pauses:
            print(f"  gc generation {gen}: {len(pauses)}, longest {1000 * max(pauses):.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="24,30", help="comma-separated loads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-freeze", action="store_true", help="serve without gc.freeze()")
    args = parser.parse_args()
    if args.no_freeze:
        os.environ[NO_FREEZE_VAR] = "1"
    bench = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(bench))
    import bench_capacity as bc

    bc.NICE = -10
    wavs = [bc.AUDIO / m for m in bc.MIX]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stages.json"
        os.environ[OUT_VAR] = str(out)
        spans = []
        server = bc.Server(0, bc.CONFIG, Path(tmp), launcher=(__file__, "--serve"))
        try:
            bc.simulate(server, 1, len(wavs), wavs)  # warm-up
            for n in (int(x) for x in args.calls.split(",")):
                t0 = time.perf_counter()
                for _ in range(args.rounds):
                    bc.simulate(server, 1, n, wavs)
                spans.append((n, t0, time.perf_counter()))
        finally:
            server.stop()
        record = json.loads(out.read_text(encoding="utf-8"))
    for n, t0, t1 in spans:
        report(record, n, t0, t1)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:  # the server process: instrument, then `voicebot serve`
        instrument()
        sys.argv = ["voicebot", *sys.argv[2:]]
        runpy.run_module("voicebot", run_name="__main__", alter_sys=True)
    else:
        raise SystemExit(main())
