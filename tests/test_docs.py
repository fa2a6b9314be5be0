"""The configuration reference must not lie: every YAML snippet in it loads, every key is in it.

Snippets preceded by ``<!-- complete -->`` are whole language files; ``<!-- routes -->`` marks a
routes file for ``voicebot import``; any other ``yaml`` block is a fragment, loaded on top of a
small base file (its top-level keys replace the base's).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from voicebot.core.config import Prompts, Thresholds, Words
from voicebot.loading.importer import import_labelled
from voicebot.loading.keys import (
    ANNOUNCE_KEYS,
    ANNOUNCEMENT_KEYS,
    GROUP_KEYS,
    INTENT_KEYS,
    SMS_KEYS,
    TOP_KEYS,
    WHEN_CLOSED_KEYS,
)
from voicebot.loading.loader import load_language_text

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
_BLOCK = re.compile(r"^(?P<indent> *)```yaml\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)

BASE = {
    "language": "language: en-US\n",
    "timezone": "timezone: Europe/Stockholm\n",
    "default_group": "default_group: members\n",
    "groups": "groups:\n  members:\n    queue: members\n  billing:\n    queue: billing\n",
    "intents": (
        "intents:\n  invoice:\n    label: invoices\n    transfer: members\n"
        "    phrases: [my invoice]\n"
    ),
}


def snippets() -> list[tuple[str, int, str]]:
    """(kind, line, yaml text) of every yaml block in the reference."""
    text = DOC.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        marker = before[-1].strip() if before else ""
        kind = {"<!-- complete -->": "complete", "<!-- routes -->": "routes"}.get(marker, "part")
        line = text.count("\n", 0, match.start()) + 1
        found.append((kind, line, textwrap.dedent(match.group("body"))))
    return found


SNIPPETS = snippets()


def test_the_reference_has_snippets_of_every_kind() -> None:
    kinds = [kind for kind, _, _ in SNIPPETS]
    assert kinds.count("complete") >= 2 and kinds.count("routes") == 1 and kinds.count("part") >= 8


@pytest.mark.parametrize(
    ("kind", "line", "text"), SNIPPETS, ids=[f"{k}-line{n}" for k, n, _ in SNIPPETS]
)
def test_snippet_loads(kind: str, line: int, text: str, tmp_path: Path) -> None:
    name = f"docs/configuration.md (block at line {line})"
    if kind == "complete":
        load_language_text(text, name)
    elif kind == "routes":
        routes = tmp_path / "routes.yaml"
        routes.write_text(text, encoding="utf-8")
        config = load_language_text(
            import_labelled(ROOT / "examples" / "labelled-example.csv", routes), name
        )
        assert config.intents["login_password"].label == "logging in and passwords"
    else:
        keys = set(yaml.safe_load(text))
        assert keys <= set(TOP_KEYS), f"{name}: not top-level keys: {keys - set(TOP_KEYS)}"
        rest = "".join(part for key, part in BASE.items() if key not in keys)
        load_language_text(text + rest, name)


@pytest.mark.parametrize(
    "key",
    sorted(
        {
            *TOP_KEYS,
            *GROUP_KEYS,
            *WHEN_CLOSED_KEYS,
            *INTENT_KEYS,
            *ANNOUNCE_KEYS,
            *SMS_KEYS,
            *ANNOUNCEMENT_KEYS,
            "closed_days",
            *(f.name for f in fields(Prompts)),
            *(f.name for f in fields(Words)),
            *(f.name for f in fields(Thresholds)),
        }
    ),
)
def test_every_key_is_documented(key: str) -> None:
    assert f"`{key}`" in DOC.read_text(encoding="utf-8"), f"docs/configuration.md lacks `{key}`"


README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"


def test_the_readme_names_every_program_the_tests_need() -> None:
    """A newcomer runs the README's test command, not .ci/run: the README must name what .ci/run
    installs, or the first run fails (or skips) for reasons they cannot see."""
    packages = re.findall(r"missing\+=\(([\w-]+)\)", CI_RUN.read_text(encoding="utf-8"))
    assert set(packages) == {"espeak-ng", "sox", "postgresql", "chromium"}
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("<!-- test-command -->") :].split("\n## ", 1)[0]
    install = re.search(r"`apt-get install ([^`]+)`", section)
    assert install is not None and set(install.group(1).split()) == set(packages)


def test_skipped_tests_say_why_in_the_output() -> None:
    """pytest hides skip reasons unless asked; the test command asks, so a skip is never silent."""
    import tomllib

    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    addopts = options["tool"]["pytest"]["ini_options"]["addopts"].split()
    assert any(o.startswith("-r") and "s" in o[2:] for o in addopts)
