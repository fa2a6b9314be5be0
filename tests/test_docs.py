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
    assert set(packages) == {"espeak-ng", "sox", "postgresql", "chromium", "haproxy"}
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


def test_the_readme_chat_example_is_what_chat_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first thing a newcomer compares against: the transcript must be the real one."""
    import io
    import shlex
    import sys

    from voicebot.cli.main import main

    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- chat-example -->\n```text\n(.*?)```", text, re.S)
    assert block is not None, "README.md lacks the chat-example block"
    command, *transcript = block.group(1).splitlines()
    assert command.startswith("$ voicebot chat ")
    said = [line.removeprefix("you> ") for line in transcript if line.startswith("you> ")]
    printed = [line for line in transcript if not line.startswith("you> ")]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(s + "\n" for s in said)))
    assert main(shlex.split(command.removeprefix("$ voicebot "))) == 0
    assert capsys.readouterr().out.splitlines() == printed


def _figures() -> list[tuple[str, str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Figures") :].split("\n## ", 2)[1]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return [(what.lstrip("| "), figure, command.rstrip(" |")) for what, figure, command in rows[1:]]


def test_the_readme_figures_are_the_measured_ones_with_their_command() -> None:
    """Each headline figure is one measured in docs/benchmarks.md, next to the command given."""
    figures = _figures()
    assert [what.split(",")[0] for what, _, _ in figures] == [
        "routing",
        "routing",
        "routing",
        "capacity",
        "caller wait",
        "media stream",
        "grouping what was not understood (HWU64",
    ]
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    sections = benchmarks.split("\n## ")
    for what, figure, command in figures:
        script = re.fullmatch(r"`(python bench/\w+\.py)( [^`]*)?`", command)
        assert script is not None, f"{what}: no bench command: {command}"
        assert (ROOT / script.group(1).split()[1]).is_file()
        numbers = re.findall(r"\d+(?:\.\d+)?%?(?= ms| calls|%|\b)", figure)
        assert numbers, what
        # Some section of the benchmarks page runs that script and states every number (as
        # measured: a bracketed figure there is the older matcher's).
        stated = [re.compile(rf"(?<![(\d.]){re.escape(n)}(?![\d.]\d)") for n in numbers]
        assert any(
            script.group(1) in part and all(p.search(part) for p in stated) for part in sections
        ), f"{what}: {numbers} with {script.group(1)} not in docs/benchmarks.md"


def test_every_dependency_is_named_with_its_reason() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [
        re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)  # type: ignore[union-attr]
        for requirement in [*project["dependencies"], *project["optional-dependencies"]["test"]]
    ]
    page = (ROOT / "docs" / "dependencies.md").read_text(encoding="utf-8").lower()
    missing = [name for name in names if name.lower() not in page]
    assert not missing, f"docs/dependencies.md does not name {missing}"
    readme = README.read_text(encoding="utf-8").lower()
    runtime = [re.split(r"[\[<>=]", r)[0].lower() for r in project["dependencies"]]
    assert [name for name in runtime if name not in readme] == []


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


@pytest.mark.parametrize(
    "page",
    ["README.md", "bench/README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))],
)
def test_every_link_between_the_pages_leads_somewhere(page: str) -> None:
    """Content moved between the README and docs/: a link to a page or heading that is not
    there any more would leave a reader stranded."""
    path = ROOT / page if "/" in page or page == "README.md" else ROOT / "docs" / page
    broken = []
    for target in _LINK.findall(path.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    assert not broken, f"{page}: links that lead nowhere: {broken}"
