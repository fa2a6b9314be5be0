"""``voicebot replay`` on the Korean fixtures, as a CI job or an ops person would run it."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from voicebot.cli.main import main
from voicebot.speech.vosk_model import SpeechModel

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "audio_fixtures"
KO_WAVS = FIXTURES / "ko-KR"
KO_CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"
EXPECT = FIXTURES / "expectations.csv"


@pytest.fixture(autouse=True)
def _model_loaded(ko_model: SpeechModel) -> None:
    """Replay finds the same model through the registry: loaded once per session."""


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


def replay_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, _ = replay(capsys, str(KO_WAVS), "--config", str(KO_CONFIG), "--json", *args)
    assert code == 0
    result: dict[str, Any] = json.loads(out)
    return result


def test_fixtures_meet_their_expectations_and_junit_lists_each_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    junit = tmp_path / "replay.xml"
    code, out, _ = replay(
        capsys, str(KO_WAVS), "--config", str(KO_CONFIG), "--expect", str(EXPECT),
        "--junit", str(junit),
    )  # fmt: skip
    wavs = sorted(KO_WAVS.glob("*.wav"))
    assert code == 0, out
    assert f"expectations: {len(wavs)}/{len(wavs)} as expected (100%)" in out
    assert re.search(r"heard '[^']*요금 납부'", out) and "TRANSFER to billing" in out
    suite = ET.parse(junit).getroot()
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [str(w) for w in wavs]
    assert suite.get("tests") == str(len(wavs)) and suite.get("failures") == "0"


def test_a_wrong_expectation_fails_and_names_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    expect = tmp_path / "expect.csv"
    expect.write_text(
        f"file,expect\n{KO_WAVS / 'billing.wav'},sms:course\n{KO_WAVS / 'course.wav'},course\n",
        encoding="utf-8",
    )
    junit = tmp_path / "replay.xml"
    code, out, _ = replay(
        capsys, str(KO_WAVS / "billing.wav"), str(KO_WAVS / "course.wav"),
        "--config", str(KO_CONFIG), "--expect", str(expect), "--junit", str(junit),
    )  # fmt: skip
    assert code == 1
    assert "expectations: 1/2 as expected (50%)" in out
    assert f"MISMATCH {KO_WAVS / 'billing.wav'}: expected sms:course, got transfer:billing" in out
    failures = ET.parse(junit).getroot().findall("testcase/failure")
    assert [f.get("message") for f in failures] == ["expected sms:course, got transfer:billing"]


def test_decisions_repeat_across_runs_and_workers(capsys: pytest.CaptureFixture[str]) -> None:
    runs = [replay_json(capsys) for _ in range(3)]
    runs.append(replay_json(capsys, "--workers", "2"))

    # Decisions, not transcripts: Vosk 0.3.45 occasionally changes a word of a noisy or padded
    # file between runs in one process even in grammar mode; the fixtures are chosen so that
    # this never changes where the call goes.
    def decisions(run: dict[str, Any]) -> list[tuple[str, str]]:
        return [(f["file"], f["decision"]) for f in run["files"]]

    first = decisions(runs[0])
    assert len(first) == len(list(KO_WAVS.glob("*.wav")))
    changed = [
        (i, a, b)
        for i, r in enumerate(runs[1:], 1)
        for a, b in zip(first, decisions(r), strict=True)
        if a != b
    ]
    assert changed == []


def test_an_unreadable_wav_is_reported_and_the_rest_still_replayed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shutil.copy(KO_WAVS / "billing.wav", tmp_path / "a_good.wav")
    bad = tmp_path / "b_bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    code, out, err = replay(capsys, str(tmp_path), "--config", str(KO_CONFIG))
    assert code == 1
    assert [line for line in err.splitlines() if "b_bad.wav" in line] == [
        f"voicebot: {bad}: not a usable WAV file (no fmt chunk)"
    ]
    assert "Traceback" not in err
    assert "decision: transfer:billing" in out and "replayed 1 file(s)" in out


def test_a_path_that_does_not_exist_is_named_before_anything_is_replayed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in one of the paths: said at once (even before a missing model is), not after
    the others have been replayed."""
    monkeypatch.setenv("VOICEBOT_MODEL_DIR", str(tmp_path))  # no model either
    typo = tmp_path / "biling.wav"
    code, out, err = replay(capsys, str(KO_WAVS / "billing.wav"), str(typo), "--lang", "en-US")
    assert (code, out) == (1, "")
    assert err == f"voicebot: {typo}: no such file or folder\n"


def test_a_missing_model_says_how_to_download_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOT_MODEL_DIR", str(tmp_path))
    code, out, err = replay(capsys, str(KO_WAVS / "billing.wav"), "--lang", "en-US")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "voicebot models download en-US" in err and "Traceback" not in err


def test_json_reports_utterances_and_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = replay(
        capsys, str(KO_WAVS / "hours.wav"), "--config", str(KO_CONFIG), "--json",
        "--expect", str(EXPECT),
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert (result["checked"], result["passed"], result["accuracy"]) == (1, 1, 1.0)
    [file] = result["files"]
    assert file["decision"] == "announce:hours" and file["ok"] is True
    [utterance] = file["utterances"]
    assert utterance["intent"] == "hours" and utterance["start"] < utterance["end"]
