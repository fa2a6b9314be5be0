"""``voicebot grammar build`` and how calls pick up the built grammar."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from voicebot.cli.main import main
from voicebot.loading.loader import load_deployment, load_language
from voicebot.speech.grammar import (
    compile_grammar,
    grammar_path,
    runtime_grammar,
    unknown_grammar_words,
)
from voicebot.speech.transcripts import UNK
from voicebot.speech.vosk_model import SpeechModel

ROOT = Path(__file__).resolve().parent.parent
KO_CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"


def build(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["grammar", "build", *args]) == 0
    out, _ = capsys.readouterr()
    return out


def test_build_is_byte_identical_across_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    build(capsys, "--out", str(tmp_path / "one"))
    out = build(capsys, "--out", str(tmp_path / "two"))
    for lang in ("en-US", "sv-SE"):
        one = (tmp_path / "one" / lang / "grammar.json").read_bytes()
        two = (tmp_path / "two" / lang / "grammar.json").read_bytes()
        assert one == two
        assert f"{lang}: wrote {tmp_path / 'two' / lang / 'grammar.json'}" in out


def test_built_grammar_holds_the_vocabulary_of_the_intents(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    build(capsys, "--config", str(KO_CONFIG), "--out", str(tmp_path))
    doc = json.loads((tmp_path / "ko-KR" / "grammar.json").read_text(encoding="utf-8"))
    phrases = doc["phrases"]
    assert phrases[-1] == UNK and phrases[:-1] == sorted(phrases[:-1])
    for expected in ("요금 납부", "아이디 비밀 번호", "상담원", "네", "아니요", "강의 예약"):
        assert expected in phrases  # phrases, escape/yes/no words
    assert "회원 가입" in phrases  # a label that is also a phrase appears once
    assert phrases.count("회원 가입") == 1
    assert doc["words"] == sorted({w for p in phrases for w in p.split()})
    assert doc["language"] == "ko-KR"


def test_calls_use_a_fresh_grammar_file_and_ignore_a_stale_one(tmp_path: Path) -> None:
    folder = tmp_path / "ko-KR"
    folder.mkdir()
    shutil.copy(KO_CONFIG, folder / "intents.yaml")
    config = load_language(folder)
    assert main(["grammar", "build", "--config", str(folder)]) == 0
    path = grammar_path(config)
    assert path == folder / "grammar.json" and path.is_file()

    # A fresh file is what the call uses: edit its phrases and the call hears the edit.
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["phrases"] = ["요금 납부", UNK]
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    warnings: list[str] = []
    assert runtime_grammar(config, warnings.append) == ["요금 납부", UNK]
    assert warnings == []

    # After the intents change, the file is stale: compiled in memory, with a warning.
    text = (folder / "intents.yaml").read_text(encoding="utf-8")
    (folder / "intents.yaml").write_text(text.replace("- 미납 요금", "- 요금 연체"), "utf-8")
    edited = load_language(folder)
    assert runtime_grammar(edited, warnings.append) == compile_grammar(edited)
    assert "요금 연체" in compile_grammar(edited)
    assert len(warnings) == 1 and "voicebot grammar build" in warnings[0]


def test_unknown_words_are_listed_only_when_a_model_is_installed(
    ko_model: SpeechModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_language(KO_CONFIG)
    assert unknown_grammar_words(config) == []
    text = KO_CONFIG.read_text(encoding="utf-8").replace("- 미납 요금", "- 미납 요금 쀍쀍")
    (tmp_path / "intents.yaml").write_text(text, encoding="utf-8")
    assert unknown_grammar_words(load_language(tmp_path / "intents.yaml")) == ["쀍쀍"]
    monkeypatch.setenv("VOICEBOT_MODEL_DIR", str(tmp_path / "empty"))
    assert unknown_grammar_words(load_deployment(None).language("en-US")) is None


def test_check_warns_about_words_the_model_does_not_know(
    ko_model: SpeechModel, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = KO_CONFIG.read_text(encoding="utf-8").replace("- 미납 요금", "- 미납 요금 쀍쀍")
    (tmp_path / "intents.yaml").write_text(text, encoding="utf-8")
    assert main(["check", str(tmp_path / "intents.yaml")]) == 0
    out, _ = capsys.readouterr()
    assert "ko-KR: warning: 1 grammar words unknown to the model: 쀍쀍" in out
    assert "not checked" not in out  # the model is installed: the check was made


def test_check_says_when_a_language_has_no_model_and_how_to_get_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the model the vocabulary check cannot be made; a silent skip would read as
    "every phrase word is known", so check names the model and the two ways to install it."""
    monkeypatch.setenv("VOICEBOT_MODEL_DIR", str(tmp_path / "models"))
    assert main(["check", str(ROOT / "grammars"), "--today", "2026-11-25"]) == 0
    out, _ = capsys.readouterr()
    notes = [line for line in out.splitlines() if "not checked against the speech model" in line]
    assert len(notes) == 2, out
    swedish = next(line for line in notes if line.startswith("sv-SE: note:"))
    assert "vosk-model-small-sv-rhasspy-0.15" in swedish
    assert "voicebot models download sv-SE" in swedish
    assert "unzip a copy of vosk-model-small-sv-rhasspy-0.15.zip into that folder" in swedish
    assert str(tmp_path / "models") in swedish
    assert out.strip().splitlines()[-1] == "ok: 2 language(s), 0 warning(s)"
