"""Text normalisation shared by the matcher, the dialogue and the grammar builder.

Recognisers emit lower-case words without punctuation; ops write phrases with capitals and
commas. Everything that compares text passes it through ``normalize`` first so both sides agree.
"""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^\w']+|_")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-case, NFC, punctuation to spaces, single spaces; keeps letters like å, ä, ö."""
    text = unicodedata.normalize("NFC", text).casefold()
    text = _NON_WORD.sub(" ", text).replace("'", "")
    return _SPACES.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """The normalised words of ``text``."""
    norm = normalize(text)
    return norm.split(" ") if norm else []


def contains_phrase(text: str, phrase: str) -> bool:
    """True when ``phrase`` occurs in ``text`` as whole words (both are normalised)."""
    haystack = f" {normalize(text)} "
    needle = normalize(phrase)
    return bool(needle) and f" {needle} " in haystack
