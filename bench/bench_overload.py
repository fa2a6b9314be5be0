"""Overload benchmark (issue #21): calls offered beyond capacity go to people, not to silence.

    python bench/bench_overload.py [--capacity N] [--step-s 60] [--peak 2.0] [--quick]

One ``voicebot serve --dev`` (the Korean test deployment, the Korean Vosk model) pinned to one
core, the simulated callers (this process, real-time Twilio media streams of the real audio
fixtures, each caller silent 1-3 s before speaking, hanging up when the bot has not acted
``GIVE_UP_S`` after their last word) pinned to the other. Two phases in one run:

1. capacity: the server with admission control off; ``n`` calls kept in flight (a new one as
   soon as one ends) for ``--step-s`` at n = 8, 12, 16, ... until a step fails (if 8 fails
   already, at 4, 2, 1 until one holds). A step holds
   when every caller got a reaction and the server's decisions came within 300 ms p95
   (``voicebot_decision_seconds``, the yardstick of bench_capacity.py). ``capacity_calls`` is
   the largest n that held; the mean length of its calls is the holding time used next.
   ``--capacity N`` skips this phase (holding time then: ``HOLD_S``).
2. overload: a new server with ``--max-calls capacity_calls`` (and the default
   ``--max-backlog``); calls arrive at a steady rate for ``--step-s`` per step, the rate rising
   so that the offered load (arrival rate x holding time, in calls at once) is 0.5, 1, 1.5 and
   2 (``--peak``) times capacity.

Per step: calls offered, kept (the bot handled them itself), shed at the door (reason
``shed`` in the call log), handed over mid-call (reason ``overloaded``), lost (the webhook
answered, then neither a reaction from the bot nor a person before the caller gave up: must be
0), the calls the bot held at once (sampled from ``/healthz`` while calls arrive: mean over
the step's second half, and max), and the kept callers' reaction (end of speech to the bot's
first action) p50, p95, max. The last line is one JSON object with ``capacity_calls``,
``offered_peak_calls``, ``kept_peak_calls`` (the mean held at the peak step), ``shed_calls``
(both reasons, all steps), ``lost`` and ``reaction_max_s`` (over every kept call). Targets:
lost 0, reaction_max_s <= 2.0, kept_peak_calls >= 0.8 x capacity_calls.
bench/results/bench_overload.json has the details.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_capacity import (  # noqa: E402
    AUDIO,
    CONFIG,
    MIX,
    TARGET_S,
    Server,
    p95_from_buckets,
)

from voicebot.telephony.metrics import percentile  # noqa: E402
from voicebot.telephony.testing.call_report import CallReport  # noqa: E402
from voicebot.telephony.testing.fake_rest import FakeTwilio  # noqa: E402
from voicebot.telephony.testing.simulator import (  # noqa: E402
    SILENCE,
    SimOptions,
    load_audio,
    simulate_call,
)

SERVER_CORE, LOAD_CORE = 0, 1
GIVE_UP_S = 10.0  # a caller hangs up when the bot has not acted this long after their words
HOLD_S = 12.0  # holding time of a kept call when --capacity skips the capacity phase
SHED_REASONS = ("shed", "overloaded")


@dataclass
class Call:
    report: CallReport
    seconds: float  # webhook to the end of the call, as the caller saw it
    fixture: str  # what the caller said


@dataclass
class Step:
    label: str
    offered: float  # calls at once the arrivals amount to (arrival rate x holding time)
    calls: list[Call] = field(default_factory=list)
    held: list[int] = field(default_factory=list)  # calls the server held, sampled


class Caller:
    """Makes simulated calls toward ``server``, each with the next request of the mix."""

    def __init__(self, server: Server, fake: FakeTwilio) -> None:
        self.server, self.fake = server, fake
        self.turns = [load_audio(AUDIO / name) for name in MIX]
        self.count = 0

    async def call(self) -> Call:
        n = self.count
        self.count += 1
        options = SimOptions(
            url=self.server.url,
            auth_token=self.fake.auth_token,
            account_sid=self.fake.account_sid,
            caller=f"+8210{5550000 + n % 10000:07d}",
            realtime=True,
            max_wait_s=GIVE_UP_S,
        )
        turn = SILENCE * (50 + 50 * (n % 3)) + self.turns[n % len(self.turns)]
        sid = f"CA{time.time_ns():020x}{n:012x}"[:34]
        began = time.perf_counter()
        report = await simulate_call([turn], options, self.fake, call_sid=sid)
        return Call(report, time.perf_counter() - began, MIX[n % len(MIX)])


def held_now(server: Server) -> int:
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0
    match = re.search(r"(\d+) calls", text)
    return int(match.group(1)) if match else 0


async def sample(server: Server, step: Step, stop: asyncio.Event) -> None:
    while not stop.is_set():
        step.held.append(await asyncio.to_thread(held_now, server))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def closed_loop(caller: Caller, step: Step, n: int, seconds: float) -> None:
    """``n`` calls in flight for ``seconds``: each call that ends starts another."""
    deadline = time.monotonic() + seconds

    async def lane(i: int) -> None:
        await asyncio.sleep(i * 0.05)
        while time.monotonic() < deadline:
            step.calls.append(await caller.call())

    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample(caller.server, step, stop))
    asyncio.get_running_loop().call_later(seconds, stop.set)  # not while the last calls end
    await asyncio.gather(*(lane(i) for i in range(n)))
    stop.set()
    await sampler


async def open_loop(caller: Caller, step: Step, interval_s: float, seconds: float) -> None:
    """A new call every ``interval_s`` for ``seconds``, whatever the others do."""
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample(caller.server, step, stop))
    calls: list[asyncio.Future[Call]] = []
    start = time.monotonic()
    k = 0
    while time.monotonic() - start < seconds:
        calls.append(asyncio.ensure_future(caller.call()))
        k += 1
        await asyncio.sleep(max(0.0, start + k * interval_s - time.monotonic()))
    # Calls held are sampled while calls arrive: the step's last calls ending one by one, with
    # none arriving, is no load the step offered (counting them put the mean at the peak of a
    # quiet run at 21.9 of 28 while the door was full).
    stop.set()
    step.calls = list(await asyncio.gather(*calls))
    await sampler


def reasons(data_dir: Path) -> dict[str, str | None]:
    """Each call's transfer reason, from the server's call log (SQLite in its data folder)."""
    path = data_dir / "calls.sqlite3"
    for _ in range(50):  # the server writes its log in the background
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows = db.execute("SELECT call_id, reason, ended_at FROM calls").fetchall()
        if all(r[2] is not None for r in rows):
            break
        time.sleep(0.2)
    return {r[0]: r[1] for r in rows}


def reacted(report: CallReport) -> bool:
    """The bot acted for this caller: a decision, a text, a prompt after their words."""
    return report.decided or report.latency_s is not None or bool(report.texted)


def measure(step: Step, why: dict[str, str | None]) -> dict[str, Any]:
    started = [c for c in step.calls if c.report.rejected is None]
    reason = {c.report.call_sid: why.get(c.report.call_sid) for c in started}
    shed = [c for c in started if reason[c.report.call_sid] == "shed"]
    handed = [c for c in started if reason[c.report.call_sid] == "overloaded"]
    lost = [c for c in started if not reacted(c.report)]
    kept = [c for c in started if c not in shed and c not in handed and c not in lost]
    waits = [c.report.latency_s for c in kept if c.report.latency_s is not None]
    steady = step.held[len(step.held) // 2 :] or [0]
    return {
        "step": step.label,
        "offered_calls": round(step.offered, 1),
        "calls": len(step.calls),
        "kept": len(kept),
        "shed_door": len(shed),
        "shed_mid_call": len(handed),
        "lost": len(lost) + len(step.calls) - len(started),
        "held_mean": round(statistics.mean(steady), 1),
        "held_max": max(step.held or [0]),
        "reaction_p50_s": round(percentile(waits, 50), 2) if waits else None,
        "reaction_p95_s": round(percentile(waits, 95), 2) if waits else None,
        "reaction_max_s": round(max(waits), 2) if waits else None,
        "kept_mean_call_s": round(statistics.mean(c.seconds for c in kept), 1) if kept else None,
        # A fixture's own end of turn shows here whatever the load (billing_noisy: its noise
        # holds the end of speech back), so the slowest reaction is listed per fixture.
        "reaction_max_by_fixture_s": {
            name: round(max(w), 2)
            for name in MIX
            if (w := [c.report.latency_s for c in kept if c.fixture == name and c.report.latency_s])
        },
        "lost_calls": [f"{c.report.call_sid}: {c.report.error}" for c in lost][:10],
    }


def run_server(data_dir: Path, args: tuple[str, ...] | None) -> tuple[Server, FakeTwilio]:
    data_dir.mkdir(parents=True, exist_ok=True)
    server = Server(SERVER_CORE, CONFIG, data_dir, *([] if args is None else [args]))
    fake = FakeTwilio(port=server.rest_port).start()
    return server, fake


def capacity_phase(work: Path, step_s: float, start: int, top: int) -> tuple[int, float, list[Any]]:
    """The largest n held in real time with admission off, and its calls' mean length."""
    server, fake = run_server(work / "capacity", None)
    rows: list[dict[str, Any]] = []
    best, hold = 0, HOLD_S
    try:
        caller = Caller(server, fake)
        asyncio.run(closed_loop(caller, Step("warm-up", 2), 2, 15))  # first calls load things
        n, down = start, True  # halve from ``start`` until a step holds, then climb by 4
        while 0 < n <= top:
            before = server.histogram()
            step = Step(f"capacity {n}", n)
            asyncio.run(closed_loop(caller, step, n, step_s))
            p95, _count = p95_from_buckets(before, server.histogram())
            row = measure(step, reasons(work / "capacity"))
            row["decision_p95_ms"] = None if p95 == float("inf") else round(p95 * 1000)
            held = row["lost"] == 0 and p95 <= TARGET_S
            row["held"] = held
            rows.append(row)
            print(f"  {step.label}: {json.dumps(row, ensure_ascii=False)}", file=sys.stderr)
            if held:
                best, hold, down = n, row["kept_mean_call_s"] or hold, False
                n += 4
            elif down:
                n //= 2
            else:
                break
    finally:
        server.stop()
        fake.stop()
    return best, hold, rows


def overload_phase(
    work: Path, capacity: int, hold_s: float, step_s: float, factors: list[float]
) -> list[dict[str, Any]]:
    server, fake = run_server(work / "overload", ("--max-calls", str(capacity)))
    rows: list[dict[str, Any]] = []
    try:
        caller = Caller(server, fake)
        asyncio.run(closed_loop(caller, Step("warm-up", 2), 2, 15))
        for factor in factors:
            offered = factor * capacity
            step = Step(f"{factor:g} x capacity", offered)
            asyncio.run(open_loop(caller, step, hold_s / offered, step_s))
            row = measure(step, reasons(work / "overload"))
            rows.append(row)
            print(f"  {step.label}: {json.dumps(row, ensure_ascii=False)}", file=sys.stderr)
    finally:
        server.stop()
        fake.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, help="skip the capacity phase: use N")
    parser.add_argument("--step-s", type=float, default=60.0, help="seconds per step")
    parser.add_argument("--peak", type=float, default=2.0, help="offered peak / capacity")
    parser.add_argument("--start", type=int, default=8, help="first n of the capacity phase")
    parser.add_argument("--quick", action="store_true", help="smoke test: short steps, small n")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "bench_overload.json"
    )
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        print("bench_overload needs two cores (server and callers apart)", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, {LOAD_CORE})
    step_s = 20.0 if args.quick else args.step_s
    work = Path(tempfile.mkdtemp(prefix="voicebot-overload-"))
    began = time.monotonic()
    load_before = os.getloadavg()
    capacity_rows: list[Any] = []
    if args.capacity is not None:
        capacity, hold_s = args.capacity, HOLD_S
    else:
        top = 8 if args.quick else 64
        capacity, hold_s, capacity_rows = capacity_phase(
            work, step_s, 4 if args.quick else args.start, top
        )
        if capacity == 0:
            print("not even 1 call held in real time", file=sys.stderr)
            return 1
    factors = [f for f in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0) if f < args.peak] + [args.peak]
    rows = overload_phase(work, capacity, hold_s, step_s, factors)

    columns = (
        ("offered", "offered_calls"),
        ("calls", "calls"),
        ("kept", "kept"),
        ("shed at door", "shed_door"),
        ("handed over mid-call", "shed_mid_call"),
        ("lost", "lost"),
        ("held mean / max", None),
        ("kept reaction p50 / p95 / max s", None),
    )
    print(
        f"capacity {capacity} calls on one core (holding time {hold_s:.1f} s); "
        f"--max-calls {capacity}; {step_s:g} s per step"
    )
    print("| step | " + " | ".join(c for c, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for r in rows:
        cells = [str(r[key]) for _, key in columns if key is not None]
        cells.append(f"{r['held_mean']} / {r['held_max']}")
        cells.append(f"{r['reaction_p50_s']} / {r['reaction_p95_s']} / {r['reaction_max_s']}")
        print(f"| {r['step']} | " + " | ".join(cells) + " |")
    waits = [r["reaction_max_s"] for r in rows if r["reaction_max_s"] is not None]
    by_fixture: dict[str, float] = {}
    for r in rows:
        for name, wait in r["reaction_max_by_fixture_s"].items():
            by_fixture[name] = max(wait, by_fixture.get(name, 0.0))
    summary = {
        "capacity_calls": capacity,
        "offered_peak_calls": round(rows[-1]["offered_calls"], 1),
        "kept_peak_calls": rows[-1]["held_mean"],
        "kept_peak_max_calls": rows[-1]["held_max"],
        "shed_calls": sum(r["shed_door"] + r["shed_mid_call"] for r in rows),
        "lost": sum(r["lost"] for r in rows),
        "reaction_max_s": max(waits) if waits else None,
        "reaction_max_by_fixture_s": by_fixture,
        "holding_s": round(hold_s, 1),
        "seconds": round(time.monotonic() - began),
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    detail = {**summary, "capacity_steps": capacity_rows, "overload_steps": rows}
    args.out.write_text(json.dumps(detail, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
