"""The per-message parse of a Twilio ``media`` message: ``json.loads`` against orjson and
msgspec, and the whole ``parse_message`` (JSON, field checks, base64) it sits in (issue #20).

A real ``media`` message (about 300 bytes: 160 bytes of mu-law as base64, sequence numbers as
strings) is parsed ``--n`` times per library, as the UTF-8 bytes picows hands over. Prints a
table, then one JSON object (µs per message). Usage: ``python bench/bench_parse.py [--n
200000]``. orjson is measured when installed; ``parse_message`` decodes a media message with
msgspec into typed fields (see docs/dependencies.md) and anything else with ``json``.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import time
from collections.abc import Callable

from voicebot.telephony.media_stream import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    _Fields,
    _media,
    parse_message,
)

MESSAGE = json.dumps(  # compact, as Twilio sends it
    {
        "event": "media",
        "sequenceNumber": "4711",
        "streamSid": "MZ" + "0123456789abcdef" * 2,
        "media": {
            "track": "inbound",
            "chunk": "4710",
            "timestamp": "94200",
            "payload": base64.b64encode(bytes(range(96, 256))).decode(),
        },
    },
    separators=(",", ":"),
).encode()


def per_message_us(parse: Callable[[bytes], object], n: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            parse(MESSAGE)
        best = min(best, time.perf_counter() - started)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    rows: dict[str, float] = {"json.loads": per_message_us(json.loads, args.n)}
    for name, attr in (("orjson", "loads"), ("msgspec.json", "decode")):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        rows[f"{name}.{attr}"] = per_message_us(getattr(module, attr), args.n)
    rows["parse_message (msgspec fields)"] = per_message_us(parse_message, args.n)
    # what parse_message costs for a message off the usual shape (json, the general checks)
    rows["json.loads + general checks"] = per_message_us(
        lambda text: _media(_Fields("media", json.loads(text)), DEFAULT_MAX_PAYLOAD_BYTES), args.n
    )
    print(f"message: {len(MESSAGE)} bytes")
    for name, us in rows.items():
        print(f"{name:32s} {us:7.2f} µs")
    print(json.dumps({"message_bytes": len(MESSAGE), **{k: round(v, 3) for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
