"""The ``voicebot`` command line as ops and testers use it: exit codes and what they read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.cli.main import main

REPO = Path(__file__).resolve().parent.parent
WEEKDAY_MORNING = "2026-11-24T10:00+01:00"  # a Tuesday: every group is open
SUNDAY = "2026-11-29T12:00+01:00"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def chat(
    lines: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, str]:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in lines)))
    code, out, _ = run(["chat", *extra], capsys)
    return code, out


# --- check -------------------------------------------------------------------------------


def test_check_accepts_the_example_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["check", str(REPO / "grammars"), "--today", "2026-11-25"], capsys)
    assert code == 0, err
    assert "en-US:" in out and "sv-SE:" in out
    assert out.strip().splitlines()[-1].startswith("ok: 2 language(s)")


def test_check_names_file_line_and_column_of_each_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (REPO / "grammars/en-US/intents.yaml").read_text(encoding="utf-8")
    broken = text.replace("transfer: billing", "transfer: biling", 1)
    broken = broken.replace('number: "+46 10 123 45 20"', 'number: "+46 10 12x 45 20"', 1)
    path = tmp_path / "intents.yaml"
    path.write_text(broken, encoding="utf-8")
    lines = broken.splitlines()
    bad_group_line = next(i for i, line in enumerate(lines, 1) if "transfer: biling" in line)
    bad_number_line = next(i for i, line in enumerate(lines, 1) if "12x" in line)

    code, _, err = run(["check", str(path)], capsys)

    assert code == 1
    assert f"{path}:{bad_group_line}:" in err and "biling" in err
    assert "billing" in err  # did you mean
    assert f"{path}:{bad_number_line}:" in err


def test_check_reports_yaml_syntax_errors_with_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text("language: en-US\nintents:\n  invoice: [oops\n", encoding="utf-8")
    code, _, err = run(["check", str(path)], capsys)
    assert code == 1
    assert f"{path}:" in err
    assert "Traceback" not in err


def test_check_warns_about_a_phrase_in_two_intents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (REPO / "grammars/en-US/intents.yaml").read_text(encoding="utf-8")
    # "I paid twice" is a payment_problem phrase; give it to the invoice intent as well.
    text = text.replace("      - my invoice\n", "      - my invoice\n      - I paid twice\n", 1)
    path = tmp_path / "intents.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, _ = run(["check", str(path), "--today", "2026-11-25"], capsys)
    assert code == 0  # a warning, not an error
    warning = next(line for line in out.splitlines() if "i paid twice" in line.lower())
    assert "warning" in warning and f"{path}:" in warning


# --- chat --------------------------------------------------------------------------------


def test_chat_routes_one_sentence_to_its_group(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = chat(
        ["I have a question about my invoice"], monkeypatch, capsys, "--at", WEEKDAY_MORNING
    )
    assert code == 0
    assert out.startswith("bot: Welcome to member support.")
    transfer = next(line for line in out.splitlines() if line.startswith("TRANSFER"))
    assert "billing" in transfer and "intent=invoice" in transfer


def test_chat_texts_a_link_and_asks_for_anything_else(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = chat(["I forgot my password", "no"], monkeypatch, capsys, "--at", WEEKDAY_MORNING)
    assert code == 0
    sms = next(line for line in out.splitlines() if line.startswith("SMS to +46701234567"))
    assert "https://" in sms
    assert "TRANSFER" not in out
    assert "HANG UP" in out


def test_chat_withheld_number_gets_the_sms_fallback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = chat(
        ["I forgot my password", "no"],
        monkeypatch,
        capsys,
        "--at",
        WEEKDAY_MORNING,
        "--caller",
        "withheld",
    )
    assert "SMS to" not in out
    assert "TRANSFER" in out or "bot:" in out.split("I forgot")[-1]


def test_chat_reads_a_national_caller_number_with_the_lines_country(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """0701234567 on a Swedish line is the mobile +46701234567: it gets its SMS."""
    args = ("--at", WEEKDAY_MORNING, "--caller", "070-123 45 67")
    code, out = chat(["I forgot my password", "no"], monkeypatch, capsys, *args)
    assert code == 0
    assert any(line.startswith("SMS to +46701234567: ") for line in out.splitlines()), out


def test_chat_refuses_a_caller_that_is_not_a_number(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("hello\n"))
    code, out, err = run(["chat", "--caller", "seven"], capsys)
    assert code == 2 and out == ""
    assert "'seven' is not a phone number" in one_line(err) and "withheld" in err


def test_chat_escape_word_and_dtmf_zero_reach_a_person(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = chat(["I want to talk to a human"], monkeypatch, capsys, "--at", WEEKDAY_MORNING)
    assert "TRANSFER to members" in out and "reason=escape" in out
    _, out = chat(["0"], monkeypatch, capsys, "--at", WEEKDAY_MORNING)
    assert "TRANSFER to members" in out and "reason=dtmf" in out


SWEDISH_ASKING_FOR_A_PERSON = [
    "kundtjänst",
    "jag vill prata med kundtjänst",
    "kan jag få prata med någon",
    "kan jag få tala med någon",
    "koppla mig vidare",
    "kan du koppla mig till någon",
    "jag vill inte prata med en robot",
    "jag vill prata med en människa",
    "en riktig människa tack",
    "får jag prata med en riktig person",
    "jag vill prata med en handläggare",
    "handläggaren",
    "kan jag få prata med någon på kundservice",
]
ENGLISH_ASKING_FOR_A_PERSON = [
    "can I speak to someone",
    "I want to talk to somebody",
    "real person please",
    "customer service",
    "I don't want to talk to a robot",
    "put me through to an agent",
    "connect me to a live representative",
]


@pytest.mark.parametrize(
    ("lang", "said"),
    [("sv-SE", s) for s in SWEDISH_ASKING_FOR_A_PERSON]
    + [("en-US", s) for s in ENGLISH_ASKING_FOR_A_PERSON],
)
def test_chat_the_ways_callers_ask_for_a_person_reach_one(
    lang: str, said: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Asking for a person, however it is put, is a transfer at once: not "Gäller det ...?"."""
    args = ("--lang", lang, "--at", WEEKDAY_MORNING)
    _, out = chat([said], monkeypatch, capsys, *args)
    transfers = [line for line in out.splitlines() if line.startswith("TRANSFER")]
    assert len(transfers) == 1 and "reason=escape" in transfers[0], out


@pytest.mark.parametrize(
    ("lang", "said", "intent"),
    [
        ("sv-SE", "jag har en fråga om min faktura", "invoice"),
        ("en-US", "my invoice is wrong", "invoice"),
        ("en-US", "I need to update my personal details", None),
    ],
)
def test_chat_requests_that_only_look_like_asking_for_a_person_are_not(
    lang: str,
    said: str,
    intent: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out = chat([said], monkeypatch, capsys, "--lang", lang, "--at", WEEKDAY_MORNING)
    assert "reason=escape" not in out
    if intent is not None:
        assert f"intent={intent}" in out


def test_check_lists_the_escape_phrases_of_each_language(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["check", str(REPO / "grammars")], capsys)
    assert code == 0
    lines = {ln.split(":")[0]: ln for ln in out.splitlines() if "escape phrases" in ln}
    assert set(lines) == {"en-US", "sv-SE"}
    assert "kundtjänst" in lines["sv-SE"] and "prata med någon" in lines["sv-SE"]
    assert "customer service" in lines["en-US"] and "speak to someone" in lines["en-US"]


def test_chat_two_failures_end_in_a_transfer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = chat(["", ""], monkeypatch, capsys, "--at", WEEKDAY_MORNING)
    assert out.count("TRANSFER") == 1
    assert "TRANSFER to members" in out


def test_chat_in_swedish(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = chat(
        ["jag har en fråga om min faktura"],
        monkeypatch,
        capsys,
        "--lang",
        "sv-SE",
        "--at",
        WEEKDAY_MORNING,
    )
    assert out.startswith("bot: ")
    assert "TRANSFER" in out and "intent=invoice" in out


def test_chat_at_without_an_offset_is_the_lines_local_time(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Course booking is open 13:00-16:00 in Stockholm: a Tuesday 15:30 call goes through (read
    as UTC it would be 16:30 there, and closed)."""
    _, out = chat(["I want to book a course"], monkeypatch, capsys, "--at", "2026-11-24T15:30")
    assert "TRANSFER to courses" in out, out
    _, out = chat(["I want to book a course"], monkeypatch, capsys, "--at", "2026-11-24T16:30")
    assert "TRANSFER to courses" not in out and "closed" in out.lower()


def test_an_overflow_to_a_group_that_is_closed_too_tells_the_caller_one_story(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a Sunday the invoice team's overflow (member services) is closed as well: the caller
    is not promised "I'll put you through to member services" and then told it is closed."""
    _, out = chat(["my invoice is wrong"], monkeypatch, capsys, "--at", SUNDAY)
    said = [line for line in out.splitlines() if line.startswith("bot: ")][1:]
    assert not any("put you through" in line for line in said), out
    assert said[0].startswith("bot: Member services are closed right now.")
    assert "TRANSFER" not in out and "outcome: closed" in out


def test_chat_follows_opening_hours(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = chat(["I want to book a course"], monkeypatch, capsys, "--at", SUNDAY)
    assert "closed" in out.lower()
    assert "TRANSFER to courses" not in out


def test_chat_runs_as_a_program_reading_stdin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voicebot.cli.main", "chat", "--at", WEEKDAY_MORNING],
        input="operator\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "TRANSFER to members" in done.stdout


# --- import and eval ---------------------------------------------------------------------

LABELLED = """text,intent
my invoice is wrong,invoice
I got a bill I don't understand,invoice
how much is the fee,invoice
why did my fee go up,invoice
I paid twice,payment
my payment did not go through,payment
the direct debit failed,payment
I want my money back,payment
book me on a course,course
which courses are there,course
is there space on the course,course
cancel my course place,course
what's the weather in Paris,oos
"""

ROUTES = """routes:
  invoice: billing
  payment: billing
  course: courses
  "*": members
"""


def test_import_then_eval_measures_routing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labelled = tmp_path / "history.csv"
    labelled.write_text(LABELLED, encoding="utf-8")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES, encoding="utf-8")
    out_file = tmp_path / "out" / "intents.yaml"

    code, out, err = run(
        ["import", str(labelled), "--routes", str(routes), "--out", str(out_file)], capsys
    )
    assert code == 0, err
    assert "3 intents" in out
    assert out_file.exists()

    test_csv = tmp_path / "test.csv"
    test_csv.write_text(
        "text,intent\nthere is a mistake on my invoice,invoice\n"
        "I paid the bill twice,payment\nI'd like to book a course,course\n"
        "play some jazz music,oos\n",
        encoding="utf-8",
    )
    code, out, err = run(["eval", str(test_csv), "--config", str(out_file), "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    for key in (
        "n",
        "intent_accuracy",
        "route_accuracy",
        "in_scope_accuracy",
        "oos_recall",
        "per_intent",
        "confusions",
    ):
        assert key in report
    assert report["n"] == 4
    assert report["route_accuracy"] >= report["intent_accuracy"] - 1e-9
    assert report["in_scope_accuracy"] >= 2 / 3

    code, out, _ = run(["eval", str(test_csv), "--config", str(out_file)], capsys)
    assert code == 0
    assert "route" in out.lower()


BEFORE = """\
language: en-US
default_group: members
groups:
  members:
    number: "+46101234567"
  billing:
    queue: billing
intents:
  invoice:
    phrases: [a question about my invoice, my bill is wrong]
    transfer: billing
  course:
    phrases: [book a course, which courses are there]
    transfer: members
"""


def test_eval_against_the_previous_config_lists_what_an_edit_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.yaml"
    old.write_text(BEFORE, encoding="utf-8")
    new = tmp_path / "new.yaml"
    new.write_text(
        BEFORE.replace("my bill is wrong]", "my bill is wrong, I pay with klarna]"),
        encoding="utf-8",
    )
    calls = tmp_path / "calls.csv"
    calls.write_text(
        "text,intent\nklarna,invoice\nmy invoice is wrong,invoice\n"
        "I want to book a course,course\n",
        encoding="utf-8",
    )
    argv = ["eval", str(calls), "--config", str(new), "--against", str(old)]
    code, out, err = run([*argv, "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["fixed"] == [{"text": "klarna", "expected": "invoice", "predicted": "invoice"}]
    assert report["broken"] == []
    assert report["route_accuracy"] == 1.0 and report["against"]["route_accuracy"] < 1.0

    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "now routed right (1):\n  'klarna': invoice -> invoice" in out
    assert "now routed wrong (0):" in out

    # Swapped, the same edit reads as a regression, and CI can fail on the route accuracy.
    code, out, err = run(
        ["eval", str(calls), "--config", str(old), "--against", str(new), "--fail-under", "90"],
        capsys,
    )
    assert code == 1
    assert "now routed wrong (1):" in out and "klarna" in out
    assert "route accuracy 66.7% is below 90%" in err


def test_eval_lists_the_misrouted_utterances_with_scores_and_the_clarification_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What ops tune with: which utterances went wrong, where to, how sure the matcher was,
    and how often callers were asked "A or B?"."""
    config = tmp_path / "intents.yaml"
    config.write_text(BEFORE, encoding="utf-8")
    calls = tmp_path / "calls.csv"
    calls.write_text(
        "text,intent\nmy bill is wrong,invoice\nbook a course,invoice\n", encoding="utf-8"
    )
    code, out, err = run(["eval", str(calls), "--config", str(config), "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert [(m["text"], m["expected"], m["predicted"]) for m in report["misrouted"]] == [
        ("book a course", "invoice", "course")
    ]
    wrong = report["misrouted"][0]
    assert wrong["verdict"] == "accept" and 0.5 <= wrong["score"] <= 1.0
    assert report["clarification_rate"] == 0.0

    code, out, _ = run(["eval", str(calls), "--config", str(config)], capsys)
    assert code == 0
    assert "clarification     0.0%" in out
    assert (
        f"misrouted (1): score  expected -> got  text\n  {wrong['score']:>5.2f}  invoice -> " in out
    )
    assert out.rstrip().endswith("invoice -> course  'book a course'")

    # "insurance invoice" is between two intents of different groups: the caller is asked, and
    # routed right (two intents of one group are not asked about: the answer changes nothing)
    calls.write_text("text,intent\ninsurance invoice,invoice\n", encoding="utf-8")
    code, out, _ = run(["eval", str(calls), "--json"], capsys)
    asked = json.loads(out)
    assert asked["clarification_rate"] == 1.0 and asked["misrouted"] == []


def test_chat_explain_shows_the_top_intents_and_scores_of_each_turn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    turns = ["insurance invoice", "the second one"]
    _, out = chat(turns, monkeypatch, capsys, "--explain", "--at", WEEKDAY_MORNING)
    explained = [line for line in out.splitlines() if line.startswith("  (matched ")]
    assert len(explained) == 1, out  # "the second one" picks a label, without the matcher
    first = explained[0]
    assert first.startswith("  (matched 'insurance invoice': clarify; invoice 0.")
    assert first.count(" 0.") == 3  # the three best intents with their scores
    _, plain = chat(turns, monkeypatch, capsys, "--at", WEEKDAY_MORNING)
    assert "(matched" not in plain


def test_import_with_max_examples_is_reproducible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labelled = tmp_path / "history.csv"
    labelled.write_text(LABELLED, encoding="utf-8")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES, encoding="utf-8")
    outs = []
    for name in ("a.yaml", "b.yaml"):
        argv = ["import", str(labelled), "--routes", str(routes), "--out", str(tmp_path / name)]
        code, _, err = run([*argv, "--max-examples", "2", "--seed", "7"], capsys)
        assert code == 0, err
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]


def test_eval_rejects_a_csv_without_the_intent_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,invoice\n", encoding="utf-8")
    code, _, err = run(["eval", str(bad)], capsys)
    assert code != 0
    assert str(bad) in err and "intent" in err
    assert "Traceback" not in err


# --- mistakes get one line naming the fix, never a traceback ------------------------------


def one_line(err: str) -> str:
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("voicebot: "), err
    return err


def test_serve_without_the_languages_model_says_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOT_MODEL_DIR", str(tmp_path / "models"))  # no model there
    database = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    argv = ["serve", "--dev", "--config", str(REPO / "grammars"), "--database", database]
    code, _, err = run([*argv, "--port", "0"], capsys)
    assert code == 1
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("voicebot: ")]
    assert len(errors) == 1 and "voicebot models download en-US" in errors[0], err


def test_serve_on_a_busy_port_says_so_in_one_line_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program (an earlier `serve`) holds the port: one line, no traceback, and nothing
    opened (not even the call log), rather than a failure after the models have loaded."""
    import socket

    monkeypatch.setenv("VOICEBOT_MODEL_DIR", str(tmp_path / "models"))
    database = tmp_path / "calls.sqlite3"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["serve", "--dev", "--database", str(database), "--port", str(port)]
        code, out, err = run(argv, capsys)
    assert code == 1 and "Traceback" not in err + out
    assert err == (
        f"voicebot: port {port} on 127.0.0.1 is already in use (another voicebot serve?); "
        "stop that program or choose another --port\n"
    )
    assert not database.exists()


def test_serve_takes_the_number_salt_from_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A salt file that is missing is one line, never a new salt made up in its place."""
    missing = tmp_path / "secrets" / "number_salt"
    argv = ["serve", "--dev", "--port", "0", "--database", str(tmp_path / "calls.sqlite3")]
    code, _, err = run([*argv, "--number-salt-file", str(missing)], capsys)
    assert code == 2
    assert one_line(err) == (
        f"voicebot: cannot open the call log: cannot read the number salt file {missing}: "
        "No such file or directory\n"
    )
    assert not missing.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--public-url", "host.example"], "https://host.example"),
        (["--port", "99999"], "use 1 to 65535"),
        (["--trusted-proxy", "haproxy.internal"], "is not an IP address or network"),
    ],
)
def test_serve_refuses_a_bad_url_or_port_before_starting(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "calls.sqlite3"
    code, _, err = run(["serve", "--dev", "--database", str(database), *args], capsys)
    assert code == 2
    assert needle in one_line(err)
    assert not database.exists()  # refused before anything was opened


def test_eval_with_a_label_the_config_lacks_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labelled = tmp_path / "calls.csv"
    labelled.write_text("text,intent\nI forgot my password,no_such_intent\n", encoding="utf-8")
    code, _, err = run(["eval", str(labelled)], capsys)
    assert code == 1
    assert "no_such_intent" in one_line(err) and "'oos'" in err


def _import_args(tmp_path: Path) -> list[str]:
    labelled = tmp_path / "history.csv"
    labelled.write_text(LABELLED, encoding="utf-8")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES, encoding="utf-8")
    return ["import", str(labelled), "--routes", str(routes)]


def test_import_out_a_folder_says_so_and_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "grammars"
    folder.mkdir()
    code, _, err = run([*_import_args(tmp_path), "--out", str(folder)], capsys)
    assert code == 2
    assert "is a folder" in one_line(err) and str(folder / "intents.yaml") in err
    assert list(tmp_path.rglob("*.tmp")) == [] and list(folder.iterdir()) == []


def test_import_out_an_unwritable_path_says_so_and_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file, not a folder\n", encoding="utf-8")
    out_file = not_a_folder / "intents.yaml"
    code, _, err = run([*_import_args(tmp_path), "--out", str(out_file)], capsys)
    assert code == 1
    assert f"cannot write {out_file}" in one_line(err)
    assert list(tmp_path.rglob("*.tmp")) == []


def test_import_does_not_write_through_a_symlink_planted_at_its_temporary_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    out_file = tmp_path / "intents.yaml"
    (tmp_path / "intents.yaml.tmp").symlink_to(victim)  # the name it used to use
    code, _, err = run([*_import_args(tmp_path), "--out", str(out_file)], capsys)
    assert code == 0, err
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert "intents:" in out_file.read_text(encoding="utf-8")
    assert out_file.stat().st_mode & 0o777 == 0o644  # readable like any file the user writes


def test_check_a_file_with_a_nul_byte_names_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "intents.yaml"
    path.write_bytes(b"language: en-US\ntimezone: UTC\x00\n")
    code, _, err = run(["check", str(path)], capsys)
    assert code == 1
    assert "Traceback" not in err
    assert f"{path}:2:14: contains a NUL byte" in err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("language: en-US\nintents: " + "[" * 5000 + "]" * 5000 + "\n", ":2:59: lists and"),
        (
            "language: en-US\nintents:\n  join:\n    phrases:\n"
            + "      - phrase number 1234567 about my invoice\n" * 120_000,
            ":106387: the file is 5.6 MB",
        ),
    ],
    ids=["nested-5000-deep", "5.6-MB"],
)
def test_check_a_yaml_bomb_is_one_line_without_a_traceback(
    text: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text(text, encoding="utf-8")
    code, _, err = run(["check", str(path)], capsys)
    assert code == 1
    assert "Traceback" not in err and len(err.splitlines()) <= 2, err[:2000]
    assert f"{path}{needle}" in err


def test_report_on_a_file_that_is_not_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.sqlite3"
    notes.write_text("these are my notes, not a database\n" * 100, encoding="utf-8")
    before = notes.read_bytes()
    code, _, err = run(["report", "--database", str(notes)], capsys)
    assert code == 1
    assert f"{notes} is not a call log" in one_line(err)
    assert notes.read_bytes() == before


def test_report_with_an_unknown_time_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "calls.sqlite3"
    code, _, err = run(["report", "--database", str(database), "--tz", "Mars/Base"], capsys)
    assert code == 2
    assert one_line(err) == (
        "voicebot: --tz 'Mars/Base' is not a time zone; use a name like Europe/Stockholm or UTC\n"
    )


def test_main_prints_any_voicebot_error_once_and_lets_a_bug_keep_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one place errors meet the user: the family's report and exit status; nothing else."""
    from voicebot.cli import check as check_command
    from voicebot.cli.common import UsageError
    from voicebot.errors import VoicebotError

    def mistake(_args: object) -> int:
        raise VoicebotError("the thing is missing; create it with: voicebot make-thing")

    monkeypatch.setattr(check_command, "cmd_check", mistake)
    assert run(["check"], capsys) == (
        1,
        "",
        "voicebot: the thing is missing; create it with: voicebot make-thing\n",
    )

    def usage_mistake(_args: object) -> int:
        raise UsageError("--x needs a value")

    monkeypatch.setattr(check_command, "cmd_check", usage_mistake)
    assert run(["check"], capsys)[0] == 2

    def bug(_args: object) -> int:
        raise KeyError("not a user's mistake")

    monkeypatch.setattr(check_command, "cmd_check", bug)
    with pytest.raises(KeyError):
        main(["check"])
