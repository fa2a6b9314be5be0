#!/usr/bin/env python3
"""Render the caller audio fixtures: synthetic telephone calls for replay tests.

    python audio_fixtures/generate.py          # rewrites audio_fixtures/<lang>/*.wav and
                                               # audio_fixtures/expectations.csv
    python audio_fixtures/generate.py --paused DIR   # requests with pauses inside, into DIR

espeak-ng speaks each caller sentence; sox turns it into telephone audio (8 kHz, 16-bit mono,
band-limited to 300-3400 Hz). Variants add white or pink noise at about 15 dB SNR, long
silences around the speech, or a silent first turn before the request. Every random step uses
sox's fixed seed (-R), so the output is byte-identical on every run with the same tools.

Only the Korean model can be installed on the test machines, so only ko-KR is replayed end to
end (against tests/data/ko-KR/intents.yaml). The Korean sentences and espeak settings were
chosen by trying: espeak's Korean through a telephone band is hard to recognise, and these are
words the small Korean Vosk model picks out of the test grammar reliably. The English and
Swedish files route against the example deployment once their models are installed.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 8000
SNR_DB = 15.0


@dataclass(frozen=True)
class Voice:
    espeak: str  # espeak-ng voice (+variant)
    speed: int  # words per minute
    pitch: int  # 0..99


VOICES = {
    "ko-KR": Voice("ko+f2", 140, 50),
    "en-US": Voice("en-us", 150, 50),
    "sv-SE": Voice("sv", 150, 50),
}


@dataclass(frozen=True)
class Fixture:
    lang: str
    name: str  # file stem
    text: str  # what the caller says ("" for a silent call)
    expect: str  # intent name, or an action such as transfer:billing
    noise: str | None = None  # "whitenoise" or "pinknoise"
    lead_s: float = 0.3  # silence before the speech
    tail_s: float = 0.5  # silence after it
    first_turn_silent_s: float = 0.0  # silence long enough for a re-prompt before speaking
    voice: Voice | None = None  # instead of the language's voice


KO = "ko-KR"
FIXTURES: tuple[Fixture, ...] = (
    # Korean: replayed by the test suite against tests/data/ko-KR/intents.yaml
    Fixture(KO, "billing", "요금 납부", "transfer:billing"),
    Fixture(KO, "password", "아이디 비밀 번호", "sms:password", voice=Voice("ko+f2", 120, 50)),
    Fixture(KO, "hours", "영업 시간", "announce:hours"),
    Fixture(KO, "course", "강의 예약", "sms:course"),
    # Through the phone codec (8 kHz mu-law) the default voice's "상담원" sits on a decision
    # boundary (heard as 회원 or 번호 depending on the dither); this rendering decodes as the
    # escape word with every dither tried (PCM and mu-law), so it pins routing, not luck.
    Fixture(KO, "agent", "상담원", "transfer:general", voice=Voice("ko+f2", 130, 70)),
    # With noise at 15 dB SNR only some renderings survive; these were picked by replaying
    # candidates (voice, speed, pitch) repeatedly and keeping ones that always route right.
    Fixture(
        KO,
        "billing_noisy",
        "요금 납부 요금",
        "transfer:billing",
        "whitenoise",
        voice=Voice("ko+f2", 140, 70),
    ),
    Fixture(
        KO,
        "password_noisy",
        "아이디 비밀 번호",
        "sms:password",
        "pinknoise",
        voice=Voice("ko", 140, 50),
    ),
    Fixture(
        KO, "course_noisy", "강의 예약", "sms:course", "whitenoise", voice=Voice("ko", 140, 30)
    ),
    Fixture(KO, "course_padded", "강의 예약", "sms:course", lead_s=2.0, tail_s=3.0),
    Fixture(KO, "hours_padded", "영업 시간", "announce:hours", lead_s=2.0, tail_s=3.0),
    Fixture(KO, "silence", "", "transfer:general", lead_s=3.0, tail_s=0.0),
    Fixture(KO, "two_turns", "요금 납부", "transfer:billing", first_turn_silent_s=6.0),
    # English and Swedish: the example deployment in grammars/
    Fixture("en-US", "invoice", "I have a question about my invoice", "invoice"),
    Fixture("en-US", "password", "I forgot my password", "login_password"),
    Fixture("en-US", "agent", "I want to talk to a person", "transfer:members"),
    Fixture(
        "en-US", "invoice_noisy", "I have a question about my invoice", "invoice", noise="pinknoise"
    ),
    Fixture(
        "en-US", "two_turns", "I want to book a course", "course_booking", first_turn_silent_s=6.0
    ),
    Fixture("sv-SE", "faktura", "Jag har en fråga om min faktura", "invoice"),
    Fixture("sv-SE", "losenord", "Jag har glömt mitt lösenord", "login_password"),
    Fixture(
        "sv-SE",
        "forsakring_noisy",
        "Jag har en fråga om min försäkring",
        "insurance",
        noise="whitenoise",
    ),
)


@dataclass(frozen=True)
class Paused:
    """A request said in pieces with a pause between them ("요금 ... 납부"), as callers hesitate:
    the bot must not act on the first piece. Rendered at benchmark time (not checked in)."""

    name: str
    parts: tuple[str, ...]
    pause_s: float
    expect: str
    voice: Voice


# Two-word requests of tests/data/ko-KR/intents.yaml split at the word boundary (the first
# word alone is no whole phrase of any intent), each in two voices that the small Korean model
# decodes to the right intent with a 300 and a 500 ms pause (found by trying: espeak's Korean
# is hard for it, and "영업 ... 시간" or "강의 ... 예약" came out as other words in every
# voice tried). Pauses span 300-700 ms.
_PAUSED_REQUESTS = (
    (
        "billing",
        ("요금", "납부"),
        "transfer:billing",
        (Voice("ko+f4", 140, 50), Voice("ko+f4", 140, 30)),
    ),
    (
        "unpaid",
        ("미납", "요금"),
        "transfer:billing",
        (Voice("ko", 120, 50), Voice("ko+f2", 140, 70)),
    ),
    (
        "invoice",
        ("요금", "청구서"),
        "transfer:billing",
        (Voice("ko", 140, 50), Voice("ko+m3", 140, 50)),
    ),
    (
        "password",
        ("아이디", "비밀 번호"),
        "sms:password",
        (Voice("ko", 140, 50), Voice("ko+f2", 120, 50)),
    ),
)
PAUSED: tuple[Paused, ...] = tuple(
    Paused(f"{name}_{round(pause * 1000)}ms_v{v}", parts, pause, expect, voice)
    for name, parts, expect, voices in _PAUSED_REQUESTS
    for pause in (0.3, 0.4, 0.5, 0.6, 0.7)
    for v, voice in enumerate(voices)
)


def render_paused(f: Paused, tmp: Path) -> np.ndarray:
    """The request in one espeak-ng utterance with an SSML break at the word boundary, so the
    words keep their coarticulation (pieces rendered apart decode far worse)."""
    brk = f'<break time="{round(f.pause_s * 1000)}ms"/>'
    ssml = "<speak>" + f" {brk} ".join(f.parts) + "</speak>"
    speech = speak(ssml, f.voice, tmp, ssml=True)
    x = np.concatenate([np.zeros(round(0.3 * RATE)), speech, np.zeros(round(1.5 * RATE))])
    x *= 0.5 / max(1e-9, float(np.max(np.abs(speech))))
    return np.clip(np.rint(x * 32767), -32768, 32767).astype("<i2")


def write_paused(out: Path) -> list[tuple[Path, Paused]]:
    """Render every ``PAUSED`` request into ``out``; returns (file, fixture) pairs."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as t:
        for f in PAUSED:
            path = out / f"{f.name}.wav"
            path.write_bytes(wav(render_paused(f, Path(t))))
            written.append((path, f))
    return written


def run(*cmd: str) -> bytes:
    return subprocess.run(cmd, check=True, capture_output=True).stdout


# sox output as raw 32-bit float mono at the line's rate, and the telephone band filter.
_FLOAT_OUT = ("-t", "raw", "-e", "float", "-b", "32", "-c", "1", "-r", str(RATE))
_PHONE_BAND = ("sinc", "300-3400")


def speak(text: str, voice: Voice, tmp: Path, *, ssml: bool = False) -> np.ndarray:
    """espeak-ng at its own rate, then sox to 8 kHz telephone band as float samples."""
    raw, tel = tmp / "espeak.wav", tmp / "tel.raw"
    run(
        "espeak-ng",
        *(("-m",) if ssml else ()),
        "-v",
        voice.espeak,
        "-s",
        str(voice.speed),
        "-p",
        str(voice.pitch),
        "-w",
        str(raw),
        text,
    )
    run("sox", "-R", str(raw), *_FLOAT_OUT, str(tel), *_PHONE_BAND)
    return np.frombuffer(tel.read_bytes(), dtype="<f4").astype(np.float64)


def noise(kind: str, n: int, tmp: Path) -> np.ndarray:
    """sox noise with its fixed seed, band-limited like the line it rides on."""
    out = tmp / "noise.raw"
    run("sox", "-R", "-n", *_FLOAT_OUT, str(out), "synth", f"{n / RATE:.6f}", kind, *_PHONE_BAND)
    x = np.frombuffer(out.read_bytes(), dtype="<f4").astype(np.float64)
    return np.resize(x, n)


def render(f: Fixture, tmp: Path) -> np.ndarray:
    speech = speak(f.text, f.voice or VOICES[f.lang], tmp) if f.text else np.zeros(0)
    parts = [
        np.zeros(round((f.first_turn_silent_s + f.lead_s) * RATE)),
        speech,
        np.zeros(round(f.tail_s * RATE)),
    ]
    x = np.concatenate(parts)
    if len(speech):
        x *= 0.5 / max(1e-9, float(np.max(np.abs(speech))))  # peak at -6 dBFS
    if f.noise is not None:
        voiced = x[np.abs(x) > 0.02]
        speech_rms = float(np.sqrt(np.mean(voiced**2))) if len(voiced) else 0.05
        n = noise(f.noise, len(x), tmp)
        n *= speech_rms / max(1e-9, float(np.sqrt(np.mean(n**2)))) / 10 ** (SNR_DB / 20)
        x = x + n
    return np.clip(np.rint(x * 32767), -32768, 32767).astype("<i2")


def wav(samples: np.ndarray) -> bytes:
    data = samples.tobytes()
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + RATE.to_bytes(4, "little")
    fmt += (RATE * 2).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    body = b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    body += b"data" + len(data).to_bytes(4, "little") + data
    return b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WAVE" + body


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--paused":
        written = write_paused(Path(sys.argv[2]))
        print(f"wrote {len(written)} requests with pauses into {sys.argv[2]}")
        return 0
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["file", "expect"])
    total = 0
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for f in FIXTURES:
            path = HERE / f.lang / f"{f.name}.wav"
            path.parent.mkdir(exist_ok=True)
            data = wav(render(f, tmp))
            path.write_bytes(data)
            total += len(data)
            writer.writerow([f"{f.lang}/{f.name}.wav", f.expect])
    (HERE / "expectations.csv").write_text(rows.getvalue(), encoding="utf-8")
    print(f"wrote {len(FIXTURES)} files, {total / 1e6:.2f} MB, and expectations.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
