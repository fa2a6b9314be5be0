"""Agent groups: where callers are put through to, when, and what happens while a group is closed.

Destinations are checked against what Twilio can dial (an E.164 number, a SIP address, a queue
name, a TaskRouter workflow SID); a ``when_closed.transfer_to`` is a reference checked once every
group is known, including for loops between closed groups.
"""

from __future__ import annotations

import re

import yaml

from voicebot.core.config import AgentGroup, Destination, DestinationKind, OpeningHours, WhenClosed
from voicebot.core.phone import E164, MAX_DIGITS, MIN_DIGITS
from voicebot.loading.files import Entry, read_named
from voicebot.loading.hours import read_hours
from voicebot.loading.keys import DESTINATION_KEYS, GROUP_KEYS, NAME_RE, WHEN_CLOSED_KEYS
from voicebot.loading.reader import Reader, bad_links, quote
from voicebot.loading.refs import Ref, References

__all__ = ["read_groups"]

_SIP_RE = re.compile(
    r"^sips?:[^@\s;:]+(?::[^@\s;]*)?@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    r"(?::\d{1,5})?(?:;\S*)?$"
)
_WORKFLOW_RE = re.compile(r"^WW[0-9a-fA-F]{32}$")
_QUEUE_MAX = 64


def read_groups(
    e: Entry, timezone: str, timezone_given: bool, refs: References, country: str | None = None
) -> dict[str, AgentGroup] | None:
    """``country`` (ISO, from the language code) is where ``public_holidays`` are taken from."""
    groups, ids = read_named(
        e,
        "'groups'",
        "agent group",
        lambda gid, knode, vnode: _group(
            e.ctx, gid, knode, vnode, (timezone, timezone_given, country), refs
        ),
    )
    if ids is not None:
        refs.known_groups = ids
    return groups


def _group(
    ctx: Reader,
    gid: str,
    knode: yaml.ScalarNode,
    vnode: yaml.Node,
    zone: tuple[str, bool, str | None],
    refs: References,
) -> AgentGroup | None:
    timezone, timezone_given, country = zone
    where = f"group {quote(gid)}"
    before = len(ctx.problems)
    if not NAME_RE.match(gid):
        ctx.fail(knode, f"{where}: a group id may only use letters, digits, '_', '-' and '.'")
    pairs = ctx.mapping(vnode, where, "the group", GROUP_KEYS, owner=knode)
    if pairs is None:
        return None
    name: str | None = gid.replace("_", " ")
    if "name" in pairs:
        name = ctx.text(pairs["name"][1], where, "'name'")

    kind = ctx.one_key(
        pairs,
        DESTINATION_KEYS,
        knode,
        where,
        "destination",
        f"{where} needs somewhere to send calls: one of number, sip, queue or workflow",
    )
    destination: Destination | None = None
    if kind is not None:
        destination = _destination(ctx, where, DestinationKind(kind), pairs[kind][1])

    hours = OpeningHours(timezone=timezone)
    if "hours" in pairs:
        hk, hv = pairs["hours"]
        parsed = read_hours(ctx, where, hk, hv, timezone, timezone_given, country)
        if parsed is not None:
            hours = parsed

    when_closed: WhenClosed | None = None
    if "when_closed" in pairs:
        when_closed = _when_closed(ctx, gid, where, *pairs["when_closed"], refs)

    if len(ctx.problems) > before or name is None or destination is None:
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
    ctx: Reader, where: str, kind: DestinationKind, node: yaml.Node
) -> Destination | None:
    value = ctx.text(node, where, quote(kind.value))
    if value is None:
        return None
    if kind is DestinationKind.NUMBER:
        compact = re.sub(r"[\s-]", "", value)
        if not E164.match(compact):
            ctx.fail(
                node,
                f"{where}: {quote(value)} is not a phone number in international form; write "
                f"'+', the country code and the number, {MIN_DIGITS} to {MAX_DIGITS} digits "
                '(e.g. "+46101234567")',
            )
            return None
        value = compact
    elif kind is DestinationKind.SIP:
        if not _SIP_RE.match(value):
            ctx.fail(
                node,
                f"{where}: {quote(value)} is not a SIP address; write it like "
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
            f"{where}: {quote(value)} is not a TaskRouter workflow SID; it starts with WW "
            "followed by 32 hexadecimal characters (copy it from the Twilio console)",
        )
        return None
    return Destination(kind, value)


def _when_closed(
    ctx: Reader,
    gid: str,
    where: str,
    knode: yaml.ScalarNode,
    vnode: yaml.Node,
    refs: References,
) -> WhenClosed | None:
    where = f"{where} when_closed"
    pairs = ctx.mapping(vnode, where, "'when_closed'", WHEN_CLOSED_KEYS, ["say"], owner=knode)
    if pairs is None:
        return None
    say = ctx.text(pairs["say"][1], where, "'say'") if "say" in pairs else None
    without = pairs.get("say_without_sms")  # for callers who cannot take the text
    say_without_sms = ctx.text(without[1], where, "'say_without_sms'") if without else None
    sms: str | None = None
    if "sms" in pairs:
        sms = ctx.text(pairs["sms"][1], where, "'sms'")
        for bad in bad_links(sms or ""):
            ctx.fail(pairs["sms"][1], f"{where}: {quote(bad)} in 'sms' is not an http(s) link")
    transfer_to: str | None = None
    if "transfer_to" in pairs:
        tnode = pairs["transfer_to"][1]
        transfer_to = ctx.text(tnode, where, "'transfer_to'")
        if transfer_to is not None:
            ref = Ref(ctx, tnode, transfer_to, f"{where} 'transfer_to'")
            refs.groups.append(ref)
            refs.closed.append((gid, ref))
    if say is None:
        return None
    return WhenClosed(say=say, sms=sms, transfer_to=transfer_to, say_without_sms=say_without_sms)
