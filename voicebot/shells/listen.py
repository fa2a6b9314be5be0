"""Talk to the bot through a microphone: the demo and ops front end of the speech path.

The microphone is one more audio front end to ``CallPipeline``, so it hears and decides exactly
as a phone call does. Audio is captured at the device's own rate (mono int16) and fed at that
rate; the recogniser resamples to the model's rate. The input stream comes from a factory with
the ``sounddevice.RawInputStream`` interface, so tests feed recorded audio through the same loop.

The line is half duplex: while a prompt plays through the speakers the microphone is fed to the
recogniser as silence, so the bot does not answer itself (no echo cancellation here); the call
clock still runs, so timeouts behave as on a phone line. Caller barge-in is not possible.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TextIO

import numpy as np

from voicebot.core.actions import Action, Say, SendSms
from voicebot.core.config import LanguageConfig
from voicebot.core.lookup import Lookup
from voicebot.errors import VoicebotError
from voicebot.shells.chat import describe
from voicebot.shells.lookup import lookup, lookup_secret
from voicebot.speech.audio import as_int16, ulaw_decode, wav_bytes
from voicebot.speech.pipeline import CallPipeline, SpeechKit, Step, StepEvent

__all__ = [
    "BLOCK_S",
    "InputStream",
    "Microphone",
    "MicrophoneError",
    "PromptSpeaker",
    "Speaker",
    "StreamFactory",
    "format_step",
    "input_devices",
    "microphone",
    "run_listen",
    "warn",
]

BLOCK_S = 0.1  # audio read per loop turn: the recogniser decides on 0.1 s boundaries anyway


class MicrophoneError(VoicebotError, RuntimeError):
    """No usable microphone; the message is one sentence saying what to do."""


class InputStream(Protocol):
    """The part of ``sounddevice.RawInputStream`` the capture loop uses."""

    def __enter__(self) -> InputStream: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> object: ...

    def read(self, frames: int) -> tuple[Any, bool]:
        """``frames`` mono int16 samples as a buffer, and whether input overflowed."""
        ...


StreamFactory = Callable[[int], InputStream]
"""Opens the input stream with the given block size in frames, at ``Microphone.rate``."""


@dataclass(frozen=True)
class Microphone:
    name: str
    rate: int  # the device's own sample rate: audio is captured and fed at it
    open: StreamFactory


class Speaker(Protocol):
    def say(self, text: str, language: str) -> float:
        """Start speaking ``text``; returns its duration in seconds (0 when not spoken)."""
        ...

    def wait(self) -> None:
        """Block until the prompt being spoken has finished."""
        ...


# ---------------------------------------------------------------------------------------------
# Devices (sounddevice imported lazily: PortAudio is optional)


def _sounddevice() -> Any:
    try:
        sounddevice = importlib.import_module("sounddevice")
    except ImportError:
        raise MicrophoneError(
            "voicebot listen needs the sounddevice package: pip install sounddevice"
        ) from None
    except OSError:  # sounddevice raises this when the PortAudio library is missing
        raise MicrophoneError(
            "no microphone support: the PortAudio library is not installed"
            " (e.g. apt install libportaudio2)"
        ) from None
    return sounddevice


def input_devices() -> list[tuple[int, str, int]]:
    """(index, name, default sample rate) of every device that can record."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
    except Exception as exc:
        raise MicrophoneError(f"cannot list audio devices: {exc}") from None
    return [
        (i, str(d["name"]), int(d["default_samplerate"]))
        for i, d in enumerate(devices)
        if int(d["max_input_channels"]) > 0
    ]


def microphone(device: int | None = None) -> Microphone:
    """The given input device, else the system default; ``MicrophoneError`` when there is none."""
    sd = _sounddevice()
    try:
        info = sd.query_devices(device, "input")
    except Exception:  # PortAudioError / ValueError: no such or no default input device
        which = (
            f"there is no input device {device}" if device is not None else "no input device found"
        )
        raise MicrophoneError(
            f"{which}; see the microphones with: voicebot listen --list-devices"
        ) from None
    if int(info["max_input_channels"]) < 1:
        raise MicrophoneError(
            f"device {device} cannot record; see the microphones with: voicebot listen"
            " --list-devices"
        )
    rate = int(info["default_samplerate"])

    def open_stream(blocksize: int) -> InputStream:
        try:
            stream: InputStream = sd.RawInputStream(
                samplerate=rate, blocksize=blocksize, device=device, channels=1, dtype="int16"
            )
        except Exception as exc:
            raise MicrophoneError(f"cannot open the microphone: {exc}") from None
        return stream

    return Microphone(str(info["name"]), rate, open_stream)


class PromptSpeaker:
    """Speaks prompts with espeak-ng (``voicebot.speech.tts``) through sounddevice or ``aplay``.

    Falls back to printing only, with one warning, when synthesis or playback fails.
    """

    def __init__(self, warn: Callable[[str], None]) -> None:
        from voicebot.speech.tts import Tts

        self._tts = Tts()
        self._warn = warn
        self._aplay = shutil.which("aplay")
        self._process: subprocess.Popen[bytes] | None = None
        self._sd: Any = None
        self.enabled = self._tts.available
        if not self.enabled:
            warn("espeak-ng is not installed: prompts are shown, not spoken")

    def say(self, text: str, language: str) -> float:
        if not self.enabled:
            return 0.0
        from voicebot.speech.tts import RATE, TtsError

        try:
            samples = ulaw_decode(self._tts.mulaw(text, language))
        except TtsError as exc:
            return self._disable(str(exc))
        self.wait()
        try:
            self._play(samples, RATE)
        except Exception as exc:
            return self._disable(f"cannot play prompts ({exc})")
        return len(samples) / RATE

    def _play(self, samples: np.ndarray[Any, np.dtype[np.int16]], rate: int) -> None:
        if self._aplay is not None:
            self._process = subprocess.Popen(
                [self._aplay, "-q", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            data = wav_bytes(samples, rate)
            process = self._process
            # Write from a thread: the pipe may hold less than the whole prompt.
            threading.Thread(target=_write_all, args=(process, data), daemon=True).start()
            return
        self._sd = _sounddevice()
        self._sd.play(samples, rate)

    def wait(self) -> None:
        if self._process is not None:
            self._process.wait()
            self._process = None
        elif self._sd is not None:
            self._sd.wait()

    def _disable(self, why: str) -> float:
        self.enabled = False
        self._warn(f"{why}: prompts are shown, not spoken")
        return 0.0


def _write_all(process: subprocess.Popen[bytes], data: bytes) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(data)
        process.stdin.close()
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# The call


def format_step(step: Step) -> list[str]:
    """What the tester sees for one moment of the call: what was heard, then each action."""
    lines: list[str] = []
    if step.heard is not None:
        h = step.heard
        text = h.alternatives[0][0] if h.alternatives else ""
        lines.append(f"[{step.time_s:5.1f} s] you: {text!r} -> {h.match_summary}")
    elif step.event is StepEvent.NO_SPEECH and step.actions:
        lines.append(f"[{step.time_s:5.1f} s] (silence)")
    lines += [describe(a) for a in step.actions]
    return lines


def run_listen(
    config: LanguageConfig,
    kit: SpeechKit,
    mic: Microphone,
    out: TextIO,
    *,
    caller: str | None = None,
    start_at: dt.datetime | None = None,
    speaker: Speaker | None = None,
) -> CallPipeline:
    """One live call from the microphone until the dialogue ends; Ctrl-C hangs up.

    SMS sends are simulated as successful, as in ``voicebot chat``; lookups are real.
    """
    secret = lookup_secret()
    call = CallPipeline(
        config,
        kit,
        caller=caller,
        start_at=start_at or dt.datetime.now().astimezone(),
        call_rate=mic.rate,
        wait_for_prompts=speaker is not None,  # the caller's silence counts once a prompt ends
    )
    block = max(1, round(mic.rate * BLOCK_S))
    shown = 0
    mute_until = 0.0  # call time until which the bot is speaking

    def carry_out(actions: list[Action]) -> None:
        nonlocal shown, mute_until
        for action in actions:
            if isinstance(action, SendSms):
                carry_out(call.sms_result(True, "simulated"))
            elif isinstance(action, Lookup):
                carry_out(call.lookup_result(lookup(action, config, call.now, secret=secret)))
        for step in call.steps[shown:]:
            for line in format_step(step):
                out.write(line + "\n")
        out.flush()
        shown = len(call.steps)
        if speaker is not None:
            for action in actions:
                if isinstance(action, Say):
                    duration = speaker.say(action.text, action.language)
                    mute_until = max(mute_until, call.time_s) + duration
        if call.awaiting_prompt_end:
            call.arm_no_speech(max(mute_until, call.time_s))

    try:
        carry_out(call.start())
        with mic.open(block) as stream:
            while not call.ended:
                data, _overflowed = stream.read(block)
                samples = as_int16(bytes(data))
                if not len(samples):  # the input closed: as if the caller fell silent and left
                    carry_out(call.finish())
                    if not call.ended:
                        out.write("(microphone closed)\n")
                        carry_out(call.hang_up())
                    break
                if call.time_s < mute_until:
                    samples = np.zeros_like(samples)
                carry_out(call.feed(samples))
    except KeyboardInterrupt:
        out.write("(you hung up)\n")
        carry_out(call.hang_up())
    if speaker is not None:
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C cuts the goodbye short
            speaker.wait()
    if call.dialogue.outcome is not None:
        out.write(f"outcome: {call.dialogue.outcome}\n")
    return call


def warn(message: str) -> None:
    print(f"voicebot: warning: {message}", file=sys.stderr)
