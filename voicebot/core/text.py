"""Text normalisation shared by the matcher, the dialogue and the grammar builder.

Recognisers emit lower-case words without punctuation; ops write phrases with capitals and
commas. Everything that compares text passes it through ``normalize`` first so both sides agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_NON_WORD = re.compile(r"[^\w']+|_")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-case, NFC, punctuation to spaces, single spaces; keeps letters like å, ä, ö."""
    text = unicodedata.normalize("NFC", text).casefold()
    text = _NON_WORD.sub(" ", text).replace("'", "")
    return _SPACES.sub(" ", text).strip()


def fold_diacritics(text: str) -> str:
    """``text`` without accents and diacritics: "försäkring" -> "forsakring", "café" -> "cafe".

    Why: a caller's words may reach the matcher without å, ä, ö (a chat or SMS channel typed on
    an ASCII keyboard, a recogniser that hears "hamta" for "hämta"), while ops write proper
    Swedish; comparing spellings on folded text lets the two meet."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The normalised words of ``text``."""
    norm = normalize(text)
    return norm.split(" ") if norm else []


def contains_phrase(text: str, phrase: str) -> bool:
    """True when ``phrase`` occurs in ``text`` as whole words (both are normalised)."""
    haystack = f" {normalize(text)} "
    needle = normalize(phrase)
    return bool(needle) and f" {needle} " in haystack


# Words a caller may put between the words of a phrase that asks for a person: "prata med
# någon" is also "prata lite med någon", "koppla mig vidare" also "koppla mig genast vidare".
MAX_GAP = 2
MIN_STEM = 4  # shorter words take no endings: "med" + "en" is not "meden"


def says_phrase(text: str, phrase: str, endings: Sequence[str] = ()) -> bool:
    """Loose phrase matching, for what callers say in many ways (asking for a person).

    The phrase's words occur in ``text`` in order, with at most ``MAX_GAP`` other words between
    two of them; a word of the phrase also matches itself plus one of the language's inflection
    ``endings`` ("människa" matches "människan" with ["n"]). Stricter than a bag of words (order
    matters, so "inte" must come before what it negates) and looser than ``contains_phrase``.
    """
    said, wanted = words(text), words(phrase)
    return bool(wanted) and _from(said, wanted, 0, 0, tuple(endings))


def _from(said: list[str], wanted: list[str], i: int, j: int, endings: tuple[str, ...]) -> bool:
    if j == len(wanted):
        return True
    stop = len(said) if j == 0 else min(len(said), i + MAX_GAP + 1)
    return any(
        _same_word(said[k], wanted[j], endings) and _from(said, wanted, k + 1, j + 1, endings)
        for k in range(i, stop)
    )


def _same_word(heard: str, word: str, endings: tuple[str, ...]) -> bool:
    if heard == word:
        return True
    return len(word) >= MIN_STEM and heard.startswith(word) and heard[len(word) :] in endings
