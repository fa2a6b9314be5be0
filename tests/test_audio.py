"""Audio plumbing: G.711 mu-law, resampling and WAV reading, checked against independent
references (the G.711 tables, audioop where Python still has it, sox and the wave module)."""

from __future__ import annotations

import subprocess
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest

from voicebot.speech.audio import (
    AudioError,
    read_wav,
    ulaw_decode,
    ulaw_encode,
    write_wav,
)
from voicebot.speech.endpointing import EnergyVad
from voicebot.speech.resample import Resampler, resample

SOX = "/usr/bin/sox"
ALL_CODES = bytes(range(256))


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


# ---------------------------------------------------------------------------- mu-law


def test_ulaw_known_g711_values() -> None:
    assert ulaw_encode(np.array([0], dtype=np.int16)) == b"\xff"
    assert ulaw_encode(np.array([32767, -32768], dtype=np.int16)) == b"\x80\x00"
    decoded = ulaw_decode(b"\x80\x00\xff\x7f\xfe\x7e")
    assert decoded.tolist() == [32124, -32124, 0, 0, 8, -8]


def test_ulaw_clips_at_8159_fourteen_bit_units() -> None:
    # 8159 in 14-bit units is 32636 in 16-bit ones; everything louder codes as the top step.
    loud = np.arange(32636, 32768, dtype=np.int16)
    assert set(ulaw_encode(loud)) == {0x80}
    assert set(ulaw_encode(-loud)) == {0x00}
    assert ulaw_decode(b"\x80")[0] == 32124


def test_ulaw_decode_table_is_symmetric_and_monotonic() -> None:
    table = ulaw_decode(ALL_CODES).astype(np.int32)
    assert np.array_equal(table[:128], -table[128:])  # sign bit only flips the sign
    # Within each half, larger codes mean smaller magnitudes.
    assert np.all(np.diff(table[128:]) < 0)
    assert np.all(np.diff(table[:128]) > 0)


def test_ulaw_round_trip() -> None:
    codes = np.frombuffer(ALL_CODES, dtype=np.uint8)
    again = np.frombuffer(ulaw_encode(ulaw_decode(ALL_CODES)), dtype=np.uint8)
    # Every code survives decode+encode, except negative zero (0x7F), which becomes 0xFF.
    assert np.array_equal(again[codes != 0x7F], codes[codes != 0x7F])
    assert again[0x7F] == 0xFF
    x = np.arange(-32768, 32768, dtype=np.int16)
    error = np.abs(ulaw_decode(ulaw_encode(x)).astype(np.int32) - x)
    # Quantisation error stays within about half a step (1/32 of the level), plus the 14-bit
    # truncation near zero.
    assert np.all(error <= np.abs(x.astype(np.int32)) // 16 + 8)


def test_ulaw_matches_audioop_everywhere() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop", reason="audioop left Python in 3.13")
    x = np.arange(-32768, 32768, dtype=np.int16)
    assert ulaw_encode(x) == audioop.lin2ulaw(x.tobytes(), 2)
    assert ulaw_decode(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


def test_ulaw_encode_accepts_pcm_bytes_and_rejects_odd_lengths() -> None:
    x = tone(440, 8000, 0.02)
    assert ulaw_encode(x.tobytes()) == ulaw_encode(x)
    with pytest.raises(AudioError):
        ulaw_encode(b"\x00\x01\x02")


# ---------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_resample_8k_to_16k_keeps_frequency_level_and_doubles_length(freq: float) -> None:
    x = tone(freq, 8000, 1.0)
    y = resample(x, 8000, 16000)
    assert y.dtype == np.int16
    assert len(y) == 2 * len(x)
    assert abs(peak_hz(y, 16000) - freq) <= 2.0
    assert rms(y[200:-200]) == pytest.approx(rms(x[100:-100]), rel=0.02)
    # Interpolation must not create an image of the tone above 4 kHz.
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    assert spectrum[freqs > 4400].max() < spectrum.max() * 1e-3


@pytest.mark.parametrize(("src", "dst"), [(44100, 16000), (48000, 16000), (16000, 8000)])
def test_resample_length_ratio_and_frequency(src: int, dst: int) -> None:
    x = tone(440, src, 0.75)
    y = resample(x, src, dst)
    assert abs(len(y) - len(x) * dst / src) <= 1
    assert abs(peak_hz(y, dst) - 440) <= 3.0


def test_downsampling_removes_tones_above_the_new_nyquist() -> None:
    # A 6 kHz tone cannot exist at 8 kHz; without filtering it would alias to 2 kHz.
    y = resample(tone(6000, 48000, 0.5), 48000, 8000)
    assert rms(y) < 0.01 * rms(tone(6000, 48000, 0.5))


def test_streaming_resampler_matches_one_shot() -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-20000, 20000, 8000 * 2).astype(np.int16)
    whole = resample(x, 8000, 16000)
    for sizes in ([160], [1], [7, 331, 2], [4000]):
        r = Resampler(8000, 16000)
        pieces, i, k = [], 0, 0
        while i < len(x):
            n = sizes[k % len(sizes)]
            pieces.append(r.process(x[i : i + n]))
            i, k = i + n, k + 1
        pieces.append(r.flush())
        assert np.array_equal(np.concatenate(pieces), whole), sizes


def test_resample_float_stays_float_and_silence_stays_silent() -> None:
    y = resample(np.zeros(800, dtype=np.float32), 8000, 16000)
    assert y.dtype == np.float32
    assert not y.any()


# ---------------------------------------------------------------------------- WAV files


def write_with_wave(path: Path, rate: int, channels: int, width: int, frames: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_read_16_bit_pcm(tmp_path: Path, rate: int, channels: int) -> None:
    left = tone(440, rate, 0.1)
    right = tone(880, rate, 0.1, amplitude=0.25)
    frames = np.stack([left, right], axis=1)[:, :channels]
    path = tmp_path / "x.wav"
    write_with_wave(path, rate, channels, 2, frames)
    audio = read_wav(path)
    assert audio.rate == rate
    expected = left if channels == 1 else np.rint((left + right.astype(np.int32)) / 2)
    assert np.array_equal(audio.samples, expected.astype(np.int16))


@pytest.mark.parametrize("channels", [1, 2])
def test_read_8_bit_unsigned_pcm(tmp_path: Path, channels: int) -> None:
    u8 = np.array([0, 128, 255, 64] * 10, dtype=np.uint8)
    frames = np.repeat(u8[:, None], channels, axis=1)
    path = tmp_path / "x.wav"
    write_with_wave(path, 8000, channels, 1, frames)
    audio = read_wav(path)
    assert audio.samples.tolist() == [((v - 128) << 8) for v in u8.tolist()]


def sox(*args: str) -> None:
    if not Path(SOX).exists():
        pytest.skip("sox is not installed (apt-get install sox)")
    subprocess.run([SOX, *args], check=True, capture_output=True)


def test_read_mulaw_wav_written_by_sox(tmp_path: Path) -> None:
    src, dst = tmp_path / "pcm.wav", tmp_path / "ulaw.wav"
    x = tone(440, 8000, 0.2)
    write_wav(src, x, 8000)
    sox("-D", str(src), "-e", "u-law", "-b", "8", str(dst))  # -D: no dither
    audio = read_wav(dst)
    assert audio.rate == 8000
    assert np.array_equal(audio.samples, ulaw_decode(ulaw_encode(x)))


def test_read_extensible_wav_written_by_sox(tmp_path: Path) -> None:
    # sox writes WAVE_FORMAT_EXTENSIBLE for more than two channels.
    src, dst = tmp_path / "mono.wav", tmp_path / "three.wav"
    x = tone(440, 16000, 0.1)
    write_wav(src, x, 16000)
    sox(str(src), "-c", "3", str(dst))
    assert int.from_bytes(dst.read_bytes()[20:22], "little") == 0xFFFE
    audio = read_wav(dst)
    assert np.array_equal(audio.samples, x)


@pytest.mark.parametrize("encoding", ["pcm16", "mulaw"])
def test_write_then_read(tmp_path: Path, encoding: str) -> None:
    x = tone(1000, 8000, 0.3)
    write_wav(tmp_path / "x.wav", x, 8000, encoding=encoding)  # type: ignore[arg-type]
    audio = read_wav(tmp_path / "x.wav")
    expected = x if encoding == "pcm16" else ulaw_decode(ulaw_encode(x))
    assert np.array_equal(audio.samples, expected)
    assert audio.duration_s == pytest.approx(0.3)


def assert_one_line_error(path: Path, *needles: str) -> None:
    with pytest.raises(AudioError) as info:
        read_wav(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_24_bit_is_rejected_by_name(tmp_path: Path) -> None:
    path = tmp_path / "deep.wav"
    write_with_wave(path, 16000, 1, 3, np.zeros(300, dtype=np.uint8))
    assert_one_line_error(path, "24-bit PCM", "not supported")


def test_32_bit_float_is_rejected_by_name(tmp_path: Path) -> None:
    src, dst = tmp_path / "pcm.wav", tmp_path / "float.wav"
    write_wav(src, tone(440, 16000, 0.1), 16000)
    sox(str(src), "-e", "floating-point", "-b", "32", str(dst))
    assert_one_line_error(dst, "32-bit float", "not supported")


def test_truncated_wav_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    write_wav(path, tone(440, 8000, 0.5), 8000)
    path.write_bytes(path.read_bytes()[:3001])
    assert_one_line_error(path, "truncated")
    path.write_bytes(path.read_bytes()[:30])  # cut inside the fmt chunk
    assert_one_line_error(path, "truncated")


@pytest.mark.parametrize(
    "content", [b"", b"hello, this is a text file\n", b"ID3\x04\x00" + bytes(100)]
)
def test_not_a_wav_is_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "song.wav"
    path.write_bytes(content)
    assert_one_line_error(path, "not a WAV file")


def test_missing_file_is_named(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path / "nowhere.wav", "cannot read")


# ---------------------------------------------------------------------------- VAD


def test_energy_vad_finds_the_end_of_a_tone_over_line_noise() -> None:
    rng = np.random.default_rng(1)
    rate = 8000
    noise = rng.normal(0, 30, rate * 2).astype(np.int16)  # about -60 dBFS of hiss
    signal = noise.copy()
    signal[rate // 2 : rate] += tone(300, rate, 0.5, amplitude=0.3)
    vad = EnergyVad(rate)
    for i in range(0, len(signal), 160):
        vad.process(signal[i : i + 160])
    assert vad.last_speech_end == pytest.approx(1.0, abs=0.02)
    assert vad.trailing_silence() == pytest.approx(1.0, abs=0.02)
