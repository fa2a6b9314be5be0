"""`voicebot import` as ops meet it: what the generated file holds, how bad input is reported."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicebot.core.config import ActionKind, DestinationKind, SmsFallback
from voicebot.loading.importer import import_labelled
from voicebot.loading.loader import ConfigError, load_language, load_language_text
from voicebot.matching.labelled import LabelledFileError, read_labelled, read_rows

ROOT = Path(__file__).resolve().parent.parent
HWU64_TRAIN = Path("/work/shared/data/text/hwu64/train.csv")

HISTORY = """\
text,intent
my invoice is wrong,invoice
"I got a bill, and I don't understand it",invoice
how much is the fee,invoice
My invoice is   WRONG!,invoice
I paid twice,payment
my payment did not go through,payment
the direct debit failed,payment
book me on a course,course
which courses are there,course
what's the weather in Paris,oos
"""

ROUTES = """\
routes:
  invoice: billing
  payment:
    label: a payment problem
    transfer: billing
  "*": members
"""


def files(tmp_path: Path, history: str = HISTORY, routes: str = ROUTES) -> tuple[Path, Path]:
    csv_path = tmp_path / "history.csv"
    csv_path.write_text(history, encoding="utf-8")
    routes_path = tmp_path / "routes.yaml"
    routes_path.write_text(textwrap.dedent(routes), encoding="utf-8")
    return csv_path, routes_path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(exc.value)


# --- what the generated file holds -------------------------------------------------------------


def test_generated_file_loads_with_every_labelled_intent_and_example(tmp_path: Path) -> None:
    config = load_language_text(import_labelled(*files(tmp_path)), "out.yaml")

    assert set(config.intents) == {"invoice", "payment", "course"}  # 'oos' is not an intent
    invoice = config.intents["invoice"]
    # the repeat (same words, other case and punctuation) is dropped; commas in quotes survive
    assert invoice.examples == (
        "my invoice is wrong",
        "I got a bill, and I don't understand it",
        "how much is the fee",
    )
    assert len(config.intents["payment"].examples) == 3
    assert config.intents["payment"].label == "a payment problem"
    assert config.intents["invoice"].action.group == "billing"
    assert config.intents["course"].action.group == "members"  # not routed: goes to "*"
    # groups the routes name but do not define are created as queues
    assert config.groups["billing"].destination.kind is DestinationKind.QUEUE
    assert config.default_group == "billing"  # the group most intents go to


def test_header_says_how_the_file_was_made(tmp_path: Path) -> None:
    text = import_labelled(*files(tmp_path), max_examples=2, seed=5)
    header = [line for line in text.splitlines() if line.startswith("#")]
    joined = "\n".join(header)
    assert "voicebot import history.csv --routes routes.yaml --max-examples 2 --seed 5" in joined
    assert "1 'oos' row skipped" in joined and "1 repeated text dropped" in joined
    assert "3 intents" in joined
    assert "# 2 of 3 examples, sampled with seed 5" in text


def test_same_inputs_give_the_same_bytes_in_separate_processes(tmp_path: Path) -> None:
    csv_path, routes_path = files(tmp_path)
    script = (
        "import sys; from pathlib import Path; "
        "from voicebot.loading.importer import import_labelled; "
        "sys.stdout.write(import_labelled(Path(sys.argv[1]), Path(sys.argv[2]), 2, 3))"
    )
    outs = [
        subprocess.run(
            [sys.executable, "-c", script, str(csv_path), str(routes_path)],
            capture_output=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
        ).stdout
        for seed in ("1", "2")
    ]
    assert outs[0] == outs[1]
    assert outs[0].decode() == import_labelled(csv_path, routes_path, 2, 3)


def test_max_examples_samples_reproducibly_per_intent(tmp_path: Path) -> None:
    rows = [f"question number {i} about fees,invoice" for i in range(40)]
    rows += [f"course question {i},course" for i in range(40)]
    history = "text,intent\n" + "\n".join(rows) + "\n"
    csv_path, routes_path = files(tmp_path, history, 'routes:\n  "*": members\n')

    def sample(seed: int, path: Path = csv_path) -> dict[str, tuple[str, ...]]:
        config = load_language_text(import_labelled(path, routes_path, 5, seed))
        return {name: intent.examples for name, intent in config.intents.items()}

    first = sample(1)
    assert first == sample(1)
    for name, examples in first.items():
        everything = [r.split(",")[0] for r in rows if r.endswith("," + name)]
        assert len(examples) == 5
        # a subset of the history, still in the order it was written
        assert list(examples) == [t for t in everything if t in examples]
    assert sample(2) != first
    # adding an intent does not reshuffle the others
    more = tmp_path / "more.csv"
    more.write_text(csv_path.read_text() + "hello,greeting\n", encoding="utf-8")
    assert {k: v for k, v in sample(1, more).items() if k != "greeting"} == first


def test_max_examples_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        import_labelled(*files(tmp_path), max_examples=0)


def test_routes_sections_are_copied_exactly_as_written(tmp_path: Path) -> None:
    """A plain +46... is a number to YAML and 0.50 a float; the copy must keep what ops wrote."""
    routes = """\
        timezone: Europe/Stockholm
        thresholds:
          accept: 0.50
          reject: 0.2
        words:
          yes: [yes, yeah]
          no: no
        groups:
          billing:
            number: +46101234567
            hours:
              mon-fri: 08:00-16:30
              closed_days: [2026-12-24..2026-12-26]
        routes:
          "*": billing
    """
    config = load_language_text(import_labelled(*files(tmp_path, routes=routes)))
    billing = config.groups["billing"]
    assert billing.destination.value == "+46101234567"
    assert len(billing.hours.closed_days) == 3
    assert config.thresholds.accept == 0.5 and config.thresholds.reject == 0.2
    assert config.words.yes == ("yes", "yeah") and config.words.no == ("no",)


def test_routes_can_give_sms_and_announce_actions(tmp_path: Path) -> None:
    routes = """\
        groups:
          members: {number: "+46101234567"}
        routes:
          invoice:
            sms:
              link: https://example.org/invoices
              fallback: read
              answer: Your invoices are on My Pages.
          payment:
            announce: "Payments take three days to show up."
          "*": members
    """
    config = load_language_text(import_labelled(*files(tmp_path, routes=routes)))
    invoice = config.intents["invoice"].action
    assert invoice.kind is ActionKind.SMS and invoice.fallback is SmsFallback.READ
    assert invoice.link == "https://example.org/invoices"
    assert config.intents["payment"].action.kind is ActionKind.ANNOUNCE
    assert config.intents["course"].action.group == "members"
    assert set(config.groups) == {"members"}  # nothing to create


def test_example_files_import_and_load(tmp_path: Path) -> None:
    out = tmp_path / "intents.yaml"
    text = import_labelled(
        ROOT / "examples/labelled-example.csv", ROOT / "examples/routes-example.yaml", 50, 1
    )
    out.write_text(text, encoding="utf-8")
    config = load_language(out)
    labelled = {intent for _, intent in read_labelled(ROOT / "examples/labelled-example.csv")}
    assert set(config.intents) == labelled - {"oos"}
    assert config.intents["opening_hours"].action.kind is ActionKind.ANNOUNCE
    assert config.groups["courses"].destination.kind is DestinationKind.QUEUE


# --- routes mistakes ---------------------------------------------------------------------------


def test_unrouted_intents_without_a_star_route_are_listed(tmp_path: Path) -> None:
    routes = "routes:\n  invoice: billing\n"
    with pytest.raises(ConfigError) as exc:
        import_labelled(*files(tmp_path, routes=routes))
    message = problems(exc)
    assert "routes.yaml:1" in message
    assert "no route for 2 intent(s)" in message and "course, payment" in message
    assert '"*"' in message


def test_a_route_for_an_intent_the_history_lacks_is_an_error_with_a_suggestion(
    tmp_path: Path,
) -> None:
    routes = 'routes:\n  invoices: billing\n  "*": members\n'
    with pytest.raises(ConfigError) as exc:
        import_labelled(*files(tmp_path, routes=routes))
    assert "routes.yaml:2:3: routes: there is no intent 'invoices' in history.csv" in problems(exc)
    assert "did you mean 'invoice'" in problems(exc)


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ('routes:\n  "*": {transfer: members, label: other}\n', 'a label on "*"'),
        ('routes:\n  "*": front desk\n', "'front desk' is not a group id"),
        ('routes:\n  "*": {transfer: a, announce: b}\n', "exactly one of transfer"),
        ('routes:\n  "*": {sms: {link: "not a link"}}\n', "is not a web link"),
        ('routes:\n  oos: members\n  "*": members\n', "rows labelled 'oos' are never imported"),
        ("groups: {}\n", "missing 'routes:'"),
    ],
)
def test_routes_mistakes_point_at_the_routes_file(
    tmp_path: Path, routes: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        import_labelled(*files(tmp_path, routes=routes))
    assert expected in problems(exc)
    assert "routes.yaml:" in problems(exc)


# --- CSV mistakes ------------------------------------------------------------------------------


def test_every_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    history = (
        "text,intent\n"
        "fine row,invoice\n"
        "I paid, twice,payment\n"  # unquoted comma: 3 fields
        ",invoice\n"  # no text
        "something,\n"  # no intent
        "?!,invoice\n"  # no words
    )
    with pytest.raises(ConfigError) as exc:
        import_labelled(*files(tmp_path, history))
    message = problems(exc)
    assert "history.csv:3: has 3 fields but the header has 2" in message
    assert "double quotes" in message
    assert "history.csv:4: empty text for intent 'invoice'" in message
    assert "history.csv:5: no intent for 'something'" in message
    assert "history.csv:6: the text '?!' has no words" in message


def test_labels_that_are_not_names_are_renamed_and_the_mapping_printed(tmp_path: Path) -> None:
    history = (
        "text,intent\n"
        "I want my money back,refund?\n"
        "where is my refund,refund?\n"
        "I lost my card,Lost card\n"
        "my card is gone,lost_card\n"  # already a name: the renamed label must not take it
        "card stolen,Lost  card!\n"
    )
    routes = 'routes:\n  "refund?": billing\n  "*": members\n'
    said: list[str] = []
    text = import_labelled(*files(tmp_path, history, routes), notice=said.append)
    config = load_language_text(text)
    assert set(config.intents) == {"refund", "Lost_card", "lost_card", "Lost_card_2"}
    assert config.intents["refund"].examples == ("I want my money back", "where is my refund")
    assert config.intents["refund"].action.group == "billing"  # the route used the CSV label
    assert config.intents["Lost_card"].action.group == "members"
    assert len(said) == 1
    assert "'refund?' -> refund" in said[0]
    assert "'Lost card' -> Lost_card" in said[0]
    assert "'Lost card!' -> Lost_card_2" in said[0]  # whitespace folded first
    assert "#   'refund?' -> refund" in text  # the file says so too


def test_the_rename_mapping_goes_to_stderr_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = 'routes:\n  "*": members\n'
    import_labelled(*files(tmp_path, "text,intent\nI want my money back,refund?\n", routes))
    assert "'refund?' -> refund" in capsys.readouterr().err


def test_quoted_cells_with_line_breaks_are_folded(tmp_path: Path) -> None:
    history = (
        "text,intent\n"
        '"I got a bill\nand I don\'t\r\n   understand it",invoice\n'
        "my invoice is wrong,invoice\n"
        '"two\nlines",payment\n'
    )
    rows = read_rows(files(tmp_path, history)[0])
    assert [(r.text, r.intent, r.line) for r in rows] == [
        ("I got a bill and I don't understand it", "invoice", 2),
        ("my invoice is wrong", "invoice", 5),
        ("two lines", "payment", 6),
    ]


def test_semicolon_separated_export_with_bom_reads(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    export = '\ufeffText;Intent\r\n"fee; invoice";invoice\r\nI paid twice, I think;payment\r\n'
    path.write_bytes(export.encode())
    assert read_labelled(path) == [
        ("fee; invoice", "invoice"),
        ("I paid twice, I think", "payment"),
    ]
    routes = tmp_path / "routes.yaml"
    routes.write_text('routes:\n  "*": members\n', encoding="utf-8")
    config = load_language_text(import_labelled(path, routes))
    assert config.intents["payment"].examples == ("I paid twice, I think",)


def test_tab_separated_export_reads(tmp_path: Path) -> None:
    path = tmp_path / "export.tsv"
    path.write_text("intent\ttext\ninvoice\tmy bill, again\n", encoding="utf-8")
    assert read_labelled(path) == [("my bill, again", "invoice")]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        import_labelled(*files(tmp_path, "utterance,label\nhi,greeting\n"))
    assert "history.csv:1: the first line must name the columns text,intent" in problems(exc)
    assert "missing: text, intent" in problems(exc)


def test_an_unclosed_quote_is_reported_where_it_starts(tmp_path: Path) -> None:
    history = 'text,intent\nfine,invoice\n"I paid twice,payment\nmore,payment\n'
    with pytest.raises(LabelledFileError) as exc:
        read_rows(files(tmp_path, history)[0])
    assert exc.value.problems[0][0] == 3
    assert "not closed" in str(exc.value)


def test_a_spreadsheet_export_with_bom_crlf_and_extra_columns_reads(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    export = '\ufeffID;x,Intent,Text\r\n1,invoice,"fee, invoice"\r\n\r\n2,payment,paid  twice\r\n'
    path.write_bytes(export.encode())
    rows = read_rows(path)
    assert [(r.text, r.intent, r.line) for r in rows] == [
        ("fee, invoice", "invoice", 2),
        ("paid twice", "payment", 4),
    ]


def test_a_file_with_only_oos_rows_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no rows other than 'oos'"):
        import_labelled(*files(tmp_path, "text,intent\nplay music,oos\n"))


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,intent\nfaktura för medlemsavgift,invoice\n".encode("latin-1"))
    with pytest.raises(LabelledFileError, match="not UTF-8"):
        read_rows(path)


def test_mixed_encodings_are_reported_on_the_lines_that_are_not_utf8(tmp_path: Path) -> None:
    """A spreadsheet that was appended to from another program: UTF-8 first, then Latin-1."""
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        "text,intent\nfaktura för medlemsavgift,invoice\n".encode()
        + "min faktura är fel,invoice\n".encode("latin-1")
        + "jag vill gå med,join\n".encode()
        + "var är mitt kort,card\n".encode("latin-1")
    )
    with pytest.raises(LabelledFileError) as info:
        read_rows(path)
    assert [line for line, _ in info.value.problems] == [3, 5]
    assert all("not UTF-8" in message for _, message in info.value.problems)
    assert str(info.value).splitlines()[0].startswith(f"{path}:3: ")


def test_a_star_label_does_not_take_the_routes_catch_all(tmp_path: Path) -> None:
    history = "text,intent\nmy invoice,invoice\nwhatever,*\nI want to join,join\n"
    routes = 'routes:\n  invoice: billing\n  "*": members\n'
    with pytest.raises(ConfigError) as info:
        import_labelled(*files(tmp_path, history, routes), notice=lambda _: None)
    (line,) = problems(info).splitlines()
    assert "routes.yaml:3:" in line
    assert "history.csv line 3" in line and "catch-all" in line
    assert "no route for" not in line  # not the misleading error of before
    routed = routes + "  intent: billing\n"  # what the error suggests
    text = import_labelled(*files(tmp_path, history, routed), notice=lambda _: None)
    config = load_language_text(text)
    assert config.intents["intent"].action.group == "billing"
    assert config.intents["join"].action.group == "members"  # the catch-all still holds


def test_a_star_label_without_a_catch_all_is_renamed_and_routed_by_its_new_name(
    tmp_path: Path,
) -> None:
    history = "text,intent\nmy invoice,invoice\nwhatever,*\n"
    routes = "routes:\n  invoice: billing\n  intent: members\n"
    said: list[str] = []
    text = import_labelled(*files(tmp_path, history, routes), notice=said.append)
    config = load_language_text(text)
    assert config.intents["intent"].examples == ("whatever",)
    assert config.intents["intent"].action.group == "members"
    assert "'*' -> intent" in said[0]


# --- round trip of arbitrary text --------------------------------------------------------------

_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn")), min_size=1, max_size=40
).filter(lambda t: any(c.isalnum() for c in t))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(_TEXT, min_size=1, max_size=8))
def test_any_text_comes_back_as_written(tmp_path: Path, texts: list[str]) -> None:
    """Whatever callers said (quotes, colons, '#', 'no', numbers) survives YAML unchanged."""
    csv_path = tmp_path / "any.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "intent"])
        writer.writerows([t, "anything"] for t in texts)
    routes = tmp_path / "routes.yaml"
    routes.write_text('routes:\n  "*": members\n', encoding="utf-8")
    config = load_language_text(import_labelled(csv_path, routes))
    wanted = [" ".join(t.split()) for t in texts]
    examples = config.intents["anything"].examples
    assert set(examples) <= set(wanted)  # repeats after normalisation are dropped
    assert examples[0] == wanted[0]


# --- a real history ----------------------------------------------------------------------------


@pytest.mark.skipif(not HWU64_TRAIN.exists(), reason=f"shared HWU64 data not at {HWU64_TRAIN}")
def test_hwu64_train_imports_with_64_intents(tmp_path: Path) -> None:
    text = import_labelled(HWU64_TRAIN, ROOT / "bench/routes/hwu64.yaml")
    config = load_language_text(text)
    assert len(config.intents) == 64
    rows = read_labelled(HWU64_TRAIN)
    assert sum(len(i.examples) for i in config.intents.values()) <= len(rows)
    assert config.intents["alarm_set"].action.group == "schedule"
