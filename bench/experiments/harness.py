"""Shared set-up for matcher experiments: configs imported like a customer does, on valid text.

from bench.experiments.harness import configs, asr_noise
"""

from __future__ import annotations

import csv
import random
import tempfile
from pathlib import Path

import yaml

from voicebot.core.config import LanguageConfig
from voicebot.loading.importer import import_labelled
from voicebot.loading.loader import load_language_text
from voicebot.matching.evaluation import read_labelled

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/data/text")
HELD_OUT = {"hwu64": ("weather", "cooking", "news"), "snips": ("GetWeather",)}


def scenario(dataset: str, intent: str) -> str:
    return intent.split("_")[0] if dataset == "hwu64" else intent


def _import(train: Path, routes: Path, cap: int | None) -> LanguageConfig:
    return load_language_text(import_labelled(train, routes, cap, 0), f"<{train.name}>")


def configs(
    dataset: str, split: str = "valid"
) -> list[tuple[str, LanguageConfig, list[tuple[str, str]]]]:
    """(setting, config, labelled rows) for full, 10-shot, oos full, oos 10-shot."""
    folder = DATA / dataset
    routes = HERE.parent / "routes" / f"{dataset}.yaml"
    rows = read_labelled(folder / f"{split}.csv")
    out = [("full", _import(folder / "train.csv", routes, None), rows)]
    few = folder / "train_10.csv"
    out.append(
        (
            "10-shot",
            _import(few, routes, None)
            if few.exists()
            else _import(folder / "train.csv", routes, 10),
            rows,
        )
    )
    held = HELD_OUT[dataset]
    with tempfile.TemporaryDirectory() as tmp:
        train = [
            r for r in read_labelled(folder / "train.csv") if scenario(dataset, r[1]) not in held
        ]
        t = Path(tmp) / "train.csv"
        with t.open("w", newline="") as h:
            w = csv.writer(h)
            w.writerow(["text", "intent"])
            w.writerows(train)
        spec = yaml.safe_load(routes.read_text())
        spec["routes"] = {
            k: v for k, v in spec["routes"].items() if scenario(dataset, k) not in held
        }
        r = Path(tmp) / "routes.yaml"
        r.write_text(yaml.safe_dump(spec))
        oos_rows = [(x, "oos" if scenario(dataset, i) in held else i) for x, i in rows]
        out.append(("oos full", _import(t, r, None), oos_rows))
        out.append(("oos 10-shot", _import(t, r, 10), oos_rows))
    return out


def asr_noise(text: str, rng: random.Random, drop: float = 0.1, sub: float = 0.1) -> str:
    """Simulated recognition errors: drop 10% of words, substitute a letter in 10% of words."""
    out = []
    letters = "abcdefghijklmnopqrstuvwxyz"
    for word in text.split():
        if rng.random() < drop:
            continue
        if rng.random() < sub and word:
            i = rng.randrange(len(word))
            word = word[:i] + rng.choice(letters) + word[i + 1 :]
        out.append(word)
    return " ".join(out) or text
