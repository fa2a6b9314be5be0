"""The loader as ops meet it: what loads, and how each mistake is reported (file:line:column)."""

from __future__ import annotations

import datetime as dt
import logging
import textwrap
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from voicebot.core.config import ActionKind, DestinationKind, SmsFallback
from voicebot.loading.loader import (
    ConfigError,
    ConfigHolder,
    Problem,
    default_config_path,
    load_deployment,
    load_language,
    load_language_text,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")

MINIMAL = """\
language: en-US
default_group: members
groups:
  members:
    number: "+46101234567"
intents:
  invoice:
    label: invoices
    phrases: [my invoice, a question about my bill]
    transfer: members
"""


def write(folder: Path, text: str, name: str = "intents.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(folder: Path, text: str) -> list[Problem]:
    path = write(folder, text)
    with pytest.raises(ConfigError) as info:
        load_language(path)
    return info.value.problems


def only(problems: list[Problem], needle: str) -> Problem:
    found = [p for p in problems if needle in p.message]
    assert len(found) == 1, "\n".join(str(p) for p in problems)
    return found[0]


def at(problem: Problem) -> tuple[int, int]:
    return problem.origin.line, problem.origin.column


def with_lines(extra: str, *, intents: str = "") -> str:
    """MINIMAL plus extra lines; line numbers in tests count from this layout."""
    return MINIMAL + textwrap.dedent(extra) + textwrap.dedent(intents)


# ---------------------------------------------------------------------------------------------
# What loads


def test_minimal_file_gets_english_defaults(tmp_path: Path) -> None:
    config = load_language(write(tmp_path, MINIMAL))
    assert config.language == "en-US"
    assert config.voice == "Polly.Joanna"
    assert config.timezone == "UTC"
    assert "{a}" in config.prompts.clarify and "{b}" in config.prompts.clarify
    assert "agent" in config.words.escape
    assert config.thresholds.accept == 0.5
    group = config.group(None)
    assert group.id == "members" and group.name == "members"
    assert group.destination.kind is DestinationKind.NUMBER
    assert group.is_open(dt.datetime(2026, 12, 25, 3, 0, tzinfo=dt.UTC))  # no hours: always open
    intent = config.intents["invoice"]
    assert intent.phrases == ("my invoice", "a question about my bill")
    assert intent.action.kind is ActionKind.TRANSFER and intent.action.group == "members"
    assert intent.origin.line == 7 and intent.phrase_origins[1].line == 9
    assert config.source.endswith("intents.yaml")


def test_swedish_gets_swedish_defaults(tmp_path: Path) -> None:
    config = load_language(write(tmp_path, MINIMAL.replace("en-US", "sv-SE")))
    assert config.voice == "Polly.Astrid"
    assert config.prompts.clarify == "Gäller det {a} eller {b}?"
    assert "nej" in config.words.no


def test_prompts_and_words_override_single_keys(tmp_path: Path) -> None:
    text = with_lines(
        """\
        prompts:
          greeting: Welcome to member support.
        words:
          yes: [yes, yep]
          no: [no, nope]
        """
    )
    config = load_language(write(tmp_path, text))
    assert config.prompts.greeting == "Welcome to member support."
    assert config.prompts.goodbye.startswith("Thank you")
    # YAML 1.1 would make these True/False; the loader keeps the words as written.
    assert config.words.yes == ("yes", "yep")
    assert config.words.no == ("no", "nope")


def test_phone_numbers_are_read_as_written(tmp_path: Path) -> None:
    # Unquoted, YAML would make +46101234567 the integer 46101234567.
    for number in ("+46101234567", "+46 10 123 45 67"):
        text = MINIMAL.replace('"+46101234567"', number)
        config = load_language(write(tmp_path, text))
        assert config.group("members").destination.value == "+46101234567"


def test_text_accepts_folded_blocks_and_quotes(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    transfer: members\n",
        "    announce:\n      text: >-\n        We are open\n        weekdays.\n",
    )
    config = load_language(write(tmp_path, text))
    assert config.intents["invoice"].action.text == "We are open weekdays."


def test_sms_action_fields(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    transfer: members\n",
        textwrap.indent(
            textwrap.dedent(
                """\
                sms:
                  link: https://example.org/login
                  say: I've texted you a link.
                  fallback: read
                  answer: Press Forgot password.
                """
            ),
            "    ",
        ),
    )
    action = load_language(write(tmp_path, text)).intents["invoice"].action
    assert action.kind is ActionKind.SMS
    assert action.link == "https://example.org/login"
    assert action.text == "I've texted you a link."
    assert action.sms_text == "I've texted you a link. {link}"
    assert action.fallback is SmsFallback.READ
    assert action.answer == "Press Forgot password."


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = """\
    language: en-US
    timezone: Europe/Stockholm
    default_group: a
    groups:
      a:
        number: "+46101234567"
        hours: &office
          mon-fri: "08:00-17:00"
      b:
        <<: {queue: b, name: bee}
        name: the b team
        hours: *office
    intents:
      x: {phrases: [x], transfer: a}
      y: {phrases: [y], transfer: b}
    """
    config = load_language(write(tmp_path, text))
    b = config.groups["b"]
    assert b.name == "the b team" and b.destination.value == "b"
    assert b.hours.weekly == config.groups["a"].hours.weekly


def test_load_language_text_names_the_source() -> None:
    config = load_language_text(MINIMAL, "routes.yaml")
    assert config.source == "routes.yaml"
    with pytest.raises(ConfigError) as info:
        load_language_text("language: en-US\n", "snippet")
    assert str(info.value).startswith("snippet:1:1: missing required top-level key")


# ---------------------------------------------------------------------------------------------
# How problems are reported


def test_error_lines_read_file_line_column_message(tmp_path: Path) -> None:
    text = MINIMAL.replace("transfer: members", "transfer: membrs")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_language(path)
    assert str(info.value) == (
        f"{path}:10:15: intent 'invoice': unknown agent group 'membrs' "
        "(did you mean 'members'? known groups: members)"
    )


def test_all_problems_are_reported_in_file_order(tmp_path: Path) -> None:
    text = """\
    language: en-US
    default_group: nobody
    groups:
      members:
        number: "12345"
    intents:
      invoice:
        phrases: [my invoice]
        transfer: billing
      empty:
        transfer: members
    """
    problems = problems_of(tmp_path, text)
    assert [at(p) for p in problems] == [(2, 16), (5, 13), (9, 15), (10, 3)]
    assert "unknown agent group 'nobody'" in problems[0].message
    assert "not a phone number" in problems[1].message
    assert "unknown agent group 'billing'" in problems[2].message
    assert "no phrases and no examples" in problems[3].message


def test_yaml_syntax_error_points_at_the_spot(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "language: en-US\nintents:\n  a: [one, two\n  b: x\n")
    assert len(problems) == 1
    assert problems[0].message.startswith("YAML syntax error:")
    assert problems[0].origin.line == 4


@pytest.mark.parametrize(
    ("text", "where", "needle"),
    [
        ("language: en-US\nvoice: 'Polly.Joanna\ntimezone: UTC\n", (2, 8), "closing quote"),
        ('language: en-US\nvoice: "Polly.Joanna\n', (2, 8), "closing quote"),
        ('language: en-US\nnumbers: ["+46101234599"\n', (2, 10), "']'"),
        ("language: en-US\nthresholds: {accept: 0.5\n", (2, 13), "'}'"),
    ],
)
def test_an_unclosed_quote_or_bracket_is_reported_where_it_opens(
    tmp_path: Path, text: str, where: tuple[int, int], needle: str
) -> None:
    """The parser only notices at the end of the file (a line after the last one); ops must be
    sent to the line with the quote or bracket that is never closed."""
    problem = only(problems_of(tmp_path, text), "YAML syntax error")
    assert at(problem) == where
    assert "never closed" in problem.message and needle in problem.message


def test_a_bracket_closed_too_late_names_the_line_it_opened_on(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "language: en-US\nintents:\n  a: [one, two\n  b: x\n")
    assert "the '[' on line 3 is not closed" in only(problems, "YAML syntax error").message


@pytest.mark.parametrize(("char", "name"), [("\0", "a NUL byte"), ("\x07", "U+0007")])
def test_a_control_character_is_a_problem_with_its_line(
    tmp_path: Path, char: str, name: str
) -> None:
    problem = only(problems_of(tmp_path, f"language: en-US\nvoice: Polly{char}Joanna\n"), name)
    assert at(problem) == (2, 13)
    assert "remove it" in problem.message


def merge_bomb(levels: int = 7, fan: int = 10) -> str:
    """The probe of issue 26: each level merges ``fan`` copies of the one above (about 3 KB),
    so reading the prompts means fan**levels copies of the first level's keys."""
    lines = ["x0: &x0 {" + ", ".join(f"k{i}: v" for i in range(fan)) + "}"]
    for level in range(1, levels + 1):
        copies = ", ".join([f"*x{level - 1}"] * fan)
        lines += [f"x{level}: &x{level}", f"  <<: [{copies}]", f"  y{level}: z"]
    return MINIMAL + "\n".join(lines) + f"\nprompts:\n  <<: *x{levels}\n"


def test_merge_keys_nested_seven_deep_are_one_problem_at_the_alias(tmp_path: Path) -> None:
    text = merge_bomb()
    assert len(text) < 4000
    problems = problems_of(tmp_path, text)
    problem = only(problems, "aliases")
    assert len(problems) == 1 and "\n" not in str(problem)
    assert text.splitlines()[problem.origin.line - 1].startswith("  <<: [*x")  # where it grew


def test_brackets_nested_five_thousand_deep_are_one_problem(tmp_path: Path) -> None:
    text = "language: en-US\nintents: " + "[" * 5000 + "]" * 5000 + "\n"
    problems = problems_of(tmp_path, text)
    problem = only(problems, "nest more than")
    assert len(problems) == 1 and at(problem)[0] == 2


def test_a_config_of_thirteen_megabytes_is_refused(tmp_path: Path) -> None:
    phrases = "".join(f"      - phrase number {n} about my invoice\n" for n in range(330_000))
    text = MINIMAL + "  big:\n    transfer: members\n    phrases:\n" + phrases
    assert len(text) > 13_000_000
    for problem in (
        only(problems_of(tmp_path, text), "MB"),  # a file: not even read whole
        only(problems_raised(lambda: load_language_text(text, "big.yaml")), "MB"),  # a text
    ):
        assert "over the 5 MB" in problem.message and "--max-examples" in problem.message
        assert 100_000 < problem.origin.line < 140_000  # where the file passes 5 MB


def problems_raised(load: Callable[[], object]) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load()
    return info.value.problems


def test_an_anchor_used_often_within_the_limits_still_loads(tmp_path: Path) -> None:
    common = ", ".join(f"phrase {i}" for i in range(100))
    intents = "".join(f"  i{n}:\n    transfer: members\n    phrases: *common\n" for n in range(50))
    text = MINIMAL + f"  first:\n    transfer: members\n    phrases: &common [{common}]\n" + intents
    config = load_language(write(tmp_path, text))
    assert len(config.intents) == 52 and len(config.intents["i49"].phrases) == 100


def test_tabs_are_explained(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "language: en-US\nintents:\n\tinvoice: {}\n")
    problem = only(problems, "tab")
    assert at(problem) == (3, 1)
    assert "spaces" in problem.message


def test_colon_in_value_is_explained(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "language: en-US\nvoice: a: b\n")
    assert "quotes" in only(problems, "YAML syntax error").message


@pytest.mark.parametrize(
    ("extra", "needle", "where"),
    [
        ("intent:\n  x: {}\n", "unknown key 'intent' (did you mean 'intents'?)", (11, 1)),
        ("thresholds: {acept: 0.4}\n", "unknown key 'acept' (did you mean 'accept'?)", (11, 14)),
        ("prompts:\n  greting: Hi\n", "unknown key 'greting' (did you mean 'greeting'?)", (12, 3)),
        ("colour: blue\n", "unknown key 'colour' (allowed:", (11, 1)),
    ],
)
def test_unknown_keys_suggest_the_right_one(
    tmp_path: Path, extra: str, needle: str, where: tuple[int, int]
) -> None:
    assert at(only(problems_of(tmp_path, MINIMAL + extra), needle)) == where


def test_unknown_intent_key_mentions_actions(tmp_path: Path) -> None:
    text = MINIMAL.replace("    transfer: members\n", "    transfer: members\n    play: x\n")
    problem = only(problems_of(tmp_path, text), "unknown key 'play'")
    assert "transfer, announce, sms or lookup" in problem.message
    assert at(problem) == (11, 5)


_PHRASES = "phrases: [my invoice, a question about my bill]"


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        (_PHRASES, "phrases: my invoice", "must be a list"),
        (_PHRASES, "phrases: {a: b}", "must be a list"),
        ("label: invoices", "label: [a, b]", "'label' must be text, not a list"),
        ("label: invoices", "label:", "'label' must be text, not nothing"),
        ("transfer: members", "transfer: {group: members}", "'transfer' must name an agent group"),
    ],
)
def test_wrong_types_are_named(tmp_path: Path, old: str, new: str, needle: str) -> None:
    only(problems_of(tmp_path, MINIMAL.replace(old, new)), needle)


def test_wrong_number_types(tmp_path: Path) -> None:
    text = MINIMAL + "max_turns: four\nthresholds:\n  accept: high\n  reject: '0.2'\n"
    problems = problems_of(tmp_path, text)
    assert at(only(problems, "'max_turns' must be a whole number, not 'four'")) == (11, 12)
    assert at(only(problems, "'accept' must be a number, not 'high'")) == (13, 11)
    assert at(only(problems, "'reject' must be a number")) == (14, 11)


def test_missing_required_keys(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "language: en-US\n")
    messages = [p.message for p in problems]
    assert messages == [
        "missing required top-level key 'groups'",
        "missing required top-level key 'default_group'",
        "missing required top-level key 'intents'",
    ]
    assert all(at(p) == (1, 1) for p in problems)


def test_missing_nested_key_points_at_its_owner(tmp_path: Path) -> None:
    text = MINIMAL + "announcements:\n  - text: Hello\n"
    problem = only(problems_of(tmp_path, text), "missing 'id'")
    assert at(problem) == (12, 5)
    assert problem.message == "announcement 1: missing 'id'"


def test_unknown_groups_everywhere_they_are_named(tmp_path: Path) -> None:
    text = """\
    language: en-US
    timezone: Europe/Stockholm
    default_group: memebrs
    groups:
      members:
        number: "+46101234567"
        hours:
          mon-fri: "08:00-17:00"
        when_closed: {say: Closed., transfer_to: overflw}
      overflow:
        queue: overflow
    intents:
      a:
        phrases: [a]
        transfer: billing
      b:
        phrases: [b]
        sms: {link: "https://example.org/b", group: overflov}
    """
    problems = problems_of(tmp_path, text)
    assert len(problems) == 4
    assert at(only(problems, "'memebrs' (did you mean 'members'?")) == (3, 16)
    assert at(only(problems, "'overflw' (did you mean 'overflow'?")) == (9, 46)
    assert at(only(problems, "'billing' (known groups: members, overflow)")) == (15, 15)
    assert at(only(problems, "'overflov'")) == (18, 49)


def test_when_closed_must_not_loop(tmp_path: Path) -> None:
    text = """\
    language: en-US
    timezone: UTC
    default_group: a
    groups:
      a:
        queue: a
        hours: {mon: "08:00-09:00"}
        when_closed: {say: Closed., transfer_to: b}
      b:
        queue: b
        hours: {mon: "08:00-09:00"}
        when_closed: {say: Closed., transfer_to: a}
    intents:
      x: {phrases: [x], transfer: a}
    """
    problems = problems_of(tmp_path, text)
    assert len([p for p in problems if "round in a circle" in p.message]) == 2


# ---------------------------------------------------------------------------------------------
# Destinations


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('number: "0701234567"', "not a phone number in international form"),
        ('number: "+46 70"', "not a phone number"),
        ('number: "+4610123456789012"', "not a phone number"),
        ('number: "+46-10-abc"', "not a phone number"),
        ('sip: "members@pbx.example.org"', "not a SIP address"),
        ('sip: "sip:pbx.example.org"', "not a SIP address"),
        ('queue: ""', "'queue' is empty"),
        (f"queue: {'q' * 65}", "65 characters long; Twilio allows at most 64"),
        ("workflow: WW123", "not a TaskRouter workflow SID"),
        (f"workflow: WX{'a' * 32}", "not a TaskRouter workflow SID"),
    ],
)
def test_bad_destinations(tmp_path: Path, line: str, needle: str) -> None:
    text = MINIMAL.replace('number: "+46101234567"', line)
    assert at(only(problems_of(tmp_path, text), needle))[0] == 5


@pytest.mark.parametrize(
    ("line", "kind", "value"),
    [
        ("number: +46101234567", DestinationKind.NUMBER, "+46101234567"),
        ('number: "+46 10-123 45 67"', DestinationKind.NUMBER, "+46101234567"),
        ("sip: sip:members@pbx.example.org", DestinationKind.SIP, "sip:members@pbx.example.org"),
        ("sip: sips:a@10.0.0.1:5061;transport=tls", DestinationKind.SIP, None),
        (f"queue: {'q' * 64}", DestinationKind.QUEUE, "q" * 64),
        (f"workflow: WW{'0a' * 16}", DestinationKind.WORKFLOW, f"WW{'0a' * 16}"),
    ],
)
def test_good_destinations(
    tmp_path: Path, line: str, kind: DestinationKind, value: str | None
) -> None:
    text = MINIMAL.replace('number: "+46101234567"', line)
    destination = load_language(write(tmp_path, text)).group("members").destination
    assert destination.kind is kind
    if value is not None:
        assert destination.value == value


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("+6834002", True),
        ("+683400", False),
        ("+468123456789012", True),
        ("+4681234567890123", False),
    ],
)
def test_a_group_number_and_a_line_number_follow_the_same_e164_rule(
    tmp_path: Path, number: str, ok: bool
) -> None:
    """One rule (7 to 15 digits, as the caller numbers): a number a line may have, a group may
    dial, so Niue's 7-digit +683 4002 works in both places."""
    group = MINIMAL.replace('number: "+46101234567"', f'number: "{number}"')
    line = MINIMAL + f'numbers: ["{number}"]\n'
    for text in (group, line):
        if ok:
            load_language(write(tmp_path, text))
        else:
            assert only(problems_of(tmp_path, text), "international form")


def test_exactly_one_destination(tmp_path: Path) -> None:
    text = MINIMAL.replace('number: "+46101234567"', 'number: "+46101234567"\n    queue: q')
    assert at(only(problems_of(tmp_path, text), "has both number and queue")) == (6, 5)
    text = MINIMAL.replace('number: "+46101234567"', "name: Members")
    assert at(only(problems_of(tmp_path, text), "needs somewhere to send calls")) == (4, 3)


# ---------------------------------------------------------------------------------------------
# Time zones, opening hours and dates


def hours_config(tmp_path: Path, hours: str, *, timezone: str = "Europe/Stockholm") -> str:
    body = textwrap.indent(textwrap.dedent(hours), "      ")
    return (
        f"language: en-US\ntimezone: {timezone}\ndefault_group: members\ngroups:\n  members:\n"
        f'    number: "+46101234567"\n    hours:\n{body}'
        "intents:\n  x: {phrases: [x], transfer: members}\n"
    )


def test_bad_time_zone_suggests_the_right_one(tmp_path: Path) -> None:
    text = MINIMAL + "timezone: Europe/Stokholm\n"
    problem = only(problems_of(tmp_path, text), "unknown time zone 'Europe/Stokholm'")
    assert "did you mean 'Europe/Stockholm'" in problem.message
    assert at(problem) == (11, 11)


def test_hours_need_a_time_zone(tmp_path: Path) -> None:
    text = MINIMAL.replace('+46101234567"', '+46101234567"\n    hours: {mon-fri: "08:00-17:00"}')
    assert at(only(problems_of(tmp_path, text), "opening hours need a time zone")) == (6, 5)


@pytest.mark.parametrize(
    ("hours", "needle"),
    [
        ('mon-fri: "8-17"\n', 'is not a time range like "08:00-17:00"'),
        ('mon-fri: "17:00-08:00"\n', "ends before it starts"),
        ('mon-fri: "08:00-08:00"\n', "ends before it starts"),
        ('mon-fri: "25:00-26:00"\n', "time that does not exist"),
        ('mon-fri: "08:00-24:30"\n', "time that does not exist"),
        ('mon-fri: ["08:00-12:00", "11:00-17:00"]\n', "overlap"),
        ('mon-fri: ["08:00-12:00", closed]\n', "write 'closed' on its own"),
        ('monday: "08:00-17:00"\n', "'monday' is not a day; write days as mon"),
        ('mon-fri: "08:00-17:00"\nfri: closed\n', "fri is already given on line 8"),
        ("mon-fri: {from: 8}\n", "must be opening times like"),
        ("closed_days: [2026-02-30]\n", "'2026-02-30' is not a real date"),
        ("closed_days: [24 December]\n", "is not a date; write it as YYYY-MM-DD"),
        ('closed_days: ["2026-12-26..2026-12-24"]\n', "ends before it starts"),
        ("timezone: Mars/Olympus\n", "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_opening_hours(tmp_path: Path, hours: str, needle: str) -> None:
    problem = only(problems_of(tmp_path, hours_config(tmp_path, hours)), needle)
    assert problem.origin.line >= 8


def test_day_suggestion(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, hours_config(tmp_path, 'Saturday: "10:00-14:00"\n'))
    assert "(did you mean 'sat'?)" in only(problems, "is not a day").message


def opened(config_text: str, tmp_path: Path, *moments: dt.datetime) -> list[bool]:
    group = load_language(write(tmp_path, config_text)).group(None)
    return [group.is_open(m) for m in moments]


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=STOCKHOLM)  # type: ignore[misc]


def test_weekday_hours_saturday_and_lunch(tmp_path: Path) -> None:
    text = hours_config(
        tmp_path,
        """\
        mon-fri: ["08:00-12:00", "13:00-17:00"]
        sat: "10:00-14:00"
        sun: closed
        """,
    )
    # Monday 30 Nov 2026, Saturday 28 Nov, Sunday 29 Nov.
    assert opened(
        text,
        tmp_path,
        local(2026, 11, 30, 8, 0),
        local(2026, 11, 30, 12, 30),
        local(2026, 11, 30, 16, 59),
        local(2026, 11, 30, 17, 0),  # end is exclusive
        local(2026, 11, 28, 11, 0),
        local(2026, 11, 28, 9, 59),
        local(2026, 11, 29, 11, 0),
    ) == [True, False, True, False, True, False, False]


def test_days_not_listed_are_closed_and_24_means_midnight(tmp_path: Path) -> None:
    text = hours_config(tmp_path, 'fri: "20:00-24:00"\nsat: "00:00-02:00"\n')
    assert opened(
        text,
        tmp_path,
        local(2026, 11, 27, 23, 59, 59),
        local(2026, 11, 28, 1, 0),
        local(2026, 11, 28, 2, 0),
        local(2026, 11, 30, 12, 0),
    ) == [True, True, False, False]


def test_christmas_eve_and_closed_windows(tmp_path: Path) -> None:
    text = hours_config(
        tmp_path,
        """\
        mon-fri: "08:00-17:00"
        closed_days: ["2026-12-24..2026-12-25", 2026-12-31]
        """,
    )
    assert opened(
        text,
        tmp_path,
        local(2026, 12, 23, 10, 0),
        local(2026, 12, 24, 10, 0),
        local(2026, 12, 25, 10, 0),
        local(2026, 12, 28, 10, 0),
        local(2026, 12, 31, 10, 0),
    ) == [True, False, False, True, False]


def test_closed_days_alone_means_open_all_other_days(tmp_path: Path) -> None:
    text = hours_config(tmp_path, "closed_days: [2026-12-24]\n")
    assert opened(text, tmp_path, local(2026, 12, 26, 3, 0), local(2026, 12, 24, 12, 0)) == [
        True,
        False,
    ]


def test_hours_follow_daylight_saving_time(tmp_path: Path) -> None:
    text = hours_config(tmp_path, 'mon-fri: "08:00-17:00"\n')
    utc = dt.UTC
    # 06:30 UTC is 07:30 in Stockholm before the change (Fri 27 March 2026, UTC+1) but 08:30
    # after it (Mon 30 March, UTC+2); naive times count as UTC.
    assert opened(
        text,
        tmp_path,
        dt.datetime(2026, 3, 27, 6, 30, tzinfo=utc),
        dt.datetime(2026, 3, 30, 6, 30, tzinfo=utc),
        dt.datetime(2026, 3, 30, 6, 30),
        dt.datetime(2026, 3, 30, 15, 30, tzinfo=utc),
    ) == [False, True, True, False]


def test_group_time_zone_overrides_language_time_zone(tmp_path: Path) -> None:
    text = hours_config(tmp_path, 'timezone: America/New_York\nmon-fri: "09:00-17:00"\n')
    group = load_language(write(tmp_path, text)).group(None)
    assert group.hours.timezone == "America/New_York"
    assert group.is_open(dt.datetime(2026, 11, 30, 20, 0, tzinfo=dt.UTC))  # 15:00 in New York
    assert not group.is_open(local(2026, 11, 30, 10, 0))  # 04:00 in New York


# ---------------------------------------------------------------------------------------------
# Announcements


ANNOUNCEMENTS = """\
timezone: Europe/Stockholm
announcements:
  - id: tax
    text: The income declaration is due on 4 May.
    from: 2026-03-01
    until: 2026-05-04
    after_intents: [invoice]
  - id: summer
    audio_url: https://example.org/summer.mp3
    from: 2026-06-01
"""


def test_announcement_windows_are_inclusive(tmp_path: Path) -> None:
    config = load_language(write(tmp_path, MINIMAL + ANNOUNCEMENTS))
    tax, summer = config.announcements
    assert tax.origin.line == 13
    assert [tax.is_active(dt.date(2026, m, d)) for m, d in [(2, 28), (3, 1), (5, 4), (5, 5)]] == [
        False,
        True,
        True,
        False,
    ]
    assert summer.is_active(dt.date(2030, 1, 1)) and not summer.is_active(dt.date(2026, 5, 31))
    # Dates are days in the language's time zone: 23:30 UTC on 4 May is already 5 May there.
    late = dt.datetime(2026, 5, 3, 23, 30, tzinfo=dt.UTC)
    assert config.active_announcements(late, after_intent="invoice") == (tax,)
    assert config.active_announcements(late + dt.timedelta(days=1), after_intent="invoice") == ()
    assert config.active_announcements(dt.datetime(2026, 7, 1, tzinfo=dt.UTC)) == (summer,)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("    text: The income declaration is due on 4 May.\n", "", "needs 'text' (spoken) or"),
        ("until: 2026-05-04", "until: 2026-02-01", "'until' (2026-02-01) is before 'from'"),
        ("from: 2026-03-01", "from: 2026-13-01", "'2026-13-01' is not a real date"),
        ("from: 2026-03-01", "from: 1 March", "is not a date; write it as YYYY-MM-DD"),
        ("[invoice]", "[invoices]", "unknown intent 'invoices' (did you mean 'invoice'?"),
        ("https://example.org/summer.mp3", "summer.mp3", "'summer.mp3' is not a web link"),
        ("id: summer", "id: tax", "announcement 'tax' is defined twice"),
    ],
)
def test_bad_announcements(tmp_path: Path, old: str, new: str, needle: str) -> None:
    assert old in ANNOUNCEMENTS
    only(problems_of(tmp_path, MINIMAL + ANNOUNCEMENTS.replace(old, new)), needle)


# ---------------------------------------------------------------------------------------------
# Intents and actions


def test_duplicate_intent_names_are_caught(tmp_path: Path) -> None:
    text = MINIMAL + "  invoice:\n    phrases: [bill]\n    transfer: members\n"
    problem = only(problems_of(tmp_path, text), "written twice")
    assert at(problem) == (11, 3)
    assert "'invoice' is written twice here (first at line 7)" in problem.message


def test_duplicate_keys_are_caught_in_any_mapping(tmp_path: Path) -> None:
    text = MINIMAL + "prompts:\n  greeting: Hi\n  goodbye: Bye\n  greeting: Hello\n"
    text += "thresholds: {accept: 0.5, accept: 0.6}\n"
    problems = problems_of(tmp_path, text)
    assert at(only(problems, "'greeting' is written twice")) == (14, 3)
    assert at(only(problems, "'accept' is written twice")) == (15, 27)


def test_intent_needs_phrases_and_non_empty_ones(tmp_path: Path) -> None:
    text = MINIMAL.replace("[my invoice, a question about my bill]", '[my invoice, "", "  "]')
    problems = problems_of(tmp_path, text)
    assert at(only(problems, "entry 2 of 'phrases' is empty")) == (9, 27)
    only(problems, "entry 3 of 'phrases' is empty")
    text = MINIMAL.replace("    phrases: [my invoice, a question about my bill]\n", "")
    assert at(only(problems_of(tmp_path, text), "no phrases and no examples")) == (7, 3)


def test_examples_alone_are_enough(tmp_path: Path) -> None:
    text = MINIMAL.replace("phrases:", "examples:")
    intent = load_language(write(tmp_path, text)).intents["invoice"]
    assert intent.phrases == () and len(intent.examples) == 2


@pytest.mark.parametrize(
    ("action", "needle"),
    [
        ("", "has no action; add one of"),
        ("transfer: members\n    announce: Hi", "has both announce and transfer"),
        ("announce: {}", "'announce' needs 'text' (spoken) or 'audio_url'"),
        ("announce: {audio_url: ftp://x/a.mp3}", "'ftp://x/a.mp3' is not a web link"),
        ("announce: {txt: Hi}", "unknown key 'txt' (did you mean 'text'?)"),
        ("sms: {say: Hi}", "missing 'link'"),
        ("sms: https://example.org", "'sms' must be a mapping"),
        ("sms: {link: www.example.org}", "'www.example.org' is not a web link"),
        ("sms: {link: 'https://example.org', fallback: read}", "'fallback: read' needs 'answer:'"),
        ("sms: {link: 'https://example.org', fallback: call}", "must be read or transfer"),
        ("sms: {link: 'https://example.org', text: Hello}", "does not contain {link}"),
        ("sms: {link: 'https://example.org', text: 'Go {url}'}", "unknown placeholder {url}"),
        (
            "sms: {link: 'https://example.org', fallback: read, answer: A, group: members}",
            "'group' is only used with 'fallback: transfer'",
        ),
    ],
)
def test_bad_actions(tmp_path: Path, action: str, needle: str) -> None:
    text = MINIMAL.replace("transfer: members", action).replace("    \n", "")
    only(problems_of(tmp_path, text), needle)


def test_announce_shorthand_and_sms_text_with_link(tmp_path: Path) -> None:
    text = MINIMAL.replace("transfer: members", "announce: We are open 8 to 5.")
    assert load_language(write(tmp_path, text)).intents["invoice"].action.text == (
        "We are open 8 to 5."
    )
    text = MINIMAL.replace(
        "transfer: members", "sms: {link: 'https://example.org/a', text: 'See {link}'}"
    )
    action = load_language(write(tmp_path, text)).intents["invoice"].action
    assert action.sms_text == "See {link}" and action.fallback is SmsFallback.TRANSFER


def test_bad_intent_name(tmp_path: Path) -> None:
    text = MINIMAL.replace("  invoice:", "  my invoice:")
    only(problems_of(tmp_path, text), "an intent name may only use")


# ---------------------------------------------------------------------------------------------
# Thresholds, prompts, language


@pytest.mark.parametrize(
    ("thresholds", "needle"),
    [
        ("{accept: 1.5}", "'accept' must be between 0 and 1, not 1.5"),
        ("{reject: -0.1}", "'reject' must be between 0 and 1"),
        ("{accept: 0.4, reject: 0.6}", "'reject' (0.6) must not be above 'accept' (0.4)"),
        ("{reject: 0.7}", "'reject' (0.7) must not be above 'accept' (0.5)"),
    ],
)
def test_bad_thresholds(tmp_path: Path, thresholds: str, needle: str) -> None:
    assert only(problems_of(tmp_path, MINIMAL + f"thresholds: {thresholds}\n"), needle)


@pytest.mark.parametrize(
    ("prompt", "needle"),
    [
        ("clarify: Is it {a}?", "'clarify' must contain {b}"),
        ("transfer: To {grup}.", "unknown placeholder {grup}; it can use {group}"),
        ("greeting: Hi {name}", "unknown placeholder {name}; it cannot use placeholders"),
        ("no_match: Say {hints", "without its partner"),
        ("goodbye: ''", "'goodbye' is empty"),
    ],
)
def test_bad_prompts(tmp_path: Path, prompt: str, needle: str) -> None:
    problem = only(problems_of(tmp_path, MINIMAL + f"prompts:\n  {prompt}\n"), needle)
    assert problem.origin.line == 12


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("en_us", "'en_us' is not a language code (did you mean 'en-US'?)"),
        ("english", "'english' is not a language code (write it like en-US"),
        ("EN-US", "did you mean 'en-US'?"),
    ],
)
def test_bad_language_codes(tmp_path: Path, code: str, needle: str) -> None:
    assert at(only(problems_of(tmp_path, MINIMAL.replace("en-US", code)), needle)) == (1, 11)


def test_language_without_built_in_defaults_needs_them_spelled_out(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, MINIMAL.replace("en-US", "de-DE"))
    only(problems, "no built-in voice for de-DE")
    only(problems, "no built-in prompts for de-DE; add greeting, reprompt")
    only(problems, "no built-in word lists for de-DE")


def test_max_turns_range(tmp_path: Path) -> None:
    only(problems_of(tmp_path, MINIMAL + "max_turns: 0\n"), "between 1 and 10")
    assert load_language(write(tmp_path, MINIMAL + "max_turns: 2\n")).max_turns == 2


def test_not_a_mapping_and_not_utf8(tmp_path: Path) -> None:
    only(problems_of(tmp_path, "- just\n- a list\n"), "the file must be a mapping")
    path = tmp_path / "latin1.yaml"
    path.write_bytes("language: sv-SE\nvoice: Åsa\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_language(path)


# ---------------------------------------------------------------------------------------------
# Folders and deployments


def test_language_folder_merges_files_by_top_level_key(tmp_path: Path) -> None:
    folder = tmp_path / "sv-SE"
    write(folder, "default_group: members\ngroups:\n  members: {queue: medlem}\n", "groups.yaml")
    write(folder, "intents:\n  faktura: {phrases: [min faktura], transfer: members}\n")
    config = load_language(folder)
    assert config.language == "sv-SE"  # from the folder name
    assert set(config.intents) == {"faktura"}


def test_key_in_two_files_names_both(tmp_path: Path) -> None:
    folder = tmp_path / "en-US"
    write(folder, MINIMAL, "a.yaml")
    write(folder, "intents:\n  other: {phrases: [x], transfer: members}\n", "b.yaml")
    with pytest.raises(ConfigError) as info:
        load_language(folder)
    (problem,) = info.value.problems
    assert problem.origin.file.endswith("b.yaml") and at(problem) == (1, 1)
    assert "'intents' is defined in both" in problem.message
    assert "a.yaml:6 and" in problem.message and "b.yaml:1" in problem.message


def test_folder_name_and_language_must_agree(tmp_path: Path) -> None:
    write(tmp_path / "sv-SE", MINIMAL)
    with pytest.raises(ConfigError, match="folder is named sv-SE but 'language' says en-US"):
        load_language(tmp_path / "sv-SE")


def test_problems_in_several_files_are_all_reported(tmp_path: Path) -> None:
    write(tmp_path / "en-US", MINIMAL.replace("+46101234567", "123"))
    write(tmp_path / "sv-SE", MINIMAL.replace("en-US", "sv-SE").replace("transfer: members", ""))
    with pytest.raises(ConfigError) as info:
        load_deployment(tmp_path)
    files = [Path(p.origin.file).parent.name for p in info.value.problems]
    assert files == ["en-US", "sv-SE"]


def test_deployment_default_language(tmp_path: Path) -> None:
    write(tmp_path / "sv-SE", MINIMAL.replace("en-US", "sv-SE"))
    write(tmp_path / "swedish-copy", MINIMAL.replace("en-US", "sv-SE"))
    with pytest.raises(ConfigError, match="language sv-SE is also defined in"):
        load_deployment(tmp_path)
    (tmp_path / "swedish-copy" / "intents.yaml").unlink()
    assert load_deployment(tmp_path).default_language == "sv-SE"  # the only one
    write(tmp_path / "en-US", MINIMAL)
    assert load_deployment(tmp_path).default_language == "en-US"  # en-US wins when present
    write(tmp_path, "default_language: sv-SE\n", "deployment.yaml")
    deployment = load_deployment(tmp_path)
    assert deployment.default_language == "sv-SE"
    assert deployment.language().language == "sv-SE"
    write(tmp_path, "default_language: fi-FI\n", "deployment.yaml")
    with pytest.raises(ConfigError, match="default_language fi-FI has no language folder"):
        load_deployment(tmp_path)


def test_deployment_from_one_folder_or_one_file(tmp_path: Path) -> None:
    path = write(tmp_path / "en-US", MINIMAL)
    assert list(load_deployment(path).languages) == ["en-US"]
    assert list(load_deployment(tmp_path / "en-US").languages) == ["en-US"]


def test_stray_file_next_to_language_folders(tmp_path: Path) -> None:
    write(tmp_path / "en-US", MINIMAL)
    write(tmp_path, MINIMAL, "intents.yaml")
    with pytest.raises(ConfigError, match="outside any language folder"):
        load_deployment(tmp_path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or folder"):
        load_deployment(tmp_path / "nope")


def test_embedded_examples_are_the_default() -> None:
    root = default_config_path()
    assert (root / "en-US").is_dir() and (root / "sv-SE").is_dir()
    deployment = load_deployment()
    assert set(deployment.languages) == {"en-US", "sv-SE"}
    assert deployment.default_language == "en-US"


def test_numbers_answered_in_a_language_are_read_in_e164(tmp_path: Path) -> None:
    text = with_lines('numbers:\n  - "+46 10 123 45 99"\n  - "0046101234598"\n')
    config = load_language(write(tmp_path, text))
    assert config.numbers == ("+46101234599", "+46101234598")
    assert load_language(write(tmp_path, MINIMAL)).numbers == ()


def test_a_number_that_is_not_e164_is_refused_at_its_line(tmp_path: Path) -> None:
    text = with_lines('numbers:\n  - "+46101234599"\n  - "010-123 45 98"\n  - "+46101234599"\n')
    problems = problems_of(tmp_path, text)
    bad = only(problems, "not a phone number in international form")
    assert at(bad) == (13, 5) and "010-123 45 98" in bad.message
    twice = only(problems, "already listed on line 12")
    assert at(twice) == (14, 5)


def test_a_number_may_answer_in_one_language_only(tmp_path: Path) -> None:
    write(tmp_path / "en-US", with_lines('numbers: ["+46101234599"]\n'))
    sv = MINIMAL.replace("en-US", "sv-SE")
    write(tmp_path / "sv-SE", sv + 'numbers:\n  - "+46101234500"\n  - "+46 10 123 45 99"\n')
    with pytest.raises(ConfigError) as info:
        load_deployment(tmp_path)
    (problem,) = info.value.problems
    assert problem.origin.file.endswith("sv-SE/intents.yaml") and at(problem) == (13, 5)
    assert "+46101234599 already answers in en-US" in problem.message
    assert "en-US/intents.yaml:11" in problem.message


def test_a_group_may_not_dial_a_line_the_robot_answers(tmp_path: Path) -> None:
    own = with_lines('numbers: ["+46 10 123 45 67"]\n')  # the members group's own number
    problem = only(problems_of(tmp_path, own), "is a line this voicebot answers")
    assert at(problem) == (4, 3)  # the group, in the file ops edit
    assert "group 'members': +46101234567" in problem.message and "en-US" in problem.message
    with pytest.raises(ConfigError, match="reach the robot again"):
        load_language_text(own)

    deployment = tmp_path / "deployment"
    write(deployment / "en-US", with_lines('numbers: ["+46101234599"]\n'))
    sv = MINIMAL.replace("en-US", "sv-SE").replace("+46101234567", "+46101234599")
    write(deployment / "sv-SE", sv)
    with pytest.raises(ConfigError) as info:
        load_deployment(deployment)
    (problem,) = info.value.problems
    assert problem.origin.file.endswith("sv-SE/intents.yaml")
    assert "+46101234599 is a line this voicebot answers in en-US" in problem.message


def test_the_called_number_picks_the_language(tmp_path: Path) -> None:
    write(tmp_path / "en-US", with_lines('numbers: ["+46101234599"]\n'))
    sv = MINIMAL.replace("en-US", "sv-SE")
    write(tmp_path / "sv-SE", sv + 'numbers: ["+46101234500"]\n')
    deployment = load_deployment(tmp_path)
    assert deployment.for_number("+46101234500").language == "sv-SE"
    assert deployment.for_number("+46101234599").language == "en-US"
    assert deployment.for_number("+46700000000").language == "en-US"  # the default
    assert deployment.for_number(None).language == "en-US"


# ---------------------------------------------------------------------------------------------
# Reloading


def test_reload_swaps_on_success_and_keeps_last_good_on_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "en-US", MINIMAL)
    holder = ConfigHolder(tmp_path)
    in_call = holder.language("en-US")

    write(tmp_path / "en-US", MINIMAL.replace("label: invoices", "label: bills"))
    assert holder.reload() is None
    assert holder.language().intents["invoice"].label == "bills"
    assert in_call.intents["invoice"].label == "invoices"  # a call in progress keeps its config

    good = holder.current
    path.write_text(MINIMAL.replace("transfer: members", "transfer: nobody"), encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="voicebot.loading.holder"):
        error = holder.reload()
    assert isinstance(error, ConfigError)
    assert "unknown agent group 'nobody'" in str(error)
    assert holder.current is good
    assert holder.last_error is error
    assert "still serving the previous configuration" in caplog.text

    path.write_text(MINIMAL, encoding="utf-8")
    assert holder.reload() is None and holder.last_error is None


def test_holder_start_fails_loudly(tmp_path: Path) -> None:
    write(tmp_path / "en-US", "language: en-US\n")
    with pytest.raises(ConfigError):
        ConfigHolder(tmp_path)


HOLIDAY_LINE = """\
language: {language}
timezone: Europe/Stockholm
default_group: members
groups:
  members:
    number: "+46101234567"
    hours:
      mon-fri: "08:00-17:00"
      closed_days: {closed}
    when_closed: {{say: closed}}
intents:
  invoice: {{label: invoices, transfer: members, phrases: [my invoice]}}
"""


def _open_on(text: str, day: str) -> bool:
    config = load_language_text(text, "t.yaml")
    at = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(10), STOCKHOLM)
    return config.group("members").is_open(at)


@pytest.mark.parametrize(
    ("language", "closed", "day", "is_open"),
    [
        ("sv-SE", "public_holidays", "2026-06-18", True),  # a Thursday
        ("sv-SE", "public_holidays", "2026-06-19", False),  # Midsummer Eve
        ("sv-SE", "[public_holidays, 2026-06-18]", "2026-06-18", False),  # and days of its own
        ("sv-SE", "public_holidays", "2027-03-26", False),  # Good Friday: Easter moves
        ("sv-SE", "public_holidays", "2027-05-17", True),  # Norway's national day
        ("sv-SE", "public_holidays NO", "2027-05-17", False),
        ("en-US", "public_holidays", "2026-11-26", False),  # Thanksgiving
        ("en-GB", "[public_holidays SE]", "2026-06-19", False),
    ],
)
def test_closed_days_take_the_countrys_public_holidays(
    language: str, closed: str, day: str, is_open: bool
) -> None:
    text = HOLIDAY_LINE.format(language=language, closed=closed)
    assert _open_on(text, day) is is_open


def test_public_holidays_of_an_unknown_country_is_one_line_with_its_place() -> None:
    text = HOLIDAY_LINE.format(language="sv-SE", closed="[public_holidays XX]")
    with pytest.raises(ConfigError) as info:
        load_language_text(text, "t.yaml")
    (problem,) = info.value.problems
    assert str(problem).startswith("t.yaml:9:")
    assert "no public-holiday calendar for 'XX'" in problem.message


def test_recordings_are_checked_where_they_are_written(tmp_path: Path) -> None:
    from voicebot.speech.audio import write_wav

    write_wav(tmp_path / "hello.wav", np.zeros(800, dtype=np.int16), 8000)
    (tmp_path / "broken.wav").write_bytes(b"not a wav")
    text = MINIMAL + (
        "recordings:\n"
        "  greeting: hello.wav\n"
        "  goodbye: missing.wav\n"
        "  error: broken.wav\n"
        "  transfer: hello.wav\n"
    )
    problems = problems_of(tmp_path, text)
    assert at(only(problems, "missing.wav")) == (13, 12)
    assert "is not a WAV file" in only(problems, "missing.wav").message
    assert at(only(problems, "broken.wav")) == (14, 10)
    assert "filled in on each call" in only(problems, "prompts.transfer").message
    good = load_language(write(tmp_path, MINIMAL + "recordings:\n  greeting: hello.wav\n"))
    assert good.recordings == {good.prompts.greeting: str((tmp_path / "hello.wav").resolve())}
