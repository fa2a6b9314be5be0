"""Issue #20: a call's CPU, bare Vosk loop against ``voicebot serve``, and where serve's goes.

    python -m bench.experiments.cpu_per_call [--calls 11] [--rounds 3] [--reps 2] [--py-spy]

The cores, fixtures and processes of ``bench/bench_capacity.py``'s burst rows (the server side
pinned to the first core, the load generator to the last, ``--nice -10`` as there), at a load
well under either's capacity, so that nothing queues and the figures are the work itself:

- bare: the capacity bench's Vosk loop worker (each call's request, then 3 s of silence,
  decoded continuously); the worker process's CPU at n streams minus its CPU at one stream
  (loading the model and starting), per extra stream (at the default 11, the ten extra
  streams say each fixture of the mix twice);
- voicebot: a warmed ``voicebot serve --dev`` and ``voicebot simulate --realtime`` (webhook,
  WebSocket, greeting, request, the bot's answer); each of the server's threads' CPU
  (``/proc/<pid>/task``) over the rounds, per call: the event loop (the main thread), the
  decoding thread (on one core the decoding pool has one thread: the busiest other one) and
  the rest (call log, REST, executor threads).

Both run ``--rounds`` times per repetition, ``--reps`` repetitions alternating bare and serve.
With ``--py-spy`` (``pip install py-spy``; run as root), the serve rounds of the last
repetition are sampled as well and the decoding thread's samples split into Vosk's
``AcceptWaveform`` and our Python around it. Prints a table and a JSON last line.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_capacity as bc  # noqa: E402

# What each decoding-thread sample was doing: the first label whose frame is on its stack.
STAGES = (
    ("dither", "dithered"),
    ("Vosk AcceptWaveform", "Recognizer._accept"),
    ("Vosk results (partial, final, reset)", "KaldiRecognizer."),
    ("resampling 8 -> 16 kHz", "Resampler."),
    ("mu-law decoding", "ulaw_decode"),
    ("speech detector", "EnergyVad."),
    ("dialogue and matcher", "Dialogue.handle"),
)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid`` so far."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = bc.stat_cpu_s(Path(f"/proc/{pid}/task/{tid}/stat"))
        except OSError:
            continue  # the thread ended
    return out


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_ms_per_call(core: int, n: int, rounds: int) -> float:
    """The loop worker's CPU per stream beyond its first (start-up and model load cancel)."""
    extra = 0.0
    for _ in range(rounds):
        before = children_cpu()
        bc.run_worker(core, n, "calls", False)
        middle = children_cpu()
        bc.run_worker(core, 1, "calls", False)
        extra += (middle - before) - (children_cpu() - middle)
    return 1000 * extra / (rounds * (n - 1))


def spy_split(raw: Path) -> dict[str, int]:
    """py-spy's raw samples of the decoding thread, by stage; py-spy counts some of the
    thread's waits for work (``_worker`` on top of the stack) as active: they are left out."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if "vosk-decode" not in frames[0]:
            continue
        if frames[-1].startswith("_worker ("):  # the pool's thread waiting for work: idle
            continue
        stage = next((label for label, frame in STAGES if frame in stack), "other")
        counts[stage] += int(n)
    return dict(counts)


def serve_ms_per_call(
    server_core: int, load_core: int, n: int, rounds: int, spy: Path | None
) -> dict[str, Any]:
    wavs = [bc.AUDIO / m for m in bc.MIX]
    with tempfile.TemporaryDirectory() as tmp:
        server = bc.Server(server_core, bc.CONFIG, Path(tmp))
        try:
            bc.simulate(server, load_core, len(wavs), wavs)  # the first calls' paths, unmeasured
            pid = server.proc.pid
            spying = None
            if spy is not None:
                spying = subprocess.Popen(
                    [
                        *("py-spy", "record", "-p", str(pid), "--threads", "-r", "200"),
                        *("-f", "raw", "-o", str(spy), "--nonblocking"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=bc.pin(load_core),
                )
                time.sleep(1.0)
            before = thread_cpu(pid)
            for _ in range(rounds):
                bc.simulate(server, load_core, n, wavs)
            after = thread_cpu(pid)
            if spying is not None:
                spying.send_signal(signal.SIGINT)
                spying.wait()
        finally:
            server.stop()
    calls = rounds * n
    per = {tid: 1000 * (cpu - before.get(tid, 0.0)) / calls for tid, cpu in after.items()}
    loop = per.pop(pid, 0.0)
    decoder = max(per.values(), default=0.0)
    total = loop + sum(per.values())
    return {"loop": loop, "decoder": decoder, "rest": total - loop - decoder, "total": total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--py-spy", action="store_true", help="sample serve's decoding thread")
    args = parser.parse_args()
    if args.calls < 2:
        parser.error("--calls must be at least 2")
    if args.py_spy and shutil.which("py-spy") is None:
        parser.error("--py-spy needs py-spy on the PATH (pip install py-spy)")
    bc.NICE = -10 if os.geteuid() == 0 else 0
    cores = sorted(os.sched_getaffinity(0))
    server_core, load_core = cores[0], cores[-1]
    reps: list[dict[str, Any]] = []
    split: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "spy.txt"
        for rep in range(args.reps):
            spy = raw if args.py_spy and rep == args.reps - 1 else None
            row: dict[str, Any] = {}
            order = ("bare", "serve") if rep % 2 == 0 else ("serve", "bare")
            for which in order:
                if which == "bare":
                    row["bare"] = bare_ms_per_call(server_core, args.calls, args.rounds)
                else:
                    row["serve"] = serve_ms_per_call(
                        server_core, load_core, args.calls, args.rounds, spy
                    )
            reps.append(row)
            s = row["serve"]
            print(
                f"rep {rep + 1}: bare {row['bare']:.1f} ms per call; serve {s['total']:.1f}"
                f" (event loop {s['loop']:.1f}, decoding thread {s['decoder']:.1f}, other"
                f" threads {s['rest']:.1f})",
                file=sys.stderr,
            )
        if args.py_spy and raw.exists():
            split = spy_split(raw)

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 1)

    bare = median([r["bare"] for r in reps])
    serve = {k: median([r["serve"][k] for r in reps]) for k in ("total", "loop", "decoder", "rest")}
    print(f"\n{args.calls} calls x {args.rounds} rounds, {args.reps} repetitions (medians)\n")
    print("| CPU per call | ms | share of serve's |")
    print("|---|---:|---:|")
    print(f"| bare Vosk loop (request + 3 s of silence, all decoded) | {bare} | |")
    print(f"| voicebot serve, all threads | {serve['total']} | 1.00 |")
    for key, label in (
        ("loop", "event loop (WebSocket frames, webhooks, prompts sent)"),
        ("decoder", "decoding thread"),
        ("rest", "other threads (call log, REST, executors)"),
    ):
        print(f"| - {label} | {serve[key]} | {serve[key] / serve['total']:.2f} |")
    total_samples = sum(split.values())
    if total_samples:
        print("\n| decoding thread, py-spy samples | share |")
        print("|---|---:|")
        for label, count in sorted(split.items(), key=lambda kv: -kv[1]):
            print(f"| {label} | {count / total_samples:.3f} |")
    result = {
        "calls": args.calls,
        "rounds": args.rounds,
        "bare_ms_per_call": bare,
        "serve_ms_per_call": serve["total"],
        "serve_loop_ms_per_call": serve["loop"],
        "serve_decoder_ms_per_call": serve["decoder"],
        "serve_other_ms_per_call": serve["rest"],
        "decoder_split": {k: round(v / total_samples, 3) for k, v in split.items()}
        if total_samples
        else None,
        "reps": reps,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
