"""Caller words put back into the config's own spelling before they are scored.

Why: ops write proper Swedish ("lösenord", "när har ni öppet"), but a caller's words may arrive
without å, ä and ö: typed in a chat or SMS channel on an ASCII keyboard, or heard by a recogniser
as "a"/"o" ("losenord", "nar har ni oppet"). To the sentence encoder such a word is another,
unknown word, and routing on bench/data's Swedish sets written that way fell 13-17 points
(bench/README.md, "Swedish"). A word the config does not know whose folded spelling
(``fold_diacritics``) is that of exactly one word the config knows is that word; every other
word is left as it is, so English, and Swedish already spelled as ops spell it, are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from voicebot.core.text import fold_diacritics

__all__ = ["Respeller"]


class Respeller:
    """Built from a config's normalised texts; called on a normalised caller text."""

    def __init__(self, texts: Iterable[str]) -> None:
        known = {w for text in texts for w in text.split()}
        spellings: dict[str, set[str]] = {}
        for word in known:
            folded = fold_diacritics(word)
            if folded != word:
                spellings.setdefault(folded, set()).add(word)
        self._known = frozenset(known)
        # Only unambiguous folds, and never onto a word the config itself writes without
        # diacritics ("for" stays "for" when the config has both "for" and "för").
        self._spelling = {
            folded: next(iter(words))
            for folded, words in spellings.items()
            if len(words) == 1 and folded not in known
        }

    def __call__(self, norm: str) -> str:
        if not self._spelling:
            return norm
        return " ".join(
            w if w in self._known else self._spelling.get(w, w) for w in norm.split(" ")
        )
