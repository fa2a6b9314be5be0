"""When a caller's utterance ends: the endpointing settings and the energy VAD they rely on.

Vosk 0.3.45 (the current PyPI release) has no ``SetEndpointerDelays``: its rules are fixed per
model in ``conf/model.conf`` (trailing silence of 0.5 s when the decoder is confident, 1.0 s when
less so, 2.0 s always), and in open mode it can miss trailing silence altogether (seen on digital
zeros). So the recogniser (``recognizer.Recognizer``) decides itself, over sample counts, while
the current best-path partial result has words:

- end of speech: ``end_of_speech_s`` of trailing silence by the energy VAD here (``EnergyVad``)
  that heard speech in this utterance, or Vosk's own endpoint flag held for the rest of
  ``end_of_speech_s`` without new words (covers noisy lines where the energy never drops);
- max length: ``max_utterance_s`` after the first word appeared in the partial result (which
  lags the speech by up to about a second);

and, without words, no speech: ``no_speech_timeout_s`` since the no-speech clock was armed. It
is armed from the start and restarts at each closed utterance, unless the shell holds it
(``disarm_no_speech``) while its prompt plays and arms it when the prompt has finished
(``arm_no_speech``): a caller must not time out while the bot is still talking.

Most of a call is not the caller speaking (the greeting, the bot's answers, the caller
listening): after ``skip_silence_s`` with no sound on the line and nothing said, the recogniser
stops decoding until sound comes back, then hands Vosk the last ``PREROLL_S`` first so no word
loses its onset. "Sound" is a looser test than "voiced" (6 dB over the floor, not 12), so a
quiet or noisy caller opens the gate even where the end-of-speech VAD would not count them.

This module holds the settings and the VAD, both pure and Vosk-free, so they can be read and
tested apart from the decoder; the rules themselves run in ``Recognizer._step``, where the
decoder's partials and endpoint flag are.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["PREROLL_S", "Endpointing", "EnergyVad"]

PREROLL_S = 0.4
"""Audio before the first sound that is still decoded when the recogniser resumes."""
SKIP_MARGIN_S = 0.3
"""How much longer than ``end_of_speech_s`` the line must be soundless before decoding pauses."""


@dataclass(frozen=True)
class Endpointing:
    end_of_speech_s: float = 0.7
    no_speech_timeout_s: float = 5.0
    max_utterance_s: float = 20.0
    # After this much energy silence (0: never) the recogniser asks its ``end_turn`` predicate
    # whether the words so far are a complete answer; yes closes the utterance at once.
    early_end_pause_s: float = 0.0
    # After this much soundless audio with no words pending (0: never) decoding pauses until
    # there is sound again (see ``skip_after_s``).
    skip_silence_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("end_of_speech_s", "no_speech_timeout_s", "max_utterance_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not (math.isfinite(self.early_end_pause_s) and self.early_end_pause_s >= 0):
            raise ValueError(f"early_end_pause_s must be >= 0, got {self.early_end_pause_s!r}")
        if not (math.isfinite(self.skip_silence_s) and self.skip_silence_s >= 0):
            raise ValueError(f"skip_silence_s must be >= 0, got {self.skip_silence_s!r}")

    @property
    def skip_after_s(self) -> float:
        """Soundless audio after which decoding pauses (0: never): ``skip_silence_s``, but
        never less than ``end_of_speech_s`` + ``SKIP_MARGIN_S``, so no utterance is open then."""
        if self.skip_silence_s <= 0:
            return 0.0
        return max(self.skip_silence_s, self.end_of_speech_s + SKIP_MARGIN_S)


class EnergyVad:
    """Frame-energy voice activity against an adaptive noise floor, over sample counts.

    The recogniser needs to know when the caller stopped talking; Vosk 0.3.45's endpointer
    cannot be tuned per call and misses trailing silence on digital zeros. A frame is voiced
    when it is ``margin_db`` above the tracked noise floor and above ``min_speech_dbfs``; only
    runs of ``min_run`` voiced frames count, so clicks do not reset the silence clock. The floor
    follows quieter frames at once and rises slowly (``floor_rise_db_per_s``), so steady line
    noise is learnt while speech is not. It is also never below the quietest frame of the last
    ``floor_window_s`` (minimum statistics): after a digitally silent stretch (the greeting
    playing, a muted phone) the slow rise alone would need half a minute to learn a car's or a
    café's noise, and until then that noise counted as voice, so a caller who had finished in
    steady noise waited for silence that never came. Speech has quieter frames (pauses, stop
    consonants) within any second or so, so the window's minimum stays under the voice.
    """

    def __init__(
        self,
        rate: int,
        *,
        frame_s: float = 0.01,
        margin_db: float = 12.0,
        sound_margin_db: float = 6.0,
        min_speech_dbfs: float = -50.0,
        min_sound_dbfs: float = -60.0,
        min_run: int = 2,
        floor_rise_db_per_s: float = 2.0,
        floor_window_s: float = 1.0,
    ) -> None:
        self.rate = rate
        self._frame = max(1, round(rate * frame_s))
        self._margin = margin_db
        self._sound_margin = sound_margin_db
        self._min_speech = min_speech_dbfs
        self._min_sound = min_sound_dbfs
        self._min_run = min_run
        self._rise = floor_rise_db_per_s * self._frame / rate
        self._window = max(1, round(floor_window_s * rate / self._frame))  # frames
        # (frame number, energy), energies rising: the window's minimum is the first.
        self._minima: deque[tuple[int, float]] = deque()
        self._rest: NDArray[np.float64] = np.zeros(0)
        self._frames_done = 0
        self._floor: float | None = None
        self._run = 0
        self.last_speech_end: float | None = None
        """End of the last voiced run, in seconds from the stream start; None before speech."""
        self.last_sound_end: float | None = None
        """End of the last frame with any sound (``sound_margin_db`` over the floor)."""

    @property
    def time(self) -> float:
        """Seconds of audio analysed (whole frames only)."""
        return self._frames_done * self._frame / self.rate

    def trailing_silence(self, now: float | None = None) -> float:
        """Seconds since the last voiced run ended (since the start if there was none)."""
        end = self.last_speech_end or 0.0
        return (self.time if now is None else now) - end

    def process(self, samples: NDArray[np.generic]) -> None:
        x = np.concatenate([self._rest, np.asarray(samples, dtype=np.float64)])
        n = len(x) // self._frame
        self._rest = x[n * self._frame :]
        if n == 0:
            return
        frames = x[: n * self._frame].reshape(n, self._frame)
        energy = 10.0 * np.log10(np.mean(frames * frames, axis=1) / 32768.0**2 + 1e-12)
        for e in energy.tolist():  # the floor is recursive; frames are few (100 per second)
            self._frames_done += 1
            if self._floor is None:
                self._floor = e
            voiced = e >= max(self._floor + self._margin, self._min_speech)
            if e >= max(self._floor + self._sound_margin, self._min_sound):
                self.last_sound_end = self.time
            self._floor = e if e < self._floor else self._floor + self._rise
            self._floor = max(self._floor, self._window_min(e))
            self._run = self._run + 1 if voiced else 0
            if self._run >= self._min_run:
                self.last_speech_end = self.time

    def _window_min(self, energy: float) -> float:
        """The quietest frame of the last ``floor_window_s``, this one included (a monotonic
        queue: each frame goes in and out once)."""
        minima, n = self._minima, self._frames_done
        while minima and minima[-1][1] >= energy:
            minima.pop()
        minima.append((n, energy))
        while minima[0][0] <= n - self._window:
            minima.popleft()
        return minima[0][1]
