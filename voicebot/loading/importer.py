"""Turn a labelled call history (``text,intent`` CSV) and a routes file into an intents YAML.

Ops rarely start from nothing: there is usually a spreadsheet of what callers said and where the
call should have gone. The importer writes that as examples under each intent, with the action
from the routes file, so the result loads at once and can be edited by hand afterwards.
"""

from __future__ import annotations

import random
import re
import sys
import textwrap
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from voicebot.core.config import ActionKind, Origin
from voicebot.core.text import normalize
from voicebot.loading.actions import read_action
from voicebot.loading.builder import Builder
from voicebot.loading.deployment import load_language_text
from voicebot.loading.files import Entry, add_entries, display_path, read_yaml
from voicebot.loading.keys import ACTION_KEYS, NAME_RE, TOP_KEYS
from voicebot.loading.problems import ConfigError, Problem
from voicebot.loading.reader import Reader, describe, did_you_mean, is_null, quote
from voicebot.loading.refs import Ref
from voicebot.matching.labelled import OOS, LabelledFileError, read_rows

__all__ = ["OOS", "import_labelled"]

DEFAULT_LANGUAGE = "en-US"
_ROUTE_KEYS = (*ACTION_KEYS, "label")
_STAR = "*"
# Sections in the order a reader expects them; routes files may hold any of them but intents.
_ORDER = tuple(k for k in TOP_KEYS if k != "intents")


@dataclass(slots=True)
class _Intent:
    examples: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Tally:
    """What happened to the CSV's rows, for the generated file's header."""

    rows: int = 0
    oos: int = 0
    repeats: int = 0
    renamed: dict[str, str] = field(default_factory=dict)  # CSV label -> intent name
    first_line: dict[str, int] = field(default_factory=dict)  # renamed label -> its first row


def _print_notice(message: str) -> None:
    print(message, file=sys.stderr)


def import_labelled(
    csv_path: Path,
    routes_path: Path,
    max_examples: int | None = None,
    seed: int = 0,
    notice: Callable[[str], None] = _print_notice,
) -> str:
    """Intents YAML text built from a labelled CSV and a routes file; ConfigError lists problems.

    Examples keep their CSV order; repeats (after normalisation) are dropped; with
    ``max_examples`` each intent keeps a sample drawn with ``seed`` and its own name, so adding
    one intent does not reshuffle the others. The same inputs always give the same bytes.
    Labels that are not usable intent names (``refund?``) get one (``refund``); the mapping goes
    to ``notice`` (stderr by default) and into the file's header, and the routes file may use
    either spelling.
    """
    if max_examples is not None and max_examples < 1:
        raise ValueError("max_examples must be at least 1")
    csv_path, routes_path = Path(csv_path), Path(routes_path)
    problems: list[Problem] = []
    intents, tally = _read_csv(csv_path, problems)
    routes = _Routes.read(routes_path, problems)
    if problems or routes is None:
        raise ConfigError(problems)
    _check_star_label(routes, tally, csv_path, problems)
    if problems:
        raise ConfigError(problems)
    # a route may name a label as the CSV spells it; "*" is always the catch-all, never a label
    routes.routes = {
        k if k == _STAR else tally.renamed.get(k, k): v for k, v in routes.routes.items()
    }
    if tally.renamed:
        notice(
            f"{csv_path.name}: labels that are not usable intent names were renamed: "
            + ", ".join(f"{quote(old)} -> {new}" for old, new in tally.renamed.items())
        )
    data = routes.assemble(intents, csv_path, problems)
    if problems or data is None:
        raise ConfigError(problems)
    notes: dict[str, str] = {}
    for name, body in data["intents"].items():
        found = body["examples"]
        body["examples"] = _sample(found, max_examples, seed, name)
        if len(body["examples"]) < len(found):
            notes[name] = (
                f"{len(body['examples'])} of {len(found)} examples, sampled with seed {seed}"
            )
    text = _header(csv_path, routes_path, data, tally, max_examples, seed) + _dump(data, notes)
    # The promise is a file that loads; check it here so a bug shows up as an error, not a file.
    load_language_text(text, f"<intents generated from {routes_path.name}>")
    return text


def _check_star_label(
    routes: _Routes, tally: _Tally, csv_path: Path, problems: list[Problem]
) -> None:
    """A CSV label ``*`` is renamed like any label that is no name, but in the routes file
    ``"*"`` means every other intent: which one it is meant for cannot be guessed, so say so
    (it used to become the renamed label's route, silently leaving the rest unrouted)."""
    renamed = tally.renamed.get(_STAR)
    if renamed is not None and _STAR in routes.routes and renamed not in routes.routes:
        knode, _ = routes.routes[_STAR]
        routes.ctx.fail(
            knode,
            f'routes: "{_STAR}" is the catch-all for every other intent, but {csv_path.name} '
            f"line {tally.first_line[_STAR]} also has rows labelled '{_STAR}' (imported as "
            f"{renamed!r}); rename that label in the CSV, or route it by the name {renamed!r}",
        )


def _header(
    csv_path: Path,
    routes_path: Path,
    data: Mapping[str, Any],
    tally: _Tally,
    max_examples: int | None,
    seed: int,
) -> str:
    """Comment lines saying how the file was made and what to do next; no dates or paths, so the
    same inputs give the same bytes wherever they are run."""
    command = f"voicebot import {csv_path.name} --routes {routes_path.name}"
    if max_examples is not None:
        command += f" --max-examples {max_examples} --seed {seed}"
    total = sum(len(i["examples"]) for i in data["intents"].values())
    dropped = [f"{_count(tally.oos, f'{OOS!r} row')} skipped"] if tally.oos else []
    if tally.repeats:
        dropped.append(f"{_count(tally.repeats, 'repeated text')} dropped")
    cap = f" (at most {max_examples} per intent)" if max_examples is not None else ""
    renamed = "".join(f"#   {quote(old)} -> {new}\n" for old, new in tally.renamed.items())
    if renamed:
        renamed = "# CSV labels renamed to usable intent names:\n" + renamed
    return (
        "# Generated by voicebot import; importing again overwrites this file:\n"
        f"#   {command}\n"
        f"# {tally.rows} labelled rows"
        + (f": {', '.join(dropped)}" if dropped else "")
        + f".\n# Result: {len(data['intents'])} intents with {total} examples{cap}.\n"
        + renamed
        + "# Next: give each intent a 'label:' callers understand and a few 'phrases:', then run\n"
        "#   voicebot check FILE\n"
        "# Every key is described in docs/configuration.md.\n\n"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# ---------------------------------------------------------------------------------------------
# CSV


def _read_csv(path: Path, problems: list[Problem]) -> tuple[dict[str, _Intent], _Tally]:
    """Examples per intent in file order; every bad row is reported with its line."""
    display = display_path(path)
    intents: dict[str, _Intent] = {}
    tally = _Tally()
    try:
        rows = read_rows(path)
    except LabelledFileError as exc:
        problems.extend(Problem(Origin(display, line, 0), msg) for line, msg in exc.problems)
        rows = exc.rows  # check them too, so ops fix every row in one round
    taken = {row.intent for row in rows if NAME_RE.match(row.intent)}
    for row in rows:
        tally.rows += 1
        if row.intent == OOS:
            tally.oos += 1
            continue
        where = Origin(display, row.line, 0)
        name = row.intent
        if not NAME_RE.match(name):
            if name not in tally.renamed:
                tally.renamed[name] = _usable_name(name, taken)
                tally.first_line[name] = row.line
                taken.add(tally.renamed[name])
            name = tally.renamed[name]
        norm = normalize(row.text)
        if not norm:
            problems.append(Problem(where, f"the text {quote(row.text)} has no words"))
            continue
        entry = intents.setdefault(name, _Intent())
        if norm in entry.seen:
            tally.repeats += 1
        else:
            entry.seen.add(norm)
            entry.examples.append(row.text)
    if not intents and not problems:
        problems.append(Problem(Origin(display, 0, 0), f"has no rows other than {OOS!r} ones"))
    return intents, tally


def _usable_name(label: str, taken: set[str]) -> str:
    """``refund?`` -> ``refund``, ``Lost card`` -> ``Lost_card``: runs of characters a name may
    not hold become one '_'; a name already taken gets ``_2``, ``_3``..."""
    text = unicodedata.normalize("NFC", label)
    base = re.sub(r"[^\w.-]+", "_", text).strip("_.-") or "intent"
    name, n = base, 1
    while name in taken or name == OOS:
        n += 1
        name = f"{base}_{n}"
    return name


def _sample(examples: list[str], limit: int | None, seed: int, intent: str) -> list[str]:
    if limit is None or len(examples) <= limit:
        return examples
    rng = random.Random(f"{seed}:{intent}")  # str seeds hash with SHA-512: stable across runs
    keep = sorted(rng.sample(range(len(examples)), limit))
    return [examples[i] for i in keep]


# ---------------------------------------------------------------------------------------------
# Routes


@dataclass(slots=True)
class _Routes:
    ctx: Reader
    entries: dict[str, Entry]
    routes: dict[str, tuple[yaml.ScalarNode, yaml.Node]]
    owner: Origin

    @classmethod
    def read(cls, path: Path, problems: list[Problem]) -> _Routes | None:
        display = display_path(path)
        node = read_yaml(path, display, problems)
        ctx = Reader(display, problems)
        if node is None:
            if not problems:
                problems.append(Problem(Origin(display, 0, 0), "is empty; it needs 'routes:'"))
            return None
        entries: dict[str, Entry] = {}
        add_entries(ctx, node, (*_ORDER, "routes"), entries)
        if "routes" not in entries:
            problems.append(Problem(ctx.at(node), "missing 'routes:' (which intent goes where)"))
            return None
        route = entries.pop("routes")
        pairs = ctx.mapping(route.value, "", "'routes'", None, owner=route.key)
        if pairs is None:
            return None
        return cls(ctx, entries, pairs, ctx.at(route.key))

    def assemble(
        self, intents: Mapping[str, _Intent], csv_path: Path, problems: list[Problem]
    ) -> dict[str, Any] | None:
        """The language as plain data; problems point at the routes file or the CSV."""
        ctx = self.ctx
        before = len(problems)
        builder = Builder(problems)
        language = None if "language" in self.entries else DEFAULT_LANGUAGE
        builder.build(self.entries, ctx.file, self.owner, language, partial_intents=intents)
        base_refs = list(builder.refs.groups)  # default_group, when_closed transfer_to, ...

        for name, (knode, _) in self.routes.items():
            if name == OOS:
                ctx.fail(knode, f"routes: rows labelled {OOS!r} are never imported; remove this")
            elif name != _STAR and name not in intents:
                hint = did_you_mean(name, intents, noun="intents")
                ctx.fail(
                    knode,
                    f"routes: there is no intent {quote(name)} in {csv_path.name}{hint}; fix the "
                    "name or remove the route",
                )
        unrouted = sorted(n for n in intents if n not in self.routes)
        if unrouted and _STAR not in self.routes:
            shown = ", ".join(unrouted[:10]) + (", …" if len(unrouted) > 10 else "")
            problems.append(
                Problem(
                    self.owner,
                    f"routes: no route for {len(unrouted)} intent(s) of {csv_path.name}: {shown};"
                    f' add them, or a "{_STAR}" route for all the others',
                )
            )

        actions: dict[str, dict[str, Any]] = {}
        refs: dict[str, list[Ref]] = {}
        for name, (knode, vnode) in self.routes.items():
            first = len(builder.refs.groups)
            action = self._route(builder, name, knode, vnode)
            refs[name] = builder.refs.groups[first:]
            if action is not None:
                actions[name] = action
        if len(problems) > before:
            return None

        data: dict[str, Any] = {}
        for key in _ORDER:
            if key in self.entries:
                data[key] = _plain(ctx, self.entries[key].value)
        data.setdefault("language", DEFAULT_LANGUAGE)
        groups: dict[str, Any] = data.get("groups") or {}

        result: dict[str, Any] = {}
        uses: Counter[str] = Counter()
        used_routes: set[str] = set()
        for name in sorted(intents):
            route = name if name in actions else _STAR
            used_routes.add(route)
            body = dict(actions[route])
            body["examples"] = list(intents[name].examples)
            result[name] = body
            for ref in refs[route]:
                uses[ref.name] += 1

        needed = list(base_refs)
        for route in self.routes:
            if route in used_routes:
                needed.extend(refs[route])
        if "default_group" not in data:
            most = sorted(uses.items(), key=lambda kv: (-kv[1], kv[0]))
            data["default_group"] = most[0][0] if most else next(iter(groups), "support")
        default = data["default_group"]
        for gid in [*(ref.name for ref in needed), str(getattr(default, "value", default))]:
            if gid not in groups:
                groups[gid] = {"name": gid.replace("_", " "), "queue": gid}
        data["groups"] = groups
        data["intents"] = result
        return {k: data[k] for k in (*_ORDER, "intents") if k in data}

    def _route(
        self, builder: Builder, name: str, knode: yaml.ScalarNode, vnode: yaml.Node
    ) -> dict[str, Any] | None:
        """A route as an intent body without examples; a plain name means 'transfer to it'."""
        ctx = self.ctx
        where = f"route {quote(name)}"
        if isinstance(vnode, yaml.ScalarNode) and not is_null(vnode):
            group = ctx.text(vnode, where, "the group")
            if group is None or not self._group_name(where, vnode, group):
                return None
            builder.refs.groups.append(Ref(ctx, vnode, group, where))
            return {"transfer": group}
        pairs = ctx.mapping(
            vnode,
            where,
            "the route",
            _ROUTE_KEYS,
            owner=knode,
            key_hint="; a route is a group id or one of transfer, announce, sms (and a label)",
        )
        if pairs is None:
            return None
        kinds = [k for k in ACTION_KEYS if k in pairs]
        if len(kinds) != 1:
            ctx.fail(
                knode,
                f"{where} needs exactly one of transfer, announce or sms"
                + (f" (it has {' and '.join(kinds)})" if kinds else ""),
            )
            return None
        akey, avalue = pairs[kinds[0]]
        first = len(builder.refs.groups)
        if read_action(ctx, where, ActionKind(kinds[0]), akey, avalue, "", builder.refs) is None:
            return None
        for ref in builder.refs.groups[first:]:
            if not self._group_name(where, ref.node, ref.name):
                return None
        body: dict[str, Any] = {}
        if "label" in pairs:
            lkey, lnode = pairs["label"]
            if name == _STAR:
                ctx.fail(
                    lkey,
                    f'{where}: a label on "{_STAR}" would give every intent it routes the same '
                    "label; label intents one by one",
                )
                return None
            label = ctx.text(lnode, where, "'label'")
            if label is None:
                return None
            body["label"] = label
        body[kinds[0]] = _plain(ctx, avalue)
        return body

    def _group_name(self, where: str, node: yaml.Node, gid: str) -> bool:
        """A group the importer may have to create needs an id the loader accepts."""
        if NAME_RE.match(gid):
            return True
        self.ctx.fail(
            node,
            f"{where}: {quote(gid)} is not a group id; use letters, digits, '_', '-' and '.' only "
            "(e.g. front_desk)",
        )
        return False


class _Scalar:
    """A scalar of the routes file, written back exactly as it was (text, tag and quoting)."""

    __slots__ = ("style", "tag", "value")

    def __init__(self, node: yaml.ScalarNode) -> None:
        self.tag, self.value, self.style = node.tag, node.value, node.style


def _plain(ctx: Reader, node: yaml.Node) -> Any:
    """Nodes as data to re-dump, merges applied; every scalar keeps its exact text.

    Rebuilding values would change meaning: a plain +46101234567 is an int to PyYAML and
    would come back without its plus, and 0.50 would lose a digit.
    """
    if isinstance(node, yaml.MappingNode):
        return {str(k.value): _plain(ctx, v) for k, v in ctx.pairs(node)}
    if isinstance(node, yaml.SequenceNode):
        return [_plain(ctx, item) for item in node.value]
    if is_null(node):
        return None
    if isinstance(node, yaml.ScalarNode):
        return _Scalar(node)
    return describe(node)


# ---------------------------------------------------------------------------------------------
# Output


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, no anchors: easy to edit by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_scalar(dumper: yaml.SafeDumper, scalar: _Scalar) -> yaml.ScalarNode:
    return dumper.represent_scalar(scalar.tag, scalar.value, style=scalar.style or None)


_Dumper.add_representer(_Scalar, _represent_scalar)


def _dump_part(data: Mapping[str, Any]) -> str:
    return yaml.dump(
        dict(data),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=10_000,
    )


def _dump(data: Mapping[str, Any], notes: Mapping[str, str]) -> str:
    """Top-level sections and intents separated by blank lines; ``notes`` become comments."""
    parts: list[str] = []
    for key, value in data.items():
        if key != "intents":
            parts.append(_dump_part({key: value}))
    intents: list[str] = []
    for name, body in data["intents"].items():
        note = f"  # {notes[name]}\n" if name in notes else ""
        intents.append(note + textwrap.indent(_dump_part({name: body}), "  "))
    parts.append("intents:\n" + "\n".join(intents))
    return "\n".join(parts)
