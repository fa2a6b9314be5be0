"""The node reader: turns PyYAML's composed nodes into checked values, keeping every origin.

Parsing walks the node tree instead of plain dicts so that every value keeps its file, line and
column, and YAML 1.1 surprises never reach the config: ``text`` reads a scalar exactly as written,
so ``no`` stays "no", ``+46101234567`` keeps its plus and ``8:30`` is not the number 510. A
``Reader`` records a ``Problem`` instead of raising, so one pass finds every mistake. The message
helpers here (``quote``, ``did_you_mean``, ...) keep every problem one line long and alike.
"""

from __future__ import annotations

import datetime as dt
import re
import string
import weakref
from collections.abc import Collection, Iterable, Sequence
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml
from rapidfuzz import fuzz, process

from voicebot.core.config import Origin
from voicebot.loading.problems import Problem

__all__ = [
    "MERGE_TAG",
    "Pair",
    "Reader",
    "bad_links",
    "describe",
    "did_you_mean",
    "is_null",
    "is_shared",
    "listing",
    "mark_shared",
    "quote",
    "say_where",
    "suggest",
]

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TAG_NULL = "tag:yaml.org,2002:null"
_TAG_INT = "tag:yaml.org,2002:int"
_TAG_FLOAT = "tag:yaml.org,2002:float"
MERGE_TAG = "tag:yaml.org,2002:merge"
_NUMBERS = yaml.constructor.SafeConstructor()

Pair = tuple[yaml.ScalarNode, yaml.Node]

# Nodes an alias ('*name', '<<: *name') repeats, and everything inside them: one text in the
# file that stands for several places, so an edit there changes all of them. Marked by the
# loader (``files._BoundedLoader``); weak, so a file's nodes go when the file is read.
_SHARED: weakref.WeakSet[yaml.Node] = weakref.WeakSet()


def mark_shared(node: yaml.Node) -> None:
    """Mark ``node`` and everything below it as repeated by an alias."""
    stack = [node]
    while stack:
        item = stack.pop()
        if item in _SHARED:
            continue
        _SHARED.add(item)
        if isinstance(item, yaml.SequenceNode):
            stack.extend(item.value)
        elif isinstance(item, yaml.MappingNode):
            stack.extend(part for pair in item.value for part in pair)


def is_shared(node: yaml.Node) -> bool:
    return node in _SHARED


def quote(text: str, limit: int = 60) -> str:
    """Quote a value for a message, shortened so one problem stays one line."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"


def listing(names: Iterable[str], limit: int = 8) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (", …" if len(names) > limit else "")


def suggest(word: str, choices: Iterable[str]) -> str | None:
    found = process.extractOne(word, list(choices), scorer=fuzz.ratio, score_cutoff=60)
    return None if found is None else str(found[0])


def did_you_mean(word: str, choices: Collection[str], *, noun: str = "") -> str:
    """' (did you mean 'x'? known …: …)' for an unknown name, so a typo is a one-glance fix.

    Names ops define (``noun`` given) always list what exists; fixed keys only the best guess.
    """
    if not choices:
        return ""
    guess = suggest(word, choices)
    known = f"known {noun}: {listing(choices)}" if noun else f"allowed: {listing(choices, 20)}"
    if guess is None:
        return f" ({known})"
    return (
        f" (did you mean {quote(guess)}? {known})" if noun else f" (did you mean {quote(guess)}?)"
    )


def say_where(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _TAG_NULL and not node.style


def describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping (key: value lines)"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if is_null(node):
        return "nothing (the value is empty)"
    return quote(str(node.value))


def _placeholders(template: str) -> set[str] | None:
    """Names used as ``{name}`` in ``template``, or None when its braces are malformed."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        return None


def _is_http_url(text: str) -> bool:
    if not text or any(c.isspace() for c in text):
        return False
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def bad_links(text: str) -> list[str]:
    """Things in a text that look like links but are not http(s) URLs a phone can open."""
    return [tok for tok in text.split() if "://" in tok and not _is_http_url(tok.rstrip(".,;)"))]


def _valid_timezone(name: str) -> bool:
    if not name or name != name.strip() or name.startswith("/") or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


class Reader:
    """One YAML file being read: turns nodes into checked values, recording problems as it goes."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems

    def at(self, node: yaml.Node) -> Origin:
        mark = node.start_mark
        if mark is None:
            return Origin(self.file, 0, 0)
        return Origin(self.file, mark.line + 1, mark.column + 1)

    def fail(self, where: yaml.Node | Origin, message: str) -> None:
        origin = where if isinstance(where, Origin) else self.at(where)
        self.problems.append(Problem(origin, message))

    # -- mappings

    def pairs(self, node: yaml.MappingNode, seen: frozenset[int] = frozenset()) -> list[Pair]:
        """Key/value pairs with YAML merge keys (``<<: *anchor``) applied; explicit keys win."""
        explicit: list[Pair] = []
        merged: list[Pair] = []
        for knode, vnode in node.value:
            if isinstance(knode, yaml.ScalarNode) and knode.tag == MERGE_TAG:
                sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
                for src in sources:
                    if not isinstance(src, yaml.MappingNode) or id(src) in seen:
                        self.fail(src, "'<<' can only merge a mapping (like '<<: *anchor')")
                        continue
                    merged.extend(self.pairs(src, seen | {id(node)}))
            elif not isinstance(knode, yaml.ScalarNode) or is_null(knode):
                self.fail(knode, "keys must be plain names, not lists, mappings or nothing")
            else:
                explicit.append((knode, vnode))
        names = {k.value for k, _ in explicit}
        for knode, vnode in merged:
            if knode.value not in names:
                names.add(knode.value)
                explicit.append((knode, vnode))
        return explicit

    def mapping(
        self,
        node: yaml.Node,
        where: str,
        what: str,
        keys: Collection[str] | None,
        required: Sequence[str] = (),
        *,
        owner: yaml.Node | Origin | None = None,
        key_hint: str = "",
    ) -> dict[str, Pair] | None:
        """A mapping's pairs by key; unknown keys (when ``keys`` is given) get a did-you-mean."""
        if is_null(node):
            pairs: list[Pair] = []
        elif isinstance(node, yaml.MappingNode):
            pairs = self.pairs(node)
        else:
            self.fail(
                node,
                say_where(
                    where, f"{what} must be a mapping (key: value lines), not {describe(node)}"
                ),
            )
            return None
        out: dict[str, Pair] = {}
        for knode, vnode in pairs:
            key = str(knode.value)
            if keys is not None and key not in keys:
                hint = did_you_mean(key, keys)
                extra = key_hint if "did you mean" not in hint else ""
                self.fail(knode, say_where(where, f"unknown key {quote(key)}{hint}{extra}"))
            elif key not in out:
                out[key] = (knode, vnode)
        for key in required:
            if key not in out:
                self.fail(
                    owner if owner is not None else node, say_where(where, f"missing {quote(key)}")
                )
        return out

    def one_key(
        self,
        pairs: dict[str, Pair],
        keys: Sequence[str],
        owner: yaml.Node,
        where: str,
        what: str,
        missing: str,
    ) -> str | None:
        """The one key of ``keys`` in ``pairs`` (an intent's action, a group's destination).

        Such keys are alternatives, so none (``missing`` is the whole message, at ``owner``) and
        two or more (at the second, naming the first two in ``keys`` order) are both problems.
        """
        given = [k for k in keys if k in pairs]
        if not given:
            self.fail(owner, missing)
            return None
        if len(given) > 1:
            self.fail(
                pairs[given[1]][0],
                f"{where} has both {given[0]} and {given[1]}; give exactly one {what}",
            )
            return None
        return given[0]

    # -- scalars

    def text(self, node: yaml.Node, where: str, what: str) -> str | None:
        """A non-empty text exactly as written (YAML's yes/no/number guessing is ignored)."""
        if not isinstance(node, yaml.ScalarNode) or is_null(node):
            self.fail(node, say_where(where, f"{what} must be text, not {describe(node)}"))
            return None
        value = str(node.value).strip()
        if not value:
            self.fail(node, say_where(where, f"{what} is empty"))
            return None
        return value

    def texts(
        self, node: yaml.Node, where: str, what: str, *, single_ok: bool = False
    ) -> list[tuple[str, Origin]] | None:
        """A list of non-empty texts with the origin of each entry."""
        if isinstance(node, yaml.SequenceNode):
            items: list[yaml.Node] = list(node.value)
        elif is_null(node):
            items = []
        elif single_ok and isinstance(node, yaml.ScalarNode):
            items = [node]
        else:
            self.fail(
                node,
                say_where(
                    where, f"{what} must be a list (one '- entry' per line), not {describe(node)}"
                ),
            )
            return None
        out: list[tuple[str, Origin]] = []
        for i, item in enumerate(items, 1):
            value = self.text(item, where, f"entry {i} of {what}")
            if value is not None:
                out.append((value, self.at(item)))
        return out

    def number(self, node: yaml.Node, where: str, what: str) -> float | None:
        if isinstance(node, yaml.ScalarNode) and not node.style:
            try:
                if node.tag == _TAG_INT:
                    return float(_NUMBERS.construct_yaml_int(node))
                if node.tag == _TAG_FLOAT:
                    value = _NUMBERS.construct_yaml_float(node)
                    if value == value and abs(value) != float("inf"):
                        return value
            except (ValueError, TypeError):
                pass
        self.fail(node, say_where(where, f"{what} must be a number, not {describe(node)}"))
        return None

    def integer(self, node: yaml.Node, where: str, what: str) -> int | None:
        if isinstance(node, yaml.ScalarNode) and not node.style and node.tag == _TAG_INT:
            try:
                return _NUMBERS.construct_yaml_int(node)
            except (ValueError, TypeError):
                pass
        self.fail(node, say_where(where, f"{what} must be a whole number, not {describe(node)}"))
        return None

    def date(self, node: yaml.Node, where: str, what: str) -> dt.date | None:
        text = self.text(node, where, what)
        if text is None:
            return None
        return self.parse_date(text, node, where, what)

    def parse_date(self, text: str, node: yaml.Node, where: str, what: str) -> dt.date | None:
        if not _DATE_RE.match(text):
            self.fail(
                node,
                say_where(where, f"{what} {quote(text)} is not a date; write it as YYYY-MM-DD"),
            )
            return None
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            self.fail(node, say_where(where, f"{what} {quote(text)} is not a real date"))
            return None

    def timezone(self, node: yaml.Node, where: str, what: str) -> str | None:
        name = self.text(node, where, what)
        if name is None:
            return None
        if not _valid_timezone(name):
            guess = suggest(name, available_timezones())
            hint = (
                f" (did you mean {quote(guess)}?)"
                if guess
                else " (use a name like Europe/Stockholm)"
            )
            self.fail(node, say_where(where, f"unknown time zone {quote(name)}{hint}"))
            return None
        return name

    def link(self, node: yaml.Node, where: str, what: str) -> str | None:
        url = self.text(node, where, what)
        if url is None:
            return None
        if not _is_http_url(url):
            self.fail(
                node,
                say_where(
                    where,
                    f"{what} {quote(url)} is not a web link; it must start with https:// "
                    "(or http://) and contain no spaces",
                ),
            )
            return None
        return url

    def template(
        self,
        node: yaml.Node,
        where: str,
        what: str,
        allowed: Collection[str] = (),
        required: Collection[str] = (),
    ) -> str | None:
        """Text whose ``{placeholders}`` are checked, so a typo is not read aloud to callers."""
        text = self.text(node, where, what)
        if text is None:
            return None
        names = _placeholders(text)
        if names is None:
            self.fail(node, say_where(where, f"{what} has a '{{' or '}}' without its partner"))
            return None
        ok = True
        for name in sorted(names - set(allowed)):
            can = (
                f"it can use {listing(['{' + a + '}' for a in allowed])}"
                if allowed
                else ("it cannot use placeholders")
            )
            self.fail(node, say_where(where, f"{what} uses unknown placeholder {{{name}}}; {can}"))
            ok = False
        for name in sorted(set(required) - names):
            self.fail(node, say_where(where, f"{what} must contain {{{name}}}"))
            ok = False
        return text if ok else None
