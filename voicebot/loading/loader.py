"""Parse the YAML that ops edit into the frozen objects of ``voicebot.core.config``.

Parsing walks PyYAML's composed node tree instead of plain dicts so that every value keeps its
file, line and column, duplicate keys (which PyYAML silently drops) are caught, and YAML 1.1
surprises never reach the config: text fields read a scalar exactly as written, so ``no`` stays
"no", ``+46101234567`` keeps its plus and ``8:30`` is not the number 510. All problems of all files
are collected in one pass so ops fix everything in one round.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import importlib.util
import itertools
import logging
import re
import string
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml
from rapidfuzz import fuzz, process

from voicebot.core.config import (
    WEEKDAYS,
    ActionKind,
    AgentGroup,
    Announcement,
    Deployment,
    Destination,
    DestinationKind,
    Intent,
    IntentAction,
    LanguageConfig,
    OpeningHours,
    Origin,
    Prompts,
    SmsFallback,
    SpeechMode,
    SpeechSettings,
    Thresholds,
    TimeRange,
    WhenClosed,
    Words,
)
from voicebot.core.phone import normalize as normalize_phone

__all__ = [
    "ConfigError",
    "ConfigHolder",
    "Problem",
    "default_config_path",
    "load_deployment",
    "load_language",
    "load_language_text",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in the configuration, and where it was written."""

    origin: Origin
    message: str

    def __str__(self) -> str:
        return f"{_place(self.origin)}: {self.message}"


def _place(origin: Origin) -> str:
    if origin.line <= 0:
        return origin.file
    if origin.column <= 0:
        return f"{origin.file}:{origin.line}"
    return str(origin)


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists everything found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(
            problems, key=lambda p: (p.origin.file, p.origin.line, p.origin.column)
        )
        super().__init__("\n".join(str(p) for p in self.problems))


# ---------------------------------------------------------------------------------------------
# Built-in defaults

_PROMPT_KEYS = tuple(Prompts.__dataclass_fields__)
_WORD_KEYS = tuple(Words.__dataclass_fields__)

_DEFAULT_PROMPTS: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Hello! In a few words, please tell me what you are calling about.",
        "reprompt": "Sorry, I didn't hear anything. In a few words, what are you calling about?",
        "no_match": "Sorry, I didn't get that. You can say, for example, {hints}.",
        "clarify": "Is it about {a} or {b}?",
        "anything_else": "Is there anything else I can help you with?",
        "transfer": "I'll put you through to {group}.",
        "sms_sent": "I've sent you a text message with a link.",
        "sms_failed": "Sorry, I couldn't send you a text message.",
        "goodbye": "Thank you for calling. Goodbye!",
        "error": "Sorry, something went wrong. I'll put you through to someone who can help.",
    },
    "sv": {
        "greeting": "Hej! Berätta med några ord vad du ringer om.",
        "reprompt": "Förlåt, jag hörde inget. Berätta med några ord vad du ringer om.",
        "no_match": "Förlåt, det uppfattade jag inte. Du kan till exempel säga {hints}.",
        "clarify": "Gäller det {a} eller {b}?",
        "anything_else": "Finns det något mer jag kan hjälpa dig med?",
        "transfer": "Jag kopplar dig till {group}.",
        "sms_sent": "Jag har skickat ett sms med en länk till dig.",
        "sms_failed": "Tyvärr kunde jag inte skicka något sms till dig.",
        "goodbye": "Tack för att du ringde. Hej då!",
        "error": "Förlåt, något gick fel. Jag kopplar dig till någon som kan hjälpa dig.",
    },
}

_DEFAULT_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "escape": ("agent", "human", "operator", "person", "representative"),
        "yes": ("yes", "yeah", "yep", "correct", "right", "sure", "that's right"),
        "no": ("no", "nope", "not really", "wrong", "neither"),
    },
    "sv": {
        "escape": ("handläggare", "människa", "operatör", "person", "växeln", "personal"),
        "yes": ("ja", "japp", "jajamen", "precis", "stämmer", "det stämmer", "absolut"),
        "no": ("nej", "nä", "nix", "inget av dem", "ingetdera", "inte riktigt"),
    },
}

_DEFAULT_VOICES = {"en": "Polly.Joanna", "sv": "Polly.Astrid"}

# Placeholders each prompt may use, and those it must use.
_PROMPT_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "no_match": (frozenset({"hints"}), frozenset()),
    "clarify": (frozenset({"a", "b"}), frozenset({"a", "b"})),
    "transfer": (frozenset({"group"}), frozenset()),
}

# ---------------------------------------------------------------------------------------------
# Key sets

_TOP_KEYS = (
    "language",
    "voice",
    "timezone",
    "max_turns",
    "numbers",
    "prompts",
    "words",
    "thresholds",
    "speech",
    "default_group",
    "groups",
    "announcements",
    "intents",
)
_REQUIRED_TOP = ("groups", "default_group", "intents")
_DESTINATION_KEYS = tuple(k.value for k in DestinationKind)
_GROUP_KEYS = ("name", *_DESTINATION_KEYS, "hours", "when_closed")
_WHEN_CLOSED_KEYS = ("say", "say_without_sms", "sms", "transfer_to")
_ACTION_KEYS = tuple(k.value for k in ActionKind)
_INTENT_KEYS = ("label", "phrases", "examples", *_ACTION_KEYS)
_ANNOUNCE_KEYS = ("text", "audio_url")
_SMS_KEYS = ("link", "say", "text", "fallback", "answer", "group")
_ANNOUNCEMENT_KEYS = ("id", "text", "audio_url", "from", "until", "after_intents")
_THRESHOLD_KEYS = tuple(Thresholds.__dataclass_fields__)
_SPEECH_KEYS = tuple(SpeechSettings.__dataclass_fields__)
_SPEECH_SECONDS = ("end_of_speech_s", "no_speech_timeout_s", "max_utterance_s")
_MAX_SPEECH_S = 120.0
_MAX_ALTERNATIVES = 10
_DEPLOYMENT_KEYS = ("default_language",)
_HOURS_EXTRA_KEYS = ("timezone", "closed_days")

DEPLOYMENT_FILE = "deployment.yaml"
_YAML_SUFFIXES = (".yaml", ".yml")

# ---------------------------------------------------------------------------------------------
# Value shapes

_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|\d{3}))?$")
_NAME_RE = re.compile(r"^[\w.-]+$")
_PHONE_RE = re.compile(r"^\+[1-9]\d{7,14}$")
_SIP_RE = re.compile(
    r"^sips?:[^@\s;:]+(?::[^@\s;]*)?@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    r"(?::\d{1,5})?(?:;\S*)?$"
)
_WORKFLOW_RE = re.compile(r"^WW[0-9a-fA-F]{32}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RANGE_RE = re.compile(r"^(\d{1,2}):(\d{2})\s*[-\u2013]\s*(\d{1,2}):(\d{2})$")  # - or en dash
_QUEUE_MAX = 64
_MAX_TURNS = 10
_MAX_CLOSED_WINDOW_DAYS = 366

_TAG_NULL = "tag:yaml.org,2002:null"
_TAG_BOOL = "tag:yaml.org,2002:bool"
_TAG_INT = "tag:yaml.org,2002:int"
_TAG_FLOAT = "tag:yaml.org,2002:float"
_TAG_MERGE = "tag:yaml.org,2002:merge"
_NUMBERS = yaml.constructor.SafeConstructor()

# ---------------------------------------------------------------------------------------------
# Small helpers


def _q(text: str, limit: int = 60) -> str:
    """Quote a value for a message, shortened so one problem stays one line."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"


def _known(names: Iterable[str], limit: int = 8) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (", …" if len(names) > limit else "")


def _suggest(word: str, choices: Iterable[str]) -> str | None:
    found = process.extractOne(word, list(choices), scorer=fuzz.ratio, score_cutoff=60)
    return None if found is None else str(found[0])


def _did_you_mean(word: str, choices: Collection[str], *, noun: str = "") -> str:
    """' (did you mean 'x'? known …: …)' for an unknown name, so a typo is a one-glance fix.

    Names ops define (``noun`` given) always list what exists; fixed keys only the best guess.
    """
    if not choices:
        return ""
    guess = _suggest(word, choices)
    known = f"known {noun}: {_known(choices)}" if noun else f"allowed: {_known(choices, 20)}"
    if guess is None:
        return f" ({known})"
    return f" (did you mean {_q(guess)}? {known})" if noun else f" (did you mean {_q(guess)}?)"


def _say(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _TAG_NULL and not node.style


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping (key: value lines)"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if _is_null(node):
        return "nothing (the value is empty)"
    return _q(str(node.value))


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


def _bad_links(text: str) -> list[str]:
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


def _suggest_language(code: str) -> str | None:
    parts = re.split(r"[-_]", code.strip())
    if len(parts) == 2 and parts[0].isalpha() and parts[1].isalpha():
        fixed = f"{parts[0].lower()}-{parts[1].upper()}"
        if _LANGUAGE_RE.match(fixed):
            return fixed
    return None


def _model_path(text: str, file: str) -> str:
    """A model directory as written; a relative one is taken from the config file's folder."""
    path = Path(text).expanduser()
    base = Path(file).parent
    if path.is_absolute() or not Path(file).is_file():
        return str(path)
    return str(base / path)


def _display(path: Path) -> str:
    """A path as ops see it: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


# ---------------------------------------------------------------------------------------------
# Reading nodes of one file


class _Ctx:
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
            if isinstance(knode, yaml.ScalarNode) and knode.tag == _TAG_MERGE:
                sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
                for src in sources:
                    if not isinstance(src, yaml.MappingNode) or id(src) in seen:
                        self.fail(src, "'<<' can only merge a mapping (like '<<: *anchor')")
                        continue
                    merged.extend(self.pairs(src, seen | {id(node)}))
            elif not isinstance(knode, yaml.ScalarNode) or _is_null(knode):
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
        if _is_null(node):
            pairs: list[Pair] = []
        elif isinstance(node, yaml.MappingNode):
            pairs = self.pairs(node)
        else:
            self.fail(
                node,
                _say(where, f"{what} must be a mapping (key: value lines), not {_describe(node)}"),
            )
            return None
        out: dict[str, Pair] = {}
        for knode, vnode in pairs:
            key = str(knode.value)
            if keys is not None and key not in keys:
                hint = _did_you_mean(key, keys)
                extra = key_hint if "did you mean" not in hint else ""
                self.fail(knode, _say(where, f"unknown key {_q(key)}{hint}{extra}"))
            elif key not in out:
                out[key] = (knode, vnode)
        for key in required:
            if key not in out:
                self.fail(owner if owner is not None else node, _say(where, f"missing {_q(key)}"))
        return out

    # -- scalars

    def text(self, node: yaml.Node, where: str, what: str) -> str | None:
        """A non-empty text exactly as written (YAML's yes/no/number guessing is ignored)."""
        if not isinstance(node, yaml.ScalarNode) or _is_null(node):
            self.fail(node, _say(where, f"{what} must be text, not {_describe(node)}"))
            return None
        value = str(node.value).strip()
        if not value:
            self.fail(node, _say(where, f"{what} is empty"))
            return None
        return value

    def texts(
        self, node: yaml.Node, where: str, what: str, *, single_ok: bool = False
    ) -> list[tuple[str, Origin]] | None:
        """A list of non-empty texts with the origin of each entry."""
        if isinstance(node, yaml.SequenceNode):
            items: list[yaml.Node] = list(node.value)
        elif _is_null(node):
            items = []
        elif single_ok and isinstance(node, yaml.ScalarNode):
            items = [node]
        else:
            self.fail(
                node,
                _say(
                    where, f"{what} must be a list (one '- entry' per line), not {_describe(node)}"
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
        self.fail(node, _say(where, f"{what} must be a number, not {_describe(node)}"))
        return None

    def integer(self, node: yaml.Node, where: str, what: str) -> int | None:
        if isinstance(node, yaml.ScalarNode) and not node.style and node.tag == _TAG_INT:
            try:
                return _NUMBERS.construct_yaml_int(node)
            except (ValueError, TypeError):
                pass
        self.fail(node, _say(where, f"{what} must be a whole number, not {_describe(node)}"))
        return None

    def date(self, node: yaml.Node, where: str, what: str) -> dt.date | None:
        text = self.text(node, where, what)
        if text is None:
            return None
        return self.parse_date(text, node, where, what)

    def parse_date(self, text: str, node: yaml.Node, where: str, what: str) -> dt.date | None:
        if not _DATE_RE.match(text):
            self.fail(node, _say(where, f"{what} {_q(text)} is not a date; write it as YYYY-MM-DD"))
            return None
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            self.fail(node, _say(where, f"{what} {_q(text)} is not a real date"))
            return None

    def timezone(self, node: yaml.Node, where: str, what: str) -> str | None:
        name = self.text(node, where, what)
        if name is None:
            return None
        if not _valid_timezone(name):
            guess = _suggest(name, available_timezones())
            hint = (
                f" (did you mean {_q(guess)}?)" if guess else " (use a name like Europe/Stockholm)"
            )
            self.fail(node, _say(where, f"unknown time zone {_q(name)}{hint}"))
            return None
        return name

    def link(self, node: yaml.Node, where: str, what: str) -> str | None:
        url = self.text(node, where, what)
        if url is None:
            return None
        if not _is_http_url(url):
            self.fail(
                node,
                _say(
                    where,
                    f"{what} {_q(url)} is not a web link; it must start with https:// "
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
            self.fail(node, _say(where, f"{what} has a '{{' or '}}' without its partner"))
            return None
        ok = True
        for name in sorted(names - set(allowed)):
            can = (
                f"it can use {_known(['{' + a + '}' for a in allowed])}"
                if allowed
                else ("it cannot use placeholders")
            )
            self.fail(node, _say(where, f"{what} uses unknown placeholder {{{name}}}; {can}"))
            ok = False
        for name in sorted(set(required) - names):
            self.fail(node, _say(where, f"{what} must contain {{{name}}}"))
            ok = False
        return text if ok else None


Pair = tuple[yaml.ScalarNode, yaml.Node]


# ---------------------------------------------------------------------------------------------
# Files


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


def _read_yaml(path: Path, display: str, problems: list[Problem]) -> yaml.Node | None:
    """Compose one file into nodes, or record why it cannot be read; empty files give None."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(
            Problem(Origin(display, 0, 0), f"is not UTF-8 text ({exc.reason}); save it as UTF-8")
        )
        return None
    except OSError as exc:
        problems.append(Problem(Origin(display, 0, 0), f"cannot be read: {exc.strerror or exc}"))
        return None
    return _compose(text, display, problems)


def _compose(text: str, display: str, problems: list[Problem]) -> yaml.Node | None:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        origin = Origin(display, mark.line + 1, mark.column + 1) if mark else Origin(display, 0, 0)
        problems.append(Problem(origin, _syntax_message(exc)))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(Origin(display, 0, 0), f"YAML error: {exc}"))
        return None
    finally:
        loader.dispose()
    if node is not None:
        _check_duplicate_keys(_Ctx(display, problems), node)
    return node


def _check_duplicate_keys(ctx: _Ctx, root: yaml.Node) -> None:
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
                if isinstance(knode, yaml.ScalarNode) and knode.tag != _TAG_MERGE:
                    key = str(knode.value)
                    if key in first:
                        line = ctx.at(first[key]).line
                        ctx.fail(
                            knode,
                            f"{_q(key)} is written twice here (first at line {line}); "
                            "YAML would silently keep only the last one, so merge or rename them",
                        )
                    else:
                        first[key] = knode
                stack.extend((knode, vnode))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in _YAML_SUFFIXES and not p.name.startswith((".", "_"))
    )


@dataclass(slots=True)
class _Entry:
    """One top-level key of a language, with the file it came from."""

    ctx: _Ctx
    key: yaml.ScalarNode
    value: yaml.Node


def _collect_language(path: Path, problems: list[Problem]) -> tuple[dict[str, _Entry], str, Origin]:
    """Top-level keys of a language file or folder; a key defined in two files is a problem."""
    display = _display(path)
    entries: dict[str, _Entry] = {}
    if path.is_dir():
        files = [f for f in _yaml_files(path) if f.name != DEPLOYMENT_FILE]
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
        name = _display(file)
        node = _read_yaml(file, name, problems)
        if node is not None:
            _add_entries(_Ctx(name, problems), node, _TOP_KEYS, entries)
    return entries, display, whole


def _add_entries(
    ctx: _Ctx, node: yaml.Node, keys: Collection[str], entries: dict[str, _Entry]
) -> None:
    """Add a file's top-level keys to ``entries``; a key some other file defined is a problem."""
    top = ctx.mapping(node, "", "the file", keys)
    for key, (knode, vnode) in (top or {}).items():
        if key in entries:
            first = entries[key]
            ctx.fail(
                knode,
                f"{_q(key)} is defined in both {first.ctx.file}:{first.ctx.at(first.key).line}"
                f" and {ctx.file}:{ctx.at(knode).line}; keep it in one file",
            )
        else:
            entries[key] = _Entry(ctx, knode, vnode)


# ---------------------------------------------------------------------------------------------
# Building one language


@dataclass(slots=True)
class _Ref:
    """A name that must exist once everything is read (a group or an intent)."""

    ctx: _Ctx
    node: yaml.Node
    name: str
    where: str


@dataclass(slots=True)
class _Builder:
    problems: list[Problem]
    group_refs: list[_Ref] = field(default_factory=list)
    intent_refs: list[_Ref] = field(default_factory=list)
    closed_refs: list[tuple[str, _Ref]] = field(default_factory=list)
    # names defined, even when one of them is broken, so references can still be checked
    known_groups: set[str] | None = None
    known_intents: set[str] | None = None

    def build(
        self,
        entries: Mapping[str, _Entry],
        source: str,
        whole: Origin,
        folder_language: str | None,
        *,
        partial_intents: Collection[str] | None = None,
    ) -> LanguageConfig | None:
        """Check every section and build the language; ``partial_intents`` checks a fragment.

        A fragment (the importer's routes file) has no intents of its own: it is checked against
        the given intent names, its group references are not checked (missing groups get
        created) and nothing is built.
        """
        before = len(self.problems)
        partial = partial_intents is not None

        def get(key: str) -> _Entry | None:
            return entries.get(key)

        for key in () if partial else _REQUIRED_TOP:
            if key not in entries:
                self.problems.append(Problem(whole, f"missing required top-level key {_q(key)}"))

        language = self._language(get("language"), whole, folder_language)
        primary = (language or "").split("-")[0]

        voice = _DEFAULT_VOICES.get(primary)
        if (e := get("voice")) is not None:
            voice = e.ctx.text(e.value, "", "'voice'")
        elif voice is None and language is not None:
            self.problems.append(
                Problem(
                    whole,
                    f"there is no built-in voice for {language}; set 'voice:' to a Twilio <Say> "
                    "voice such as Polly.Joanna",
                )
            )

        timezone: str | None = "UTC"
        timezone_given = False
        if (e := get("timezone")) is not None:
            timezone = e.ctx.timezone(e.value, "", "'timezone'")
            timezone_given = True

        max_turns: int | None = 4
        if (e := get("max_turns")) is not None:
            max_turns = e.ctx.integer(e.value, "", "'max_turns'")
            if max_turns is not None and not 1 <= max_turns <= _MAX_TURNS:
                e.ctx.fail(e.value, f"'max_turns' must be between 1 and {_MAX_TURNS}")
                max_turns = None

        numbers = self._numbers(get("numbers"))
        thresholds = self._thresholds(get("thresholds"))
        speech = self._speech(get("speech"))
        prompts = self._prompts(get("prompts"), primary, whole, language)
        words = self._words(get("words"), primary, whole, language)

        groups: dict[str, AgentGroup] | None = None
        if (e := get("groups")) is not None:
            groups = self._groups(e, timezone or "UTC", timezone_given)

        default_group: str | None = None
        if (e := get("default_group")) is not None:
            default_group = e.ctx.text(e.value, "", "'default_group'")
            if default_group is not None:
                self.group_refs.append(_Ref(e.ctx, e.value, default_group, "'default_group'"))

        intents: dict[str, Intent] | None = None
        if (e := get("intents")) is not None:
            sms_sent = prompts.sms_sent if prompts is not None else ""
            intents = self._intents(e, sms_sent)

        announcements: tuple[Announcement, ...] | None = ()
        if (e := get("announcements")) is not None:
            announcements = self._announcements(e)

        if partial_intents is not None:
            self.known_groups = None
            self.known_intents = set(partial_intents)
        self._check_refs()

        if len(self.problems) > before or partial:
            return None
        assert language is not None and voice is not None and timezone is not None
        assert max_turns is not None and thresholds is not None and prompts is not None
        assert words is not None and groups is not None and default_group is not None
        assert intents is not None and announcements is not None and speech is not None
        assert numbers is not None
        return LanguageConfig(
            language=language,
            voice=voice,
            timezone=timezone,
            prompts=prompts,
            words=words,
            thresholds=thresholds,
            groups=MappingProxyType(groups),
            default_group=default_group,
            announcements=announcements,
            intents=MappingProxyType(intents),
            source=source,
            max_turns=max_turns,
            speech=speech,
            numbers=tuple(n for n, _ in numbers),
            number_origins=tuple(o for _, o in numbers),
        )

    # -- top-level scalars and small sections

    def _language(self, e: _Entry | None, whole: Origin, folder: str | None) -> str | None:
        if e is None:
            if folder is not None and _LANGUAGE_RE.match(folder):
                return folder
            self.problems.append(
                Problem(whole, "missing required top-level key 'language' (e.g. language: en-US)")
            )
            return None
        code = e.ctx.text(e.value, "", "'language'")
        if code is None:
            return None
        if not _LANGUAGE_RE.match(code):
            guess = _suggest_language(code)
            hint = f"did you mean {_q(guess)}?" if guess else "write it like en-US or sv-SE"
            e.ctx.fail(e.value, f"{_q(code)} is not a language code ({hint})")
            return None
        if folder is not None and _LANGUAGE_RE.match(folder) and folder != code:
            e.ctx.fail(
                e.value,
                f"the folder is named {folder} but 'language' says {code}; make them the same",
            )
            return None
        return code

    def _numbers(self, e: _Entry | None) -> list[tuple[str, Origin]] | None:
        """The phone lines answered in this language, in E.164 form, each listed once."""
        if e is None:
            return []
        items = e.ctx.texts(e.value, "numbers", "'numbers'", single_ok=True)
        if items is None:
            return None
        out: dict[str, Origin] = {}
        ok = True
        for value, origin in items:
            number = normalize_phone(value)
            if number is None:
                e.ctx.fail(
                    origin,
                    f"numbers: {_q(value)} is not a phone number in international form; write "
                    "'+', the country code and the number (e.g. \"+46101234500\")",
                )
                ok = False
            elif number in out:
                first = out[number]
                e.ctx.fail(origin, f"numbers: {number} is already listed on line {first.line}")
                ok = False
            else:
                out[number] = origin
        return list(out.items()) if ok else None

    def _thresholds(self, e: _Entry | None) -> Thresholds | None:
        if e is None:
            return Thresholds()
        where = "thresholds"
        pairs = e.ctx.mapping(e.value, where, "'thresholds'", _THRESHOLD_KEYS, owner=e.key)
        if pairs is None:
            return None
        values: dict[str, float] = {}
        ok = True
        for key, (_, vnode) in pairs.items():
            value = e.ctx.number(vnode, where, _q(key))
            if value is None:
                ok = False
            elif not 0.0 <= value <= 1.0:
                e.ctx.fail(vnode, f"thresholds: {_q(key)} must be between 0 and 1, not {value:g}")
                ok = False
            else:
                values[key] = value
        result = Thresholds(**values)
        if result.reject > result.accept and ("reject" in values or "accept" in values):
            node = pairs.get("reject", pairs.get("accept", (e.key, e.value)))[1]
            e.ctx.fail(
                node,
                f"thresholds: 'reject' ({result.reject:g}) must not be above 'accept' "
                f"({result.accept:g}); nothing between them could ever be accepted",
            )
            return None
        return result if ok else None

    def _speech(self, e: _Entry | None) -> SpeechSettings | None:
        if e is None:
            return SpeechSettings()
        where = "speech"
        pairs = e.ctx.mapping(e.value, where, "'speech'", _SPEECH_KEYS, owner=e.key)
        if pairs is None:
            return None
        ok = True
        mode = SpeechMode.GRAMMAR
        if "mode" in pairs:
            vnode = pairs["mode"][1]
            text = e.ctx.text(vnode, where, "'mode'")
            if text is not None and text not in tuple(SpeechMode):
                choices = [m.value for m in SpeechMode]
                e.ctx.fail(vnode, f"speech: 'mode' is {_q(text)}; use {' or '.join(choices)}")
                text = None
            ok = ok and text is not None
            mode = SpeechMode(text) if text is not None else mode
        model: str | None = None
        if "model" in pairs:
            model = e.ctx.text(pairs["model"][1], where, "'model'")
            ok = ok and model is not None
            if model is not None:
                model = _model_path(model, e.ctx.file)
        seconds: dict[str, float] = {}
        for key in _SPEECH_SECONDS:
            if key not in pairs:
                continue
            vnode = pairs[key][1]
            value = e.ctx.number(vnode, where, _q(key))
            if value is not None and not 0.0 < value <= _MAX_SPEECH_S:
                e.ctx.fail(
                    vnode,
                    f"speech: {_q(key)} must be more than 0 and at most {_MAX_SPEECH_S:g} "
                    f"seconds, not {value:g}",
                )
                value = None
            if value is None:
                ok = False
            else:
                seconds[key] = value
        alternatives = SpeechSettings().max_alternatives  # on the class it is a slot descriptor
        if "max_alternatives" in pairs:
            vnode = pairs["max_alternatives"][1]
            n = e.ctx.integer(vnode, where, "'max_alternatives'")
            if n is not None and not 1 <= n <= _MAX_ALTERNATIVES:
                e.ctx.fail(
                    vnode, f"speech: 'max_alternatives' must be between 1 and {_MAX_ALTERNATIVES}"
                )
                n = None
            ok = ok and n is not None
            alternatives = n if n is not None else alternatives
        if not ok:
            return None
        return SpeechSettings(mode, model, max_alternatives=alternatives, **seconds)

    def _prompts(
        self, e: _Entry | None, primary: str, whole: Origin, language: str | None
    ) -> Prompts | None:
        values: dict[str, str] = dict(_DEFAULT_PROMPTS.get(primary, {}))
        ok = True
        if e is not None:
            pairs = e.ctx.mapping(e.value, "prompts", "'prompts'", _PROMPT_KEYS, owner=e.key)
            if pairs is None:
                return None
            for key, (_, vnode) in pairs.items():
                allowed, required = _PROMPT_FIELDS.get(key, (frozenset(), frozenset()))
                text = e.ctx.template(vnode, "prompts", _q(key), allowed, required)
                if text is None:
                    ok = False
                else:
                    values[key] = text
        missing = [k for k in _PROMPT_KEYS if k not in values]
        if missing and language is not None:
            origin = e.ctx.at(e.key) if e is not None else whole
            self.problems.append(
                Problem(
                    origin,
                    f"there are no built-in prompts for {language}; add "
                    f"{', '.join(missing)} under 'prompts:'",
                )
            )
            return None
        return Prompts(**values) if ok and not missing else None

    def _words(
        self, e: _Entry | None, primary: str, whole: Origin, language: str | None
    ) -> Words | None:
        values: dict[str, tuple[str, ...]] = dict(_DEFAULT_WORDS.get(primary, {}))
        ok = True
        if e is not None:
            pairs = e.ctx.mapping(e.value, "words", "'words'", _WORD_KEYS, owner=e.key)
            if pairs is None:
                return None
            for key, (_, vnode) in pairs.items():
                items = e.ctx.texts(vnode, "words", _q(key), single_ok=True)
                if items is None:
                    ok = False
                elif not items:
                    e.ctx.fail(vnode, f"words: {_q(key)} needs at least one word")
                    ok = False
                else:
                    values[key] = tuple(t for t, _ in items)
        missing = [k for k in _WORD_KEYS if k not in values]
        if missing and language is not None:
            origin = e.ctx.at(e.key) if e is not None else whole
            self.problems.append(
                Problem(
                    origin,
                    f"there are no built-in word lists for {language}; add "
                    f"{', '.join(missing)} under 'words:'",
                )
            )
            return None
        return Words(**values) if ok and not missing else None

    # -- groups

    def _groups(
        self, e: _Entry, timezone: str, timezone_given: bool
    ) -> dict[str, AgentGroup] | None:
        ctx = e.ctx
        pairs = ctx.mapping(e.value, "", "'groups'", None, owner=e.key)
        if pairs is None:
            return None
        if not pairs:
            ctx.fail(e.key, "'groups' must define at least one agent group")
            return None
        out: dict[str, AgentGroup] = {}
        ok = True
        for gid, (knode, vnode) in pairs.items():
            group = self._group(ctx, gid, knode, vnode, timezone, timezone_given)
            if group is None:
                ok = False
            else:
                out[gid] = group
        self.known_groups = set(pairs)
        return out if ok else None

    def _group(
        self,
        ctx: _Ctx,
        gid: str,
        knode: yaml.ScalarNode,
        vnode: yaml.Node,
        timezone: str,
        timezone_given: bool,
    ) -> AgentGroup | None:
        where = f"group {_q(gid)}"
        before = len(self.problems)
        if not _NAME_RE.match(gid):
            ctx.fail(knode, f"{where}: a group id may only use letters, digits, '_', '-' and '.'")
        pairs = ctx.mapping(vnode, where, "the group", _GROUP_KEYS, owner=knode)
        if pairs is None:
            return None
        name: str | None = gid.replace("_", " ")
        if "name" in pairs:
            name = ctx.text(pairs["name"][1], where, "'name'")

        given = [k for k in _DESTINATION_KEYS if k in pairs]
        destination: Destination | None = None
        if not given:
            ctx.fail(
                knode,
                f"{where} needs somewhere to send calls: one of number, sip, queue or workflow",
            )
        elif len(given) > 1:
            ctx.fail(
                pairs[given[1]][0],
                f"{where} has both {given[0]} and {given[1]}; give exactly one destination",
            )
        else:
            destination = self._destination(
                ctx, where, DestinationKind(given[0]), pairs[given[0]][1]
            )

        hours = OpeningHours(timezone=timezone)
        if "hours" in pairs:
            hk, hv = pairs["hours"]
            parsed = self._hours(ctx, where, hk, hv, timezone, timezone_given)
            if parsed is not None:
                hours = parsed

        when_closed: WhenClosed | None = None
        if "when_closed" in pairs:
            when_closed = self._when_closed(ctx, gid, where, *pairs["when_closed"])

        if len(self.problems) > before or name is None or destination is None:
            return None
        return AgentGroup(
            id=gid,
            name=name,
            destination=destination,
            hours=hours,
            when_closed=when_closed,
            origin=ctx.at(knode),
        )

    def _destination(
        self, ctx: _Ctx, where: str, kind: DestinationKind, node: yaml.Node
    ) -> Destination | None:
        value = ctx.text(node, where, _q(kind.value))
        if value is None:
            return None
        if kind is DestinationKind.NUMBER:
            compact = re.sub(r"[\s-]", "", value)
            if not _PHONE_RE.match(compact):
                ctx.fail(
                    node,
                    f"{where}: {_q(value)} is not a phone number in international form; write "
                    "'+', the country code and the number, 8 to 15 digits (e.g. \"+46101234567\")",
                )
                return None
            value = compact
        elif kind is DestinationKind.SIP:
            if not _SIP_RE.match(value):
                ctx.fail(
                    node,
                    f"{where}: {_q(value)} is not a SIP address; write it like "
                    "sip:support@pbx.example.org",
                )
                return None
        elif kind is DestinationKind.QUEUE:
            if len(value) > _QUEUE_MAX:
                ctx.fail(
                    node,
                    f"{where}: the queue name is {len(value)} characters long; Twilio allows at "
                    f"most {_QUEUE_MAX}",
                )
                return None
        elif not _WORKFLOW_RE.match(value):
            ctx.fail(
                node,
                f"{where}: {_q(value)} is not a TaskRouter workflow SID; it starts with WW "
                "followed by 32 hexadecimal characters (copy it from the Twilio console)",
            )
            return None
        return Destination(kind, value)

    def _hours(
        self,
        ctx: _Ctx,
        where: str,
        hk: yaml.ScalarNode,
        hv: yaml.Node,
        timezone: str,
        timezone_given: bool,
    ) -> OpeningHours | None:
        where = f"{where} hours"
        pairs = ctx.mapping(hv, where, "'hours'", None, owner=hk)
        if pairs is None:
            return None
        ok = True
        zone = timezone
        if "timezone" in pairs:
            tz = ctx.timezone(pairs["timezone"][1], where, "'timezone'")
            ok = ok and tz is not None
            zone = tz or timezone
        elif not timezone_given:
            ctx.fail(
                hk,
                f"{where}: opening hours need a time zone; set 'timezone:' at the top of the "
                "file (e.g. Europe/Stockholm) or inside 'hours:'",
            )
            ok = False

        closed: set[dt.date] = set()
        if "closed_days" in pairs:
            days = self._closed_days(ctx, where, pairs["closed_days"][1])
            if days is None:
                ok = False
            else:
                closed = days

        weekly: dict[str, tuple[TimeRange, ...]] = {}
        defined_at: dict[str, yaml.Node] = {}
        any_day_key = False
        for key, (knode, vnode) in pairs.items():
            if key in _HOURS_EXTRA_KEYS:
                continue
            any_day_key = True
            days_of_key = self._day_key(ctx, where, key, knode)
            ranges = self._ranges(ctx, where, key, vnode)
            if days_of_key is None or ranges is None:
                ok = False
                continue
            for day in days_of_key:
                if day in defined_at:
                    ctx.fail(
                        knode,
                        f"{where}: {day} is already given on line {ctx.at(defined_at[day]).line}",
                    )
                    ok = False
                else:
                    defined_at[day] = knode
                    weekly[day] = ranges
        if not ok:
            return None
        if not any_day_key:
            whole_day = (TimeRange(dt.time(0, 0), dt.time.max),)
            weekly = dict.fromkeys(WEEKDAYS, whole_day)
        return OpeningHours(
            timezone=zone,
            weekly=MappingProxyType({d: weekly[d] for d in WEEKDAYS if weekly.get(d)}),
            closed_days=frozenset(closed),
            always_open=False,
        )

    def _day_key(self, ctx: _Ctx, where: str, key: str, knode: yaml.Node) -> list[str] | None:
        days: list[str] = []
        for part in key.lower().replace(" ", "").split(","):
            ends = part.split("-")
            if len(ends) > 2 or not all(end in WEEKDAYS for end in ends):
                guess = "-".join(end[:3] for end in ends)
                allowed = [*WEEKDAYS, "mon-fri", *_HOURS_EXTRA_KEYS]
                hint = (
                    f" (did you mean {_q(guess)}?)"
                    if all(end[:3] in WEEKDAYS for end in ends) and len(ends) <= 2
                    else _did_you_mean(key, allowed)
                )
                ctx.fail(
                    knode,
                    f"{where}: {_q(key)} is not a day; write days as mon, tue, wed, thu, fri, "
                    f"sat, sun or a range like mon-fri{hint}",
                )
                return None
            first = WEEKDAYS.index(ends[0])
            last = WEEKDAYS.index(ends[-1])
            span = (last - first) % 7
            days.extend(WEEKDAYS[(first + i) % 7] for i in range(span + 1))
        return days

    def _ranges(
        self, ctx: _Ctx, where: str, key: str, node: yaml.Node
    ) -> tuple[TimeRange, ...] | None:
        """Opening ranges for one day key: "closed", "08:00-17:00" or a list of such ranges."""
        if isinstance(node, yaml.SequenceNode):
            items = [(n, ctx.text(n, where, f"a range of {_q(key)}")) for n in node.value]
        elif isinstance(node, yaml.ScalarNode) and not _is_null(node):
            raw = str(node.value).strip()
            items = [(node, part.strip()) for part in raw.split(",")]
        else:
            ctx.fail(
                node,
                f'{where}: {_q(key)} must be opening times like "08:00-17:00" or "closed", '
                f"not {_describe(node)}",
            )
            return None
        if len(items) == 1 and items[0][1] is not None and items[0][1].lower() == "closed":
            return ()
        ranges: list[TimeRange] = []
        for item_node, text in items:
            if text is None:
                return None
            parsed = self._range(ctx, where, key, item_node, text)
            if parsed is None:
                return None
            ranges.append(parsed)
        ranges.sort(key=lambda r: r.start)
        for a, b in itertools.pairwise(ranges):
            if b.start < a.end:
                ctx.fail(node, f"{where}: the opening times of {_q(key)} overlap")
                return None
        return tuple(ranges)

    def _range(
        self, ctx: _Ctx, where: str, key: str, node: yaml.Node, text: str
    ) -> TimeRange | None:
        match = _TIME_RANGE_RE.match(text)
        bad = f"{where}: {_q(text)} for {_q(key)} "
        if match is None:
            hint = " (write 'closed' on its own)" if text.lower() == "closed" else ""
            ctx.fail(node, bad + f'is not a time range like "08:00-17:00"{hint}')
            return None
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
            ctx.fail(node, bad + "has a time that does not exist (use 00:00 to 24:00)")
            return None
        start = dt.time(h1, m1)
        end = dt.time.max if h2 == 24 else dt.time(h2, m2)
        if end <= start:
            ctx.fail(
                node,
                bad + "ends before it starts; for hours past midnight give the next day its own "
                'range (e.g. fri: "20:00-24:00" and sat: "00:00-02:00")',
            )
            return None
        return TimeRange(start, end)

    def _closed_days(self, ctx: _Ctx, where: str, node: yaml.Node) -> set[dt.date] | None:
        items = ctx.texts(node, where, "'closed_days'", single_ok=True)
        if items is None:
            return None
        nodes = list(node.value) if isinstance(node, yaml.SequenceNode) else [node]
        days: set[dt.date] = set()
        ok = True
        for (text, _), item in zip(items, nodes, strict=False):
            if ".." in text:
                first_text, _, last_text = text.partition("..")
                first = ctx.parse_date(first_text.strip(), item, where, "the closed window start")
                last = ctx.parse_date(last_text.strip(), item, where, "the closed window end")
                if first is None or last is None:
                    ok = False
                elif last < first:
                    ctx.fail(item, f"{where}: the closed window {_q(text)} ends before it starts")
                    ok = False
                elif (last - first).days >= _MAX_CLOSED_WINDOW_DAYS:
                    ctx.fail(item, f"{where}: the closed window {_q(text)} is longer than a year")
                    ok = False
                else:
                    days.update(
                        first + dt.timedelta(days=i) for i in range((last - first).days + 1)
                    )
            else:
                day = ctx.parse_date(text, item, where, "the closed day")
                if day is None:
                    ok = False
                else:
                    days.add(day)
        return days if ok else None

    def _when_closed(
        self, ctx: _Ctx, gid: str, where: str, knode: yaml.ScalarNode, vnode: yaml.Node
    ) -> WhenClosed | None:
        where = f"{where} when_closed"
        pairs = ctx.mapping(vnode, where, "'when_closed'", _WHEN_CLOSED_KEYS, ["say"], owner=knode)
        if pairs is None:
            return None
        say = ctx.text(pairs["say"][1], where, "'say'") if "say" in pairs else None
        without = pairs.get("say_without_sms")
        say_without_sms = ctx.text(without[1], where, "'say_without_sms'") if without else None
        sms: str | None = None
        if "sms" in pairs:
            sms = ctx.text(pairs["sms"][1], where, "'sms'")
            for bad in _bad_links(sms or ""):
                ctx.fail(pairs["sms"][1], f"{where}: {_q(bad)} in 'sms' is not an http(s) link")
        transfer_to: str | None = None
        if "transfer_to" in pairs:
            tnode = pairs["transfer_to"][1]
            transfer_to = ctx.text(tnode, where, "'transfer_to'")
            if transfer_to is not None:
                ref = _Ref(ctx, tnode, transfer_to, f"{where} 'transfer_to'")
                self.group_refs.append(ref)
                self.closed_refs.append((gid, ref))
        if say is None:
            return None
        return WhenClosed(
            say=say, sms=sms, transfer_to=transfer_to, say_without_sms=say_without_sms
        )

    # -- intents

    def _intents(self, e: _Entry, sms_sent: str) -> dict[str, Intent] | None:
        ctx = e.ctx
        pairs = ctx.mapping(e.value, "", "'intents'", None, owner=e.key)
        if pairs is None:
            return None
        if not pairs:
            ctx.fail(e.key, "'intents' must define at least one intent")
            return None
        out: dict[str, Intent] = {}
        ok = True
        for name, (knode, vnode) in pairs.items():
            intent = self._intent(ctx, name, knode, vnode, sms_sent)
            if intent is None:
                ok = False
            else:
                out[name] = intent
        self.known_intents = set(pairs)
        return out if ok else None

    def _intent(
        self, ctx: _Ctx, name: str, knode: yaml.ScalarNode, vnode: yaml.Node, sms_sent: str
    ) -> Intent | None:
        where = f"intent {_q(name)}"
        before = len(self.problems)
        if not _NAME_RE.match(name):
            ctx.fail(knode, f"{where}: an intent name may only use letters, digits, '_', '-', '.'")
        pairs = ctx.mapping(
            vnode,
            where,
            "the intent",
            _INTENT_KEYS,
            owner=knode,
            key_hint="; an intent's action is one of transfer, announce or sms",
        )
        if pairs is None:
            return None
        label: str | None = name.replace("_", " ")
        if "label" in pairs:
            label = ctx.text(pairs["label"][1], where, "'label'")
        phrases: list[tuple[str, Origin]] = []
        examples: list[tuple[str, Origin]] = []
        for key, target in (("phrases", phrases), ("examples", examples)):
            if key in pairs:
                items = ctx.texts(pairs[key][1], where, _q(key))
                target.extend(items or [])
        if not phrases and not examples and len(self.problems) == before:
            ctx.fail(
                knode,
                f"{where} has no phrases and no examples, so callers could never reach it; "
                "add a few things callers say under 'phrases:'",
            )
        actions = [k for k in _ACTION_KEYS if k in pairs]
        action: IntentAction | None = None
        if not actions:
            ctx.fail(
                knode,
                f"{where} has no action; add one of 'transfer: <group>', 'announce: ...' or "
                "'sms: ...'",
            )
        elif len(actions) > 1:
            ctx.fail(
                pairs[actions[1]][0],
                f"{where} has both {actions[0]} and {actions[1]}; give exactly one action",
            )
        else:
            action = self._action(ctx, where, ActionKind(actions[0]), *pairs[actions[0]], sms_sent)
        if len(self.problems) > before or label is None or action is None:
            return None
        return Intent(
            name=name,
            label=label,
            phrases=tuple(t for t, _ in phrases),
            examples=tuple(t for t, _ in examples),
            action=action,
            origin=ctx.at(knode),
            phrase_origins=tuple(o for _, o in phrases),
            example_origins=tuple(o for _, o in examples),
            label_given="label" in pairs,
        )

    def _action(
        self,
        ctx: _Ctx,
        where: str,
        kind: ActionKind,
        knode: yaml.ScalarNode,
        vnode: yaml.Node,
        sms_sent: str,
    ) -> IntentAction | None:
        if kind is ActionKind.TRANSFER:
            if isinstance(vnode, yaml.ScalarNode) and not _is_null(vnode):
                group = ctx.text(vnode, where, "'transfer'")
                if group is None:
                    return None
                self.group_refs.append(_Ref(ctx, vnode, group, where))
                return IntentAction(ActionKind.TRANSFER, group=group)
            ctx.fail(
                vnode,
                f"{where}: 'transfer' must name an agent group (transfer: billing), not "
                f"{_describe(vnode)}",
            )
            return None
        if kind is ActionKind.ANNOUNCE:
            if isinstance(vnode, yaml.ScalarNode) and not _is_null(vnode):
                text = ctx.template(vnode, where, "'announce'")
                return None if text is None else IntentAction(ActionKind.ANNOUNCE, text=text)
            pairs = ctx.mapping(vnode, where, "'announce'", _ANNOUNCE_KEYS, owner=knode)
            if pairs is None:
                return None
            text, audio = self._text_or_audio(ctx, where, "'announce'", knode, pairs)
            if text is None and audio is None:
                return None
            return IntentAction(ActionKind.ANNOUNCE, text=text, audio_url=audio)
        return self._sms(ctx, where, knode, vnode, sms_sent)

    def _text_or_audio(
        self, ctx: _Ctx, where: str, what: str, owner: yaml.Node, pairs: dict[str, Pair]
    ) -> tuple[str | None, str | None]:
        text = audio = None
        if "text" in pairs:
            text = ctx.template(pairs["text"][1], where, "'text'")
        if "audio_url" in pairs:
            audio = ctx.link(pairs["audio_url"][1], where, "'audio_url'")
        if "text" not in pairs and "audio_url" not in pairs:
            ctx.fail(owner, f"{where}: {what} needs 'text' (spoken) or 'audio_url' (played)")
        return text, audio

    def _sms(
        self, ctx: _Ctx, where: str, knode: yaml.ScalarNode, vnode: yaml.Node, sms_sent: str
    ) -> IntentAction | None:
        before = len(self.problems)
        pairs = ctx.mapping(vnode, where, "'sms'", _SMS_KEYS, ["link"], owner=knode)
        if pairs is None or "link" not in pairs:
            return None
        link = ctx.link(pairs["link"][1], where, "the sms 'link'")
        say = ctx.template(pairs["say"][1], where, "'say'") if "say" in pairs else None
        body: str | None = None
        if "text" in pairs:
            tnode = pairs["text"][1]
            body = ctx.template(tnode, where, "the sms 'text'", allowed=("link",))
            if body is not None and link is not None and "{link}" not in body and link not in body:
                ctx.fail(
                    tnode,
                    f"{where}: the sms 'text' does not contain {{link}}, so the caller would not "
                    "get the link",
                )
        fallback = SmsFallback.TRANSFER
        if "fallback" in pairs:
            fnode = pairs["fallback"][1]
            value = ctx.text(fnode, where, "'fallback'")
            choices = [f.value for f in SmsFallback]
            if value is not None and value not in choices:
                ctx.fail(
                    fnode,
                    f"{where}: 'fallback' must be read or transfer, not {_q(value)}"
                    f"{_did_you_mean(value, choices)}",
                )
            elif value is not None:
                fallback = SmsFallback(value)
        answer = ctx.text(pairs["answer"][1], where, "'answer'") if "answer" in pairs else None
        if fallback is SmsFallback.READ and "answer" not in pairs:
            ctx.fail(
                pairs["fallback"][1],
                f"{where}: 'fallback: read' needs 'answer:', the text read aloud when no sms "
                "can be sent",
            )
        group: str | None = None
        if "group" in pairs:
            gnode = pairs["group"][1]
            if fallback is SmsFallback.READ:
                ctx.fail(
                    pairs["group"][0],
                    f"{where}: 'group' is only used with 'fallback: transfer'; remove it or "
                    "change the fallback",
                )
            else:
                group = ctx.text(gnode, where, "'group'")
                if group is not None:
                    self.group_refs.append(_Ref(ctx, gnode, group, where))
        if len(self.problems) > before or link is None:
            return None
        return IntentAction(
            ActionKind.SMS,
            text=say,
            link=link,
            sms_text=body if body is not None else f"{say or sms_sent} {{link}}",
            fallback=fallback,
            answer=answer,
            group=group,
        )

    # -- announcements

    def _announcements(self, e: _Entry) -> tuple[Announcement, ...] | None:
        ctx = e.ctx
        node = e.value
        if _is_null(node):
            return ()
        if not isinstance(node, yaml.SequenceNode):
            ctx.fail(
                node,
                f"'announcements' must be a list (each starting with '- id: ...'), not "
                f"{_describe(node)}",
            )
            return None
        out: list[Announcement] = []
        ids: dict[str, Origin] = {}
        ok = True
        for i, item in enumerate(node.value, 1):
            ann = self._announcement(ctx, i, item)
            if ann is None:
                ok = False
                continue
            if ann.id in ids:
                ctx.fail(
                    item,
                    f"announcement {_q(ann.id)} is defined twice (first on line "
                    f"{ids[ann.id].line}); give each announcement its own id",
                )
                ok = False
            ids.setdefault(ann.id, ann.origin)
            out.append(ann)
        return tuple(out) if ok else None

    def _announcement(self, ctx: _Ctx, index: int, node: yaml.Node) -> Announcement | None:
        before = len(self.problems)
        where = f"announcement {index}"
        pairs = ctx.mapping(node, where, "an announcement", _ANNOUNCEMENT_KEYS, ["id"])
        if pairs is None:
            return None
        ann_id = ctx.text(pairs["id"][1], where, "'id'") if "id" in pairs else None
        if ann_id is not None:
            where = f"announcement {_q(ann_id)}"
        text, audio = self._text_or_audio(ctx, where, "an announcement", node, pairs)
        start = ctx.date(pairs["from"][1], where, "'from'") if "from" in pairs else None
        end = ctx.date(pairs["until"][1], where, "'until'") if "until" in pairs else None
        if start is not None and end is not None and end < start:
            ctx.fail(
                pairs["until"][1],
                f"{where}: 'until' ({end}) is before 'from' ({start}); it would never play",
            )
        after: list[str] = []
        if "after_intents" in pairs:
            anode = pairs["after_intents"][1]
            items = ctx.texts(anode, where, "'after_intents'", single_ok=True)
            nodes = list(anode.value) if isinstance(anode, yaml.SequenceNode) else [anode]
            for (name, _), item in zip(items or [], nodes, strict=False):
                after.append(name)
                self.intent_refs.append(_Ref(ctx, item, name, where))
        if len(self.problems) > before or ann_id is None:
            return None
        return Announcement(
            id=ann_id,
            text=text,
            audio_url=audio,
            start=start,
            end=end,
            after_intents=tuple(after),
            origin=ctx.at(node),
        )

    # -- cross references

    def _check_refs(self) -> None:
        known = self.known_groups
        if known is not None:
            for ref in self.group_refs:
                if ref.name not in known:
                    hint = _did_you_mean(ref.name, known, noun="groups")
                    ref.ctx.fail(
                        ref.node, _say(ref.where, f"unknown agent group {_q(ref.name)}{hint}")
                    )
            follow = {gid: ref.name for gid, ref in self.closed_refs}
            for gid, ref in self.closed_refs:
                seen = [gid]
                nxt = follow.get(gid)
                while nxt is not None and nxt not in seen:
                    seen.append(nxt)
                    nxt = follow.get(nxt)
                if nxt == gid:
                    loop = " → ".join([*seen, gid])
                    ref.ctx.fail(
                        ref.node,
                        _say(ref.where, f"closed groups send callers round in a circle ({loop})"),
                    )
        names = self.known_intents
        if names is not None:
            for ref in self.intent_refs:
                if ref.name not in names:
                    hint = _did_you_mean(ref.name, names, noun="intents")
                    ref.ctx.fail(ref.node, _say(ref.where, f"unknown intent {_q(ref.name)}{hint}"))


# ---------------------------------------------------------------------------------------------
# Public API


def load_language(path: Path) -> LanguageConfig:
    """Load one language from a YAML file or a folder whose YAML files are merged."""
    problems: list[Problem] = []
    config = _load_language(Path(path), problems)
    if config is not None:
        _check_numbers([config], problems)
    if config is None or problems:
        raise ConfigError(problems)
    return config


def load_language_text(text: str, name: str = "<text>") -> LanguageConfig:
    """Load one language from YAML text; ``name`` stands for the file in problems."""
    problems: list[Problem] = []
    entries: dict[str, _Entry] = {}
    node = _compose(text, name, problems)
    if node is not None:
        _add_entries(_Ctx(name, problems), node, _TOP_KEYS, entries)
    config = _Builder(problems).build(entries, name, Origin(name, 1, 1), None) if entries else None
    if config is not None:
        _check_numbers([config], problems)
    if config is None or problems:
        if not problems:
            problems.append(Problem(Origin(name, 1, 1), "the text is empty"))
        raise ConfigError(problems)
    return config


def _load_language(path: Path, problems: list[Problem]) -> LanguageConfig | None:
    entries, display, whole = _collect_language(path, problems)
    if not entries and problems:
        return None
    folder_language = path.name if path.is_dir() else None
    return _Builder(problems).build(entries, display, whole, folder_language)


def load_deployment(path: Path | None = None) -> Deployment:
    """Load every language of a deployment folder, one language folder, or one file."""
    path = default_config_path() if path is None else Path(path)
    problems: list[Problem] = []
    languages: dict[str, LanguageConfig] = {}
    default: str | None = None
    if path.is_dir() and _is_deployment_folder(path):
        display = _display(path)
        folders = sorted(
            p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        )
        for folder in folders:
            if not _yaml_files(folder):
                continue
            config = _load_language(folder, problems)
            if config is None:
                continue
            if config.language in languages:
                problems.append(
                    Problem(
                        Origin(_display(folder), 0, 0),
                        f"language {config.language} is also defined in "
                        f"{languages[config.language].source}",
                    )
                )
                continue
            languages[config.language] = config
        for stray in _yaml_files(path):
            if stray.name != DEPLOYMENT_FILE:
                problems.append(
                    Problem(
                        Origin(_display(stray), 0, 0),
                        "this file is outside any language folder and is not read; move it into "
                        "a folder such as en-US/",
                    )
                )
        default = _deployment_default(path / DEPLOYMENT_FILE, languages, problems)
        _check_numbers(languages.values(), problems)
        if not languages and not problems:
            problems.append(Problem(Origin(display, 0, 0), "no language folders found"))
    else:
        config = _load_language(path, problems)
        if config is not None:
            languages[config.language] = config
            _check_numbers([config], problems)
    if problems or not languages:
        raise ConfigError(problems)
    if default is None:
        default = "en-US" if "en-US" in languages else sorted(languages)[0]
    return Deployment(languages=MappingProxyType(languages), default_language=default)


def _check_numbers(languages: Iterable[LanguageConfig], problems: list[Problem]) -> None:
    """A called number picks the call's language, so it may answer in one language only; and a
    group dialling one of the robot's own lines would hand its callers back to the robot."""
    languages = list(languages)
    owner: dict[str, tuple[str, Origin]] = {}
    for config in languages:
        for number, origin in zip(config.numbers, config.number_origins, strict=True):
            if number in owner:
                language, first = owner[number]
                problems.append(
                    Problem(
                        origin,
                        f"numbers: {number} already answers in {language} ({_place(first)}); a "
                        "number can answer in one language only",
                    )
                )
            else:
                owner[number] = (config.language, origin)
    for config in languages:
        for group in config.groups.values():
            dest = group.destination
            if dest.kind is DestinationKind.NUMBER and dest.value in owner:
                language, line = owner[dest.value]
                problems.append(
                    Problem(
                        group.origin,
                        f"group '{group.id}': {dest.value} is a line this voicebot answers in "
                        f"{language} ({_place(line)}); callers put through to it would reach the "
                        "robot again. Give the agents' own number or queue",
                    )
                )


def _is_deployment_folder(path: Path) -> bool:
    return any(
        p.is_dir() and not p.name.startswith((".", "_")) and _yaml_files(p) for p in path.iterdir()
    )


def _deployment_default(
    file: Path, languages: Mapping[str, LanguageConfig], problems: list[Problem]
) -> str | None:
    if not file.is_file():
        return None
    display = _display(file)
    node = _read_yaml(file, display, problems)
    if node is None:
        return None
    ctx = _Ctx(display, problems)
    pairs = ctx.mapping(node, "", "the file", _DEPLOYMENT_KEYS)
    if not pairs or "default_language" not in pairs:
        return None
    vnode = pairs["default_language"][1]
    code = ctx.text(vnode, "", "'default_language'")
    if code is None:
        return None
    if code not in languages:
        if languages:
            ctx.fail(
                vnode,
                f"default_language {code} has no language folder"
                f"{_did_you_mean(code, list(languages), noun='languages')}",
            )
        return None
    return code


def _has_language_folders(path: Path) -> bool:
    try:
        return path.is_dir() and _is_deployment_folder(path)
    except OSError:
        return False


def default_config_path() -> Path:
    """The embedded example deployment: the installed ``voicebot.defaults`` or the repo's."""
    try:
        root = Path(str(importlib.resources.files("voicebot.defaults")))
        if _has_language_folders(root):
            return root
    except (ModuleNotFoundError, TypeError, ValueError):
        pass
    # A package without __init__.py resolves to a multiplexed path; ask its import spec instead.
    try:
        spec = importlib.util.find_spec("voicebot.defaults")
    except (ModuleNotFoundError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if _has_language_folders(Path(location)):
            return Path(location)
    return Path(__file__).resolve().parents[2] / "grammars"


class ConfigHolder:
    """Serves the current deployment and swaps in a reloaded one only when it loads cleanly.

    A call keeps the ``LanguageConfig`` it started with (the objects are immutable), so a reload
    never changes a call in progress; a broken edit leaves the last good config serving.
    """

    def __init__(self, path: Path | None = None, *, initial: Deployment | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._current = initial if initial is not None else load_deployment(path)
        self.last_error: ConfigError | None = None

    @property
    def current(self) -> Deployment:
        return self._current

    def language(self, code: str | None = None) -> LanguageConfig:
        return self._current.language(code)

    def reload(self) -> ConfigError | None:
        with self._lock:
            try:
                fresh = load_deployment(self.path)
            except ConfigError as error:
                self.last_error = error
                log.error(
                    "configuration reload failed; still serving the previous configuration:\n%s",
                    error,
                )
                return error
            self._current = fresh
            self.last_error = None
            log.info("configuration reloaded: %s", ", ".join(fresh.languages))
            return None
