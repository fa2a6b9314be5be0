"""``voicebot suggest`` as ops run it, with the real sentence encoder: from a real call log (the
dashboard's calls, played through the real dialogue) and from a CSV; the intents block it writes
loads once pasted; retention and ``forget`` apply; bad input is one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dashboard import ALICE, fill
from test_suggest import CARD, MOVING, PARCEL, PASSWORD

from voicebot.calllog.log import CallLog
from voicebot.cli.main import main
from voicebot.loading.loader import load_deployment, load_language_text

REPO = Path(__file__).resolve().parent.parent
SCRIPT_SAID = "script alert 1 script"  # the dashboard test's <script> caller, normalised


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    log = CallLog.open(url, salt="test-salt")
    try:
        fill(log, load_deployment(None))
    finally:
        log.close()
    yield url


def said(body: dict[str, object]) -> dict[str, int]:
    """Every utterance of the JSON, grouped or not, with its count."""
    out = {}
    for g in body["groups"]:  # type: ignore[attr-defined]
        out.update({u["text"]: u["count"] for u in g["utterances"]})
    out.update({u["text"]: u["count"] for u in body["unassigned"]})  # type: ignore[index]
    return out


def test_from_the_call_log(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOT_NUMBER_SALT", "test-salt")
    code, out, err = run(["suggest", "--database", database, "--json"], capsys)
    assert code == 0, err
    body = json.loads(out)
    # three callers said where is my parcel: a topic; the rest fit no group
    assert [(g["count"], [u["text"] for u in g["utterances"]]) for g in body["groups"]] == [
        (3, ["where is my parcel"])
    ]
    assert said(body) == {
        "where is my parcel": 3,
        "can i bring my dog": 2,
        "blue whale": 1,
        SCRIPT_SAID: 1,
    }  # English calls only; what was understood is not there
    code, out, _ = run(["suggest", "--database", database, "--lang", "sv-SE", "--json"], capsys)
    assert said(json.loads(out)) == {"var är mitt paket": 1}

    # call G: not understood, then "my invoice is wrong", transferred to billing
    code, out, _ = run(["suggest", "--database", database, "--include-retries", "--json"], capsys)
    assert said(json.loads(out))["my invoice is wrong"] == 1

    code, out, _ = run(["suggest", "--database", database], capsys)
    assert code == 0
    assert out.startswith("1 suggested intent from 7 utterances (3 in groups, 4 fit no group)")
    assert "3 callers, 1 way of saying it" in out and "closest intent: " in out


def test_forget_and_the_date_range_apply(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOT_NUMBER_SALT", "test-salt")
    _, out, _ = run(["suggest", "--database", database, "--since", "2026-11-24", "--json"], capsys)
    assert said(json.loads(out))["where is my parcel"] == 1  # call C was the day before
    assert run(["forget", "--database", database, ALICE], capsys)[0] == 0
    _, out, _ = run(["suggest", "--database", database, "--json"], capsys)
    body = json.loads(out)
    assert body["groups"] == []  # Alice's two parcel calls are gone: one caller is no topic
    assert said(body)["where is my parcel"] == 1
    assert said(body)["can i bring my dog"] == 1  # Bob's call I; Alice's F is gone
    assert "blue whale" not in said(body)  # said in Alice's call F only


def csv_file(tmp_path: Path) -> Path:
    rows = ["text,count"]
    rows += [f'"{t}",2' for t in PARCEL + MOVING]
    rows += [f'"{t}",' for t in PASSWORD + CARD]
    path = tmp_path / "unmatched.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_from_a_csv_largest_first_with_an_intents_block_ready_to_paste(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_yaml = tmp_path / "suggested.yaml"
    code, out, err = run(["suggest", "--csv", str(csv_file(tmp_path)), "--json"], capsys)
    assert code == 0, err
    body = json.loads(out)
    counts = [g["count"] for g in body["groups"]]
    assert counts == sorted(counts, reverse=True) and len(counts) >= 3
    assert sum(counts) + sum(u["count"] for u in body["unassigned"]) == 2 * 13 + 11
    assert all(len(g["examples"]) <= 5 and g["nearest_intent"] for g in body["groups"])

    code, out, err = run(
        ["suggest", "--csv", str(csv_file(tmp_path)), "--yaml", str(out_yaml)], capsys
    )
    assert code == 0, err
    assert f"wrote {len(body['groups'])} suggested intents to {out_yaml}" in out
    block = out_yaml.read_text(encoding="utf-8")
    assert block.startswith("# Suggested by `voicebot suggest`")
    # pasted under intents: of the example config, it loads and adds the groups
    config = (REPO / "grammars/en-US/intents.yaml").read_text(encoding="utf-8")
    entries = block.split("intents:\n", 1)[1]
    pasted = config.replace("\nintents:\n", "\nintents:\n" + entries, 1)
    loaded = load_language_text(pasted, "intents.yaml")
    for g in body["groups"]:
        intent = loaded.intents[g["name"]]
        assert list(intent.phrases) == g["examples"]
        assert intent.action.group == loaded.default_group

    # never over an existing file
    before = out_yaml.read_bytes()
    code, _, err = run(
        ["suggest", "--csv", str(csv_file(tmp_path)), "--yaml", str(out_yaml)], capsys
    )
    assert (
        code == 2
        and err.strip() == f"voicebot: {out_yaml} already exists: give a new file for --yaml"
    )
    assert out_yaml.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("phrase,count\nhello,1\n", "{path}:1: the first line must name a text column"),
        ("text,count\nhello,1\nhi,two\n", "{path}:3: count 'two' is not a whole number"),
        ("text,count\nhello,0\n", "{path}:2: count '0' is not a whole number"),
    ],
)
def test_a_bad_csv_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    code, out, err = run(["suggest", "--csv", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("voicebot: " + message.format(path=path)) and err.count("\n") == 1


def test_other_mistakes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.csv"
    code, _, err = run(["suggest", "--csv", str(missing)], capsys)
    assert (
        code == 2
        and err.startswith(f"voicebot: {missing}: cannot be read")
        and err.count("\n") == 1
    )
    code, _, err = run(["suggest", "--csv", str(missing), "--include-retries"], capsys)
    assert code == 2 and "--csv reads utterances from a file" in err
    code, _, err = run(["suggest", "--database", f"sqlite:///{tmp_path / 'none.sqlite3'}"], capsys)
    assert code == 1 and err.startswith("voicebot: there is no call log") and err.count("\n") == 1
