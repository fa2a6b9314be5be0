"""Audio formats for the speech path: 16-bit samples, G.711 mu-law and WAV files.

numpy only: the stdlib ``audioop`` module is gone in Python 3.13 and ``wave`` cannot read
mu-law or WAVE_FORMAT_EXTENSIBLE files in 3.11, which are exactly what telephony produces.
Resampling is ``resample`` and the energy VAD is ``endpointing``: this module is only about how
samples are stored and encoded.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray

from voicebot.errors import VoicebotError
from voicebot.speech.resample import resample

__all__ = [
    "Audio",
    "AudioError",
    "as_int16",
    "parse_wav",
    "read_wav",
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
