"""What an intent does (transfer, announce, sms) and the dated announcements, read from YAML.

The sms action is the one with most rules (its body must carry the link, a ``read`` fallback
needs an answer, a ``group`` only goes with ``transfer``), so each is checked here with the fix in
the message. The importer reads its routes file's actions with ``read_action`` as well.
"""

from __future__ import annotations

import yaml

from voicebot.core.config import (
    ActionKind,
    Announcement,
    Intent,
    IntentAction,
    Origin,
    PhraseSlot,
    SmsFallback,
    default_sms_text,
)
from voicebot.loading.files import Entry, read_named
from voicebot.loading.keys import (
    ACTION_KEYS,
    ANNOUNCE_KEYS,
    ANNOUNCEMENT_KEYS,
    INTENT_KEYS,
    LOOKUP_KEYS,
    NAME_RE,
    SMS_KEYS,
)
from voicebot.loading.reader import (
    Pair,
    Reader,
    describe,
    did_you_mean,
    is_null,
    is_shared,
    quote,
)
from voicebot.loading.refs import Ref, References

__all__ = ["read_action", "read_announcements", "read_intents"]


def read_intents(e: Entry, sms_sent: str, refs: References) -> dict[str, Intent] | None:
    """The ``intents:`` section; ``sms_sent`` is the prompt an sms body defaults to."""
    intents, names = read_named(
        e,
        "'intents'",
        "intent",
        lambda name, knode, vnode: _intent(e.ctx, name, knode, vnode, sms_sent, refs),
    )
    if names is not None:
        refs.known_intents = names
    return intents


def _intent(
    ctx: Reader,
    name: str,
    knode: yaml.ScalarNode,
    vnode: yaml.Node,
    sms_sent: str,
    refs: References,
) -> Intent | None:
    where = f"intent {quote(name)}"
    before = len(ctx.problems)
    if not NAME_RE.match(name):
        ctx.fail(knode, f"{where}: an intent name may only use letters, digits, '_', '-', '.'")
    pairs = ctx.mapping(
        vnode,
        where,
        "the intent",
        INTENT_KEYS,
        owner=knode,
        key_hint="; an intent's action is one of transfer, announce, sms or lookup",
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
            items = ctx.texts(pairs[key][1], where, quote(key))
            target.extend(items or [])
    if not phrases and not examples and len(ctx.problems) == before:
        ctx.fail(
            knode,
            f"{where} has no phrases and no examples, so callers could never reach it; "
            "add a few things callers say under 'phrases:'",
        )
    kind = ctx.one_key(
        pairs,
        ACTION_KEYS,
        knode,
        where,
        "action",
        f"{where} has no action; add one of 'transfer: <group>', 'announce: ...', 'sms: ...' "
        "or 'lookup: ...'",
    )
    action: IntentAction | None = None
    if kind is not None:
        action = read_action(ctx, where, ActionKind(kind), *pairs[kind], sms_sent, refs)
    if len(ctx.problems) > before or label is None or action is None:
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
        phrase_slot=_phrase_slot(vnode, pairs.get("phrases"), ctx.at(knode)),
    )


def _phrase_slot(body: yaml.Node, phrases: Pair | None, name: Origin) -> PhraseSlot | None:
    """Where one more phrase can be typed into this intent (``PhraseSlot``), from the nodes'
    marks: the end of the last phrase, not its start, so a phrase over two lines stays whole.
    None when an alias or merge shares the place (an edit there would change other intents too)
    or the phrases come from outside this intent's own text."""
    if not isinstance(body, yaml.MappingNode) or is_shared(body):
        return None
    if phrases is None:  # a new 'phrases:' key below the name, where the body's keys start
        flow = body.flow_style is True  # {examples: [...], ...}: no line of its own to add
        return None if flow else PhraseSlot("key", name.line, body.start_mark.column + 1)
    key, node = phrases
    if not body.start_mark.line <= key.start_mark.line <= body.end_mark.line or is_shared(node):
        return None  # merged in from elsewhere
    if isinstance(node, yaml.SequenceNode) and node.flow_style is True:
        end = node.end_mark  # just after the ']'
        return PhraseSlot("flow", end.line + 1, end.column, empty=not node.value)
    if isinstance(node, yaml.SequenceNode) and node.value:
        end = node.value[-1].end_mark  # a block scalar ends at the start of the next line
        last = end.line if end.column == 0 else end.line + 1
        return PhraseSlot("block", last, node.start_mark.column + 1)
    if is_null(node):  # 'phrases:' with nothing yet: the list goes below it, indented
        return PhraseSlot("block", key.start_mark.line + 1, key.start_mark.column + 3)
    return None


def read_action(
    ctx: Reader,
    where: str,
    kind: ActionKind,
    knode: yaml.ScalarNode,
    vnode: yaml.Node,
    sms_sent: str,
    refs: References,
) -> IntentAction | None:
    """One intent's action (or a route's, for the importer); group names go to ``refs``."""
    if kind is ActionKind.TRANSFER:
        if isinstance(vnode, yaml.ScalarNode) and not is_null(vnode):
            group = ctx.text(vnode, where, "'transfer'")
            if group is None:
                return None
            refs.groups.append(Ref(ctx, vnode, group, where))
            return IntentAction(ActionKind.TRANSFER, group=group)
        ctx.fail(
            vnode,
            f"{where}: 'transfer' must name an agent group (transfer: billing), not "
            f"{describe(vnode)}",
        )
        return None
    if kind is ActionKind.ANNOUNCE:
        if isinstance(vnode, yaml.ScalarNode) and not is_null(vnode):
            text = ctx.template(vnode, where, "'announce'")
            return None if text is None else IntentAction(ActionKind.ANNOUNCE, text=text)
        pairs = ctx.mapping(vnode, where, "'announce'", ANNOUNCE_KEYS, owner=knode)
        if pairs is None:
            return None
        text, audio = _text_or_audio(ctx, where, "'announce'", knode, pairs)
        if text is None and audio is None:
            return None
        return IntentAction(ActionKind.ANNOUNCE, text=text, audio_url=audio)
    if kind is ActionKind.LOOKUP:
        return _lookup(ctx, where, knode, vnode, refs)
    return _sms(ctx, where, knode, vnode, sms_sent, refs)


def _text_or_audio(
    ctx: Reader, where: str, what: str, owner: yaml.Node, pairs: dict[str, Pair]
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
    ctx: Reader,
    where: str,
    knode: yaml.ScalarNode,
    vnode: yaml.Node,
    sms_sent: str,
    refs: References,
) -> IntentAction | None:
    before = len(ctx.problems)
    pairs = ctx.mapping(vnode, where, "'sms'", SMS_KEYS, ["link"], owner=knode)
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
                f"{where}: 'fallback' must be read or transfer, not {quote(value)}"
                f"{did_you_mean(value, choices)}",
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
                refs.groups.append(Ref(ctx, gnode, group, where))
    if len(ctx.problems) > before or link is None:
        return None
    return IntentAction(
        ActionKind.SMS,
        text=say,
        link=link,
        sms_text=body if body is not None else default_sms_text(say or sms_sent),
        fallback=fallback,
        answer=answer,
        group=group,
    )


MAX_LOOKUP_TIMEOUT_S = 10.0  # a caller waiting in silence longer than this hangs up


def _lookup(
    ctx: Reader, where: str, knode: yaml.ScalarNode, vnode: yaml.Node, refs: References
) -> IntentAction | None:
    """``lookup: {url, otherwise, timeout_s}``: the endpoint, the group when it cannot answer
    (default: the default group) and how long the caller waits for it (default 2 s)."""
    before = len(ctx.problems)
    pairs = ctx.mapping(vnode, where, "'lookup'", LOOKUP_KEYS, ["url"], owner=knode)
    if pairs is None or "url" not in pairs:
        return None
    url = ctx.link(pairs["url"][1], where, "the lookup 'url'")
    group: str | None = None
    if "otherwise" in pairs:
        gnode = pairs["otherwise"][1]
        group = ctx.text(gnode, where, "'otherwise'")
        if group is not None:
            refs.groups.append(Ref(ctx, gnode, group, where))
    timeout = 2.0
    if "timeout_s" in pairs:
        tnode = pairs["timeout_s"][1]
        value = ctx.number(tnode, where, "'timeout_s'")
        if value is not None and not 0 < value <= MAX_LOOKUP_TIMEOUT_S:
            ctx.fail(
                tnode,
                f"{where}: 'timeout_s' must be more than 0 and at most "
                f"{MAX_LOOKUP_TIMEOUT_S:g} seconds (the caller waits in silence), not {value:g}",
            )
        elif value is not None:
            timeout = value
    if len(ctx.problems) > before or url is None:
        return None
    return IntentAction(ActionKind.LOOKUP, url=url, group=group, timeout_s=timeout)


def read_announcements(e: Entry, refs: References) -> tuple[Announcement, ...] | None:
    """The ``announcements:`` list; ``after_intents`` names go to ``refs``."""
    ctx = e.ctx
    node = e.value
    if is_null(node):
        return ()
    if not isinstance(node, yaml.SequenceNode):
        ctx.fail(
            node,
            f"'announcements' must be a list (each starting with '- id: ...'), not "
            f"{describe(node)}",
        )
        return None
    out: list[Announcement] = []
    ids: dict[str, Origin] = {}
    ok = True
    for i, item in enumerate(node.value, 1):
        ann = _announcement(ctx, i, item, refs)
        if ann is None:
            ok = False
            continue
        if ann.id in ids:
            ctx.fail(
                item,
                f"announcement {quote(ann.id)} is defined twice (first on line "
                f"{ids[ann.id].line}); give each announcement its own id",
            )
            ok = False
        ids.setdefault(ann.id, ann.origin)
        out.append(ann)
    return tuple(out) if ok else None


def _announcement(
    ctx: Reader, index: int, node: yaml.Node, refs: References
) -> Announcement | None:
    before = len(ctx.problems)
    where = f"announcement {index}"
    pairs = ctx.mapping(node, where, "an announcement", ANNOUNCEMENT_KEYS, ["id"])
    if pairs is None:
        return None
    ann_id = ctx.text(pairs["id"][1], where, "'id'") if "id" in pairs else None
    if ann_id is not None:
        where = f"announcement {quote(ann_id)}"
    text, audio = _text_or_audio(ctx, where, "an announcement", node, pairs)
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
            refs.intents.append(Ref(ctx, item, name, where))
    if len(ctx.problems) > before or ann_id is None:
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
