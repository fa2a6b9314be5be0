"""Prompt audio for the media stream: text to 8 kHz mu-law with espeak-ng, cached per text+voice.

Prompts said in the middle of a call go down the open media stream instead of a REST redirect to
``<Say>``: no round trip to Twilio, no new stream, and the caller can talk over them (``clear``).
espeak-ng is offline and fast (~0.1 s a sentence); prompts repeat across calls, so each is
synthesised once. When espeak-ng is missing, ``available`` is False and the server falls back to
Twilio's ``<Say>``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Final

from voicebot.speech.audio import AudioError, read_wav, ulaw_encode

RATE: Final = 8000

# BCP-47 language -> espeak-ng voice; anything else tries the primary subtag.
ESPEAK_VOICES: Final = {"en-US": "en-us", "en-GB": "en-gb", "sv-SE": "sv", "ko-KR": "ko"}


class TtsError(RuntimeError):
    """The prompt could not be synthesised; the server then uses Twilio's ``<Say>``."""


def espeak_voice(language: str) -> str:
    return ESPEAK_VOICES.get(language, language.split("-")[0].lower())


class Tts:
    """Thread-safe, LRU-cached espeak-ng synthesis to telephone mu-law."""

    def __init__(
        self,
        binary: str | None = "espeak-ng",
        *,
        speed_wpm: int = 160,
        max_cached: int = 512,
        timeout_s: float = 10.0,
    ) -> None:
        self.path = shutil.which(binary) if binary else None
        self.speed_wpm = speed_wpm
        self.timeout_s = timeout_s
        self._max = max_cached
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.synthesised = 0  # cache misses, for tests and metrics

    @property
    def available(self) -> bool:
        return self.path is not None

    def mulaw(self, text: str, language: str) -> bytes:
        """8 kHz mu-law audio of ``text``; raises ``TtsError``. Blocks: call from a thread."""
        key = (language, text)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        audio = self._synthesise(text, language)
        with self._lock:
            self._cache[key] = audio
            self.synthesised += 1
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return audio

    def _synthesise(self, text: str, language: str) -> bytes:
        if self.path is None:
            raise TtsError("espeak-ng is not installed")
        with tempfile.TemporaryDirectory(prefix="voicebot-tts-") as tmp:
            out = Path(tmp) / "prompt.wav"
            command = [
                self.path,
                "-v",
                espeak_voice(language),
                "-s",
                str(self.speed_wpm),
                "-w",
                str(out),
                "--",
                text,
            ]
            try:
                subprocess.run(command, check=True, capture_output=True, timeout=self.timeout_s)
                audio = read_wav(out)
            except (OSError, subprocess.SubprocessError, AudioError) as exc:
                raise TtsError(f"espeak-ng failed: {exc}") from None
        if not len(audio.samples):
            raise TtsError("espeak-ng produced no audio")
        return ulaw_encode(audio.resampled(RATE).samples)
