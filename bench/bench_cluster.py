"""Cluster benchmark: calls through a real HAProxy while instances die, restart and lose the DB.

    python bench/bench_cluster.py [--instances 2] [--calls 8] [--out PATH.json]

``--instances`` `voicebot serve` processes (the Korean test deployment, the Korean Vosk model)
run behind HAProxy with the configuration of docs/deployment.md, sharing a throwaway PostgreSQL
call log; the fake Twilio REST API and the simulated callers run in this process. In each
scenario a load generator starts calls at a steady rate so that about ``--calls`` simulated
calls are in flight (real-time audio, a mix of transfer, SMS and announcement requests, each
caller pausing 1-3 s first); the disruption starts once that many are in flight, and calls
keep arriving until half a call length after it:

- kill: the instance holding the most calls is killed with SIGKILL (restarted after);
- rolling_restart: every instance in turn gets SIGTERM (drain), and is started again once it
  has exited and is healthy again, before the next one;
- db_outage: PostgreSQL is stopped for 20 s, then started again.

Per scenario: ``started`` (webhooks answered), ``reached_person_or_decision`` (the bot decided,
or Twilio's fallback <Dial> put the caller through to a person), ``lost`` (started and neither:
must be 0), ``unanswered`` (webhooks refused or unanswered: must be 0),
``log_rows_missing`` (started calls without a closed call-log row 60 s after the end: must be
0), ``fallback`` (callers who reached the person through the TwiML fallback),
``logged_fallback`` (calls whose log row says reason ``fallback``: closed by a status callback
because their instance died, or a failed REST update), the calls in progress over all
instances (sampled from their ``/healthz``), and the exit codes of the instances stopped.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from postgres import PostgresServer, find_bindir  # noqa: E402

from voicebot.telephony.testing.call_report import CallReport  # noqa: E402
from voicebot.telephony.testing.cluster import Cluster, Instance, haproxy_binary  # noqa: E402
from voicebot.telephony.testing.fake_rest import FakeTwilio  # noqa: E402
from voicebot.telephony.testing.simulator import (  # noqa: E402
    SILENCE,
    SimOptions,
    load_audio,
    simulate_call,
)

CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"
AUDIO = ROOT / "audio_fixtures" / "ko-KR"
MIX = ("billing.wav", "password.wav", "hours.wav", "course.wav", "agent.wav")
DRAIN_S = 30.0
MEAN_CALL_S = 25.0  # about the mean length of the mix's calls (greeting to goodbye)
OUTAGE_S = 20.0


@dataclass
class Run:
    """One scenario's calls and what happened to the instances meanwhile."""

    reports: list[CallReport] = field(default_factory=list)
    exit_codes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    in_progress: list[int] = field(default_factory=list)  # sampled over all instances


class Load:
    """New calls arrive every ``MEAN_CALL_S / calls`` seconds until ``stop`` is set, so about
    ``calls`` are in flight; arrivals do not wait for calls to end (callers do not queue up
    behind each other, and a call that ends at once must not make the next arrive sooner)."""

    def __init__(self, cluster: Cluster, fake: FakeTwilio, calls: int) -> None:
        self.cluster = cluster
        self.fake = fake
        self.calls = calls
        self.interval_s = MEAN_CALL_S / calls
        self.turns = [load_audio(AUDIO / name) for name in MIX]
        self.count = 0
        self.stop = asyncio.Event()

    def _call(self) -> asyncio.Future[CallReport]:
        n = self.count
        self.count += 1
        pause = SILENCE * (50 + 50 * (n % 3))  # the caller waits 1-3 s before speaking
        options = SimOptions(
            url=self.cluster.url,
            auth_token=self.fake.auth_token,
            account_sid=self.fake.account_sid,
            caller=f"+8210555{n % 100000:05d}",
            realtime=True,
            max_wait_s=45.0,  # an answer, "anything else?", its silence timeout, goodbye
        )
        sid = f"CA{time.time_ns():020x}{n:012x}"[:34]
        turn = pause + self.turns[n % len(self.turns)]
        return asyncio.ensure_future(simulate_call([turn], options, self.fake, call_sid=sid))

    async def run(self) -> list[CallReport]:
        calls: list[asyncio.Future[CallReport]] = []
        while not self.stop.is_set():
            calls.append(self._call())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.interval_s)
        return list(await asyncio.gather(*calls))


def _calls(instance: Instance) -> int:
    """Calls the instance holds now, from its /healthz."""
    match = re.search(r"(\d+) calls", _health_text(instance.url))
    return int(match.group(1)) if match else 0


def _busiest(cluster: Cluster) -> tuple[Instance, int]:
    """The live instance holding the most calls right now, and how many."""
    held = {i.name: _calls(i) for i in cluster.instances if i.running}
    name = max(held, key=lambda n: held[n])
    return cluster.instance(name), held[name]


async def scenario(
    cluster: Cluster,
    fake: FakeTwilio,
    calls: int,
    disrupt: Callable[[Run], None],
    settle_s: float = MEAN_CALL_S,  # until about ``calls`` are in flight
    after_s: float = MEAN_CALL_S / 2,  # calls keep arriving after the disruption
) -> Run:
    run = Run()
    load = Load(cluster, fake, calls)
    generator = asyncio.ensure_future(load.run())
    sampler = asyncio.ensure_future(_sample(cluster, run))
    await asyncio.sleep(settle_s)
    try:
        await asyncio.to_thread(disrupt, run)
        await asyncio.sleep(after_s)
    finally:
        load.stop.set()
    run.reports = await generator
    sampler.cancel()
    return run


async def _sample(cluster: Cluster, run: Run) -> None:
    """Calls in progress over all instances (their /healthz), twice a second."""
    while True:
        counts = [await asyncio.to_thread(_calls, i) for i in cluster.instances]
        run.in_progress.append(sum(counts))
        await asyncio.sleep(0.5)


def _health_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())
    except OSError:
        return ""


def kill(cluster: Cluster) -> Callable[[Run], None]:
    def disrupt(run: Run) -> None:
        victim, held = _busiest(cluster)
        victim.signal(signal.SIGKILL)
        run.exit_codes[victim.name] = victim.wait(10)
        run.notes.append(f"killed {victim.name} holding {held} calls")
        time.sleep(5)  # calls go on with one instance fewer
        cluster.restart(victim)

    return disrupt


def rolling_restart(cluster: Cluster) -> Callable[[Run], None]:
    def disrupt(run: Run) -> None:
        for instance in cluster.instances:
            instance.signal(signal.SIGTERM)
            run.exit_codes[instance.name] = instance.wait(DRAIN_S + 30)
            cluster.restart(instance)
            run.notes.append(f"restarted {instance.name}")

    return disrupt


def db_outage(pg: PostgresServer) -> Callable[[Run], None]:
    def disrupt(run: Run) -> None:
        pg.stop()
        time.sleep(OUTAGE_S)
        pg.start()
        run.notes.append(f"PostgreSQL down {OUTAGE_S:.0f} s")

    return disrupt


def rows(
    pg: PostgresServer, database: str, sids: list[str], wait_s: float = 60.0
) -> dict[str, Any]:
    """Call-log rows of ``sids`` once every one is closed (or ``wait_s`` has passed)."""
    import psycopg

    deadline = time.monotonic() + wait_s
    while True:
        with psycopg.connect(pg.url(database)) as conn:
            found = conn.execute(
                "SELECT call_id, reason FROM calls "
                "WHERE call_id = ANY(%s) AND ended_at IS NOT NULL",
                (sids,),
            ).fetchall()
        if len(found) == len(sids) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # A row the status callback closed as the fallback is overwritten by the call's own
    # instance a moment later: read the reasons once more after that moment.
    time.sleep(5)
    with psycopg.connect(pg.url(database)) as conn:
        found = conn.execute(
            "SELECT call_id, reason FROM calls WHERE call_id = ANY(%s) AND ended_at IS NOT NULL",
            (sids,),
        ).fetchall()
    return {r[0]: r[1] for r in found}


def measure(run: Run, closed: dict[str, Any]) -> dict[str, Any]:
    # Answered: the webhook gave TwiML (a greeting, or at once a person's <Dial>).
    started = [r for r in run.reports if r.rejected is None and (r.said or r.decided)]
    reached = [r for r in started if r.decided]
    busy = run.in_progress or [0]
    return {
        "calls_in_progress": {"mean": round(sum(busy) / len(busy), 1), "max": max(busy)},
        "started": len(started),
        "reached_person_or_decision": len(reached),
        "lost": len(started) - len(reached),
        "log_rows_missing": sum(1 for r in started if r.call_sid not in closed),
        "missing": [f"{r.call_sid}: {r.decision}" for r in started if r.call_sid not in closed],
        "fallback": sum(1 for r in started if r.decision.startswith("fallback")),
        # Rows whose reason is "fallback": closed by a status callback, or a failed REST update.
        "logged_fallback": sorted(sid for sid, reason in closed.items() if reason == "fallback"),
        # Webhooks refused or never answered: Twilio would play its error message.
        "unanswered": len(run.reports) - len(started),
        "exit_codes": run.exit_codes,
        "notes": run.notes,
        "undecided": [
            f"{r.call_sid}: {r.decision} {r.error or ''}" for r in started if not r.decided
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--calls", type=int, default=8, help="calls kept in flight")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "bench_cluster.json"
    )
    args = parser.parse_args()
    bindir = find_bindir()
    if haproxy_binary() is None or bindir is None:
        print("bench_cluster needs haproxy and PostgreSQL (apt-get install haproxy postgresql)")
        return 1
    pg = PostgresServer(bindir)
    fake = FakeTwilio().start()
    results: dict[str, dict[str, Any]] = {}
    try:
        pg.start()
        database = "bench_cluster"
        url = pg.create_database(database)
        workdir = Path(tempfile.mkdtemp(prefix="voicebot-cluster-"))
        with Cluster(
            workdir, CONFIG, url, fake.url, instances=args.instances, drain_s=DRAIN_S
        ) as cl:
            for name, disrupt in (
                ("kill", kill(cl)),
                ("rolling_restart", rolling_restart(cl)),
                ("db_outage", db_outage(pg)),
            ):
                began = time.monotonic()
                run = asyncio.run(scenario(cl, fake, args.calls, disrupt))
                closed = rows(pg, database, [r.call_sid for r in run.reports])
                results[name] = measure(run, closed)
                results[name]["seconds"] = round(time.monotonic() - began, 1)
                results[name]["load_average_1min"] = round(os.getloadavg()[0], 1)
                print(f"{name}: {json.dumps(results[name], ensure_ascii=False)}", file=sys.stderr)
    finally:
        fake.stop()
        pg.destroy()

    columns = ("started", "reached_person_or_decision", "lost", "log_rows_missing", "fallback")
    print(
        f"{args.instances} instances behind HAProxy, a call every {MEAN_CALL_S / args.calls:.1f} s"
    )
    print("| scenario | " + " | ".join(columns) + " | instance exit codes |")
    print("|---|" + "---:|" * len(columns) + "---|")
    for name, r in results.items():
        codes = ", ".join(f"{k}={v}" for k, v in r["exit_codes"].items()) or "-"
        print(f"| {name} | " + " | ".join(str(r[c]) for c in columns) + f" | {codes} |")
    out = {"instances": args.instances, "calls_in_flight": args.calls, "scenarios": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(out, ensure_ascii=False))
    lost = sum(r["lost"] + r["unanswered"] for r in results.values())
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
