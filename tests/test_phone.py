"""Caller numbers: normalised for SMS, masked and hashed for logs, SMS capability guessed."""

from __future__ import annotations

import pytest

from voicebot.core.phone import can_receive_sms, country_code, hash_number, mask, normalize


@pytest.mark.parametrize(
    ("raw", "default_country", "expected"),
    [
        ("+46701234567", None, "+46701234567"),
        ("+46 70-123 45 67", None, "+46701234567"),
        ("0046701234567", None, "+46701234567"),
        ("070-123 45 67", "46", "+46701234567"),
        ("(020) 7946 0958", "44", "+442079460958"),
        ("070-123 45 67", None, None),  # national number without a country to assume
        ("+0701234567", None, None),
        ("+12", None, None),
        ("+4670123456789012", None, None),  # 16 digits: over E.164's 15
        ("phone me", "46", None),
        ("anonymous", None, None),
        ("+266696687", None, None),  # Twilio's keypad spelling of ANONYMOUS
        ("", None, None),
        (None, None, None),
    ],
)
def test_normalize(raw: str | None, default_country: str | None, expected: str | None) -> None:
    assert normalize(raw, default_country) == expected


@pytest.mark.parametrize(
    ("number", "code"),
    [("+15551234567", "1"), ("+46701234567", "46"), ("+358401234567", "358"), ("x", None)],
)
def test_country_code(number: str, code: str | None) -> None:
    assert country_code(number) == code


def test_mask_keeps_country_code_and_last_four_digits_only() -> None:
    assert mask("+46701234567") == "+46*****4567"
    assert mask("+1 555 123 4567") == "+1******4567"
    assert mask("+358401234567") == "+358*****4567"


def test_mask_never_echoes_unparseable_input() -> None:
    assert mask("anonymous") == "<withheld>"
    assert mask(None) == "<withheld>"
    assert mask("call 0701234567") == "<invalid:15>"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+46701234567", True),  # Swedish mobile 070
        ("+46761234567", True),
        ("+4681234567", False),  # Stockholm landline 08
        ("+46201234567", False),  # freephone 020
        ("+46711234567", False),  # M2M 071
        ("+447911123456", True),  # UK mobile
        ("+442079460958", False),  # London landline
        ("+447624123456", True),  # Isle of Man mobile
        ("+4791234567", True),  # Norway mobile
        ("+4722123456", False),  # Oslo landline
        ("+4915112345678", True),  # German mobile
        ("+49301234567", False),  # Berlin landline
        ("+12125551234", True),  # US: mobiles and landlines share area codes, unknown → True
        ("+4532123456", True),  # Denmark: not in the table, unknown → True
        ("anonymous", False),
        ("+266696687", False),
        ("", False),
        ("0701234567", False),  # not E.164: we would not know where to send it
    ],
)
def test_can_receive_sms(number: str, expected: bool) -> None:
    assert can_receive_sms(number) is expected


def test_hash_is_stable_across_formats_and_depends_on_the_salt() -> None:
    a = hash_number("+46 70 123 45 67", "salt-1")
    assert a == hash_number("+46701234567", "salt-1")
    assert a != hash_number("+46701234567", "salt-2")
    assert a != hash_number("+46701234568", "salt-1")
    assert len(a) == 16
    assert len(hash_number("+46701234567", b"k", length=64)) == 64


def test_hash_refuses_an_empty_salt() -> None:
    with pytest.raises(ValueError, match="salt"):
        hash_number("+46701234567", "")
