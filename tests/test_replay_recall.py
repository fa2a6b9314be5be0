"""Repeat callers in `voicebot replay --database` (issue #23): recorded Korean calls through the
real Vosk model into a real SQLite call log, each file one call of `--caller` in the order given,
so a tester sees the second call of a caller asked "are you calling about X again?" and what it
came to. The caller's "yes" (네) is espeak-ng's voice, heard by the same recogniser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicebot.calllog.log import CallLog
from voicebot.cli.main import main
from voicebot.speech.audio import ulaw_decode, write_wav
from voicebot.speech.tts import Tts
from voicebot.speech.vosk_model import SpeechModel

ROOT = Path(__file__).resolve().parent.parent
KO_WAVS = ROOT / "audio_fixtures" / "ko-KR"
KO_CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"
QUESTION = "요금 때문에 다시 전화하셨나요?"  # "are you calling about the fee again?"
CALLER = "+821012345678"


@pytest.fixture(autouse=True)
def _model_loaded(ko_model: SpeechModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay finds the same model through the registry: loaded once per session. The number
    salt (how callers are hashed in the log) lives in the data dir."""
    monkeypatch.setenv("VOICEBOT_DATA_DIR", str(tmp_path / "data"))


def recall_config(tmp_path: Path) -> Path:
    """The Korean test config with `recall: {days: 30}` and a Korean recall question (Korean
    has no built-in one)."""
    text = KO_CONFIG.read_text(encoding="utf-8")
    text = text.replace("  error:", '  recall: "{label} 때문에 다시 전화하셨나요?"\n  error:', 1)
    text = text.replace("\ndefault_group:", "\nrecall:\n  days: 30\n\ndefault_group:", 1)
    path = tmp_path / "intents.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def yes_wav(tmp_path: Path) -> Path:
    tts = Tts()
    if not tts.available:
        pytest.skip("espeak-ng is not installed (it speaks the caller's yes)")
    silence = np.zeros(4000, dtype=np.int16)  # half a second at 8 kHz
    samples = np.concatenate([silence, ulaw_decode(tts.mulaw("네", "ko-KR")), silence])
    path = tmp_path / "yes.wav"
    write_wav(path, samples, 8000)
    return path


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


def replay_json(
    capsys: pytest.CaptureFixture[str], config: Path, *args: str
) -> list[dict[str, Any]]:
    code, out, err = replay(capsys, "--config", str(config), "--json", *args)
    assert code == 0, err
    files: list[dict[str, Any]] = json.loads(out)["files"]
    return files


def first_said(result: dict[str, Any]) -> str:
    return str(result["steps"][0]["actions"][0])


def test_the_second_call_of_a_caller_is_asked_about_the_unsolved_first_and_yes_routes_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config, database = recall_config(tmp_path), f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    yes = yes_wav(tmp_path)
    first, second = replay_json(
        capsys, config, str(KO_WAVS / "billing.wav"), str(yes),
        "--database", database, "--caller", CALLER,
    )  # fmt: skip
    assert first["decision"] == "transfer:billing"
    assert first["recent_calls"] == "none" and first["recall"]["asked"] is None
    assert QUESTION not in first_said(first)
    assert first_said(second) == f"bot: {QUESTION}", second["steps"]
    assert second["recent_calls"] == "1 call, last 2026-01-05 (billing)"
    assert second["recall"] == {"asked": "billing", "answer": "yes"}
    assert second["decision"] == "transfer:billing"  # at once: no second question
    assert "recent_calls=1 last_intent=billing" in second["steps"][-1]["actions"][-1]
    with CallLog.open(database) as log:
        calls = sorted(log.fetch().calls, key=lambda c: c.started_at)
    assert [(c.intent, c.recalled, c.recall_answer) for c in calls] == [
        ("billing", None, None),
        ("billing", "billing", "yes"),
    ]


def test_a_later_replay_is_recalled_from_the_log_and_its_report_shows_the_question(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The tester's case: one recorded call replayed, then another of the same caller in a
    second run; anything but yes takes the normal path (here: the opening hours)."""
    config, database = recall_config(tmp_path), f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    common = ["--config", str(config), "--database", database, "--caller", CALLER]
    code, out, _ = replay(capsys, str(KO_WAVS / "billing.wav"), *common)
    assert code == 0 and QUESTION not in out and "caller's recent calls: none" in out, out
    code, out, _ = replay(capsys, str(KO_WAVS / "hours.wav"), *common, "--at", "2026-01-06T09:00")
    assert code == 0, out
    assert "caller's recent calls: 1 call, last 2026-01-05 (billing)" in out
    assert f"bot: {QUESTION}" in out
    assert "decision: announce:hours" in out and "recalled=billing:other" in out


def test_without_database_nothing_is_recalled_and_the_json_keeps_its_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = recall_config(tmp_path)
    files = replay_json(capsys, config, str(KO_WAVS / "billing.wav"), str(KO_WAVS / "hours.wav"))
    assert [f["decision"] for f in files] == ["transfer:billing", "announce:hours"]
    assert all(not {"call", "recall", "recent_calls"} & set(f) for f in files)
    assert all(QUESTION not in first_said(f) for f in files)


def test_a_withheld_caller_is_recorded_but_never_recalled(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config, database = recall_config(tmp_path), f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    billing = str(KO_WAVS / "billing.wav")
    files = replay_json(
        capsys, config, billing, billing, "--database", database, "--caller", "withheld"
    )
    assert [f["decision"] for f in files] == ["transfer:billing"] * 2
    assert all(f["recent_calls"] is None and f["recall"]["asked"] is None for f in files)
    assert all(QUESTION not in first_said(f) for f in files)
    with CallLog.open(database) as log:
        assert {c.call_id for c in log.fetch().calls} == {f["call"] for f in files}


def test_database_with_several_workers_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    code, out, err = replay(
        capsys, str(KO_WAVS), "--config", str(KO_CONFIG), "--database", database,
        "--workers", "2",
    )  # fmt: skip
    assert code != 0 and out == ""
    assert err.strip().splitlines() == [
        "voicebot: --database replays the files one after another as one caller's calls"
    ]
