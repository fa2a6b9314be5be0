"""What the ops dashboard shows, as JSON-able dicts: pure functions over call-log rows and config.

Every figure reuses ``voicebot.calllog.report`` so the page and ``voicebot report`` never disagree;
the
per-day series runs ``summarize`` on each day's calls. Caller numbers leave here masked only,
whatever the call log's number policy, because the page is read by more people than the log.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from voicebot.calllog import report
from voicebot.calllog.records import NUMBER_FIELDS, CallRow, EventRow, UtteranceRow
from voicebot.core.config import Deployment, Intent, LanguageConfig
from voicebot.core.phone import mask
from voicebot.core.text import normalize
from voicebot.matching.suggest import Said, Suggestions, tally

MAX_PHRASE = 200  # characters; longer "phrases" are pasted transcripts of whole calls
_MASKED = re.compile(r"^\+\d*\*+\d*$")


def masked(number: str | None) -> str | None:
    """Hash and mask modes pass through; a number stored in clear is masked for display."""
    if number is None or number.startswith(("hmac:", "<")) or _MASKED.match(number):
        return number
    return mask(number)


# ---------------------------------------------------------------------------------------------
# Summary and per-day series


def summary(
    calls: Sequence[CallRow],
    utterances: Sequence[UtteranceRow],
    *,
    tz: str,
    since: dt.date,
    until: dt.date,
    top: int = 10,
) -> dict[str, Any]:
    """``report.to_json`` (with ``daily``) plus ``series``: per local day the calls split into
    transferred / shed (to a person: the bot was too busy) / solved by the robot / hung up
    unserved / other / unfinished, and that day's
    no-match and clarification rates."""
    out = report.to_json(
        report.summarize(calls, utterances, top=top),
        report.daily(calls, tz=tz, since=since, until=until),
    )
    zone = ZoneInfo(tz)
    by_day: dict[dt.date, list[CallRow]] = defaultdict(list)
    for c in calls:
        by_day[c.started_at.astimezone(zone).date()].append(c)
    utts_by_call: dict[str, list[UtteranceRow]] = defaultdict(list)
    for u in utterances:
        utts_by_call[u.call_id].append(u)
    series = []
    day = since
    while day <= until:
        day_calls = by_day.get(day, [])
        day_utts = [u for c in day_calls for u in utts_by_call.get(c.call_id, ())]
        r = report.summarize(day_calls, day_utts, top=0)
        shed = r.shed  # transferred because the bot was too busy: shown apart
        transferred = r.outcomes.get("transferred", 0) - shed
        hung_up = sum(1 for c in day_calls if c.outcome == "caller_hung_up" and not c.served)
        series.append(
            {
                "day": day.isoformat(),
                "calls": r.calls,
                "transferred": transferred,
                "shed": shed,
                "solved": r.solved_by_robot,
                "hung_up": hung_up,
                "other": r.ended - transferred - shed - r.solved_by_robot - hung_up,
                "unfinished": r.calls - r.ended,
                "utterances": r.utterances,
                "no_match_rate": r.no_match_rate,
                "clarification_rate": r.clarification_rate,
            }
        )
        day += dt.timedelta(days=1)
    out.update(series=series, since=since.isoformat(), until=until.isoformat(), tz=tz)
    return out


# ---------------------------------------------------------------------------------------------
# Calls


def recent_calls(
    calls: Sequence[CallRow], utterances: Iterable[UtteranceRow], *, limit: int
) -> list[dict[str, Any]]:
    """The latest ``limit`` calls, newest first, each with its transcripts and decision."""
    latest = sorted(calls, key=lambda c: (c.started_at, c.call_id), reverse=True)[:limit]
    wanted = {c.call_id for c in latest}
    utts: dict[str, list[UtteranceRow]] = defaultdict(list)
    for u in utterances:
        if u.call_id in wanted:
            utts[u.call_id].append(u)
    return [_call(c, sorted(utts.get(c.call_id, ()), key=lambda u: u.seq)) for c in latest]


def _call(c: CallRow, utterances: Sequence[UtteranceRow]) -> dict[str, Any]:
    return {
        "call_id": c.call_id,
        "started_at": _iso(c.started_at),
        "ended_at": _iso(c.ended_at),
        "language": c.language,
        "caller": masked(c.caller),
        "outcome": c.outcome,
        "reason": c.reason,
        "group": c.group,
        "intent": c.intent,
        "served": list(c.served),
        "after": c.after,
        "turns": c.turns,
        "duration_s": c.duration_s,
        "decision_s": c.decision_s,
        "utterances": [
            {
                "seq": u.seq,
                "at": _iso(u.at),
                "transcript": u.transcript,
                "verdict": u.verdict,
                "intent": u.intent,
                "score": u.score,
            }
            for u in utterances
        ],
    }


def timeline(events: Sequence[EventRow]) -> list[dict[str, Any]]:
    return [
        {
            "seq": e.seq,
            "at": _iso(e.at),
            "kind": e.kind,
            "type": e.type,
            "payload": _mask_payload(e.payload),
        }
        for e in events
    ]


def _mask_payload(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: masked(v) if k in NUMBER_FIELDS and isinstance(v, str) else _mask_payload(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_payload(v) for v in value]
    return value


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else at.isoformat()


# ---------------------------------------------------------------------------------------------
# Unmatched utterances and the snippet that adds one to an intent


def unmatched(
    calls: Sequence[CallRow],
    utterances: Sequence[UtteranceRow],
    deployment: Deployment,
    *,
    top: int = 20,
) -> dict[str, Any]:
    """Top rejected transcripts per language (``report.summarize``'s ranking), merged by count,
    with each language's intents for the page's dropdown."""
    ranked = sorted(
        (
            (n, text, lang)
            for lang, (cs, us) in by_language(calls, utterances, deployment).items()
            for text, n in report.summarize(cs, us, top=top).top_unmatched
        ),
        key=lambda r: (-r[0], r[1], r[2]),
    )
    rows = [{"language": lang, "text": text, "count": n} for n, text, lang in ranked]
    intents = {
        code: [{"name": i.name, "label": i.label} for i in sorted_intents(cfg)]
        for code, cfg in deployment.languages.items()
    }
    return {"unmatched": rows[:top], "intents": intents}


def by_language(
    calls: Sequence[CallRow], utterances: Sequence[UtteranceRow], deployment: Deployment
) -> dict[str, tuple[list[CallRow], list[UtteranceRow]]]:
    """Calls and their utterances per language (a call logged without one: the default)."""
    language_of = {c.call_id: c.language or deployment.default_language for c in calls}
    grouped: dict[str, tuple[list[CallRow], list[UtteranceRow]]] = defaultdict(lambda: ([], []))
    for c in calls:
        grouped[language_of[c.call_id]][0].append(c)
    for u in utterances:
        if u.call_id in language_of:
            grouped[language_of[u.call_id]][1].append(u)
    return dict(grouped)


def not_understood(
    calls: Sequence[CallRow],
    utterances: Sequence[UtteranceRow],
    deployment: Deployment,
    *,
    limit: int,
) -> dict[str, list[Said]]:
    """Per language, the ``limit`` most frequent rejected transcripts, for grouping: each new
    one costs the encoder ~35 ms, and the long tail said once seldom makes a topic."""
    return {
        lang: tally(report.not_understood(us).most_common(limit))
        for lang, (_, us) in by_language(calls, utterances, deployment).items()
    }


def suggested(found: Mapping[str, Suggestions]) -> list[dict[str, Any]]:
    """The groups of every language, most callers first, as the page shows them."""
    rows = [
        {
            "language": lang,
            "name": g.name,
            "count": g.count,
            "sentences": len(g.utterances),
            "examples": list(g.examples),
            "nearest_intent": g.nearest,
            "similarity": g.similarity,
        }
        for lang, s in found.items()
        for g in s.groups
    ]
    return sorted(rows, key=lambda r: (-r["count"], r["language"], r["name"]))


def sorted_intents(config: LanguageConfig) -> list[Intent]:
    return sorted(config.intents.values(), key=lambda i: i.name)


class SnippetError(ValueError):
    """The request cannot become a phrase (unknown intent, empty or overlong text)."""


@dataclass(frozen=True, slots=True)
class Snippet:
    language: str
    intent: str
    text: str
    file: str  # where the intent is written
    line: int
    insert_after: int | None  # paste ``snippet`` below this line of ``file``
    insert_at: tuple[int, int] | None  # or: type ``snippet`` at this line and column (a ']')
    snippet: str  # what to paste there; "" when neither place is safe: see ``block``
    block: str  # the intent with only the new phrase, standalone YAML, for reading
    duplicate_of: str | None  # an intent that already has this phrase


def snippet(config: LanguageConfig, intent_name: str, text: str) -> Snippet:
    """The YAML that adds ``text`` as a phrase of the intent, and where to paste it.

    The place comes from the layout the loader saw (``Intent.phrase_slot``): below the last
    line of a block list's last phrase (a phrase written over two lines stays whole), before
    the ']' of a flow list, or a new ``phrases:`` key below the intent's name. Where no place
    is safe (phrases shared through an alias or merge), there is no paste position, only the
    standalone ``block`` to copy by hand.
    """
    intent = config.intents.get(intent_name)
    if intent is None:
        raise SnippetError(f"no intent {intent_name!r} in {config.language}")
    phrase = " ".join(text.split())
    if not phrase:
        raise SnippetError("the phrase is empty")
    if len(phrase) > MAX_PHRASE:
        raise SnippetError(f"the phrase is longer than {MAX_PHRASE} characters")
    slot = intent.phrase_slot
    insert_after: int | None = None
    insert_at: tuple[int, int] | None = None
    lines = ""
    if slot is not None and slot.kind == "flow":
        flow = _dump([phrase], flow=True).strip()[1:-1]  # "[text]": quoted when YAML needs it
        lines = flow if slot.empty else f", {flow}"
        insert_at = (slot.line, slot.column)
    elif slot is not None:
        indent = " " * (slot.column - 1)
        item = _dump([phrase])  # "- text\n", quoted when YAML needs it
        lines = f"{indent}phrases:\n{indent}  {item}" if slot.kind == "key" else indent + item
        insert_after = slot.line
    block = _dump({intent.name: {"phrases": [phrase]}})
    norm = normalize(phrase)
    duplicate = next(
        (i.name for i in sorted_intents(config) if norm in {normalize(p) for p in i.phrases}),
        None,
    )
    return Snippet(
        language=config.language,
        intent=intent.name,
        text=phrase,
        file=intent.origin.file,
        line=intent.origin.line,
        insert_after=insert_after,
        insert_at=insert_at,
        snippet=lines,
        block=block,
        duplicate_of=duplicate,
    )


def _dump(value: object, *, flow: bool = False) -> str:
    return yaml.safe_dump(
        value, allow_unicode=True, default_flow_style=flow, sort_keys=False, width=10_000
    )


def language_for(deployment: Deployment, code: str | None) -> LanguageConfig:
    if code and code not in deployment.languages:
        raise SnippetError(f"no language {code!r}: {', '.join(deployment.languages)}")
    return deployment.language(code)


def as_dict(s: Snippet) -> dict[str, Any]:
    return asdict(s)
