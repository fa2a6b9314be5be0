"""Repeat callers (issue #23): `voicebot chat --database` records each typed call in a real
SQLite call log and recalls the caller from it, as the server does on the phone."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from voicebot.calllog.log import CallLog
from voicebot.cli.main import main
from voicebot.core.actions import TransferContext, TransferReason
from voicebot.core.recall import CallerHistory
from voicebot.telephony.handoff import StreamParameters
from voicebot.telephony.whisper import whisper_context

ROOT = Path(__file__).resolve().parent.parent
CALLER = "+46701234567"
DAY1 = "2026-11-24T10:00+01:00"
DAY2 = "2026-11-25T10:00+01:00"
DAY3 = "2026-11-26T10:00+01:00"
QUESTION = "bot: Hello! Are you calling about invoices and membership fees again?"


def deployment(tmp_path: Path, recall: str = "recall:\n  days: 30\n") -> Path:
    """The embedded English deployment, with ``recall`` added (or not)."""
    folder = tmp_path / "en-US"
    folder.mkdir(exist_ok=True)
    text = (ROOT / "grammars" / "en-US" / "intents.yaml").read_text(encoding="utf-8")
    assert "\nmax_turns" in text
    (folder / "intents.yaml").write_text(text.replace("\nmax_turns", f"\n{recall}max_turns", 1))
    return folder


@dataclass
class Chats:
    """`voicebot chat --database` calls into one SQLite call log, as ops would type them."""

    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    @property
    def database(self) -> str:
        return f"sqlite:///{self.tmp_path / 'calls.sqlite3'}"

    def __call__(self, config: Path, lines: list[str], at: str, caller: str = CALLER) -> str:
        stdin = io.StringIO("".join(line + "\n" for line in lines))
        self.monkeypatch.setattr(sys, "stdin", stdin)
        argv = ["chat", "--config", str(config), "--database", self.database, "--caller", caller]
        code = main([*argv, "--at", at])
        out = self.capsys.readouterr().out
        assert code == 0, out
        return out


@pytest.fixture
def chat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Chats:
    monkeypatch.setenv("VOICEBOT_DATA_DIR", str(tmp_path / "data"))  # the number salt lives here
    return Chats(tmp_path, monkeypatch, capsys)


def first_bot_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("bot: "))


def test_a_repeat_caller_is_asked_about_the_last_unsolved_intent_and_yes_routes_at_once(
    chat: Chats, tmp_path: Path
) -> None:
    config = deployment(tmp_path)
    out = chat(config, ["I have a question about my invoice"], DAY1)
    assert "TRANSFER to billing" in out and "recent_calls=0" in out
    out = chat(config, ["yes"], DAY2)
    assert "(caller's recent calls: 1 call, last 2026-11-24 (invoice))" in out
    assert first_bot_line(out) == QUESTION
    lines = out.splitlines()
    transfer = next(line for line in lines if line.startswith("TRANSFER"))
    assert transfer == (
        "TRANSFER to billing (sip:billing@pbx.example.org) reason=intent intent=invoice "
        "recent_calls=1 last_intent=invoice last_call=2026-11-24"
    )
    assert "recalled=invoice:yes" in out
    # the call log keeps what recall did, for the report
    with CallLog.open(chat.database) as log:
        calls = log.fetch().calls
    assert [(c.recalled, c.recall_answer) for c in calls] == [(None, None), ("invoice", "yes")]


def test_no_or_anything_else_takes_the_normal_path(chat: Chats, tmp_path: Path) -> None:
    config = deployment(tmp_path)
    chat(config, ["I have a question about my invoice"], DAY1)
    out = chat(config, ["no", "home insurance"], DAY2)
    bot = [line for line in out.splitlines() if line.startswith("bot: ")]
    assert bot[0] == QUESTION
    assert bot[1].startswith("bot: Welcome to member support")  # the open question
    assert "TRANSFER to insurance" in out and "recalled=invoice:no" in out
    # A request instead of yes or no is matched as usual.
    out = chat(config, ["home insurance"], DAY3)
    assert first_bot_line(out) == "bot: Hello! Are you calling about insurance again?"
    out = chat(config, ["I can't log in", "no"], DAY3)
    assert "SMS to" in out and "recalled=insurance:other" in out


def test_a_call_the_robot_solved_is_not_recalled(chat: Chats, tmp_path: Path) -> None:
    config = deployment(tmp_path)
    chat(config, ["when are you open", "no"], DAY1)
    out = chat(config, ["/hangup"], DAY2)
    assert "(caller's recent calls: 1 call, last 2026-11-24 (opening_hours))" in out
    assert first_bot_line(out).startswith("bot: Welcome to member support")


def test_recall_reaches_back_only_recall_days(chat: Chats, tmp_path: Path) -> None:
    config = deployment(tmp_path, "recall:\n  days: 7\n")
    chat(config, ["I have a question about my invoice"], DAY1)
    out = chat(config, ["/hangup"], "2026-12-02T11:00+01:00")
    assert "(caller's recent calls: none)" in out  # 8 days later
    assert first_bot_line(out).startswith("bot: Welcome")
    # 6 days later (the call above is later still, so not counted)
    out = chat(config, ["/hangup"], "2026-11-30T10:00+01:00")
    assert first_bot_line(out) == QUESTION


def test_withheld_numbers_and_other_callers_are_never_recalled(chat: Chats, tmp_path: Path) -> None:
    config = deployment(tmp_path)
    for at in (DAY1, DAY2):
        out = chat(config, ["my invoice"], at, caller="withheld")
        assert first_bot_line(out).startswith("bot: Welcome") and "recent calls" not in out
    chat(config, ["my invoice"], DAY1)
    out = chat(config, ["/hangup"], DAY2, caller="+46709999999")
    assert first_bot_line(out).startswith("bot: Welcome")


def test_with_recall_off_nothing_is_read_or_recalled(chat: Chats, tmp_path: Path) -> None:
    config = deployment(tmp_path, "")
    chat(config, ["my invoice"], DAY1)
    out = chat(config, ["my invoice"], DAY2)
    assert "recent calls" not in out and "recent_calls" not in out
    assert first_bot_line(out).startswith("bot: Welcome")
    with CallLog.open(chat.database) as log:
        assert all(c.recalled is None for c in log.fetch().calls)


@pytest.mark.parametrize("erase", ["forget", "purge"])
def test_forget_and_purge_reach_what_recall_reads(chat: Chats, tmp_path: Path, erase: str) -> None:
    config = deployment(tmp_path)
    chat(config, ["my invoice"], DAY1)
    with CallLog.open(chat.database, retention_days=0) as log:
        if erase == "forget":
            assert log.forget(CALLER).calls == 1
        else:
            assert log.purge(now=dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)).callers == 1
    out = chat(config, ["/hangup"], DAY2)
    assert "(caller's recent calls: none)" in out
    assert first_bot_line(out).startswith("bot: Welcome")


def test_swedish_has_a_built_in_recall_question(chat: Chats, tmp_path: Path) -> None:
    folder = tmp_path / "sv-SE"
    folder.mkdir()
    text = (ROOT / "grammars" / "sv-SE" / "intents.yaml").read_text(encoding="utf-8")
    assert "\ndefault_group" in text
    (folder / "intents.yaml").write_text(
        text.replace("\ndefault_group", "\nrecall:\n  days: 30\ndefault_group", 1)
    )
    out = chat(folder, ["min faktura"], DAY1)
    intent = re.search(r"intent=(\w+)", out)
    assert intent is not None and "TRANSFER" in out, out
    out = chat(folder, ["ja"], DAY2)
    assert re.match(r"bot: Hej! Ringer du om .+ igen\?$", first_bot_line(out)), out
    assert f"recalled={intent.group(1)}:yes" in out


def test_a_stream_on_another_instance_gets_the_same_history() -> None:
    """The webhook's instance read the call log; the stream's (any instance) must start the
    same dialogue, so the history travels in the signed stream parameters."""
    history = CallerHistory(3, "invoice", dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC), False)
    start = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    params = StreamParameters(
        "CA1", "en-US", "+4610", CALLER, start, expires=start, history=history
    )
    encoded = params.encode("token")
    assert StreamParameters.read("CA1", encoded, "token") == params
    tampered = {**encoded, "history": "3|invoice||0"}
    assert StreamParameters.read("CA1", tampered, "token") is None
    plain = replace_history(params, None)
    assert "history" not in plain.encode("token")
    assert StreamParameters.read("CA1", plain.encode("token"), "token") == plain


def replace_history(params: StreamParameters, history: CallerHistory | None) -> StreamParameters:
    from dataclasses import replace

    return replace(params, history=history)


def test_the_agents_whisper_url_carries_the_recent_calls_not_the_callers_words() -> None:
    context = TransferContext(
        "invoice",
        "my invoice again",
        0.9,
        "en-US",
        TransferReason.INTENT,
        2,
        "invoice",
        "2026-11-24",
    )
    query = whisper_context("CA1", context)
    assert query["recent_calls"] == "2" and query["last_call"] == "2026-11-24"
    assert "my invoice again" not in query.values()


def test_taskrouter_attributes_carry_the_recent_calls() -> None:
    from dataclasses import asdict

    from voicebot.core.config import Destination, DestinationKind
    from voicebot.telephony.twiml import transfer_twiml

    context = TransferContext(
        "invoice", "my invoice", 0.9, "en-US", TransferReason.INTENT, 2, "invoice", "2026-11-24"
    )
    workflow = Destination(DestinationKind.WORKFLOW, "WW" + "0" * 32)
    twiml = transfer_twiml(workflow, context=asdict(context))
    task = re.search(r"<Task>(.*?)</Task>", twiml)
    assert task is not None, twiml
    attributes = json.loads(task.group(1).replace("&quot;", '"'))
    assert attributes["recent_calls"] == 2 and attributes["last_intent"] == "invoice"
    assert attributes["last_call"] == "2026-11-24"


def test_the_loader_checks_recall_and_asks_for_the_prompts_a_language_lacks() -> None:
    from voicebot.loading.loader import load_language_text
    from voicebot.loading.problems import ConfigError

    def problems(text: str) -> str:
        with pytest.raises(ConfigError) as failed:
            load_language_text(text, "intents.yaml")
        return str(failed.value)

    english = (ROOT / "grammars" / "en-US" / "intents.yaml").read_text(encoding="utf-8")
    bad_days = english.replace("\nmax_turns", "\nrecall:\n  days: 0\nmax_turns", 1)
    assert "recall: 'days' must be between 1 and 366" in problems(bad_days)
    typo = english.replace("\nmax_turns", "\nrecall:\n  dayz: 3\nmax_turns", 1)
    assert "recall: unknown key 'dayz' (did you mean 'days'?)" in problems(typo)
    korean = (ROOT / "tests" / "data" / "ko-KR" / "intents.yaml").read_text(encoding="utf-8")
    assert load_language_text(korean).recall is None  # off by default
    on = korean.replace("\ndefault_group:", "\nrecall:\n  days: 30\ndefault_group:", 1)
    assert "there is no built-in 'recall' prompt for ko-KR" in problems(on)
    fixed = on.replace("  error:", '  recall: "{label}?"\n  error:', 1)
    assert load_language_text(fixed).recall is not None
    no_label = on.replace("  error:", '  recall: "again?"\n  error:', 1)
    assert "label" in problems(no_label)
