"""``voicebot init``: a new line's starting configuration that checks clean and chats at once."""

from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path

import pytest
import yaml

from voicebot.cli.main import main
from voicebot.loading.defaults import language_defaults
from voicebot.loading.keys import PROMPT_KEYS
from voicebot.loading.loader import load_deployment
from voicebot.loading.starter import starter_files

TUESDAY_MORNING = "2026-12-08T10:00+01:00"
# The closed days init writes are this season's (on 1 January, the season ending that day).
_TODAY = dt.date.today()
_SEASON = _TODAY.year - 1 if (_TODAY.month, _TODAY.day) == (1, 1) else _TODAY.year
CHRISTMAS_EVE = f"{_SEASON}-12-24T10:00+01:00"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def chat(
    folder: Path,
    lines: list[str],
    at: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in lines)))
    code, out, err = run(
        ["chat", "--config", str(folder), "--at", at, "--caller", "+46701234567"], capsys
    )
    assert code == 0, err
    return out


@pytest.mark.parametrize("lang", ["sv-SE", "en-US"])
def test_init_writes_a_commented_configuration_that_check_accepts(
    lang: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "line"
    code, out, err = run(["init", str(folder), "--lang", lang], capsys)
    assert code == 0, err
    config_file = folder / lang / "intents.yaml"
    assert f"voicebot check {folder}" in out

    code, out, err = run(["check", str(folder)], capsys)
    assert code == 0, err
    assert f"{lang}: 3 intents, 1 agent groups, 1 announcements" in out
    assert out.strip().splitlines()[-1] == "ok: 1 language(s), 0 warning(s)"

    text = config_file.read_text(encoding="utf-8")
    assert sum(line.lstrip().startswith("#") for line in text.splitlines()) >= 15
    config = load_deployment(folder).language(lang)
    # The built-in prompts are written out, for ops to edit, and are what the robot says.
    written = yaml.safe_load(text)["prompts"]
    assert written == language_defaults(lang[:2]).prompts and len(written) == len(PROMPT_KEYS)
    assert config.prompts.greeting == written["greeting"]
    group = config.groups[config.default_group]
    assert len(config.groups) == 1 and group.hours is not None and group.when_closed is not None
    assert {i.action.kind.value for i in config.intents.values()} == {"transfer", "announce", "sms"}
    assert all(4 <= len(i.phrases) <= 6 for i in config.intents.values())
    (announcement,) = config.announcements
    assert announcement.start is not None and announcement.end is not None
    assert announcement.end >= dt.date.today()

    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert f"{lang}/intents.yaml" in readme and "groups:" in readme and "intents:" in readme
    assert f"voicebot check {folder}" in readme and f"voicebot chat --config {folder}" in readme


def test_a_swedish_line_chats_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "linje"
    assert run(["init", str(folder), "--lang", "sv-SE"], capsys)[0] == 0

    out = chat(
        folder, ["jag har flyttat", "när har ni öppet", "nej"], TUESDAY_MORNING, monkeypatch, capsys
    )
    assert out.startswith("bot: Hej! Berätta med några ord vad du ringer om.")
    assert "SMS to +46701234567: Ändra din adress här: https://example.org/andra-adress" in out
    assert "bot: Kundtjänst har öppet vardagar klockan 8 till 17." in out
    assert out.rstrip().endswith(
        "reason=goodbye intent=opening_hours after=anything_else"
        " served=change_address,opening_hours"
    )

    out = chat(folder, ["fakturan är fel"], TUESDAY_MORNING, monkeypatch, capsys)
    assert "TRANSFER to kundtjanst (number:+46812345600)" in out and "intent=invoice" in out

    # Christmas Eve is a closed day: the caller hears the announcement and the closed message.
    out = chat(folder, ["fakturan är fel"], CHRISTMAS_EVE, monkeypatch, capsys)
    assert "Under jul och nyår har vi stängt" in out
    assert "Kundtjänst har stängt just nu." in out and "outcome: closed" in out


def test_an_english_line_chats_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "line"
    assert run(["init", str(folder), "--lang", "en-US"], capsys)[0] == 0
    out = chat(folder, ["my bill is wrong"], TUESDAY_MORNING, monkeypatch, capsys)
    assert out.startswith("bot: Hello!")
    assert "TRANSFER to support (number:+46812345600)" in out and "intent=invoice" in out


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "line"
    (folder / "sv-SE").mkdir(parents=True)
    mine = folder / "sv-SE" / "intents.yaml"
    mine.write_text("# my edited intents\n", encoding="utf-8")

    code, out, err = run(["init", str(folder), "--lang", "sv-SE"], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "already exists and is not empty" in err
    assert "Traceback" not in err
    assert mine.read_text(encoding="utf-8") == "# my edited intents\n"
    assert sorted(p.name for p in folder.rglob("*")) == ["intents.yaml", "sv-SE"]


def test_init_writes_into_an_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["init", str(tmp_path), "--lang", "sv"], capsys)[0] == 0
    assert (tmp_path / "sv-SE" / "intents.yaml").is_file()


def test_init_refuses_a_language_it_has_no_starter_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["init", str(tmp_path / "line"), "--lang", "de-DE"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "no starting configuration for 'de-DE'" in err and "sv-SE" in err
    assert not (tmp_path / "line").exists()


@pytest.mark.parametrize(
    ("today", "season"),
    [
        (dt.date(2026, 12, 6), ("2026-12-14", "2027-01-01")),
        (dt.date(2027, 1, 1), ("2026-12-14", "2027-01-01")),  # the last day of the season
        (dt.date(2027, 1, 2), ("2027-12-14", "2028-01-01")),
    ],
)
def test_the_holiday_dates_are_the_season_ahead(today: dt.date, season: tuple[str, str]) -> None:
    """Fixed dates would make a fresh line warn about an announcement that has ended."""
    text = starter_files("sv-SE", "line", today)["sv-SE/intents.yaml"]
    (announcement,) = yaml.safe_load(text)["announcements"]
    assert (str(announcement["from"]), str(announcement["until"])) == season
