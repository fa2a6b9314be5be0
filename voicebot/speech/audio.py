"""Audio plumbing for the speech path: G.711 mu-law, resampling and WAV files.

numpy only: the stdlib ``audioop`` module is gone in Python 3.13 and ``wave`` cannot read
mu-law or WAVE_FORMAT_EXTENSIBLE files in 3.11, which are exactly what telephony produces.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from voicebot.errors import VoicebotError

__all__ = [
    "Audio",
    "AudioError",
    "EnergyVad",
    "Resampler",
    "as_int16",
    "parse_wav",
    "read_wav",
    "resample",
    "ulaw_decode",
    "ulaw_encode",
    "wav_bytes",
    "write_wav",
]

Int16Array = NDArray[np.int16]
WavEncoding = Literal["pcm16", "mulaw"]


class AudioError(VoicebotError, ValueError):
    """An audio file or buffer we cannot use; the message is one line for the operator."""


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono 16-bit samples with their rate: the one shape every consumer here accepts."""

    samples: Int16Array
    rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    def resampled(self, rate: int) -> Audio:
        return Audio(cast(Int16Array, resample(self.samples, self.rate, rate)), rate)


# --------------------------------------------------------------------------------------------
# G.711 mu-law
# --------------------------------------------------------------------------------------------
# The classic table-free algorithm (Sun's g711.c, as used by audioop): the 16-bit sample is cut
# to 14 bits, biased by 33, and coded as sign, 3-bit segment and 4-bit step, all bits inverted.
# Both directions are precomputed as lookup tables, which is exact and fast.

_ULAW_BIAS = 33  # in 14-bit units (0x84 in 16-bit units)
_ULAW_CLIP = 8159  # largest 14-bit magnitude G.711 mu-law represents


def _build_ulaw_encode_table() -> NDArray[np.uint8]:
    x = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit, arithmetic shift
    negative = x < 0
    magnitude = np.minimum(np.where(negative, -x, x), _ULAW_CLIP) + _ULAW_BIAS
    # Segment = position of the highest set bit above bit 5; 8 means overload (the clip value
    # plus bias lands exactly on 8192), which codes as the largest step.
    bounds = np.array([64, 128, 256, 512, 1024, 2048, 4096, 8192])
    segment = np.searchsorted(bounds, magnitude, "right")
    step = (magnitude >> (segment + 1)) & 0xF
    code = np.where(segment >= 8, 0x7F, (segment << 4) | step)
    code = np.where(negative, code ^ 0x7F, code ^ 0xFF)
    table = np.empty(65536, dtype=np.uint8)
    # Index by the sample's bit pattern read as uint16, so encoding is a single take().
    table[np.arange(-32768, 32768, dtype=np.int32).astype(np.uint16)] = code.astype(np.uint8)
    return table


def _build_ulaw_decode_table() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


_ULAW_ENCODE = _build_ulaw_encode_table()
_ULAW_DECODE = _build_ulaw_decode_table()


def ulaw_encode(samples: NDArray[np.integer] | bytes | bytearray | memoryview) -> bytes:
    """16-bit linear PCM (array, or little-endian bytes) to G.711 mu-law bytes."""
    pcm = as_int16(samples)
    return bytes(_ULAW_ENCODE[pcm.view(np.uint16)].tobytes())


def ulaw_decode(data: bytes | bytearray | memoryview) -> Int16Array:
    """G.711 mu-law bytes to 16-bit linear PCM."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _ULAW_DECODE[codes]


def as_int16(samples: NDArray[np.integer] | bytes | bytearray | memoryview) -> Int16Array:
    """Mono 16-bit samples from an int16 array or little-endian PCM bytes (no conversion)."""
    if isinstance(samples, bytes | bytearray | memoryview):
        if len(samples) % 2:
            raise AudioError("16-bit PCM buffer has an odd number of bytes")
        return np.frombuffer(samples, dtype="<i2").astype(np.int16)
    arr = np.asarray(samples)
    if arr.dtype != np.int16 or arr.ndim != 1:
        raise TypeError(f"expected 1-D int16 samples, got {arr.dtype} with shape {arr.shape}")
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


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
        up, down = self._up, self._down
        cutoff = rolloff / max(up, down)  # cycles per upsampled sample, times two
        half = zero_crossings / cutoff  # filter half-length in upsampled samples
        self._half_taps = math.ceil(half / up) + 1
        j = np.arange(-self._half_taps, self._half_taps + 1)
        t = np.arange(up)[:, None] - j[None, :] * up  # (phase, tap) offsets
        window = np.where(
            np.abs(t) <= half,
            np.i0(beta * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None))) / np.i0(beta),
            0.0,
        )
        taps = cutoff * np.sinc(cutoff * t) * window
        # Exact unity DC gain per phase, so silence stays silence and levels are preserved.
        self._taps: NDArray[np.float64] = taps / taps.sum(axis=1, keepdims=True)
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

    def process(self, samples: NDArray[np.generic]) -> NDArray[np.generic]:
        """Resample the next chunk; returns every output sample that is already determined."""
        x = np.asarray(samples)
        _check_pcm_dtype(x)
        if self._identity:
            return x.copy()
        self._buf = np.concatenate([self._buf, x.astype(np.float64, copy=False)])
        self._n_in += len(x)
        last_ready = self._n_in - 1 - self._half_taps  # last input index with full context
        n_end = max(self._n_out, ((last_ready + 1) * self._up - 1) // self._down + 1)
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


# --------------------------------------------------------------------------------------------
# Voice activity
# --------------------------------------------------------------------------------------------


class EnergyVad:
    """Frame-energy voice activity against an adaptive noise floor, over sample counts.

    The recogniser needs to know when the caller stopped talking; Vosk 0.3.45's endpointer
    cannot be tuned per call and misses trailing silence on digital zeros. A frame is voiced
    when it is ``margin_db`` above the tracked noise floor and above ``min_speech_dbfs``; only
    runs of ``min_run`` voiced frames count, so clicks do not reset the silence clock. The floor
    follows quieter frames at once and rises slowly (``floor_rise_db_per_s``), so steady line
    noise is learnt while speech is not.
    """

    def __init__(
        self,
        rate: int,
        *,
        frame_s: float = 0.01,
        margin_db: float = 12.0,
        min_speech_dbfs: float = -50.0,
        min_run: int = 2,
        floor_rise_db_per_s: float = 2.0,
    ) -> None:
        self.rate = rate
        self._frame = max(1, round(rate * frame_s))
        self._margin = margin_db
        self._min_speech = min_speech_dbfs
        self._min_run = min_run
        self._rise = floor_rise_db_per_s * self._frame / rate
        self._rest: NDArray[np.float64] = np.zeros(0)
        self._frames_done = 0
        self._floor: float | None = None
        self._run = 0
        self.last_speech_end: float | None = None
        """End of the last voiced run, in seconds from the stream start; None before speech."""

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
            self._floor = e if e < self._floor else self._floor + self._rise
            self._run = self._run + 1 if voiced else 0
            if self._run >= self._min_run:
                self.last_speech_end = self.time


# --------------------------------------------------------------------------------------------
# WAV files
# --------------------------------------------------------------------------------------------

_PCM, _FLOAT, _ALAW, _ULAW, _EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
_EXT_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
    0x0064: "G.726 ADPCM",
}
_SUPPORTED_HINT = "(use 8- or 16-bit PCM or mu-law)"


@dataclass(frozen=True)
class _Format:
    tag: int
    channels: int
    rate: int
    block_align: int
    bits: int


def read_wav(path: str | os.PathLike[str]) -> Audio:
    """Read a WAV file as mono int16, downmixing and widening as needed.

    Accepts 8-bit unsigned and 16-bit PCM, mu-law, and WAVE_FORMAT_EXTENSIBLE wrapping those;
    anything else raises ``AudioError`` naming the file and what it would need instead.
    """
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AudioError(f"{name}: cannot read file ({exc.strerror or exc})") from exc
    return parse_wav(data, name=name)


def parse_wav(data: bytes, *, name: str = "<wav bytes>") -> Audio:
    """Parse an in-memory WAV file; see ``read_wav``."""

    def fail(problem: str) -> AudioError:
        return AudioError(f"{name}: {problem}")

    if len(data) >= 4 and data[:4] in (b"RIFX", b"RF64", b"BW64"):
        raise fail(f"{data[:4].decode()} WAV files are not supported {_SUPPORTED_HINT}")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise fail("not a WAV file (no RIFF/WAVE header)")

    fmt: _Format | None = None
    payload: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise fail("truncated WAV file (fmt chunk cut short)")
            fmt = _parse_fmt(body, fail)
        elif chunk_id == b"data":
            if len(body) < size:
                raise fail(
                    f"truncated WAV file (data chunk declares {size} bytes, "
                    f"only {len(body)} present)"
                )
            payload = body
            if fmt is not None:
                break
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    if fmt is None:
        raise fail("not a usable WAV file (no fmt chunk)")
    if payload is None:
        raise fail("truncated WAV file (no data chunk)")
    if len(payload) % fmt.block_align:
        raise fail(
            f"truncated WAV file (data is {len(payload)} bytes, not a whole number of "
            f"{fmt.block_align}-byte frames)"
        )

    if fmt.tag == _ULAW:
        samples = ulaw_decode(payload).astype(np.int32)
    elif fmt.bits == 8:
        samples = (np.frombuffer(payload, dtype=np.uint8).astype(np.int32) - 128) << 8
    else:
        samples = np.frombuffer(payload, dtype="<i2").astype(np.int32)
    if fmt.channels > 1:
        frames = samples.reshape(-1, fmt.channels)
        samples = np.rint(frames.mean(axis=1)).astype(np.int32)
    return Audio(samples.astype(np.int16), fmt.rate)


def _parse_fmt(body: bytes, fail: Callable[[str], AudioError]) -> _Format:
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body, 0)
    if tag == _EXTENSIBLE:
        if len(body) < 40:
            raise fail("truncated WAV file (WAVE_FORMAT_EXTENSIBLE fmt chunk cut short)")
        valid_bits = struct.unpack_from("<H", body, 18)[0]
        sub_tag = struct.unpack_from("<H", body, 24)[0]
        if body[26:40] != _EXT_GUID_TAIL:
            raise fail(f"WAVE_FORMAT_EXTENSIBLE with an unknown sub-format {_SUPPORTED_HINT}")
        if valid_bits and valid_bits != bits:
            raise fail(f"{valid_bits}-bit samples in {bits}-bit containers are not supported")
        tag = sub_tag
    if channels == 0 or rate == 0:
        raise fail("invalid fmt chunk (zero channels or sample rate)")
    if tag == _PCM:
        if bits not in (8, 16):
            raise fail(f"{bits}-bit PCM is not supported {_SUPPORTED_HINT}")
    elif tag == _ULAW:
        if bits != 8:
            raise fail(f"{bits}-bit mu-law is not supported {_SUPPORTED_HINT}")
    elif tag == _FLOAT:
        raise fail(f"{bits}-bit float is not supported {_SUPPORTED_HINT}")
    else:
        what = _FORMAT_NAMES.get(tag, f"format tag 0x{tag:04X}")
        raise fail(f"{what} encoding is not supported {_SUPPORTED_HINT}")
    if block_align != channels * bits // 8:
        raise fail(f"invalid fmt chunk (block align {block_align} for {channels}x{bits}-bit)")
    return _Format(tag, channels, rate, block_align, bits)


def wav_bytes(samples: NDArray[np.generic], rate: int, *, encoding: WavEncoding = "pcm16") -> bytes:
    """Encode mono samples as a WAV file (16-bit PCM or mu-law).

    Float input is taken as [-1, 1] full scale; int16 as is.
    """
    pcm = _pcm16(samples)
    if encoding == "pcm16":
        payload = pcm.astype("<i2").tobytes()
        fmt = struct.pack("<HHIIHH", _PCM, 1, rate, rate * 2, 2, 16)
        chunks = [(b"fmt ", fmt)]
    elif encoding == "mulaw":
        payload = ulaw_encode(pcm)
        # Non-PCM formats carry cbSize and a fact chunk (sample count), as the RIFF spec asks.
        fmt = struct.pack("<HHIIHHH", _ULAW, 1, rate, rate, 1, 8, 0)
        chunks = [(b"fmt ", fmt), (b"fact", struct.pack("<I", len(pcm)))]
    else:
        raise ValueError(f"unknown WAV encoding {encoding!r}")
    chunks.append((b"data", payload))
    body = b"".join(
        cid + struct.pack("<I", len(c)) + c + (b"\x00" if len(c) & 1 else b"") for cid, c in chunks
    )
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def write_wav(
    path: str | os.PathLike[str],
    samples: NDArray[np.generic],
    rate: int,
    *,
    encoding: WavEncoding = "pcm16",
) -> None:
    """Write mono samples as a WAV file; see ``wav_bytes``."""
    Path(path).write_bytes(wav_bytes(samples, rate, encoding=encoding))


def _pcm16(samples: NDArray[np.generic]) -> Int16Array:
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {x.shape}")
    if x.dtype == np.int16:
        return x
    if np.issubdtype(x.dtype, np.floating):
        return np.clip(np.rint(x * 32767.0), -32768, 32767).astype(np.int16)
    raise TypeError(f"expected int16 or float samples, got {x.dtype}")
