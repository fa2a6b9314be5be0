"""The sentence encoder and its disk cache, with the real model: same text, same vector; a
restart encodes nothing again; a damaged cache file is rebuilt, never fatal."""

from __future__ import annotations

import io
import os
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from test_matcher import SUPPORT

from voicebot.cli.main import main
from voicebot.core.config import Thresholds
from voicebot.matching.embedding_cache import (
    Embeddings,
    cache_file,
    shared_embeddings,
    use_shared_embeddings,
)
from voicebot.matching.encoder import Encoder, TwoPrefixes, default_encoder
from voicebot.matching.matcher import Matcher


class Counting:
    """The real encoder, counting the texts it was asked to encode; ``passage`` counts those of
    its second reading (the passage: prefix a small config's texts also get)."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.encoded = 0
        self.passage: Counting | None = None

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded += len(texts)
        return self.inner.encode(texts)

    def passage_view(self) -> Encoder:
        if self.passage is None:
            assert isinstance(self.inner, TwoPrefixes)
            self.passage = Counting(self.inner.passage_view())
        return self.passage


def test_vectors_are_unit_length_and_identical_across_calls_and_threads() -> None:
    encoder = default_encoder()
    texts = ["jag har glömt mitt lösenord", "what's the weather in Paris", ""]
    first = encoder.encode(texts)
    assert first.shape == (3, encoder.dim) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    seen: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: seen.append(encoder.encode(texts))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(first, other) for other in seen)
    assert np.array_equal(encoder.encode(texts[:1])[0], first[0])  # alone or in a batch


def test_a_restart_encodes_no_config_text_again(tmp_path: Path) -> None:
    path = cache_file("test", tmp_path)
    first = Counting(default_encoder())
    before = Matcher(SUPPORT, Thresholds(), embeddings=Embeddings(first, path))
    assert first.encoded > 0 and path.exists()

    second = Counting(default_encoder())
    after = Matcher(SUPPORT, Thresholds(), embeddings=Embeddings(second, path))
    assert second.encoded == 0  # every phrase and example came from the file
    text = "i forgot my pasword"
    assert np.array_equal(before.scores(text), after.scores(text))


def test_a_small_config_reads_its_texts_two_ways_once_and_a_caller_one_way(
    tmp_path: Path,
) -> None:
    path = cache_file("test", tmp_path)
    first = Counting(default_encoder())
    before = Matcher(SUPPORT, Thresholds(), embeddings=Embeddings(first, path))
    assert first.passage is not None and first.encoded > 0
    assert first.passage.encoded == first.encoded  # every phrase and example, read both ways
    passages = cache_file(first.passage.id, tmp_path).name
    assert {p.name for p in tmp_path.rglob("*.npz")} == {"test.npz", passages}

    second = Counting(default_encoder())
    after = Matcher(SUPPORT, Thresholds(), embeddings=Embeddings(second, path))
    assert second.passage is not None  # a restart reads both files and encodes nothing
    assert (second.encoded, second.passage.encoded) == (0, 0)
    text = "i forgot my pasword"
    assert np.array_equal(before.scores(text), after.scores(text))
    read = second.encoded
    after.match("my bike was stolen")
    assert (second.encoded - read, second.passage.encoded) == (1, 0)  # a caller's words: once


def test_only_new_texts_are_encoded_after_an_edit(tmp_path: Path) -> None:
    path = cache_file("test", tmp_path)
    Embeddings(default_encoder(), path).texts(["reset my password", "change my address"])
    counting = Counting(default_encoder())
    vectors = Embeddings(counting, path).texts(["change my address", "new phrase", "new phrase"])
    assert counting.encoded == 1
    assert np.array_equal(vectors[1], vectors[2])


@pytest.mark.parametrize(
    "damage",
    [b"", b"not a numpy file at all", b"PK\x03\x04 truncated zip"],
    ids=["empty", "garbage", "truncated"],
)
def test_a_corrupt_cache_is_rebuilt_with_a_warning(tmp_path: Path, damage: bytes) -> None:
    path = cache_file("test", tmp_path)
    clean = Matcher(SUPPORT, Thresholds(), embeddings=Embeddings(default_encoder(), path))
    path.write_bytes(damage)

    warnings: list[str] = []
    counting = Counting(default_encoder())
    rebuilt = Matcher(
        SUPPORT, Thresholds(), embeddings=Embeddings(counting, path, warn=warnings.append)
    )
    assert len(warnings) == 1 and "unreadable" in warnings[0] and "rebuilding" in warnings[0]
    assert counting.encoded > 0
    assert rebuilt.match("reset my password") == clean.match("reset my password")
    # ... and the rebuilt file is good again: the next start encodes nothing.
    again = Counting(default_encoder())
    Matcher(SUPPORT, Thresholds(), embeddings=Embeddings(again, path, warn=warnings.append))
    assert again.encoded == 0 and len(warnings) == 1


def test_a_cache_of_another_size_is_rebuilt(tmp_path: Path) -> None:
    path = cache_file("test", tmp_path)
    path.parent.mkdir(parents=True)
    np.savez(path, keys=np.zeros((2, 16), np.uint8), vectors=np.zeros((2, 7), np.float32))
    warnings: list[str] = []
    vectors = Embeddings(default_encoder(), path, warn=warnings.append).texts(["hello"])
    assert vectors.shape == (1, default_encoder().dim) and len(warnings) == 1


def test_a_long_first_build_shows_a_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    texts = [f"question number {i} about my invoice" for i in range(70)]
    shown = Terminal()
    Embeddings(default_encoder(), cache_file("a", tmp_path), progress=shown).texts(texts)
    assert "encoding 70 config texts once" in shown.getvalue()
    assert "70/70 texts" in shown.getvalue()

    quiet = io.StringIO()  # not a terminal, and short: nothing at all
    Embeddings(default_encoder(), cache_file("b", tmp_path), progress=quiet).texts(texts)
    assert quiet.getvalue() == ""

    second = Terminal()  # a small config's second reading says what it is
    first = Embeddings(default_encoder(), cache_file("c", tmp_path), progress=second)
    passages = first.passages()
    assert passages is not None
    passages.texts(texts)
    assert "encoding 70 config texts a second way (passage:) once" in second.getvalue()


def planted_bomb(path: Path, rows: int = 4_000_000_000) -> None:
    """A few hundred bytes whose vectors header claims ``rows`` x 16 floats (59.6 GiB at 4e9):
    what a truncated copy, a disk error or a hostile hand can leave in the data folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = io.BytesIO()
    np.save(keys, np.zeros((1, 16), np.uint8))
    vectors = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        vectors, {"descr": "<f4", "fortran_order": False, "shape": (rows, 16)}
    )
    vectors.write(b"\0" * 64)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("keys.npy", keys.getvalue())
        archive.writestr("vectors.npy", vectors.getvalue())
    assert path.stat().st_size < 1000


def test_a_cache_whose_header_claims_a_huge_shape_is_rebuilt_without_allocating(
    tmp_path: Path,
) -> None:
    path = cache_file("test", tmp_path)
    planted_bomb(path)
    warnings: list[str] = []
    vectors = Embeddings(default_encoder(), path, warn=warnings.append).texts(["hello"])
    assert vectors.shape == (1, default_encoder().dim)
    assert len(warnings) == 1 and "rebuilding" in warnings[0] and "\n" not in warnings[0]
    assert path.with_suffix(".corrupt").exists()  # set aside for a look
    again = Counting(default_encoder())
    Embeddings(again, path, warn=warnings.append).texts(["hello"])
    assert again.encoded == 0 and len(warnings) == 1  # the rebuilt file reads


def test_eval_survives_a_cache_whose_header_claims_a_huge_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``voicebot eval`` (and ``serve``, which builds its matcher the same way) carry on."""
    path = cache_file(default_encoder().id, tmp_path)
    planted_bomb(path)
    labelled = tmp_path / "calls.csv"
    labelled.write_text("text,intent\nI forgot my password,login_password\n", encoding="utf-8")
    previous = shared_embeddings()
    use_shared_embeddings(Embeddings(default_encoder(), path))
    try:
        code = main(["eval", str(labelled)])
    finally:
        use_shared_embeddings(previous)
    _, err = capsys.readouterr()
    assert code == 0, err
    assert "embedding cache" in err and "Traceback" not in err


def test_a_symlink_planted_at_the_temporary_name_is_not_written_through(tmp_path: Path) -> None:
    path = cache_file("test", tmp_path)
    path.parent.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    planted = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # the name it used to use
    planted.symlink_to(victim)
    Embeddings(default_encoder(), path).texts(["hello"])
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert Embeddings(default_encoder(), path).texts(["hello"]).shape[0] == 1
