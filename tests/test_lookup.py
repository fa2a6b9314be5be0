"""Self-service lookups (issue #23): `voicebot chat` against a real local HTTP endpoint, the
loader's checks of the `lookup:` block, `voicebot check`'s warning, and the documented example
endpoint run as written."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicebot.cli.main import main
from voicebot.core.lookup import Lookup
from voicebot.loading.deployment import load_language_text
from voicebot.loading.problems import ConfigError
from voicebot.shells.lookup import LOOKUP_SECRET_ENV, SIGNATURE_HEADER, lookup
from voicebot.telephony.testing.lookup_server import LookupEndpoint
from voicebot.telephony.testing.serving import free_port

ROOT = Path(__file__).resolve().parent.parent
CALLER = "+46701234567"
AT = "2026-11-24T10:00+01:00"
SECRET = "s3cret-for-tests"

CONFIG = """\
language: en-US
timezone: Europe/Stockholm
default_group: members
groups:
  members:
    name: the member service
    queue: members
  courses:
    name: the course team
    queue: courses
intents:
  course_date:
    label: the date of your course
    lookup:
      url: {url}
      otherwise: courses
      timeout_s: 1
    phrases: [when does my course start, what date is my course]
  invoice:
    label: invoices
    transfer: members
    phrases: [my invoice, a question about my bill]
"""

ANSWERS = {
    "date": {"say": "Your course starts on the 3rd of May."},
    "sms": {"say": "Your course starts on the 3rd of May.", "sms": "Course: 3 May, room 4."},
    "transfer": {"say": "Your booking needs a person.", "transfer": "members"},
    "hangup": {"say": "Your course starts on the 3rd of May. Goodbye!", "hangup": True},
    "unknown_group": {"say": "One for the night shift.", "transfer": "night_shift"},
    "too_long": {"say": "Your course " + "really " * 60 + "starts soon."},
    "no_say": {"transfer": "members"},
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LookupEndpoint]:
    server = LookupEndpoint(answers=ANSWERS, slow_s=2.5).start()
    yield server
    server.stop()


def config_file(tmp_path: Path, url: str, text: str = CONFIG) -> Path:
    path = tmp_path / "intents.yaml"
    path.write_text(text.format(url=url), encoding="utf-8")
    return path


def chat(
    config: Path,
    lines: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in lines)))
    code = main(["chat", "--config", str(config), "--at", AT, "--caller", CALLER, *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def outcome(out: str) -> str:
    found = re.search(r"^outcome: (.*)$", out, re.M)
    assert found is not None, out
    return found.group(1)


def test_a_lookup_answers_the_caller_then_asks_for_anything_else(
    endpoint: LookupEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(LOOKUP_SECRET_ENV, SECRET)
    config = config_file(tmp_path, endpoint.url + "/answer/date")
    before = len(endpoint.received)
    out = chat(config, ["when does my course start", "no"], monkeypatch, capsys)
    lines = out.splitlines()
    i = lines.index("bot: One moment.")
    assert lines[i + 1].startswith("LOOKUP course_date: POST http://127.0.0.1")
    assert lines[i + 2] == "(lookup answered)"
    assert lines[i + 3] == "bot: Your course starts on the 3rd of May."
    assert lines[i + 4] == "bot: Is there anything else I can help you with?"
    assert outcome(out).startswith("announced ")
    assert "served=course_date" in out and "lookups=course_date:ok" in out
    # What the endpoint got: the documented JSON, signed over the exact body.
    (request,) = endpoint.received[before:]
    sent = request.json
    assert sent.pop("call").startswith("chat-")
    assert sent == {
        "caller": CALLER,
        "intent": "course_date",
        "transcript": "when does my course start",
        "language": "en-US",
    }
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER] == expected


def test_without_the_secret_the_request_goes_unsigned(
    endpoint: LookupEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(LOOKUP_SECRET_ENV, raising=False)
    before = len(endpoint.received)
    out = chat(
        config_file(tmp_path, endpoint.url + "/answer/date"),
        ["when does my course start", "no"],
        monkeypatch,
        capsys,
    )
    assert "bot: Your course starts on the 3rd of May." in out
    (request,) = endpoint.received[before:]
    assert SIGNATURE_HEADER not in request.headers


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/slow", "no answer within 1 s"),
        ("/broken", "HTTP 500"),
        ("/garbage", "answer is not JSON"),
        ("/answer/unknown_group", "unknown group 'night_shift'"),
        ("/answer/too_long", "more than 300"),
        ("/answer/no_say", "no 'say'"),
        ("/nothing-here", "HTTP 404"),
    ],
)
def test_any_failure_puts_the_caller_through_to_otherwise_without_an_error(
    endpoint: LookupEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    path: str,
    error: str,
) -> None:
    out = chat(
        config_file(tmp_path, endpoint.url + path),
        ["when does my course start"],
        monkeypatch,
        capsys,
    )
    assert "(lookup failed: " in out and error in out, out
    said = [line for line in out.splitlines() if line.startswith("bot: ")]
    # The caller hears the filler and the transfer, nothing about what went wrong.
    assert said[-2:] == ["bot: One moment.", "bot: I'll put you through to the course team."]
    assert "TRANSFER to courses (queue:courses) reason=lookup_failed intent=course_date" in out
    assert "lookups=course_date:failed" in outcome(out)


def test_the_caller_waits_no_longer_than_the_timeout(endpoint: LookupEndpoint) -> None:
    """The deadline covers the whole exchange: the slow endpoint (2.5 s) is given up at 1 s.
    A generous bound (the machine is shared), far below the endpoint's 2.5 s."""
    config = load_language_text(CONFIG.format(url=endpoint.url + "/slow"))
    request = Lookup(endpoint.url + "/slow", "course_date", "", "en-US", CALLER, "CA1", 1.0)
    at = dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC)
    started = time.monotonic()
    result = lookup(request, config, at)
    assert time.monotonic() - started < 2.0
    assert (result.answer, result.error, result.at) == (None, "no answer within 1 s", at)


def test_a_lookup_can_text_transfer_or_hang_up(
    endpoint: LookupEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = chat(
        config_file(tmp_path, endpoint.url + "/answer/sms"),
        ["when does my course start", "no"],
        monkeypatch,
        capsys,
    )
    assert f"SMS to {CALLER}: Course: 3 May, room 4." in out
    assert outcome(out).startswith("sms_sent ") and "served=course_date" in out

    out = chat(
        config_file(tmp_path, endpoint.url + "/answer/sms"),
        ["when does my course start"],
        monkeypatch,
        capsys,
        "--sms-fails",
    )
    assert "bot: Sorry, I couldn't send you a text message." in out
    assert "reason=sms_fallback" in out and "TRANSFER to courses" in out

    out = chat(
        config_file(tmp_path, endpoint.url + "/answer/transfer"),
        ["when does my course start"],
        monkeypatch,
        capsys,
    )
    assert "bot: Your booking needs a person." in out
    assert "TRANSFER to members (queue:members) reason=lookup intent=course_date" in out
    assert "lookups=course_date:ok" in outcome(out)

    out = chat(
        config_file(tmp_path, endpoint.url + "/answer/hangup"),
        ["when does my course start"],
        monkeypatch,
        capsys,
    )
    assert out.splitlines()[-3:-1] == ["bot: Thank you for calling. Goodbye!", "HANG UP (goodbye)"]


def test_the_loader_checks_the_lookup_block(tmp_path: Path) -> None:
    def problems(block: str) -> str:
        text = CONFIG.replace(
            "    lookup:\n      url: {url}\n      otherwise: courses\n      timeout_s: 1\n", block
        )
        with pytest.raises(ConfigError) as failed:
            load_language_text(text.format(url="https://example.org/x"), "intents.yaml")
        return str(failed.value)

    assert "is not a web link" in problems("    lookup:\n      url: intranet/course\n")
    assert "'timeout_s' must be more than 0 and at most 10" in problems(
        "    lookup:\n      url: https://example.org/x\n      timeout_s: 30\n"
    )
    assert "intents.yaml:16:18: intent 'course_date': unknown agent group 'coursez'" in problems(
        "    lookup:\n      url: https://example.org/x\n      otherwise: coursez\n"
    )
    missing = problems("    lookup:\n      otherwise: courses\n")
    assert missing == "intents.yaml:14:5: intent 'course_date': missing 'url'"
    config = load_language_text(
        CONFIG.replace("      otherwise: courses\n      timeout_s: 1\n", "").format(
            url="https://example.org/x"
        )
    )
    action = config.intents["course_date"].action
    assert (action.group, action.timeout_s) == (None, 2.0)  # the default group, 2 s


def test_check_warns_when_lookups_would_go_unsigned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path, "https://intranet.example.org/voicebot/course-date")
    monkeypatch.delenv(LOOKUP_SECRET_ENV, raising=False)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"warning: ${LOOKUP_SECRET_ENV} is not set" in out and "1 warning(s)" in out
    monkeypatch.setenv(LOOKUP_SECRET_ENV, SECRET)
    assert main(["check", str(path)]) == 0
    assert "0 warning(s)" in capsys.readouterr().out


# --- the example endpoint in docs/configuration.md ---------------------------------------------


def example_endpoint() -> str:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- lookup-endpoint -->\n```python\n(.*?)```", text, re.S)
    assert found is not None, "docs/configuration.md lost its example endpoint"
    return found.group(1)


def test_the_documented_example_endpoint_works_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = example_endpoint()
    assert len(code.strip().splitlines()) <= 30
    script = tmp_path / "endpoint.py"
    script.write_text(code, encoding="utf-8")
    port = free_port()
    env = {**os.environ, LOOKUP_SECRET_ENV: SECRET, "PORT": str(port)}
    process = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        url = f"http://127.0.0.1:{port}/course-date"
        for _ in range(100):
            try:
                urllib.request.urlopen(urllib.request.Request(url, b"{}", method="POST"))
            except urllib.error.HTTPError:
                break  # up: it refuses the unsigned request
            except OSError:
                time.sleep(0.05)
        monkeypatch.setenv(LOOKUP_SECRET_ENV, SECRET)
        text = CONFIG.replace("timeout_s: 1", "timeout_s: 2")
        config = config_file(tmp_path, url, text)
        out = chat(config, ["when does my course start", "no"], monkeypatch, capsys)
        assert "bot: Your course starts on the 3rd of May." in out, out
        out = chat(
            config, ["when does my course start"], monkeypatch, capsys, "--caller", "+46709999999"
        )
        assert "reason=lookup" in out and "TRANSFER to courses" in out
        monkeypatch.setenv(LOOKUP_SECRET_ENV, "not-the-secret")  # refused: handed over
        out = chat(config, ["when does my course start"], monkeypatch, capsys)
        assert "(lookup failed: HTTP 403)" in out and "reason=lookup_failed" in out
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_language_without_built_in_prompts_must_give_lookup_wait() -> None:
    korean = (ROOT / "tests" / "data" / "ko-KR" / "intents.yaml").read_text(encoding="utf-8")
    text = korean.replace(
        "    label: 요금\n    transfer: billing\n",
        "    label: 요금\n    lookup:\n      url: https://example.org/fee\n",
    )
    with pytest.raises(ConfigError) as failed:
        load_language_text(text, "ko.yaml")
    assert "there is no built-in 'lookup_wait' prompt for ko-KR" in str(failed.value)
    fixed = text.replace("  error:", '  lookup_wait: "잠시만요."\n  error:', 1)
    assert load_language_text(fixed).prompts.lookup_wait == "잠시만요."
