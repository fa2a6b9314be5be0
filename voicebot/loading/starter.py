"""A new line's starting configuration, as ``voicebot init`` writes it.

The starters are data (``starters/<primary>.yaml`` and ``.md``, in the format ops edit), with
only what depends on the moment filled in: the language's built-in prompts, read from the same
``languages/`` files the loader falls back on (so the copy ops start from is what the robot would
say anyway), and this season's holiday dates (so the first ``voicebot check`` warns about no
announcement that has already ended).
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import re
import shlex
from string import Template

from voicebot.errors import VoicebotError
from voicebot.loading.defaults import language_defaults

__all__ = ["STARTER_LANGUAGES", "StarterError", "language_tag", "starter_files"]

_FOLDER = "starters"
# The region a bare language gets, and the languages a starter exists for.
STARTER_LANGUAGES = {"en": "en-US", "sv": "sv-SE"}
_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{2}|\d{3}))?$")


class StarterError(VoicebotError):
    """A language ``voicebot init`` has no starting configuration for."""


def language_tag(text: str) -> str:
    """``sv-SE`` from ``sv-se``, ``sv_SE`` or ``sv``; ``StarterError`` for a language without a
    starter."""
    match = _TAG.match(text.strip())
    primary = match.group(1).lower() if match else ""
    if primary not in STARTER_LANGUAGES:
        known = ", ".join(STARTER_LANGUAGES.values())
        raise StarterError(
            f"there is no starting configuration for {text!r}; init knows {known} (for another "
            "language, start from one of them and set voice, prompts and words: "
            "docs/configuration.md)"
        )
    assert match is not None
    region = match.group(2)
    return f"{primary}-{region.upper()}" if region else STARTER_LANGUAGES[primary]


def starter_files(lang: str, folder: str, today: dt.date) -> dict[str, str]:
    """What ``voicebot init`` writes: path relative to the new folder -> text.

    ``folder`` is the folder as the user named it, for the commands the files show.
    """
    tag = language_tag(lang)
    primary = tag.split("-")[0]
    # The holiday season still ahead (on 1 January, the one ending today).
    year = today.year - 1 if (today.month, today.day) == (1, 1) else today.year
    prompts = language_defaults(primary).prompts
    config = f"{tag}/intents.yaml"
    values = {
        "language": tag,
        "dir": shlex.quote(folder),
        "file": config,
        "year": str(year),
        "next_year": str(year + 1),
        "prompts": "\n".join(
            f"  {key}: {json.dumps(text, ensure_ascii=False)}" for key, text in prompts.items()
        ),
    }
    return {
        config: _render(f"{primary}.yaml", values),
        "README.md": _render(f"{primary}.md", values),
    }


def _render(name: str, values: dict[str, str]) -> str:
    resource = importlib.resources.files(__package__).joinpath(_FOLDER, name)
    return Template(resource.read_text(encoding="utf-8")).substitute(values)
