"""An intent's name read as words, one more text of its intent for a few-shot config.

Why: ops name their intents for what they are about (``login_password``, ``invoice``,
``payment_problem``; the public sets do too: HWU64's ``alarm_set``, SNIPS's ``AddToPlaylist``),
and with four to ten phrases per intent that name is a hint the phrases alone may lack (the
"label semantics" of few-shot classification). The matcher adds it to the sentence-vector view
only, below the weight of a real example (the n-gram view would be misled by English names of
Swedish intents), and leaves it out of familiarity, which means "near what ops wrote".

A name that does not read as words says nothing and must add nothing: one with a digit
(``intent_7``, ``q1``, ``faq_2024``) or whose words are all shorter than MIN_LETTERS (``q_a``).
"""

from __future__ import annotations

import re

__all__ = ["MIN_LETTERS", "name_text"]

MIN_LETTERS = 3  # a name counts only when one of its words has at least this many letters
_SEPARATORS = re.compile(r"[\W_]+")  # "_", "-", "." between the words of a name


def name_text(name: str) -> str:
    """``name`` as lower-case words ("login_password" -> "login password", "AddToPlaylist" ->
    "add to playlist", "IOTLights" -> "iot lights"), or "" when it does not read as words."""
    if any(c.isdigit() for c in name):
        return ""
    words = [w.lower() for part in _SEPARATORS.split(name) for w in _camel_words(part)]
    if not any(len(w) >= MIN_LETTERS for w in words):
        return ""
    return " ".join(words)


def _camel_words(part: str) -> list[str]:
    """``part`` cut where a capital starts a new word: "AddToPlaylist" -> Add, To, Playlist;
    "IOTLights" -> IOT, Lights (a run of capitals is one word up to its last letter)."""
    words: list[str] = []
    start = 0
    for i in range(1, len(part)):
        here, before = part[i], part[i - 1]
        after = part[i + 1] if i + 1 < len(part) else ""
        if here.isupper() and (before.islower() or (before.isupper() and after.islower())):
            words.append(part[start:i])
            start = i
    if part:
        words.append(part[start:])
    return words
