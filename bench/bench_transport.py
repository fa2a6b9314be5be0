"""What receiving a Twilio media stream costs before any audio is decoded, per 20 ms frame.

    pip install -e '.[bench]'   # the candidates: picows, granian, aiofastnet, uvloop
    python bench/bench_transport.py [--calls 20] [--seconds 8] [--rounds 2]

A server in a child process pinned to one core receives ``--calls`` WebSocket streams of
Twilio-shaped ``media`` messages (160 bytes of mu-law, base64, in the JSON Twilio sends), each
paced at one frame per 20 ms by a client pinned to the other core, and does nothing with them
but count. CPU time of the server process per frame, for:

1. ``stock``: uvicorn's own ``websockets-sansio`` protocol and a Starlette WebSocket route
   (``await ws.receive()`` per message): what any Python ASGI stack pays;
2. ``read-ahead``: the same with ``voicebot.telephony.read_ahead`` (what ``voicebot serve``
   runs on its main port): no socket pause and resume per message;
3. ``parse only``: the same protocol, each message handed over inside the protocol callback
   (no ASGI queue, no task switch, no app): what is left with asyncio and the websockets
   library's frame parser, the floor of any design on this stack;
4. ``read-ahead + aiofastnet``: row 2 with asyncio's socket transports replaced by aiofastnet's
   compiled ones (``aiofastnet.install_policy()``, uvicorn and the app unchanged);
5. ``granian``: the same Starlette route under granian (Rust ASGI server, one worker), whose
   ``receive()`` is still one future per message, resolved from its Rust threads;
6. ``picows``: a picows listener (Cython frame parser, a synchronous callback per frame: no
   future, no task); ``picows + aiofastnet`` the same over aiofastnet's transports; both again
   on uvloop (``picows + aiofastnet + uvloop`` is what ``serve`` on uvloop runs: picows takes
   aiofastnet's transports whenever it is installed, and it depends on it);

7. ``voicebot serve``: the product's event-loop thread (everything but decoding: webhooks,
   the media route, prompts, the dialogue's actions) while ``voicebot simulate --realtime`` runs
   ``--calls`` calls of the capacity benchmark's Korean mix, per frame the callers sent, on
   ``serve``'s default loop (asyncio's, coalescing its polls: ``--coalesce-ms``); and the same
   with uvloop's event loop installed before ``serve`` starts and ``--coalesce-ms 0`` (an
   experiment: the coalescing loop is asyncio's and would replace uvloop's);

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
import contextlib
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

VARIANTS = (
    "stock",
    "read-ahead",
    "parse only",
    "read-ahead + aiofastnet",
    "granian",
    "picows",
    "picows + aiofastnet",
    "read-ahead + uvloop",
    "picows + uvloop",
    "picows + aiofastnet + uvloop",
)
PRODUCT = "voicebot serve, event-loop thread"
PRODUCT_UVLOOP = "voicebot serve on uvloop (experiment), event-loop thread"
# ``serve`` with uvloop's policy installed first: what the product's loop would cost on uvloop,
# measured before ``serve`` offers it (issue #20's loop target).
UVLOOP_LAUNCHER = (
    "-c",
    "import runpy, sys, uvloop; uvloop.install(); sys.argv[0] = 'voicebot';"
    " runpy.run_module('voicebot', run_name='__main__', alter_sys=True)",
)
FRAME_S = 0.02


def _pin(core: int) -> None:
    os.sched_setaffinity(0, {core})


def _own_group_on(core: int) -> None:
    """Pinned, and a process group of its own, so its children (granian's worker) die with it."""
    _pin(core)
    os.setpgid(0, 0)


# ---------------------------------------------------------------------------------------------
# The server child: counts frames; a text message "count" is answered with the count so far


def _starlette_app(frames: list[int]) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def route(ws: WebSocket) -> None:
        await ws.accept()
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["text"] == "count":
                await ws.send_text(str(frames[0]))
                continue
            json.loads(message["text"])
            frames[0] += 1

    return Starlette(routes=[WebSocketRoute("/ws", route)])


_granian_frames = [0]
granian_app = _starlette_app(_granian_frames)  # granian imports its app by name, in its worker


def serve(variant: str, port: int) -> None:
    if variant == "granian":
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels

        Granian(
            "bench_transport:granian_app",
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            workers=1,
            log_level=LogLevels.warning,
            working_dir=Path(__file__).parent,
        ).serve()
        return
    if variant.startswith("picows"):
        run = _serve_picows(port, aiofastnet="aiofastnet" in variant)
        if variant.endswith("uvloop"):
            import uvloop

            uvloop.run(run)
        else:
            asyncio.run(run)
        return
    import uvicorn

    from voicebot.telephony.read_ahead import ReadAheadWebSocketProtocol

    if variant.endswith("aiofastnet"):
        import aiofastnet

        aiofastnet.install_policy()
    frames = [0]

    class ParseOnly(ReadAheadWebSocketProtocol):
        """Hands each text message over where the protocol parsed it: no queue, no app."""

        def send_receive_event_to_app(self) -> None:
            data = b"".join(self.frames)
            if data == b"count":
                super().send_receive_event_to_app()
                return
            self.frames = []
            json.loads(data.decode())
            frames[0] += 1

    protocol: Any = {
        "stock": "websockets-sansio",
        "read-ahead": ReadAheadWebSocketProtocol,
        "read-ahead + aiofastnet": ReadAheadWebSocketProtocol,
        "read-ahead + uvloop": ReadAheadWebSocketProtocol,
        "parse only": ParseOnly,
    }[variant]
    config = uvicorn.Config(
        _starlette_app(frames),
        port=port,
        log_level="warning",
        lifespan="off",
        ws=protocol,
        loop="uvloop" if variant.endswith("uvloop") else "asyncio",
    )
    uvicorn.Server(config).run()


async def _serve_picows(port: int, aiofastnet: bool) -> None:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    frames = [0]

    class Counter(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is not WSMsgType.TEXT:
                if frame.msg_type is WSMsgType.CLOSE:
                    transport.send_close(frame.get_close_code())
                    transport.disconnect()
                return
            data = frame.get_payload_as_bytes()
            if data == b"count":
                transport.send(WSMsgType.TEXT, str(frames[0]).encode())
                return
            json.loads(data)
            frames[0] += 1

    server = await ws_create_server(
        lambda _request: Counter(), "127.0.0.1", port, use_aiofastnet=aiofastnet
    )
    await server.serve_forever()


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


async def quiet(port: int, calls: int, seconds: float) -> None:
    """``calls`` streams open and silent for ``seconds``: what the server costs at rest."""
    from websockets.asyncio.client import connect

    async def stream() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws", compression=None, ping_interval=None):
            await asyncio.sleep(seconds)

    await asyncio.gather(*(stream() for _ in range(calls)))


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants (granian serves from a child process)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_capacity import stat_cpu_s

    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += stat_cpu_s(Path(f"/proc/{p}/stat"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError):
            continue  # gone meanwhile
    return total


def read_counter(proc: subprocess.Popen[str], port: int) -> tuple[int, float]:
    """(frames the server counted, CPU seconds it used so far)."""

    async def ask() -> int:
        from websockets.asyncio.client import connect

        async with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
            await ws.send("count")
            return int(await ws.recv())

    frames = asyncio.run(ask())
    return frames, tree_cpu(proc.pid)


def transport_trial(
    variant: str, calls: int, seconds: float, server_core: int
) -> tuple[float, float]:
    """Server CPU microseconds per frame for one variant, and its CPU milliseconds per second
    with ``calls`` quiet streams open."""
    from voicebot.telephony.testing.serving import free_port  # not in the --serve child

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", variant, "--port", str(port)],
        text=True,
        preexec_fn=lambda: _own_group_on(server_core),
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
        time.sleep(1.0)  # granian's worker starts after its listener
        frames0, cpu0 = read_counter(proc, port)
        asyncio.run(load(port, calls, seconds))
        time.sleep(0.3)
        frames1, cpu1 = read_counter(proc, port)
        idle_s = min(seconds, 5.0)
        asyncio.run(quiet(port, calls, idle_s))
        cpu2 = tree_cpu(proc.pid)
    finally:
        # Its counters are read; a graceful stop would wait on the open streams. The whole
        # group: granian's worker is a child process.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    if frames1 - frames0 < calls * seconds / FRAME_S * 0.99:
        raise SystemExit(f"{variant}: {frames1 - frames0} frames arrived")
    return 1e6 * (cpu1 - cpu0) / (frames1 - frames0), 1e3 * (cpu2 - cpu1) / idle_s


def loop_thread_cpu(pid: int) -> float:
    """CPU seconds of a process's main thread (``serve``'s event loop: its tid is the pid)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_capacity import stat_cpu_s

    return stat_cpu_s(Path(f"/proc/{pid}/task/{pid}/stat"))


def loop_us_per_frame(server: Any, load_core: int, calls: int) -> float:
    """Event-loop thread CPU microseconds per inbound frame of a running ``serve``
    (``bench_capacity.Server``) while ``calls`` simulated calls go through it."""
    import urllib.request

    sys.path.insert(0, str(ROOT / "bench"))
    import bench_capacity as bc

    from voicebot.telephony.settings import ServerSettings

    def chunks() -> float:
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
            lines = r.read().decode().splitlines()
        return float(
            next(x for x in lines if x.startswith("voicebot_decode_seconds_count ")).split()[1]
        )

    per_chunk = ServerSettings(public_url="http://x", auth_token="x").feed_bytes / 160  # frames
    cpu0, n0 = loop_thread_cpu(server.proc.pid), chunks()
    bc.simulate(server, load_core, calls, [bc.AUDIO / m for m in bc.MIX])
    cpu1, n1 = loop_thread_cpu(server.proc.pid), chunks()
    return 1e6 * (cpu1 - cpu0) / ((n1 - n0) * per_chunk)


def product_trial(calls: int, server_core: int, load_core: int, uvloop: bool = False) -> float:
    """Event-loop thread CPU microseconds per inbound frame of ``voicebot serve``."""
    import tempfile

    sys.path.insert(0, str(ROOT / "bench"))
    import bench_capacity as bc

    wavs = [bc.AUDIO / m for m in bc.MIX]
    with tempfile.TemporaryDirectory() as tmp:
        launcher = UVLOOP_LAUNCHER if uvloop else ("-m", "voicebot")
        # serve's coalescing loop (its default) is asyncio's and would replace uvloop's
        args = (*bc.NO_ADMISSION, "--coalesce-ms", "0") if uvloop else bc.NO_ADMISSION
        server = bc.Server(server_core, bc.CONFIG, Path(tmp), args=args, launcher=launcher)
        try:
            bc.simulate(server, load_core, len(wavs), wavs)  # first-call paths
            return loop_us_per_frame(server, load_core, calls)
        finally:
            server.stop()


def bare_vosk_ms_per_s(server_core: int, calls: int) -> float:
    """A bare Vosk loop (bench_capacity's bare row) on the server core: CPU ms per audio second."""
    code = (
        "import sys, time, json; sys.path.insert(0, 'bench');"
        "import bench_capacity as bc; marks = {}; orig = bc.paced\n"
        "def paced(*args, **kwargs):\n"
        "    marks['t0'] = time.process_time(); yield from orig(*args, **kwargs)\n"
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
    import importlib.util

    candidates = ("picows", "granian", "aiofastnet", "uvloop")
    missing = [m for m in candidates if not importlib.util.find_spec(m)]
    if missing:
        print(f"bench_transport: {', '.join(missing)} not installed: pip install -e '.[bench]'")
        return 2
    cores = sorted(os.sched_getaffinity(0))
    server_core, load_core = cores[0], cores[-1]
    _pin(load_core)
    per_frame: dict[str, list[float]] = {v: [] for v in (*VARIANTS, PRODUCT, PRODUCT_UVLOOP)}
    idle: dict[str, list[float]] = {v: [] for v in VARIANTS}
    bare: list[float] = []
    for _ in range(args.rounds):
        bare.append(bare_vosk_ms_per_s(server_core, args.calls))
        for variant in VARIANTS:
            us, rest = transport_trial(variant, args.calls, args.seconds, server_core)
            per_frame[variant].append(us)
            idle[variant].append(rest)
            print(f"  {variant}: {us:.0f} µs per frame, {rest:.1f} ms/s idle", file=sys.stderr)
        for row, on_uvloop in ((PRODUCT, False), (PRODUCT_UVLOOP, True)):
            us = product_trial(args.calls, server_core, load_core, uvloop=on_uvloop)
            per_frame[row].append(us)
            print(f"  {row}: {us:.0f} µs per frame", file=sys.stderr)
    vosk_ms = statistics.median(bare)
    rows = {v: statistics.median(per_frame[v]) for v in per_frame}
    print(f"\n{args.calls} streams x {args.seconds:g} s, {args.rounds} rounds (medians)\n")
    at_rest = {v: statistics.median(idle[v]) for v in idle}
    print(
        "| server | µs CPU per frame | ms CPU per call-second | ÷ bare Vosk per call-second "
        f"| idle, {args.calls} quiet streams: ms CPU per s |"
    )
    print("|---|---:|---:|---:|---:|")
    for v in per_frame:
        ms = rows[v] / FRAME_S / 1000
        quiet_ms = f"{at_rest[v]:.1f}" if v in at_rest else ""
        print(f"| {v} | {rows[v]:.0f} | {ms:.1f} | {ms / vosk_ms:.2f} | {quiet_ms} |")
    print(f"| bare Vosk loop, for scale | | {vosk_ms:.1f} | 1.00 | |")
    result = {
        "calls": args.calls,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "us_per_frame": {v: [round(x, 1) for x in per_frame[v]] for v in per_frame},
        "idle_ms_per_s": {v: [round(x, 2) for x in idle[v]] for v in idle},
        "bare_vosk_ms_per_audio_s": [round(x, 2) for x in bare],
        "stock_us": round(rows["stock"], 1),
        "read_ahead_us": round(rows["read-ahead"], 1),
        "parse_only_us": round(rows["parse only"], 1),
        "aiofastnet_us": round(rows["read-ahead + aiofastnet"], 1),
        "granian_us": round(rows["granian"], 1),
        "picows_us": round(rows["picows"], 1),
        "picows_aiofastnet_us": round(rows["picows + aiofastnet"], 1),
        "picows_uvloop_us": round(rows["picows + uvloop"], 1),
        "picows_aiofastnet_uvloop_us": round(rows["picows + aiofastnet + uvloop"], 1),
        "voicebot_loop_us": round(rows[PRODUCT], 1),
        "voicebot_uvloop_loop_us": round(rows[PRODUCT_UVLOOP], 1),
        "bare_vosk_ms": round(vosk_ms, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
