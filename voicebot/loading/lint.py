"""Checks of a loaded language that are not errors but hurt callers: overlaps, gaps, leftovers.

The loader rejects what cannot work; lint points at what works badly. The same phrase in two
intents makes routing a coin toss, a missing label makes the bot say an identifier aloud, and an
unused group or an expired announcement is clutter ops forgot to remove.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from voicebot.core.config import ActionKind, LanguageConfig, Origin, SmsFallback
from voicebot.core.text import normalize

__all__ = ["NEAR_DUPLICATE_SCORE", "ConfigWarning", "lint"]

NEAR_DUPLICATE_SCORE = 90  # rapidfuzz token_sort_ratio at or above which two phrases clash
MAX_REPORTED = 50  # per kind of overlap; thousands of imported examples must not flood the report
_FAR_DAYS = 366  # an announcement starting later than this is most likely a mistyped year
_CHUNK_CELLS = 5_000_000  # score-matrix cells computed at once (float32: 20 MB)


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """Something in the config that will work, but not well, and where it is written."""

    origin: Origin
    message: str
    code: str = ""  # stable kind, e.g. "duplicate-phrase", for filtering and tests

    def __str__(self) -> str:
        return f"{self.origin}: warning: {self.message}"


@dataclass(frozen=True, slots=True)
class _Text:
    norm: str
    intent: str
    origin: Origin
    written: str


def lint(
    config: LanguageConfig, today: dt.date | None = None, *, max_reported: int = MAX_REPORTED
) -> list[ConfigWarning]:
    """All warnings for one language; ``today`` (default: now in its time zone) dates them."""
    if today is None:
        today = config.today(dt.datetime.now(dt.UTC))
    texts = list(_texts(config))
    warnings: list[ConfigWarning] = []
    warnings += _duplicates(texts, max_reported)
    warnings += _near_duplicates(texts, max_reported)
    warnings += _labels(config)
    warnings += _groups(config)
    warnings += _closed_days(config, today)
    warnings += _announcements(config, today)
    return warnings


def _closed_days(config: LanguageConfig, today: dt.date) -> list[ConfigWarning]:
    """Closed days written by hand run out: when the last one has passed, the group is open
    on this year's holidays, which nobody notices until a caller is put through to no one."""
    found: list[ConfigWarning] = []
    for group in config.groups.values():
        days = group.hours.closed_days
        if days and max(days) < today:
            found.append(
                ConfigWarning(
                    group.origin,
                    f"group '{group.id}': every closed day is in the past (the last was "
                    f"{max(days).isoformat()}), so it is open on this year's holidays; add "
                    "them, or write 'public_holidays' under closed_days",
                    "closed-days-past",
                )
            )
    return found


def _texts(config: LanguageConfig) -> Iterator[_Text]:
    """Every phrase and example once per intent (repeats inside one intent are harmless)."""
    for intent in config.intents.values():
        seen: set[str] = set()
        for items, origins in (
            (intent.phrases, intent.phrase_origins),
            (intent.examples, intent.example_origins),
        ):
            for i, written in enumerate(items):
                norm = normalize(written)
                if not norm or norm in seen:
                    continue
                seen.add(norm)
                origin = origins[i] if i < len(origins) else intent.origin
                yield _Text(norm, intent.name, origin, written)


def _more(kind: str, hidden: int, origin: Origin, code: str) -> ConfigWarning:
    return ConfigWarning(origin, f"... and {hidden} more {kind} not listed", code)


def _duplicates(texts: list[_Text], limit: int) -> list[ConfigWarning]:
    by_norm: dict[str, list[_Text]] = defaultdict(list)
    for text in texts:
        by_norm[text.norm].append(text)
    found: list[ConfigWarning] = []
    for same in by_norm.values():
        if len(same) < 2:
            continue
        first, rest = same[0], same[1:]
        others = ", ".join(f"'{t.intent}' ({t.origin})" for t in rest)
        found.append(
            ConfigWarning(
                first.origin,
                f"the phrase '{first.written}' is in intent '{first.intent}' and also in {others};"
                " callers who say it cannot be routed reliably, so keep it in one intent",
                "duplicate-phrase",
            )
        )
    if len(found) > limit:
        hidden = len(found) - limit
        found = [*found[:limit], _more("duplicate phrases", hidden, found[limit].origin, "more")]
    return found


def _near_duplicates(texts: list[_Text], limit: int) -> list[ConfigWarning]:
    """Pairs of different intents whose phrases differ only in word order or a letter or two.

    token_sort_ratio is ratio on the sorted words, so the words are sorted once up front and
    rapidfuzz's fast ratio compares them; only the upper triangle is scored, in row chunks.
    """
    n = len(texts)
    if n < 2:
        return []
    keys = [" ".join(sorted(t.norm.split(" "))) for t in texts]
    ids: dict[str, int] = {}
    intents = np.array([ids.setdefault(t.intent, len(ids)) for t in texts], dtype=np.int64)
    pairs: list[tuple[float, int, int]] = []
    rows = max(1, _CHUNK_CELLS // n)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        scores = process.cdist(
            keys[start:stop],
            keys[start:],
            scorer=fuzz.ratio,
            score_cutoff=NEAR_DUPLICATE_SCORE,
            dtype=np.float32,
            workers=-1,
        )
        for r, c in zip(*np.nonzero(scores >= NEAR_DUPLICATE_SCORE), strict=True):
            i, j = start + int(r), start + int(c)
            if j <= i or intents[i] == intents[j] or texts[i].norm == texts[j].norm:
                continue  # same intent is harmless; exact repeats are reported as duplicates
            pairs.append((float(scores[r, c]), i, j))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    found: list[ConfigWarning] = []
    for score, i, j in pairs[:limit]:
        a, b = texts[i], texts[j]
        found.append(
            ConfigWarning(
                b.origin,
                f"'{b.written}' (intent '{b.intent}') is almost the same as '{a.written}' "
                f"(intent '{a.intent}', {a.origin}; similarity {score:.0f}%); callers saying "
                "either may land in the wrong intent, so reword one or keep it in one intent",
                "near-duplicate",
            )
        )
    if len(pairs) > limit:
        _, i, _ = pairs[limit]
        found.append(_more("near-duplicate pairs", len(pairs) - limit, texts[i].origin, "more"))
    return found


def _labels(config: LanguageConfig) -> list[ConfigWarning]:
    """A label made from the intent's name was not written for callers' ears (or language)."""
    found: list[ConfigWarning] = []
    for intent in config.intents.values():
        if not intent.label_given or not intent.label.strip():
            found.append(
                ConfigWarning(
                    intent.origin,
                    f"intent '{intent.name}' has no label of its own, so the bot would ask "
                    f"\"is it about {intent.label} or ...?\"; add 'label:' with words a caller "
                    "understands",
                    "no-label",
                )
            )
    return found


def _groups(config: LanguageConfig) -> list[ConfigWarning]:
    used = {config.default_group}
    for intent in config.intents.values():
        action = intent.action
        if action.kind in (ActionKind.TRANSFER, ActionKind.LOOKUP) or (
            action.kind is ActionKind.SMS and action.fallback is SmsFallback.TRANSFER
        ):
            used.add(action.group or config.default_group)
    for group in config.groups.values():
        if group.when_closed is not None and group.when_closed.transfer_to:
            used.add(group.when_closed.transfer_to)
    found: list[ConfigWarning] = []
    for group in config.groups.values():
        if group.id not in used:
            found.append(
                ConfigWarning(
                    group.origin,
                    f"group '{group.id}' is never used: no intent, default_group or when_closed "
                    "sends calls to it",
                    "unused-group",
                )
            )
        if group.when_closed is None and not group.hours.always_open:
            found.append(
                ConfigWarning(
                    group.origin,
                    f"group '{group.id}' has opening hours but no 'when_closed', so callers are "
                    "put through even when it is closed; add 'when_closed:' with what to say",
                    "hours-unused",
                )
            )
        closed = group.when_closed
        if closed is not None and closed.sms and not closed.say_without_sms:
            found.append(
                ConfigWarning(
                    group.origin,
                    f"group '{group.id}' texts callers when closed but has no "
                    "'say_without_sms': a withheld or landline caller hears 'say', which may "
                    "promise a text, then prompts.sms_failed; add what they should hear instead",
                    "closed-sms-no-fallback",
                )
            )
        if group.when_closed is not None and group.hours.always_open:
            found.append(
                ConfigWarning(
                    group.origin,
                    f"group '{group.id}' has 'when_closed' but no opening hours, so it is never "
                    "closed and 'when_closed' is never used",
                    "when-closed-unused",
                )
            )
    return found


def _announcements(config: LanguageConfig, today: dt.date) -> list[ConfigWarning]:
    """Windows that are over, run forever for every caller, or start suspiciously late."""
    found: list[ConfigWarning] = []
    for ann in config.announcements:
        if ann.end is not None and ann.end < today:
            found.append(
                ConfigWarning(
                    ann.origin,
                    f"announcement '{ann.id}' ended on {ann.end.isoformat()} and is no longer "
                    "played; remove it",
                    "announcement-ended",
                )
            )
        elif ann.end is None and not ann.after_intents:
            found.append(
                ConfigWarning(
                    ann.origin,
                    f"announcement '{ann.id}' has no 'until:', so every caller hears it from now "
                    "on; add the last day it applies (or put lasting news in prompts.greeting)",
                    "announcement-no-end",
                )
            )
        if ann.start is not None and ann.start > today + dt.timedelta(days=_FAR_DAYS):
            found.append(
                ConfigWarning(
                    ann.origin,
                    f"announcement '{ann.id}' starts on {ann.start.isoformat()}, more than a "
                    "year from now; check the year",
                    "announcement-far",
                )
            )
    return found
