"""Built-in language defaults (voice, prompts, word lists), kept as YAML data in ``languages/``.

A language's YAML may leave out ``voice:``, ``prompts:`` and ``words:`` when its primary subtag
(``en`` for en-US and en-GB) has a file here. They are data, not Python, so adding a language is
adding one file in the format ops already know; they are read with the same node reader as a
language file, so a mistake in one is reported with its file and line like any other.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass, field

from voicebot.loading.files import compose_yaml
from voicebot.loading.keys import PROMPT_KEYS, WORD_KEYS
from voicebot.loading.problems import ConfigError, Problem
from voicebot.loading.reader import Reader

__all__ = ["LanguageDefaults", "language_defaults"]

_FOLDER = "languages"
_KEYS = ("voice", "prompts", "words")


@dataclass(frozen=True, slots=True)
class LanguageDefaults:
    """What a language file may leave out; empty when the language has no built-in file."""

    voice: str | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    words: dict[str, tuple[str, ...]] = field(default_factory=dict)


@functools.cache
def language_defaults(primary: str) -> LanguageDefaults:
    """The defaults for a primary language subtag (``en``); empty when there is no file for it.

    A broken file shipped in the package raises ``ConfigError`` naming its line.
    """
    if not primary.isalpha():
        return LanguageDefaults()
    resource = importlib.resources.files(__package__).joinpath(_FOLDER, f"{primary}.yaml")
    if not resource.is_file():
        return LanguageDefaults()
    display = f"voicebot/loading/{_FOLDER}/{primary}.yaml"
    problems: list[Problem] = []
    node = compose_yaml(resource.read_text(encoding="utf-8"), display, problems)
    ctx = Reader(display, problems)
    top = ctx.mapping(node, "", "the file", _KEYS) if node is not None else {}
    voice = ctx.text(top["voice"][1], "", "'voice'") if top and "voice" in top else None
    prompts: dict[str, str] = {}
    words: dict[str, tuple[str, ...]] = {}
    if top and "prompts" in top:
        for key, (_, vnode) in (
            ctx.mapping(top["prompts"][1], "prompts", "'prompts'", PROMPT_KEYS) or {}
        ).items():
            text = ctx.text(vnode, "prompts", key)
            if text is not None:
                prompts[key] = text
    if top and "words" in top:
        for key, (_, vnode) in (
            ctx.mapping(top["words"][1], "words", "'words'", WORD_KEYS) or {}
        ).items():
            items = ctx.texts(vnode, "words", key, single_ok=True)
            if items:
                words[key] = tuple(t for t, _ in items)
    if problems:
        raise ConfigError(problems)
    return LanguageDefaults(voice, prompts, words)
