"""Names used before they are known: a group or intent referred to anywhere in a language is
checked once everything is read, so the order of sections and files does not matter."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from voicebot.loading.reader import Reader, did_you_mean, quote, say_where

__all__ = ["Ref", "References"]


@dataclass(slots=True)
class Ref:
    """A name that must exist once everything is read (a group or an intent)."""

    ctx: Reader
    node: yaml.Node
    name: str
    where: str


@dataclass(slots=True)
class References:
    """The references of one language and the names defined, even when one of them is broken
    (so references can still be checked); ``None`` means the section was not read."""

    groups: list[Ref] = field(default_factory=list)
    intents: list[Ref] = field(default_factory=list)
    closed: list[tuple[str, Ref]] = field(default_factory=list)  # (group id, its transfer_to)
    known_groups: set[str] | None = None
    known_intents: set[str] | None = None

    def check(self) -> None:
        """Report every reference to a name that was not defined, and closed-group loops."""
        known = self.known_groups
        if known is not None:
            for ref in self.groups:
                if ref.name not in known:
                    hint = did_you_mean(ref.name, known, noun="groups")
                    ref.ctx.fail(
                        ref.node,
                        say_where(ref.where, f"unknown agent group {quote(ref.name)}{hint}"),
                    )
            follow = {gid: ref.name for gid, ref in self.closed}
            for gid, ref in self.closed:
                seen = [gid]
                nxt = follow.get(gid)
                while nxt is not None and nxt not in seen:
                    seen.append(nxt)
                    nxt = follow.get(nxt)
                if nxt == gid:
                    loop = " → ".join([*seen, gid])
                    ref.ctx.fail(
                        ref.node,
                        say_where(
                            ref.where, f"closed groups send callers round in a circle ({loop})"
                        ),
                    )
        names = self.known_intents
        if names is not None:
            for ref in self.intents:
                if ref.name not in names:
                    hint = did_you_mean(ref.name, names, noun="intents")
                    ref.ctx.fail(
                        ref.node, say_where(ref.where, f"unknown intent {quote(ref.name)}{hint}")
                    )
