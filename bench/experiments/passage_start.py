"""Issue #22, the passage rows' cost at start: a Swedish 4-phrase config (bench/data/sv-support,
108 texts) built twice into an empty cache folder, with and without the second reading of its
texts (``matcher.PASSAGE_WEIGHT``). The first build encodes; the second reads the cache, as
every later start, reload or ``voicebot eval`` does. A caller's utterance costs the same either
way (it is read once), which ``bench/bench_matcher.py`` measures.

    python -m bench.experiments.passage_start
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import eval_datasets as ed

from voicebot.matching import matcher
from voicebot.matching.embedding_cache import Embeddings, cache_file
from voicebot.matching.encoder import default_encoder


def main() -> None:
    folder = ed.OWN_DATA / ed.SWEDISH
    config = ed._import(folder / "train.csv", ed.HERE / "routes" / f"{ed.SWEDISH}.yaml", None)
    intents = tuple(config.intents.values())
    texts = sum(len(i.phrases) + len(i.examples) for i in intents)
    encoder = default_encoder()
    encoder.encode(["warm up"])  # the model's load is no part of either figure
    shipped = matcher.PASSAGE_WEIGHT
    print("| passage rows | texts | first start s | second start s |")
    print("|---|---|---|---|")
    for weight in (0.0, shipped):
        matcher.PASSAGE_WEIGHT = weight
        cache = cache_file(encoder.id, Path(tempfile.mkdtemp()))
        took = []
        for _ in range(2):
            start = time.perf_counter()
            matcher.Matcher(intents, config.thresholds, embeddings=Embeddings(encoder, cache))
            took.append(time.perf_counter() - start)
        label = f"weight {weight}" if weight else "none"
        print(f"| {label} | {texts} | {took[0]:.2f} | {took[1]:.2f} |")
    matcher.PASSAGE_WEIGHT = shipped


if __name__ == "__main__":
    main()
