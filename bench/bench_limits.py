"""What an unsigned request body costs the server: peak memory and time to refuse it, with the
body limit (``ServerSettings.max_body_bytes``, 64 KiB) and without one, side by side.

    python bench/bench_limits.py [--mb 100] [--out bench/results/bench_limits.json]

Each case runs ``voicebot serve``'s app and uvicorn configuration (``cli.serve.uvicorn_config``)
in a fresh child process; the parent POSTs ``--mb`` MB to ``/twilio/status`` without a
signature, as one body with a Content-Length and as a chunked upload without one, and reads
the child's peak resident memory (VmHWM) before and after. "no limit" sets the limit above the
body size, which is how the server behaved before the limit existed: read it all, then refuse
the missing signature with 403.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from voicebot.telephony.testing.serving import free_port

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys
sys.path.insert(0, {root!r})
import uvicorn
from voicebot.cli.serve import uvicorn_config
from voicebot.loading.loader import ConfigHolder
from voicebot.telephony.app import SpeechProvider, VoiceServer
from voicebot.telephony.rest import TwilioRest
from voicebot.telephony.settings import ServerSettings

def no_model(config):
    raise RuntimeError("no call expected")

server = VoiceServer(
    ServerSettings(public_url="http://127.0.0.1", auth_token="t", max_body_bytes={limit}),
    ConfigHolder({config!r}),
    TwilioRest("AC" + "0" * 32, "t", base_url="http://127.0.0.1:9"),
    SpeechProvider(no_model),
)
uvicorn.Server(uvicorn_config(server, "127.0.0.1", {port}, log_level="warning")).run()
"""


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def _post(port: int, size: int, chunked: bool) -> tuple[int, float]:
    """Send ``size`` bytes (stopping early once the server answers); its status and the time."""
    head = b"POST /twilio/status HTTP/1.1\r\nHost: x\r\n"
    head += b"Content-Type: application/x-www-form-urlencoded\r\n"
    head += (
        b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % size
    )
    piece = b"a" * 65536
    data = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    answer = bytearray()
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(120)

        def read() -> None:
            with contextlib.suppress(OSError):
                while b"\r\n" not in answer and (chunk := sock.recv(4096)):
                    answer.extend(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        with contextlib.suppress(OSError):  # the server may close once it has answered
            sock.sendall(head)
            for _ in range(size // len(piece)):
                if answer:
                    break
                sock.sendall(data)
            if chunked and not answer:
                sock.sendall(b"0\r\n\r\n")
        reader.join()
    status = int(answer.split()[1]) if answer.startswith(b"HTTP/") else 0
    return status, time.perf_counter() - started


def run_case(limit: int, size: int, chunked: bool) -> dict[str, Any]:
    port = free_port()
    code = CHILD.format(
        root=str(ROOT),
        limit=limit,
        port=port,
        config=str(ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"),
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        before = _peak_kb(child.pid)
        status, seconds = _post(port, size, chunked)
        time.sleep(0.2)
        after = _peak_kb(child.pid)
    finally:
        child.terminate()
        child.wait(10)
    return {
        "limit_bytes": limit,
        "chunked": chunked,
        "status": status,
        "seconds": round(seconds, 3),
        "peak_rss_growth_mb": round((after - before) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="body size in MB (default 100)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "bench_limits.json"
    )
    args = parser.parse_args()
    size = args.mb * 2**20
    rows = []
    for chunked in (False, True):
        for limit in (64 * 1024, size + 1):
            rows.append(run_case(limit, size, chunked))
    print(f"| {args.mb} MB unsigned POST | body limit | status | seconds | peak RSS growth |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        how = "chunked" if r["chunked"] else "Content-Length"
        limit = "64 KiB" if r["limit_bytes"] == 64 * 1024 else "none"
        print(
            f"| {how} | {limit} | {r['status']} | {r['seconds']:.2f} | "
            f"{r['peak_rss_growth_mb']:.1f} MB |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"body_mb": args.mb, "cases": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
