"""``voicebot listen`` with a fake microphone: recorded Korean speech through the live loop."""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pytest

from voicebot.cli.main import main
from voicebot.loading.loader import load_language
from voicebot.shells.listen import Microphone, run_listen
from voicebot.speech.audio import read_wav
from voicebot.speech.pipeline import speech_kit
from voicebot.speech.resample import resample
from voicebot.speech.vosk_model import SpeechModel

ROOT = Path(__file__).resolve().parent.parent
KO_WAVS = ROOT / "audio_fixtures" / "ko-KR"
KO_CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"
DEVICE_RATE = 16000  # a typical USB headset; the fixtures are 8 kHz telephone audio


class FakeInputStream:
    """``sounddevice.RawInputStream`` over a recording, then silence, as a microphone would
    keep delivering; ``stop_after_s`` raises KeyboardInterrupt there, as Ctrl-C would."""

    def __init__(self, samples: np.ndarray[Any, Any], stop_after_s: float | None = None) -> None:
        self.samples = samples
        self.position = 0
        self.stop_at = None if stop_after_s is None else int(stop_after_s * DEVICE_RATE)
        self.open = False

    def __enter__(self) -> FakeInputStream:
        self.open = True
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.open = False

    def read(self, frames: int) -> tuple[bytes, bool]:
        assert self.open, "read before the stream was started"
        if self.stop_at is not None and self.position >= self.stop_at:
            raise KeyboardInterrupt
        chunk = self.samples[self.position : self.position + frames]
        chunk = np.concatenate([chunk, np.zeros(frames - len(chunk), np.int16)])
        self.position += frames
        return chunk.astype("<i2").tobytes(), False


def fixture_at_device_rate(name: str) -> np.ndarray[Any, Any]:
    audio = read_wav(KO_WAVS / name)
    return resample(audio.samples, audio.rate, DEVICE_RATE)


def fake_sounddevice(samples: np.ndarray[Any, Any] | None, **stream: Any) -> types.ModuleType:
    """A stand-in for the sounddevice module: one 16 kHz microphone, or none."""
    module = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    def query_devices(device: int | None = None, kind: str | None = None) -> Any:
        mic = {"name": "Fake USB mic", "max_input_channels": 1, "default_samplerate": 16000.0}
        if samples is None:
            if kind is not None:
                raise PortAudioError("Error querying device -1")
            return []
        if device not in (None, 0):
            raise ValueError(f"No input device matching {device!r}")
        return mic if kind is not None else [mic]

    def raw_input_stream(**kwargs: Any) -> FakeInputStream:
        assert kwargs["samplerate"] == DEVICE_RATE and kwargs["channels"] == 1
        assert kwargs["dtype"] == "int16"
        assert samples is not None
        return FakeInputStream(samples, **stream)

    module.PortAudioError = PortAudioError  # type: ignore[attr-defined]
    module.query_devices = query_devices  # type: ignore[attr-defined]
    module.RawInputStream = raw_input_stream  # type: ignore[attr-defined]
    return module


@pytest.fixture(autouse=True)
def _model_loaded(ko_model: SpeechModel) -> None:
    """The command finds the same model through the registry: loaded once per session."""


def listen(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["listen", "--config", str(KO_CONFIG), "--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_billing_request_spoken_into_the_microphone_is_transferred_to_billing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_sounddevice(fixture_at_device_rate("billing.wav"))
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    code, out, err = listen(capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert "Fake USB mic at 16000 Hz" in lines[0]
    assert lines[1] == "bot: 안녕하세요, 고객 센터입니다. 어떤 일로 전화하셨나요?"
    heard = [line for line in lines if "you: " in line]
    assert len(heard) == 1 and "요금 납부' -> billing" in heard[0]
    assert any(line.startswith("TRANSFER to billing") for line in lines)
    assert lines[-1].startswith("outcome: transferred")


def test_silence_reprompts_and_a_second_try_is_understood(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Caller says nothing for the whole no-speech timeout, then asks for opening hours.
    silence = np.zeros(6 * DEVICE_RATE, np.int16)
    speech = np.concatenate([silence, fixture_at_device_rate("hours.wav")])
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(speech))
    code, out, _ = listen(capsys, "--device", "0")
    assert code == 0
    assert "(silence)" in out and "잘 들리지 않았어요" in out
    assert out.index("잘 들리지 않았어요") < out.index("-> hours")
    # Understood: the bot acts on it (answers, or asks which of two it was), never "no match".
    heard = next(line for line in out.splitlines() if "-> hours" in line)
    assert "(reject)" not in heard
    assert "reason=no_match" not in out


def test_ctrl_c_hangs_up_cleanly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    silence = np.zeros(DEVICE_RATE, np.int16)
    fake = fake_sounddevice(silence, stop_after_s=1.0)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    code, out, err = listen(capsys)
    assert code == 0 and err == ""
    assert "(you hung up)" in out
    assert out.splitlines()[-1].startswith("outcome: caller_hung_up")


@pytest.mark.parametrize(
    ("setup", "args", "says"),
    [
        ("no-portaudio", (), "the PortAudio library is not installed"),
        ("no-package", (), "pip install sounddevice"),
        ("no-input", (), "no input device found"),
        ("no-input", ("--list-devices",), "no input device found"),
        ("one-mic", ("--device", "7"), "there is no input device 7"),
    ],
)
def test_without_a_microphone_one_clear_sentence_and_exit_1(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setup: str,
    args: tuple[str, ...],
    says: str,
) -> None:
    if setup == "no-portaudio":  # what the real package does on a machine without PortAudio
        (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    elif setup == "no-package":
        monkeypatch.setitem(sys.modules, "sounddevice", None)
    elif setup == "no-input":
        monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(None))
    else:
        monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(np.zeros(1, np.int16)))
    code, out, err = listen(capsys, *args)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1 and says in err and "Traceback" not in err


def test_speaking_prompts_mutes_the_microphone_so_the_bot_does_not_hear_itself(
    ko_model: SpeechModel,
) -> None:
    config = load_language(KO_CONFIG)
    speech = fixture_at_device_rate("billing.wav")

    class Speaker:
        def __init__(self) -> None:
            self.said: list[str] = []

        def say(self, text: str, language: str) -> float:
            self.said.append(text)
            return 3.0  # the caller's request falls inside the greeting being played

        def wait(self) -> None:
            pass

    speaker = Speaker()
    mic = Microphone("fake", DEVICE_RATE, lambda _block: FakeInputStream(speech))
    out = io.StringIO()
    call = run_listen(config, speech_kit(config, ko_model), mic, out, speaker=speaker)
    assert speaker.said[0] == "안녕하세요, 고객 센터입니다. 어떤 일로 전화하셨나요?"
    assert "-> billing" not in out.getvalue()  # muted: heard nothing, asked again
    assert "잘 들리지 않았어요" in speaker.said[1]
    assert call.ended
