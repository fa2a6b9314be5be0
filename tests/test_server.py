"""The server's parts that need no model: metrics text, prompt audio, serve's refusal to start,
the reload triggers (config file watching and SIGHUP)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from voicebot.cli.main import main
from voicebot.cli.serve import (
    ConfigWatcher,
    dev_environment,
    install_reload_signal,
    missing_credentials,
)
from voicebot.core.config import DestinationKind
from voicebot.loading.loader import ConfigError, ConfigHolder
from voicebot.speech.tts import Tts, TtsError
from voicebot.telephony.metrics import Metrics, percentile


def test_metrics_render_prometheus_text() -> None:
    m = Metrics()
    m.call_started()
    m.call_started()
    m.call_ended()
    m.decision("transferred")
    m.decision("transferred")
    m.decision("sms_sent")
    m.error("protocol")
    m.reload(ok=False)
    for s, waited in ((0.004, 0.0), (0.02, 0.04), (3.0, 0.7)):
        m.decoded(s, waited)
    m.latency(0.12)
    text = m.render()
    assert "voicebot_calls_in_progress 1\n" in text
    assert 'voicebot_decisions_total{action="transferred"} 2\n' in text
    assert 'voicebot_decisions_total{action="sms_sent"} 1\n' in text
    assert 'voicebot_errors_total{kind="protocol"} 1\n' in text
    assert 'voicebot_config_reloads_total{result="failed"} 1\n' in text
    # cumulative buckets: 0.004 <= 0.005, 0.02 <= 0.025, 3.0 only in +Inf
    assert 'voicebot_decode_seconds_bucket{le="0.005"} 1\n' in text
    assert 'voicebot_decode_seconds_bucket{le="0.025"} 2\n' in text
    # how long each chunk waited for the decoder: 0.0 and 0.04 by 0.05 s, 0.7 only by 1.0 s
    assert 'voicebot_decode_wait_seconds_bucket{le="0.05"} 2\n' in text
    assert 'voicebot_decode_wait_seconds_bucket{le="0.5"} 2\n' in text
    assert 'voicebot_decode_wait_seconds_bucket{le="1.0"} 3\n' in text
    assert 'voicebot_decode_seconds_bucket{le="+Inf"} 3\n' in text
    assert "voicebot_decode_seconds_count 3\n" in text
    assert 'voicebot_decision_seconds_bucket{le="0.1"} 0\n' in text
    assert 'voicebot_decision_seconds_bucket{le="0.15"} 1\n' in text
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? [0-9.e+-]+", line), line


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0


def test_tts_speaks_telephone_mulaw_and_caches() -> None:
    tts = Tts()
    if not tts.available:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    audio = tts.mulaw("안녕하세요, 고객 센터입니다.", "ko-KR")
    assert 0.8 < len(audio) / 8000 < 6.0  # seconds of 8 kHz mu-law
    assert len(set(audio)) > 50  # speech, not silence
    assert tts.mulaw("안녕하세요, 고객 센터입니다.", "ko-KR") is audio
    assert tts.synthesised == 1


def test_tts_without_espeak_says_so() -> None:
    tts = Tts(binary="no-such-espeak-binary")
    assert not tts.available
    with pytest.raises(TtsError):
        tts.mulaw("hello", "en-US")


def test_production_needs_credentials_dev_fills_them() -> None:
    assert missing_credentials({}) == [
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER (or TWILIO_MESSAGING_SERVICE_SID)",
    ]
    env = dev_environment({"TWILIO_AUTH_TOKEN": "mine"})
    assert missing_credentials(env) == []
    assert env["TWILIO_AUTH_TOKEN"] == "mine"  # the environment wins over dev defaults
    assert env["TWILIO_API_BASE_URL"].startswith("http://127.0.0.1:")


def test_serve_refuses_to_start_without_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve", "--public-url", "https://bot.example.com"]) == 2
    assert "TWILIO_ACCOUNT_SID" in capsys.readouterr().err


def test_serve_needs_a_public_url_outside_dev(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+15005550006")
    assert main(["serve"]) == 2
    assert "--public-url" in capsys.readouterr().err


CONFIG = """\
language: en-US
default_group: members
groups:
  members:
    number: "+46101234567"
intents:
  invoice:
    phrases: [my invoice]
    transfer: members
"""


def edit(path: Path, text: str) -> None:
    """Write and move the mtime on, as an editor saving a second later would."""
    path.write_text(text, encoding="utf-8")
    later = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(later, later))


def members_number(holder: ConfigHolder) -> str:
    return holder.language().group(None).destination.value


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "en-US").mkdir()
    (tmp_path / "en-US" / "intents.yaml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def test_a_changed_config_file_triggers_one_reload(config_dir: Path) -> None:
    holder = ConfigHolder(config_dir)
    results: list[ConfigError | None] = []
    watcher = ConfigWatcher(config_dir, lambda: results.append(holder.reload()))
    assert not watcher.poll() and results == []  # nothing changed yet
    edit(config_dir / "en-US" / "intents.yaml", CONFIG.replace("+46101234567", "+46101234568"))
    assert watcher.poll()
    assert not watcher.poll()  # the same change is not reloaded twice
    assert results == [None]
    assert members_number(holder) == "+46101234568"
    (config_dir / "en-US" / "groups.yaml").write_text("# groups move here later\n", "utf-8")
    assert watcher.poll() and len(results) == 2  # a new file counts as a change


def test_a_broken_edit_keeps_the_last_good_config_and_logs_why(
    config_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = ConfigHolder(config_dir)
    watcher = ConfigWatcher(config_dir, holder.reload)
    caplog.set_level(logging.INFO)
    edit(config_dir / "en-US" / "intents.yaml", CONFIG.replace('"+46101234567"', '"12"'))
    assert watcher.poll()
    assert members_number(holder) == "+46101234567"  # still serving the last good config
    assert holder.language().group(None).destination.kind is DestinationKind.NUMBER
    assert "configuration reload failed" in caplog.text
    assert "intents.yaml:5" in caplog.text  # where the mistake is
    assert "configuration files changed: reloading" in caplog.text


def test_a_reload_of_a_file_with_a_nul_byte_fails_like_any_broken_edit(config_dir: Path) -> None:
    """The YAML reader rejects a NUL before parsing; that must be a reload failure (counted in
    the metrics by the server), not an exception escaping the reload."""
    holder = ConfigHolder(config_dir)
    edit(config_dir / "en-US" / "intents.yaml", CONFIG.replace("members:", "mem\0bers:", 1))
    error = holder.reload()
    assert error is not None and holder.last_error is error
    assert "intents.yaml:" in str(error) and "NUL" in str(error)
    assert members_number(holder) == "+46101234567"  # still serving the last good config


def test_sighup_reloads_the_configuration(config_dir: Path) -> None:
    holder = ConfigHolder(config_dir)
    before = signal.getsignal(signal.SIGHUP)

    async def hang_up() -> None:
        restore = install_reload_signal(asyncio.get_running_loop(), holder.reload)
        try:
            edit(config_dir / "en-US" / "intents.yaml", CONFIG.replace("4567", "4569"))
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(250):
                if members_number(holder) == "+46101234569":
                    return
                await asyncio.sleep(0.02)
        finally:
            restore()

    asyncio.run(hang_up())
    assert members_number(holder) == "+46101234569"
    assert signal.getsignal(signal.SIGHUP) == before  # the previous handling is back


def test_a_full_garbage_collection_no_longer_walks_what_serve_loaded_at_start() -> None:
    """``serve`` freezes its start-up heap once the models are loaded: a full collection then
    walks only what calls allocate, so it no longer stops every call for tens of ms (#20)."""
    script = (
        "import gc\n"
        "from voicebot.cli.serve import freeze_startup_objects\n"
        "loaded = [[i] for i in range(300_000)]  # a model's worth of objects\n"
        "before = len(gc.get_objects(generation=2))\n"
        "freeze_startup_objects()\n"
        "after = len(gc.get_objects(generation=2))\n"
        "print(before, after)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    before, after = map(int, done.stdout.split())
    assert before > 300_000
    assert after < 1_000
