"""What receiving a Twilio media stream costs before any audio is decoded, per 20 ms frame.

    python bench/bench_transport.py [--calls 20] [--seconds 8] [--rounds 2]

A server in a child process pinned to one core receives ``--calls`` WebSocket streams of
Twilio-shaped ``media`` messages (160 bytes of mu-law, base64, in the JSON Twilio sends), each
paced at one frame per 20 ms by a client pinned to the other core, and does nothing with them
but count. CPU time of the server process per frame, for:

1. ``stock``: uvicorn's own ``websockets-sansio`` protocol and a Starlette WebSocket route
   (``await ws.receive()`` per message): what any Python ASGI stack pays;
2. ``read-ahead``: the same with ``voicebot.telephony.read_ahead`` (what ``voicebot serve``
   runs): no socket pause and resume per message;
3. ``parse only``: the same protocol, each message handed over inside the protocol callback
   (no ASGI queue, no task switch, no app): what is left with asyncio and the websockets
   library's frame parser, the floor of any design on this stack;

4. ``voicebot serve``: the product's event-loop thread (everything but decoding: webhooks,
   the media route, prompts, the dialogue's actions) while ``voicebot simulate --realtime`` runs
   ``--calls`` calls of the capacity benchmark's Korean mix, per frame the callers sent;

and, in the same run, a bare Vosk loop's CPU per second of audio (the capacity benchmark's
bare row, one recogniser per stream, 0.1 s chunks). A frame costs the server the same whatever
the caller says, and a call sends 50 a second, so µs per frame / 20 is ms of CPU per second of
call: the share of a core the transport takes before the recogniser starts, set against what
the recogniser takes.
Rounds alternate the variants, and the table gives each one's median. The last line is one
JSON object; bench/results/bench_transport.json has the details.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("stock", "read-ahead", "parse only")
PRODUCT = "voicebot serve, event-loop thread"
FRAME_S = 0.02


def _pin(core: int) -> None:
    os.sched_setaffinity(0, {core})


# ---------------------------------------------------------------------------------------------
# The server child: counts frames; SIGUSR1 prints "frames cpu_seconds"


def serve(variant: str, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    from voicebot.telephony.read_ahead import ReadAheadWebSocketProtocol

    frames = [0]

    class ParseOnly(ReadAheadWebSocketProtocol):
        """Hands each text message over where the protocol parsed it: no queue, no app."""

        def send_receive_event_to_app(self) -> None:
            data = b"".join(self.frames)
            self.frames = []
            json.loads(data.decode())
            frames[0] += 1

    async def route(ws: WebSocket) -> None:
        await ws.accept()
        if variant == "parse only":
            await asyncio.Event().wait()  # the protocol takes every message
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            json.loads(message["text"])
            frames[0] += 1

    protocol: Any = {
        "stock": "websockets-sansio",
        "read-ahead": ReadAheadWebSocketProtocol,
        "parse only": ParseOnly,
    }[variant]
    app = Starlette(routes=[WebSocketRoute("/ws", route)])
    config = uvicorn.Config(app, port=port, log_level="warning", lifespan="off", ws=protocol)

    def report(*_: object) -> None:
        t = os.times()
        print(frames[0], t.user + t.system, flush=True)

    signal.signal(signal.SIGUSR1, report)
    uvicorn.Server(config).run()


# ---------------------------------------------------------------------------------------------
# The load: n paced streams


async def load(port: int, calls: int, seconds: float) -> None:
    from websockets.asyncio.client import connect

    payload = base64.b64encode(bytes(160)).decode()

    async def stream(i: int) -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
            start = time.perf_counter() + i * 0.001
            for k in range(int(seconds / FRAME_S)):
                wait = start + k * FRAME_S - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                media = {"track": "inbound", "chunk": str(k + 1), "timestamp": str(k * 20)}
                media["payload"] = payload
                await ws.send(
                    json.dumps(
                        {
                            "event": "media",
                            "sequenceNumber": str(k + 2),
                            "media": media,
                            "streamSid": "MZ" + "0" * 32,
                        }
                    )
                )

    await asyncio.gather(*(stream(i) for i in range(calls)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_counter(proc: subprocess.Popen[str]) -> tuple[int, float]:
    proc.send_signal(signal.SIGUSR1)
    assert proc.stdout is not None
    frames, cpu = proc.stdout.readline().split()
    return int(frames), float(cpu)


def transport_trial(variant: str, calls: int, seconds: float, server_core: int) -> float:
    """Server CPU microseconds per frame for one variant."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", variant, "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: _pin(server_core),
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"{variant} server did not start") from None
                time.sleep(0.1)
        frames0, cpu0 = read_counter(proc)
        asyncio.run(load(port, calls, seconds))
        time.sleep(0.3)
        frames1, cpu1 = read_counter(proc)
    finally:
        proc.kill()  # its counters are read; a graceful stop would wait on the open streams
        proc.wait(10)
    if frames1 - frames0 < calls * seconds / FRAME_S * 0.99:
        raise SystemExit(f"{variant}: {frames1 - frames0} frames arrived")
    return 1e6 * (cpu1 - cpu0) / (frames1 - frames0)


def product_trial(calls: int, server_core: int, load_core: int) -> float:
    """Event-loop thread CPU microseconds per inbound frame of ``voicebot serve``."""
    import tempfile
    import urllib.request

    sys.path.insert(0, str(ROOT / "bench"))
    import bench_capacity as bc

    from voicebot.telephony.settings import ServerSettings

    def loop_cpu(pid: int) -> float:  # the main thread is the event loop; its tid is the pid
        fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def chunks(url: str) -> float:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
            lines = r.read().decode().splitlines()
        return float(
            next(x for x in lines if x.startswith("voicebot_decode_seconds_count ")).split()[1]
        )

    per_chunk = ServerSettings(public_url="http://x", auth_token="x").feed_bytes / 160  # frames
    wavs = [bc.AUDIO / m for m in bc.MIX]
    with tempfile.TemporaryDirectory() as tmp:
        server = bc.Server(server_core, bc.CONFIG, Path(tmp))
        try:
            bc.simulate(server, load_core, len(wavs), wavs)  # first-call paths
            cpu0, n0 = loop_cpu(server.proc.pid), chunks(server.url)
            bc.simulate(server, load_core, calls, wavs)
            cpu1, n1 = loop_cpu(server.proc.pid), chunks(server.url)
        finally:
            server.stop()
    return 1e6 * (cpu1 - cpu0) / ((n1 - n0) * per_chunk)


def bare_vosk_ms_per_s(server_core: int, calls: int) -> float:
    """A bare Vosk loop (bench_capacity's bare row) on the server core: CPU ms per audio second."""
    code = (
        "import sys, time, json; sys.path.insert(0, 'bench');"
        "import bench_capacity as bc; marks = {}; orig = bc.paced\n"
        "def paced(lengths, chunk):\n"
        "    marks['t0'] = time.process_time(); yield from orig(lengths, chunk)\n"
        "    marks['t1'] = time.process_time()\n"
        "bc.paced = paced\n"
        f"bc.vosk_worker({calls}, 'calls', False)\n"
        f"audio = sum(len(bc.stream_audio(i, 'calls')) for i in range({calls})) / bc.RATE\n"
        "print(1000 * (marks['t1'] - marks['t0']) / audio)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=lambda: _pin(server_core),
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bare Vosk loop failed: {done.stderr[-1500:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "bench_transport.json"
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port)
        return 0
    cores = sorted(os.sched_getaffinity(0))
    server_core, load_core = cores[0], cores[-1]
    _pin(load_core)
    per_frame: dict[str, list[float]] = {v: [] for v in (*VARIANTS, PRODUCT)}
    bare: list[float] = []
    for _ in range(args.rounds):
        bare.append(bare_vosk_ms_per_s(server_core, args.calls))
        for variant in VARIANTS:
            us = transport_trial(variant, args.calls, args.seconds, server_core)
            per_frame[variant].append(us)
            print(f"  {variant}: {us:.0f} µs per frame", file=sys.stderr)
        us = product_trial(args.calls, server_core, load_core)
        per_frame[PRODUCT].append(us)
        print(f"  {PRODUCT}: {us:.0f} µs per frame", file=sys.stderr)
    vosk_ms = statistics.median(bare)
    rows = {v: statistics.median(per_frame[v]) for v in per_frame}
    print(f"\n{args.calls} streams x {args.seconds:g} s, {args.rounds} rounds (medians)\n")
    print("| server | µs CPU per frame | ms CPU per call-second | ÷ bare Vosk per call-second |")
    print("|---|---:|---:|---:|")
    for v in per_frame:
        ms = rows[v] / FRAME_S / 1000
        print(f"| {v} | {rows[v]:.0f} | {ms:.1f} | {ms / vosk_ms:.2f} |")
    print(f"| bare Vosk loop, for scale | | {vosk_ms:.1f} | 1.00 |")
    result = {
        "calls": args.calls,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "us_per_frame": {v: [round(x, 1) for x in per_frame[v]] for v in per_frame},
        "bare_vosk_ms_per_audio_s": [round(x, 2) for x in bare],
        "stock_us": round(rows["stock"], 1),
        "read_ahead_us": round(rows["read-ahead"], 1),
        "parse_only_us": round(rows["parse only"], 1),
        "voicebot_loop_us": round(rows[PRODUCT], 1),
        "bare_vosk_ms": round(vosk_ms, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
