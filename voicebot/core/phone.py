"""Phone numbers: E.164 normalisation, masking and salted hashing for logs, an SMS-capable guess.

Caller numbers are personal data: logs get ``mask()`` (country code and last four digits) or
``hash_number()`` (a salted HMAC, so calls from one number can be correlated without storing it).

``can_receive_sms()`` is a heuristic, not a lookup: it only says False when the number plan makes it
clear the number cannot take a text (withheld caller ID, landlines and service numbers in the
countries of ``MOBILE_PREFIXES``). Where mobiles and landlines share a plan (US/Canada +1,
Denmark +45, ...) or the country is not in the table, it answers True and the SMS attempt itself
(Twilio error 21614 "not a mobile number") decides. The dialogue uses it to avoid promising an
SMS that cannot arrive.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

# E.164: "+", a country code that does not start with 0, and at most 15 digits in all; 7 is the
# shortest in use (small countries' numbers). Caller numbers, the lines a language answers and
# the groups' numbers are all checked with this one rule.
MIN_DIGITS, MAX_DIGITS = 7, 15
E164 = re.compile(rf"^\+[1-9][0-9]{{{MIN_DIGITS - 1},{MAX_DIGITS - 1}}}$")
_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")

# What Twilio puts in ``From`` when the caller ID is withheld: words, or their keypad spelling
# (+266696687 is A-N-O-N-Y-M-O-U-S on a phone keypad).
WITHHELD = frozenset(
    {
        "",
        "anonymous",
        "restricted",
        "private",
        "unknown",
        "unavailable",
        "blocked",
        "withheld",
        "+266696687",  # ANONYMOUS
        "+7378742833",  # RESTRICTED
        "+86282452253",  # UNAVAILABLE
        "+2562533",  # BLOCKED
    }
)

# ITU country calling codes of one and two digits; every other code has three. Codes are
# prefix-free, so this is enough to split a number into country code and national number.
_CC1 = frozenset({"1", "7"})
_CC2_LIST = (
    "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 "
    "60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98"
)
_CC2 = frozenset(_CC2_LIST.split())

# Country code -> national-number prefixes of mobile (SMS-capable) numbers. A country listed here
# has separate mobile ranges, so any other number in it is a landline or service number (False).
# Countries not listed: unknown, assume True.
MOBILE_PREFIXES: dict[str, tuple[str, ...]] = {
    # Sweden: 070, 072, 073, 076, 079 are mobile; 071 is machine-to-machine, 08/0xx geographic,
    # 020 freephone, 077 shared cost, 09xx premium.
    "46": ("70", "72", "73", "76", "79"),
    # Norway: 8-digit numbers starting 4 or 9 are mobile.
    "47": ("4", "9"),
    # Finland: 04x and 050 are mobile.
    "358": ("4", "50"),
    # United Kingdom: 071-075 and 077-079 are mobile, 07624 is Isle of Man mobile; 070 personal
    # numbers and 076 pagers are not.
    "44": ("71", "72", "73", "74", "75", "77", "78", "79", "7624"),
    # Germany: 015x, 016x, 017x are mobile.
    "49": ("15", "16", "17"),
    # Netherlands: 06 is mobile.
    "31": ("6",),
}


# ISO 3166 region (the second subtag of a language code: sv-SE -> SE) -> calling code, for a line
# whose configuration lists no number of its own to take the country from. Only the regions a
# line is likely to be in; a region not here leaves national numbers unreadable (the commands then
# ask for the +form rather than guess).
REGION_CALLING_CODES: dict[str, str] = {
    "SE": "46", "NO": "47", "DK": "45", "FI": "358", "IS": "354", "AX": "358",
    "GB": "44", "IE": "353", "DE": "49", "AT": "43", "CH": "41", "NL": "31", "BE": "32",
    "FR": "33", "ES": "34", "PT": "351", "IT": "39", "PL": "48", "EE": "372", "LV": "371",
    "LT": "370", "US": "1", "CA": "1", "AU": "61", "NZ": "64",
}  # fmt: skip


class NotANumber(ValueError):
    """A text that cannot be read as one phone number; ``str()`` says why and what to give.
    ``national`` is True for a national number whose country was not known."""

    def __init__(self, message: str, *, national: bool = False) -> None:
        super().__init__(message)
        self.national = national


def country_code(e164: str) -> str | None:
    """The calling code of an E.164 number ("46" for +46 8 ...), or None if it is not E.164."""
    if not E164.match(e164):
        return None
    digits = e164[1:]
    if digits[:1] in _CC1:
        return digits[:1]
    if digits[:2] in _CC2:
        return digits[:2]
    return digits[:3]


def is_withheld(number: str | None) -> bool:
    return number is None or number.strip().lower() in WITHHELD


def normalize(number: str | None, default_country: str | None = None) -> str | None:
    """E.164 form of a number as people and systems write it, or None if it is not a number.

    Accepts separators ("070-123 45 67"), the international "00" prefix and, when
    ``default_country`` (a calling code such as "46") is given, national numbers with a trunk 0.
    Withheld caller IDs give None.
    """
    if is_withheld(number):
        return None
    assert number is not None
    cleaned = _SEPARATORS.sub("", number.strip())
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    elif not cleaned.startswith("+"):
        if default_country is None or not cleaned.startswith("0") or not cleaned.isdigit():
            return None
        cleaned = "+" + default_country.lstrip("+") + cleaned[1:]
    if cleaned in WITHHELD or not E164.match(cleaned):
        return None
    return cleaned


def line_calling_code(numbers: Iterable[str], language: str | None = None) -> str | None:
    """The calling code a line's national numbers are read with: that of the line's own numbers
    when they agree on one, else the region of its language code (sv-SE: 46), else None."""
    codes = {cc for n in numbers if (cc := country_code(n)) is not None}
    if len(codes) == 1:
        return codes.pop()
    if codes:
        return None  # numbers in several countries: a national number is ambiguous
    region = (language or "").partition("-")[2].upper()
    return REGION_CALLING_CODES.get(region)


def parse(text: str, default_country: str | None) -> str:
    """The E.164 form of a number a person typed, or ``NotANumber`` saying what to type instead.

    Unlike ``normalize`` (which answers None), it tells a national number it cannot place
    (``default_country`` unknown) from text that is no phone number at all, so a command can say
    which mistake was made.
    """
    e164 = normalize(text, default_country)
    if e164 is not None:
        return e164
    cleaned = _SEPARATORS.sub("", text.strip())
    national = cleaned.isdigit() and cleaned.startswith("0") and not cleaned.startswith("00")
    if national and default_country is None:
        raise NotANumber(
            f"{text!r} is a national number and the line's country is not known; give it "
            "in international form, '+', the country code and the number (e.g. +46701234567)",
            national=True,
        )
    raise NotANumber(
        f"{text!r} is not a phone number; give it as '+', the country code and the number "
        f"(e.g. +46701234567), {MIN_DIGITS} to {MAX_DIGITS} digits"
    )


def mask(number: str | None) -> str:
    """A log-safe form: country code and last four digits kept, e.g. ``+46******4567``."""
    if is_withheld(number):
        return "<withheld>"
    assert number is not None
    e164 = normalize(number)
    if e164 is None:
        # Not a number we understand: keep only its length, it may still be personal data.
        return f"<invalid:{len(number)}>"
    cc = country_code(e164) or ""
    national = e164[1 + len(cc) :]
    keep = min(4, max(0, len(national) - 4))
    return "+" + cc + "*" * (len(national) - keep) + national[len(national) - keep :]


def can_receive_sms(number: str | None) -> bool:
    """Whether an SMS to this number can plausibly arrive (see the module docstring)."""
    e164 = normalize(number)
    if e164 is None:
        return False
    cc = country_code(e164)
    assert cc is not None
    prefixes = MOBILE_PREFIXES.get(cc)
    if prefixes is None:
        return True
    return e164[1 + len(cc) :].startswith(prefixes)


def hash_number(number: str, salt: str | bytes, length: int = 16) -> str:
    """A stable pseudonym for a number: hex HMAC-SHA256 keyed with a deployment secret.

    Unsalted hashes of phone numbers are reversible by trying every number, hence the required
    salt. The number is normalised first so "+46 70-123" and "+4670123" hash alike.
    """
    key = salt.encode() if isinstance(salt, str) else salt
    if not key:
        raise ValueError("hash_number needs a salt: unsalted number hashes are reversible")
    if not 8 <= length <= 64:
        raise ValueError(f"length must be 8..64 hex characters, got {length}")
    value = normalize(number) or number.strip().lower()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:length]
