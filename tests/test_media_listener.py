"""``voicebot serve`` with its picows media listener (issue #20), as a real process: the TwiML of
a local run points at the media port, a whole call is decided through it, and a SIGTERM drains
a call in progress there (readiness says draining on both ports) before the process exits 0.
The media guarantees themselves (signature, size, timeouts, duplicates, stream claims) are
tested on both transports in tests/test_hardening.py."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from voicebot.telephony.testing.call_report import format_report
from voicebot.telephony.testing.fake_rest import FakeTwilio
from voicebot.telephony.testing.serving import free_port
from voicebot.telephony.testing.simulator import SILENCE, SimOptions, load_audio, simulate_call

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"
AUDIO = ROOT / "audio_fixtures" / "ko-KR"


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    media_port: int
    log: Path

    def health(self, port: int) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> FakeTwilio:
    """The fake Twilio REST API ``serve --dev`` calls (transfers, texts)."""
    twilio = FakeTwilio().start()
    request.addfinalizer(twilio.stop)
    return twilio


@pytest.fixture(params=[["--coalesce-ms", "0"], []], ids=["asyncio-loop", "coalescing-loop"])
def served(
    tmp_path: Path, fake: FakeTwilio, ko_model_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Served]:
    """``voicebot serve --dev`` (no --public-url: the media listener on a free port), on
    asyncio's own loop (``--coalesce-ms 0``) and on the default coalescing loop (signals and
    drain included)."""
    port = free_port()
    env = {
        **os.environ,
        "TWILIO_API_BASE_URL": fake.url,
        "VOICEBOT_DATA_DIR": str(tmp_path / "data"),
        "VOICEBOT_ENCODER_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("VOICEBOT_DATABASE_URL", None)
    log = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "voicebot", "serve", "--dev", "--config", str(CONFIG)]
    argv += ["--port", str(port), "--drain-timeout", "30", "--max-backlog", "30", *request.param]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        media = None
        while media is None:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            found = re.search(r"media stream: also on port (\d+)", log.read_text())
            media = int(found.group(1)) if found else None
            time.sleep(0.1)
        running = Served(process, port, media, log)
        while running.health(port)[0] != 200:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _options(served: Served, fake: FakeTwilio, **kw: object) -> SimOptions:
    return SimOptions(
        url=f"http://127.0.0.1:{served.port}",
        auth_token=fake.auth_token,
        account_sid=fake.account_sid,
        max_wait_s=30.0,
        **kw,  # type: ignore[arg-type]
    )


def test_a_local_serve_streams_through_the_media_port_and_drains_it_on_sigterm(
    served: Served, fake: FakeTwilio
) -> None:
    async def scenario() -> tuple[str, str, tuple[int, str], tuple[int, str]]:
        # one call at full speed: decided through the media port
        turns = [load_audio(AUDIO / "billing.wav")]
        first = await simulate_call(turns, _options(served, fake), fake)
        # one in real time, the caller silent for 3 s: SIGTERM while it is in progress
        slow = [SILENCE * 150 + load_audio(AUDIO / "billing.wav")]
        call = asyncio.ensure_future(
            simulate_call(slow, _options(served, fake, realtime=True), fake)
        )
        deadline = time.monotonic() + 20
        while "ok 1 call" not in (await asyncio.to_thread(served.health, served.port))[1]:
            assert time.monotonic() < deadline, served.log.read_text()
            await asyncio.sleep(0.05)
        served.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        main = await asyncio.to_thread(served.health, served.port)
        media = await asyncio.to_thread(served.health, served.media_port)
        report = await call
        return (
            first.decision,
            f"{report.decision} {format_report(report)}",
            main,
            media,
        )

    first, drained, main, media = asyncio.run(scenario())
    assert first == "transfer enqueue billing"
    assert drained.startswith("transfer enqueue billing "), drained
    assert main[0] == 503 and "draining" in main[1]
    assert media[0] == 503 and "draining" in media[1]  # the media port's own health check
    assert served.process.wait(40) == 0
    text = served.log.read_text()
    assert "drained: 0 call(s) handed to the default group" in text
    assert f"ws://127.0.0.1:{served.media_port}/twilio/media" in text  # the TwiML's stream URL
