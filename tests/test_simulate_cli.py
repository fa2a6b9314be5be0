"""`voicebot simulate` as a tester runs it, against a live server (uvicorn in a thread, the real
Korean model), and what `voicebot serve` writes to its log."""

from __future__ import annotations

import io
import json
import logging
import shutil
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from voicebot.cli.main import main
from voicebot.cli.serve import configure_logging
from voicebot.core.config import Destination, DestinationKind
from voicebot.loading.loader import ConfigHolder
from voicebot.speech.recognizer import SpeechModel
from voicebot.speech.tts import Tts
from voicebot.telephony.rest import TwilioRest
from voicebot.telephony.settings import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN
from voicebot.telephony.testing.serving import free_port
from voicebot.telephony.testing.twiml_reader import parse_twiml
from voicebot.telephony.twiml import transfer_twiml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "data" / "ko-KR" / "intents.yaml"
AUDIO = ROOT / "audio_fixtures" / "ko-KR"


@pytest.fixture(scope="module")
def server(ko_model: SpeechModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose REST client calls the fake API `simulate` runs on ``rest_port``."""
    from voicebot.telephony.app import SpeechProvider, VoiceServer
    from voicebot.telephony.settings import ServerSettings

    config = tmp_path_factory.mktemp("config") / "intents.yaml"
    shutil.copy(CONFIG, config)
    port, rest_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    rest = TwilioRest(
        DEV_ACCOUNT_SID,
        DEV_AUTH_TOKEN,
        from_number="+15005550006",
        base_url=f"http://127.0.0.1:{rest_port}",
        backoff_s=0.01,
    )
    voice = VoiceServer(
        ServerSettings(public_url=url, auth_token=DEV_AUTH_TOKEN),
        ConfigHolder(config),
        rest,
        SpeechProvider(lambda _config: ko_model),
        tts=Tts(),
    )
    uv = uvicorn.Server(
        uvicorn.Config(voice.app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"{url} {rest_port}"
    finally:
        uv.should_exit = True
        thread.join(5)


def _simulate(server: str, *args: str) -> list[str]:
    url, rest_port = server.split()
    return ["simulate", "--url", url, "--rest-port", rest_port, *args]


def _silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))
    return path


def test_max_wait_without_a_decision_exits_non_zero(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The caller says nothing and hangs up after 1 s; the bot would only ask again after 5 s.
    code = main(_simulate(server, "--max-wait", "1", str(_silence(tmp_path / "quiet.wav", 0.5))))
    out = capsys.readouterr().out
    assert code == 1, out
    assert "did: none" in out
    assert "no decision 1 s after the caller's audio" in out


def test_a_server_that_is_not_there_is_named_in_plain_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = main(["simulate", "--url", url, str(AUDIO / "billing.wav")])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"  problem: cannot reach {url}: Connection refused\n" in out, out
    assert "URLError" not in out and "Errno" not in out


def test_several_calls_print_one_line_each(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_simulate(server, "--calls", "3", str(AUDIO / "billing.wav")))
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, lines
    assert len(lines) == 4, lines  # one per call, then the summary
    for line in lines[:3]:
        assert line.startswith("CA") and "transfer enqueue billing" in line
    assert json.loads(lines[3])["decisions"] == {"transfer enqueue billing": 3}


def test_prompts_spoken_in_the_stream_are_shown_with_their_text(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The hours announcement is spoken as audio in the stream, not as a <Say>.
    code = main(_simulate(server, str(AUDIO / "hours.wav"), "--max-wait", "8"))
    out = capsys.readouterr().out
    streamed = [line for line in out.splitlines() if "said: (stream) prompt-" in line]
    assert streamed, out
    assert "영업 시간은" in streamed[0], out  # "our opening hours are ..."
    assert code in (0, 1)


def test_serve_does_not_log_rest_request_headers() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    for h in handlers:
        root.removeHandler(h)
    try:
        configure_logging()
        http = logging.getLogger("twilio.http_client")
        assert not http.isEnabledFor(logging.INFO)  # it logs every request's headers at INFO
        assert http.isEnabledFor(logging.WARNING)
        assert logging.getLogger("voicebot.telephony").isEnabledFor(logging.INFO)
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        logging.getLogger("twilio.http_client").setLevel(logging.NOTSET)


def test_a_sip_transfer_shows_one_scheme(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example deployment's billing group dials ``sip:billing@pbx.example.org``."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("I have a question about my invoice\n"))
    code = main(["chat", "--at", "2026-11-24T10:00"])
    out = capsys.readouterr().out
    transfer = next(line for line in out.splitlines() if line.startswith("TRANSFER"))
    assert "(sip:billing@pbx.example.org)" in transfer, transfer
    assert code == 0
    dial = parse_twiml(
        transfer_twiml(Destination(DestinationKind.SIP, "sip:billing@pbx.example.org"))
    )
    assert dial.final == "dial sip:billing@pbx.example.org"  # what `simulate` prints
