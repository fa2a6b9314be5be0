"""Report and dashboard figures of issue #23: lookups answered vs handed over, and repeat
callers recalled (and how many said yes), per intent. Calls are made with `voicebot chat
--database` against a real local lookup endpoint, so the figures come from real call logs."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dashboard import mounted, serve
from test_dashboard_browser import BINARY, LOADED, devtools, log_in

from voicebot.calllog.log import CallLog
from voicebot.calllog.records import CallRow
from voicebot.calllog.report import render, summarize
from voicebot.cli.main import main
from voicebot.loading.loader import load_deployment
from voicebot.telephony.testing.lookup_server import LookupEndpoint

ROOT = Path(__file__).resolve().parent.parent
RANGE = {"since": "2026-11-24", "until": "2026-11-26"}


def row(call_id: str, outcome: str, **kw: object) -> CallRow:
    start = dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC)
    return CallRow(call_id, start, "en-US", None, start, outcome, **kw)  # type: ignore[arg-type]


def test_lookups_count_as_answered_only_when_no_transfer_followed() -> None:
    calls = [
        row("a", "announced", served=("course_date",), lookups=(("course_date", True),)),
        row("b", "transferred", reason="lookup", lookups=(("course_date", True),)),
        row("c", "transferred", reason="lookup_failed", lookups=(("course_date", False),)),
        row("d", "caller_hung_up", served=("balance",), lookups=(("balance", True),)),
        row("e", "transferred", recalled="invoice", recall_answer="yes"),
        row("f", "transferred", recalled="invoice", recall_answer="no"),
        row("g", "announced", recalled="insurance", recall_answer="other"),
    ]
    report = summarize(calls, [])
    assert report.lookups == {
        "course_date": {"answered": 1, "handed_over": 2},
        "balance": {"answered": 1, "handed_over": 0},
    }
    assert report.recalled == {
        "invoice": {"asked": 2, "yes": 1},
        "insurance": {"asked": 1, "yes": 0},
    }
    assert report.solved_by_robot == 2  # a and d: lookups that answered, no transfer after
    text = render(report)
    assert "lookups per intent\n  course_date" in text and "answered 1, handed over 2" in text
    assert "repeat callers recalled per intent\n  invoice" in text and "asked 2, yes 1" in text


CONFIG_LOOKUP = """\
  course_date:
    label: the date of your course
    lookup:
      url: {url}
      otherwise: courses
    phrases: [when does my course start, what date is my course]
"""


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLite call log with chats: two lookups (one answered, one failing), and a caller
    recalled twice (yes, then no)."""
    tmp = tmp_path_factory.mktemp("report")
    endpoint = LookupEndpoint(answers={"date": {"say": "The 3rd of May."}}).start()
    folder = tmp / "en-US"
    folder.mkdir()
    text = (ROOT / "grammars" / "en-US" / "intents.yaml").read_text(encoding="utf-8")
    text = text.replace("\nmax_turns", "\nrecall:\n  days: 30\nmax_turns", 1)
    text = text.replace("\nintents:\n", "\nintents:\n" + CONFIG_LOOKUP, 1)
    url = f"sqlite:///{tmp / 'calls.sqlite3'}"
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("VOICEBOT_DATA_DIR", str(tmp / "data"))
    calls = [
        (
            "/answer/date",
            "+46700000001",
            "2026-11-24T10:00+01:00",
            ["when does my course start", "no"],
        ),
        ("/broken", "+46700000002", "2026-11-24T11:00+01:00", ["when does my course start"]),
        ("/broken", "+46700000003", "2026-11-24T12:00+01:00", ["my invoice"]),
        ("/broken", "+46700000003", "2026-11-25T09:00+01:00", ["yes"]),
        ("/broken", "+46700000003", "2026-11-25T10:00+01:00", ["no", "home insurance"]),
    ]
    try:
        for path, caller, at, lines in calls:
            (folder / "intents.yaml").write_text(text.replace("{url}", endpoint.url + path))
            monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in lines)))
            argv = ["chat", "--config", str(folder), "--database", url, "--caller", caller]
            assert main([*argv, "--at", at]) == 0
        yield url
    finally:
        monkeypatch.undo()
        endpoint.stop()


def test_voicebot_report_shows_lookups_and_recall_per_intent(
    filled: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VOICEBOT_DATA_DIR", str(Path(filled[len("sqlite:///") :]).parent / "data"))
    capsys.readouterr()
    assert main(["report", "--database", filled, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["lookups"] == {"course_date": {"answered": 1, "handed_over": 1}}
    assert figures["recalled"] == {"invoice": {"asked": 2, "yes": 1}}
    assert main(["report", "--database", filled]) == 0
    text = capsys.readouterr().out
    assert "  course_date" in text and "answered 1, handed over 1" in text
    assert "  invoice" in text and "asked 2, yes 1" in text


@pytest.mark.skipif(BINARY is None, reason="no chromium binary: apt-get install chromium")
def test_the_dashboard_shows_lookups_and_recall_per_intent(
    filled: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOT_DATA_DIR", str(Path(filled[len("sqlite:///") :]).parent / "data"))
    log = CallLog.open(filled, create=False)
    try:
        with (
            serve(mounted(log, load_deployment(None))) as base,
            devtools(tmp_path / "chromium") as browser,
        ):
            log_in(browser, base)
            since, until = RANGE["since"], RANGE["until"]
            browser.call("Page.navigate", url=f"{base}/dashboard/?since={since}&until={until}")
            browser.wait_for(LOADED)
            cells = browser.js(
                "JSON.stringify(['lookups', 'recalled'].map((id) => Array.from("
                "document.querySelectorAll('#' + id + ' tbody tr')).map((tr) => "
                "Array.from(tr.cells).map((td) => td.textContent))))"
            )
    finally:
        log.close()
    assert json.loads(cells) == [[["course_date", "1", "1"]], [["invoice", "2", "1"]]]
