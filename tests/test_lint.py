"""`voicebot check` warnings: config that loads but would serve callers badly, and where it is."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from voicebot.cli.main import main
from voicebot.loading.lint import lint
from voicebot.loading.loader import (
    default_config_path,
    load_deployment,
    load_language,
    load_language_text,
)

TODAY = dt.date(2026, 12, 1)

BASE = """\
language: en-US
timezone: Europe/Stockholm
default_group: members
groups:
  members:
    number: "+46101234567"
"""


def config_with(extra: str, base: str = BASE) -> str:
    return base + textwrap.dedent(extra)


def codes(text: str) -> list[str]:
    return [w.code for w in lint(load_language_text(text, "t.yaml"), TODAY)]


def test_the_shipped_example_deployment_has_no_warnings() -> None:
    deployment = load_deployment(default_config_path())
    for config in deployment.languages.values():
        assert lint(config, TODAY) == []


def test_a_phrase_in_two_intents_names_both_places_and_the_fix() -> None:
    text = config_with("""\
        intents:
          invoice:
            label: invoices
            transfer: members
            phrases:
              - my invoice
              - I want to pay
          payment:
            label: payments
            transfer: members
            phrases:
              - I paid twice
              - I want to pay!
    """)
    (warning,) = lint(load_language_text(text, "t.yaml"), TODAY)
    assert warning.code == "duplicate-phrase"
    assert str(warning.origin) == "t.yaml:13:9"  # where 'I want to pay' is first written
    assert "'invoice'" in warning.message and "'payment' (t.yaml:19:9)" in warning.message
    assert "keep it in one intent" in warning.message
    assert str(warning).startswith("t.yaml:13:9: warning: ")


def test_repeats_inside_one_intent_are_harmless() -> None:
    text = config_with("""\
        intents:
          invoice:
            label: invoices
            transfer: members
            phrases: [my invoice, My invoice!, the bill]
            examples: [my invoice]
    """)
    assert codes(text) == []


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("cancel my course booking", "my course booking cancel"),  # word order
        ("I want to change my address", "I want to change my adress"),  # a typo
    ],
)
def test_near_duplicates_across_intents_name_both_lines(first: str, second: str) -> None:
    text = config_with(f"""\
        intents:
          courses:
            label: courses
            transfer: members
            phrases: [which courses are there, {first}]
          address:
            label: your address
            transfer: members
            examples:
              - {second}
    """)
    (warning,) = lint(load_language_text(text, "t.yaml"), TODAY)
    assert warning.code == "near-duplicate"
    assert str(warning.origin) == "t.yaml:16:9"
    assert "t.yaml:11:" in warning.message  # the other place
    assert "reword one" in warning.message


def test_different_phrases_are_not_near_duplicates() -> None:
    text = config_with("""\
        intents:
          invoice: {label: invoices, transfer: members, phrases: [my invoice is wrong]}
          course: {label: courses, transfer: members, phrases: [book me on a course]}
    """)
    assert codes(text) == []


def test_overlap_warnings_are_capped_with_a_count_of_the_rest() -> None:
    phrases = "\n".join(f"      - question number {i}" for i in range(30))
    text = config_with(
        "intents:\n"
        + "".join(
            f"  {name}:\n    label: {name}\n    transfer: members\n    phrases:\n{phrases}\n"
            for name in ("a", "b")
        )
    )
    found = lint(load_language_text(text, "t.yaml"), TODAY, max_reported=5)
    duplicates = [w for w in found if w.code == "duplicate-phrase"]
    assert len(duplicates) == 5
    more = [w.message for w in found if w.code == "more"]
    assert "... and 25 more duplicate phrases not listed" in more


def test_a_missing_label_is_pointed_out() -> None:
    text = config_with("""\
        intents:
          invoice_question: {transfer: members, phrases: [my invoice]}
    """)
    (warning,) = lint(load_language_text(text, "t.yaml"), TODAY)
    assert warning.code == "no-label"
    assert "is it about invoice question" in warning.message and "label:" in warning.message


def test_unused_groups_and_hours_without_when_closed_and_vice_versa() -> None:
    text = config_with(
        """\
        groups:
          members:
            number: "+46101234567"
            when_closed: {say: We are closed.}
          old_team:
            queue: old
          overflow:
            queue: overflow
            hours: {sat-sun: closed}
          billing:
            queue: billing
            hours: {mon-fri: "08:00-16:00"}
            when_closed: {say: Closed., transfer_to: overflow}
        intents:
          invoice: {label: invoices, transfer: billing, phrases: [my invoice]}
        """,
        base="language: en-US\ntimezone: Europe/Stockholm\ndefault_group: members\n",
    )
    found = lint(load_language_text(text, "t.yaml"), TODAY)
    assert sorted(w.code for w in found) == ["hours-unused", "unused-group", "when-closed-unused"]
    assert any("'old_team' is never used" in w.message for w in found)


HEAD = "language: en-US\ntimezone: Europe/Stockholm\ndefault_group: members\n"


def test_a_closed_group_that_texts_should_say_what_a_caller_without_a_mobile_hears() -> None:
    group = """\
        groups:
          members:
            number: "+46101234567"
            hours: {{mon-fri: "08:00-17:00"}}
            when_closed:
              say: We are closed. I'm texting you a link to our help pages.
              sms: "Help: https://example.org/help"{extra}
        intents:
          invoice: {{label: invoices, transfer: members, phrases: [my invoice]}}
        """
    text = config_with(group.format(extra=""), base=HEAD)
    (warning,) = lint(load_language_text(text, "t.yaml"), TODAY)
    assert warning.code == "closed-sms-no-fallback"
    assert "say_without_sms" in warning.message and warning.origin.line == 5  # members:
    fixed = group.format(
        extra="\n" + " " * 14 + "say_without_sms: We are closed. See example dot org."
    )
    assert codes(config_with(fixed, base=HEAD)) == []


@pytest.mark.parametrize(
    ("window", "code"),
    [
        ("from: 2026-11-01\n    until: 2026-11-30", "announcement-ended"),
        ("from: 2026-11-01", "announcement-no-end"),
        ("from: 2072-11-01\n    until: 2072-12-01", "announcement-far"),
        ("from: 2026-11-01\n    until: 2026-12-01", None),  # the last day still plays
    ],
)
def test_announcement_windows(window: str, code: str | None) -> None:
    text = config_with(f"""\
announcements:
  - id: notice
    text: We are moving.
    {window}
intents:
  invoice: {{label: invoices, transfer: members, phrases: [my invoice]}}
""")
    assert codes(text) == ([code] if code else [])


def test_an_intent_bound_announcement_without_end_is_fine() -> None:
    text = config_with("""\
        announcements:
          - id: deadline
            text: Returns are due on 4 May.
            after_intents: [invoice]
        intents:
          invoice: {label: invoices, transfer: members, phrases: [my invoice]}
    """)
    assert codes(text) == []


def test_warnings_in_a_language_folder_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "en-US"
    folder.mkdir()
    (folder / "main.yaml").write_text(
        BASE + "intents:\n  invoice:\n    label: invoices\n    transfer: members\n"
        "    phrases: [my invoice]\n",
        encoding="utf-8",
    )
    (folder / "more.yaml").write_text(
        "announcements:\n  - id: a\n    text: Hello.\n    until: 2027-01-01\n"
        "    after_intents: [invoice]\n",
        encoding="utf-8",
    )
    config = load_language(folder)
    assert lint(config, TODAY) == []
    (folder / "main.yaml").write_text(
        BASE + "intents:\n  invoice:\n    label: invoices\n    transfer: members\n"
        "    phrases: [my invoice]\n  bill:\n    label: bills\n    transfer: members\n"
        "    phrases: [my Invoice]\n",
        encoding="utf-8",
    )
    (warning,) = lint(load_language(folder), TODAY)
    assert warning.origin.file.endswith("main.yaml") and warning.origin.line == 11
    assert "main.yaml:15:" in warning.message  # the other place, in the same file


def test_check_prints_warnings_with_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text(
        config_with("""\
            intents:
              invoice: {transfer: members, phrases: [my invoice]}
        """),
        encoding="utf-8",
    )
    assert main(["check", str(path), "--today", TODAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "intents.yaml:8:3: warning: intent 'invoice' has no label" in out
    assert "1 warning(s)" in out


def test_check_today_warns_when_every_closed_day_is_in_the_past(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    group = """\
        groups:
          members:
            number: "+46101234567"
            hours:
              mon-fri: "08:00-17:00"
              closed_days: [2026-06-19, 2026-12-24..2026-12-26]
            when_closed: {say: We are closed.}
        intents:
          invoice: {label: invoices, transfer: members, phrases: [my invoice]}
        """
    path = tmp_path / "intents.yaml"
    path.write_text(config_with(group, base=HEAD), encoding="utf-8")
    assert main(["check", str(path), "--today", "2026-12-20"]) == 0
    assert ": warning: " not in capsys.readouterr().out
    assert main(["check", str(path), "--today", "2027-01-10"]) == 0
    (warning,) = [ln for ln in capsys.readouterr().out.splitlines() if ": warning: " in ln]
    assert warning.startswith(f"{path}:5:")  # the group's line
    assert "every closed day is in the past (the last was 2026-12-26)" in warning
    assert "public_holidays" in warning
