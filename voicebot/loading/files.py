"""Reading YAML files: one file into nodes, a language file or folder into its top-level keys.

A file that cannot be read (not UTF-8, a syntax error, a duplicate key) becomes a ``Problem`` with
its line, never an exception; a key defined in two files of one language folder is a problem too.

A few kilobytes of YAML can ask for unbounded work, so three limits hold, each a one-line problem
at the line where it is crossed: a file's size (``MAX_FILE_BYTES``: the 13 MB probe took minutes),
its nesting (``MAX_DEPTH``: PyYAML composes recursively, and 5,000 ``[`` printed a RecursionError
of 3,000 lines) and what its aliases add (``MAX_ALIAS_VALUES``: ``*name`` and ``<<: *name`` are
copies for everything that reads the tree, so ten merges of ten merges, seven deep, was 10^7
keys to read). Real configurations stay far below all three.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from voicebot.core.config import Origin
from voicebot.loading.keys import DEPLOYMENT_FILE, TOP_KEYS, YAML_SUFFIXES
from voicebot.loading.problems import Problem
from voicebot.loading.reader import MERGE_TAG, Reader, mark_shared, quote

__all__ = [
    "MAX_ALIAS_VALUES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "Entry",
    "add_entries",
    "collect_language",
    "compose_yaml",
    "display_path",
    "read_named",
    "read_yaml",
    "yaml_files",
]

_T = TypeVar("_T")


def display_path(path: Path) -> str:
    """A path as ops see it: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _syntax_message(error: yaml.MarkedYAMLError) -> str:
    problem = (error.problem or "invalid YAML").strip()
    hint = ""
    if "'\\t'" in problem:
        problem, hint = "a tab character", "; indent with spaces, never tabs"
    elif "mapping values are not allowed" in problem:
        hint = " (is there a ':' inside a value? put the value in quotes)"
    elif "could not find expected ':'" in problem:
        hint = " (a line is missing its ':' or is indented wrongly)"
    elif "found undefined alias" in problem:
        hint = " (the '*name' refers to an '&name' anchor that is not defined above it)"
    elif "expected <block end>" in problem or "did not find expected" in problem:
        hint = " (check the indentation of this line and the one above)"
    elif "expected a single document" in problem:
        problem, hint = "more than one YAML document", "; remove the extra '---' line"
    return f"YAML syntax error: {problem}{hint}"


MAX_FILE_BYTES = 5_000_000  # 5x an import of SNIPS' 13,000 training sentences
MAX_DEPTH = 50  # lists and mappings inside each other; a configuration needs about 6
MAX_ALIAS_VALUES = 100_000  # values that '*name' and '<<: *name' copy, counted as copies


def _too_big(display: str, line: int, size: int) -> Problem:
    return Problem(
        Origin(display, line, 0),
        f"the file is {size / 1e6:.1f} MB, over the {MAX_FILE_BYTES / 1e6:g} MB a configuration "
        "may have (it passes the limit here); split it into files in a language folder, or "
        "import fewer examples (voicebot import --max-examples)",
    )


def read_yaml(path: Path, display: str, problems: list[Problem]) -> yaml.Node | None:
    """Compose one file into nodes, or record why it cannot be read; empty files give None."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:  # not even read into memory whole
            with path.open("rb") as handle:
                line = handle.read(MAX_FILE_BYTES).count(b"\n") + 1
            problems.append(_too_big(display, line, size))
            return None
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(
            Problem(Origin(display, 0, 0), f"is not UTF-8 text ({exc.reason}); save it as UTF-8")
        )
        return None
    except OSError as exc:
        problems.append(Problem(Origin(display, 0, 0), f"cannot be read: {exc.strerror or exc}"))
        return None
    return compose_yaml(text, display, problems)


def compose_yaml(text: str, display: str, problems: list[Problem]) -> yaml.Node | None:
    """One YAML text composed into nodes, or None with the reason recorded in ``problems``."""
    bad = _BAD_CHARACTER.search(text)
    if bad is not None:  # PyYAML refuses these before parsing, with an offset instead of a line
        problems.append(Problem(_origin_of(text, bad.start(), display), _bad_character(bad[0])))
        return None
    size = len(text.encode("utf-8"))
    if size > MAX_FILE_BYTES:
        line = text.count("\n", 0, MAX_FILE_BYTES) + 1
        problems.append(_too_big(display, line, size))
        return None
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
    except _LimitExceeded as exc:
        problems.append(Problem(Origin(display, exc.line, exc.column), exc.message))
        return None
    except yaml.MarkedYAMLError as exc:
        problems.append(_syntax_problem(exc, text, display))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(Origin(display, 0, 0), f"YAML error: {exc}"))
        return None
    finally:
        loader.dispose()
    if node is not None:
        _check_duplicate_keys(Reader(display, problems), node)
    return node


class _LimitExceeded(Exception):
    def __init__(self, event: yaml.Event, message: str) -> None:
        super().__init__(message)
        mark = event.start_mark
        self.line, self.column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, composing with the nesting and alias limits: it stops at the node
    that crosses one, long before Python's recursion limit or the work an alias bomb asks for.
    Each node's weight is what reading it costs: 1, plus its children's weights, where an alias
    weighs what the node it names does."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._copied = 0
        self._weights: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._copied += self._weights.get(id(node), 1)
            if node is not None and self._copied <= MAX_ALIAS_VALUES:  # bounded: marks < copies
                mark_shared(node)
            if self._copied > MAX_ALIAS_VALUES:
                raise _LimitExceeded(
                    event,
                    f"the aliases ('*name', '<<: *name') up to here copy over "
                    f"{MAX_ALIAS_VALUES:,} values; write the entries out instead of nesting "
                    "copies of copies",
                )
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _LimitExceeded(
                event,
                f"lists and mappings nest more than {MAX_DEPTH} deep here; a configuration "
                "needs a handful of levels (is a '[' or '{' never closed?)",
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:
            return None
        self._weights[id(node)] = 1 + sum(
            self._weights.get(id(child), 1) for child in _children(node)
        )
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


# What PyYAML's reader rejects (its NON_PRINTABLE set): control characters other than tab and
# line breaks, surrogates and the two non-characters U+FFFE and U+FFFF.
_BAD_CHARACTER = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def _bad_character(char: str) -> str:
    name = "a NUL byte" if char == "\0" else f"the control character U+{ord(char):04X}"
    return (
        f"contains {name}, which YAML does not allow; remove it (the file is probably not "
        "plain text, or was saved by a program that added it)"
    )


def _origin_of(text: str, index: int, display: str) -> Origin:
    line = text.count("\n", 0, index) + 1
    return Origin(display, line, index - (text.rfind("\n", 0, index) + 1) + 1)


# A construct PyYAML reads until its closing character: when one is left open the parser gives
# up where it finds something else, often at the end of the file, far from the mistake.
_OPEN_CONSTRUCTS = {
    "while scanning a quoted scalar": ("the quote", "closing quote"),
    "while parsing a flow sequence": ("the '['", "']'"),
    "while parsing a flow mapping": ("the '{'", "'}'"),
}


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, display: str) -> Problem:
    """The problem at the line to fix: where an unclosed quote or bracket starts when the
    parser only noticed at the end of the file, else where the parser stopped."""
    problem, start = exc.problem_mark, exc.context_mark
    opened = _OPEN_CONSTRUCTS.get((exc.context or "").strip())
    if opened is not None and start is not None:
        what, closer = opened
        if problem is None or not text[problem.index :].strip():  # it gave up at the end
            return Problem(
                Origin(display, start.line + 1, start.column + 1),
                f"YAML syntax error: {what} opened here is never closed; add the {closer}",
            )
        message = f"{_syntax_message(exc)}; {what} on line {start.line + 1} is not closed"
        return Problem(Origin(display, problem.line + 1, problem.column + 1), message)
    mark = problem or start
    origin = Origin(display, mark.line + 1, mark.column + 1) if mark else Origin(display, 0, 0)
    return Problem(origin, _syntax_message(exc))


def _check_duplicate_keys(ctx: Reader, root: yaml.Node) -> None:
    """PyYAML keeps only the last of two equal keys; ops almost never mean that, so report it."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            for knode, vnode in node.value:
                if isinstance(knode, yaml.ScalarNode) and knode.tag != MERGE_TAG:
                    key = str(knode.value)
                    if key in first:
                        line = ctx.at(first[key]).line
                        ctx.fail(
                            knode,
                            f"{quote(key)} is written twice here (first at line {line}); "
                            "YAML would silently keep only the last one, so merge or rename them",
                        )
                    else:
                        first[key] = knode
                stack.extend((knode, vnode))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def yaml_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in YAML_SUFFIXES and not p.name.startswith((".", "_"))
    )


@dataclass(slots=True)
class Entry:
    """One top-level key of a language, with the file it came from."""

    ctx: Reader
    key: yaml.ScalarNode
    value: yaml.Node


def read_named(
    e: Entry,
    what: str,
    noun: str,
    read_one: Callable[[str, yaml.ScalarNode, yaml.Node], _T | None],
) -> tuple[dict[str, _T] | None, set[str] | None]:
    """A section of entries ops name (``groups:``, ``intents:``): each read, and their names.

    Every entry is read even after a broken one, so one pass reports every mistake, and the
    names come back even then (None only when the section is no mapping or empty), so the
    references to them are still checked. The entries come back only when all were good.
    """
    ctx = e.ctx
    pairs = ctx.mapping(e.value, "", what, None, owner=e.key)
    if pairs is None:
        return None, None
    if not pairs:
        ctx.fail(e.key, f"{what} must define at least one {noun}")
        return None, None
    out: dict[str, _T] = {}
    ok = True
    for name, (knode, vnode) in pairs.items():
        item = read_one(name, knode, vnode)
        if item is None:
            ok = False
        else:
            out[name] = item
    return (out if ok else None), set(pairs)


def collect_language(path: Path, problems: list[Problem]) -> tuple[dict[str, Entry], str, Origin]:
    """Top-level keys of a language file or folder; a key defined in two files is a problem."""
    display = display_path(path)
    entries: dict[str, Entry] = {}
    if path.is_dir():
        files = [f for f in yaml_files(path) if f.name != DEPLOYMENT_FILE]
        whole = Origin(display, 0, 0)
        if not files:
            problems.append(Problem(whole, "this language folder has no .yaml files"))
    elif path.is_file():
        files = [path]
        whole = Origin(display, 1, 1)
    else:
        problems.append(Problem(Origin(display, 0, 0), "no such file or folder"))
        return entries, display, Origin(display, 0, 0)
    for file in files:
        name = display_path(file)
        node = read_yaml(file, name, problems)
        if node is not None:
            add_entries(Reader(name, problems), node, TOP_KEYS, entries)
    return entries, display, whole


def add_entries(
    ctx: Reader, node: yaml.Node, keys: Collection[str], entries: dict[str, Entry]
) -> None:
    """Add a file's top-level keys to ``entries``; a key some other file defined is a problem."""
    top = ctx.mapping(node, "", "the file", keys)
    for key, (knode, vnode) in (top or {}).items():
        if key in entries:
            first = entries[key]
            ctx.fail(
                knode,
                f"{quote(key)} is defined in both {first.ctx.file}:{first.ctx.at(first.key).line}"
                f" and {ctx.file}:{ctx.at(knode).line}; keep it in one file",
            )
        else:
            entries[key] = Entry(ctx, knode, vnode)
