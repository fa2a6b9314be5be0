"""Sample-rate conversion for the speech path: one streaming resampler, exact across chunks.

Its own module because it is the one piece of signal processing here with real numerics (a
Kaiser-windowed sinc filter bank and its polyphase bookkeeping); the recogniser, the WAV tools
and the benches all use it, and none of them needs to read how it works.
numpy only, for the reason ``audio`` gives.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["Resampler", "resample"]


@lru_cache(maxsize=16)
def _filter_bank(
    up: int, down: int, zero_crossings: int, rolloff: float, beta: float
) -> NDArray[np.float64]:
    """The polyphase filter bank, (phase, tap), read-only. Computed once per conversion and
    shared: every call of a phone line makes a resampler, and computing the Kaiser window
    (Bessel functions) took about 0.3 ms of the server's event loop per call."""
    cutoff = rolloff / max(up, down)  # cycles per upsampled sample, times two
    half = zero_crossings / cutoff  # filter half-length in upsampled samples
    half_taps = math.ceil(half / up) + 1
    j = np.arange(-half_taps, half_taps + 1)
    t = np.arange(up)[:, None] - j[None, :] * up  # (phase, tap) offsets
    window = np.where(
        np.abs(t) <= half,
        np.i0(beta * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None))) / np.i0(beta),
        0.0,
    )
    taps = cutoff * np.sinc(cutoff * t) * window
    # Exact unity DC gain per phase, so silence stays silence and levels are preserved.
    bank: NDArray[np.float64] = taps / taps.sum(axis=1, keepdims=True)
    bank.flags.writeable = False
    return bank


class Resampler:
    """Streaming rational resampler (Kaiser-windowed sinc, polyphase).

    Telephony hands us 20 ms chunks; the recogniser needs the model's rate. The filter state is
    carried across calls, so feeding chunks and then ``flush()`` gives the same samples as one
    call over the whole signal. Output sample n sits at input time n/dst_rate (no delay to undo);
    the price is that each call holds back the last few input samples until their right-hand
    context arrives. The cutoff is ``rolloff`` times the lower Nyquist frequency, which keeps
    aliasing out when decimating (44.1/48 kHz -> 8/16 kHz) and imaging out when interpolating.
    """

    _BLOCK = 4096  # outputs computed per vectorised step, bounds the temporary matrix size

    def __init__(
        self,
        src_rate: int,
        dst_rate: int,
        *,
        zero_crossings: int = 32,
        rolloff: float = 0.9,
        beta: float = 9.0,
    ) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
        if not 0.0 < rolloff <= 1.0:
            raise ValueError("rolloff must be in (0, 1]")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        g = math.gcd(src_rate, dst_rate)
        self._up = dst_rate // g
        self._down = src_rate // g
        self._identity = self._up == self._down
        self._taps = _filter_bank(self._up, self._down, zero_crossings, rolloff, beta)
        self._half_taps: int = (int(self._taps.shape[1]) - 1) // 2
        self.reset()

    def reset(self) -> None:
        self._buf: NDArray[np.float64] = np.zeros(self._half_taps, dtype=np.float64)
        self._buf_start = -self._half_taps  # global index of _buf[0]
        self._n_in = 0
        self._n_out = 0

    @property
    def latency_samples(self) -> int:
        """Input samples held back per call while waiting for right-hand filter context."""
        return 0 if self._identity else self._half_taps

    def ready_after(self, n_in: int) -> int:
        """How many output samples ``process`` has returned once ``n_in`` input samples went
        in (whatever the chunks): what the held-back right-hand context leaves determined."""
        if self._identity:
            return n_in
        last_ready = n_in - 1 - self._half_taps  # last input index with full context
        return max(0, ((last_ready + 1) * self._up - 1) // self._down + 1)

    def process(self, samples: NDArray[np.generic]) -> NDArray[np.generic]:
        """Resample the next chunk; returns every output sample that is already determined."""
        x = np.asarray(samples)
        _check_pcm_dtype(x)
        if self._identity:
            return x.copy()
        self._buf = np.concatenate([self._buf, x.astype(np.float64, copy=False)])
        self._n_in += len(x)
        n_end = max(self._n_out, self.ready_after(self._n_in))
        return _to_dtype(self._emit(n_end), x.dtype)

    def flush(self, dtype: DTypeLike = np.int16) -> NDArray[np.generic]:
        """Return the held-back tail (as if zeros followed) and start over."""
        if self._identity:
            self.reset()
            return np.zeros(0, dtype=dtype)
        n_total = (self._n_in * self._up + self._down - 1) // self._down
        self._buf = np.concatenate([self._buf, np.zeros(self._half_taps + 1)])
        out = self._emit(max(n_total, self._n_out))
        self.reset()
        return _to_dtype(out, np.dtype(dtype))

    def _emit(self, n_end: int) -> NDArray[np.float64]:
        up, down, half = self._up, self._down, self._half_taps
        width = 2 * half + 1
        if down == 1:  # integer upsampling (8 -> 16 kHz, the phone path): one FIR per phase
            return self._emit_upsampled(n_end)
        pieces = []
        for start in range(self._n_out, n_end, self._BLOCK):
            n = np.arange(start, min(n_end, start + self._BLOCK), dtype=np.int64)
            pos = n * down
            base, phase = pos // up, pos % up
            first = base - half - self._buf_start
            windows = self._buf[first[:, None] + np.arange(width)[None, :]]
            pieces.append((self._taps[phase] * windows).sum(axis=1))
        self._n_out = max(self._n_out, n_end)
        # Drop input no future output can reach.
        keep_from = (self._n_out * down) // up - half
        drop = keep_from - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start = keep_from
        return np.concatenate(pieces) if pieces else np.zeros(0)

    def _emit_upsampled(self, n_end: int) -> NDArray[np.float64]:
        """``_emit`` for ``down == 1``: output n = up * b + p is input b filtered by phase p's
        taps, so each phase is one ``np.correlate`` over consecutive inputs. Per 20 ms phone
        frame this costs a few microseconds, where the gathered window matrix of the general
        path cost a tenth of the server's CPU."""
        up, half = self._up, self._half_taps
        width = 2 * half + 1
        n0 = self._n_out
        out = np.empty(max(0, n_end - n0), dtype=np.float64)
        for p in range(up):
            first = n0 + (p - n0) % up  # first output >= n0 in phase p
            if first >= n_end:
                continue
            k = (n_end - 1 - first) // up + 1
            b0 = first // up - half - self._buf_start
            segment = self._buf[b0 : b0 + k + width - 1]
            out[first - n0 :: up] = np.correlate(segment, self._taps[p], "valid")
        self._n_out = max(self._n_out, n_end)
        keep_from = self._n_out // up - half
        drop = keep_from - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start = keep_from
        return out


def resample(samples: NDArray[np.generic], src_rate: int, dst_rate: int) -> NDArray[np.generic]:
    """Resample a whole signal; int16 in gives int16 out (rounded, clipped), float gives float."""
    x = np.asarray(samples)
    _check_pcm_dtype(x)
    if src_rate == dst_rate:
        return x.copy()
    r = Resampler(src_rate, dst_rate)
    return np.concatenate([r.process(x), r.flush(x.dtype)])


def _check_pcm_dtype(x: NDArray[np.generic]) -> None:
    if x.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {x.shape}")
    if x.dtype != np.int16 and not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"expected int16 or float samples, got {x.dtype}")


def _to_dtype(y: NDArray[np.float64], dtype: np.dtype[np.generic]) -> NDArray[np.generic]:
    if dtype == np.int16:
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)
    return y.astype(dtype)
