"""What the call log says about the line: pure functions over the rows of a date range.

Definitions (they decide the numbers, so they are spelt out):

- *ended* calls have an outcome; rates and shares are over ended calls (a call still running, or
  cut off by a crash, counts in ``calls`` only).
- *solved by the robot*: at least one request was answered by an announcement or an SMS and the
  call did not end in a transfer (or an internal error). A caller who hangs up after the answer
  counts as solved.
- *hang-up after an announcement*: the caller hung up and the last thing played was a general
  announcement (``after`` = ``announcement:<id>``), i.e. the announcement itself may have
  answered them, or driven them away.
- *no-match* and *clarification rates*: shares of the utterances the matcher judged (those
  logged with a Match) that were rejected, or answered with "is it A or B?".
- *time to a decision*: from the start to the first accepted match, transfer, SMS or hang-up by
  the bot; its median is over calls that reached one.
- *per-intent counts*: calls in which an intent was recognised and served or routed, each
  intent once per call.
- *shed*: calls a person took over because the bot was too busy: transferred with reason
  ``shed`` (no room for the call at the door) or ``overloaded`` (its decoding fell behind).
- *top unmatched*: rejected transcripts after ``text.normalize``, by frequency; transcripts older
  than the retention period are gone, so this covers the retention window only.
- *lookups per intent*: each lookup made is *answered* when its endpoint answered and the call
  did not then end in a transfer (the robot solved it), else *handed over* (the lookup failed,
  or its answer, an SMS that could not be sent or a later request put the caller through).
- *recall per intent*: repeat callers asked "are you calling about <intent> again?", and how
  many of them said yes.
- A yes or no that the dialogue took as an answer (e.g. "no" to "anything else?") is no
  request: the dialogue reports no Match for it, so it counts neither as judged nor as
  unmatched. A bare "yes" when asked what the call is about is misunderstood, and counts so.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

from voicebot.calllog.records import CallRow, UtteranceRow
from voicebot.core.actions import TransferReason
from voicebot.core.text import normalize

_NOT_SOLVED = frozenset({"transferred", "error"})
SHED_REASONS = frozenset({TransferReason.SHED.value, TransferReason.OVERLOADED.value})


def shed(call: CallRow) -> bool:
    """A person took the call over because the bot was too busy (see *shed* above)."""
    return call.outcome is not None and call.reason in SHED_REASONS


@dataclass(frozen=True, slots=True)
class Report:
    calls: int
    ended: int
    outcomes: dict[str, int]  # OutcomeKind value -> calls
    solved_by_robot: int
    solved_share: float | None
    transfers_by_group: dict[str, int]
    transfer_reasons: dict[str, int]
    hangups_after_announcement: int
    shed: int  # calls put through because the bot was too busy
    utterances: int  # judged by the matcher
    no_match_rate: float | None
    clarification_rate: float | None
    median_decision_s: float | None
    median_duration_s: float | None
    intents: dict[str, int]
    top_unmatched: tuple[tuple[str, int], ...]
    lookups: dict[str, dict[str, int]]  # intent -> {"answered": n, "handed_over": n}
    recalled: dict[str, dict[str, int]]  # intent -> {"asked": n, "yes": n}


@dataclass(frozen=True, slots=True)
class DayCounts:
    day: dt.date
    calls: int
    outcomes: dict[str, int]  # "unfinished" for calls without an outcome
    shed: int = 0  # of which put through because the bot was too busy


def summarize(
    calls: Sequence[CallRow], utterances: Iterable[UtteranceRow], *, top: int = 10
) -> Report:
    ended = [c for c in calls if c.outcome is not None]
    solved = sum(1 for c in ended if c.served and c.outcome not in _NOT_SOLVED)
    transferred = [c for c in ended if c.outcome == "transferred"]
    judged = [u for u in utterances if u.verdict is not None]
    decisions = [s for c in calls if (s := c.decision_s) is not None]
    durations = [s for c in ended if (s := c.duration_s) is not None]
    intents: Counter[str] = Counter()
    for c in ended:
        intents.update({*c.served, *([c.intent] if c.intent else [])})
    unmatched = not_understood(judged)
    return Report(
        calls=len(calls),
        ended=len(ended),
        outcomes=_sorted(Counter(c.outcome for c in ended if c.outcome)),
        solved_by_robot=solved,
        solved_share=_share(solved, len(ended)),
        transfers_by_group=_sorted(Counter(c.group or "?" for c in transferred)),
        transfer_reasons=_sorted(Counter(c.reason or "?" for c in transferred)),
        hangups_after_announcement=sum(
            1
            for c in ended
            if c.outcome == "caller_hung_up" and (c.after or "").startswith("announcement:")
        ),
        shed=sum(1 for c in ended if shed(c)),
        utterances=len(judged),
        no_match_rate=_share(sum(u.verdict == "reject" for u in judged), len(judged)),
        clarification_rate=_share(sum(u.verdict == "clarify" for u in judged), len(judged)),
        median_decision_s=statistics.median(decisions) if decisions else None,
        median_duration_s=statistics.median(durations) if durations else None,
        intents=_sorted(intents),
        top_unmatched=tuple(sorted(unmatched.items(), key=lambda kv: (-kv[1], kv[0]))[:top]),
        lookups=_lookups(ended),
        recalled=_recalled(ended),
    )


def not_understood(utterances: Iterable[UtteranceRow]) -> Counter[str]:
    """Rejected transcripts after ``text.normalize``, counted (purged ones are gone)."""
    return Counter(
        text
        for u in utterances
        if u.verdict == "reject" and u.transcript and (text := normalize(u.transcript))
    )


def retried(calls: Iterable[CallRow], utterances: Iterable[UtteranceRow]) -> Counter[str]:
    """What callers said in calls that ended in a transfer after a clarification ("is it A or
    B?") or a second try (a rejection, then more): the bot may have picked an intent and still
    failed the caller.
    Rejected transcripts are left to ``not_understood``; counted after ``text.normalize``."""
    transferred = {c.call_id for c in calls if c.outcome == "transferred"}
    per_call: dict[str, list[UtteranceRow]] = {}
    for u in utterances:
        if u.call_id in transferred and u.verdict is not None:
            per_call.setdefault(u.call_id, []).append(u)
    out: Counter[str] = Counter()
    for said in per_call.values():
        verdicts = [u.verdict for u in sorted(said, key=lambda u: u.seq)]
        if "clarify" not in verdicts and "reject" not in verdicts[:-1]:
            continue  # understood at the first try: a transfer the caller asked for
        out.update(
            text
            for u in said
            if u.verdict != "reject" and u.transcript and (text := normalize(u.transcript))
        )
    return out


def _lookups(ended: Sequence[CallRow]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for c in ended:
        for intent, answered in c.lookups:
            solved = answered and c.outcome not in _NOT_SOLVED
            counts.setdefault(intent, Counter())["answered" if solved else "handed_over"] += 1
    return _per_intent(counts, ("answered", "handed_over"))


def _recalled(ended: Sequence[CallRow]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for c in ended:
        if c.recalled:
            counts.setdefault(c.recalled, Counter()).update(
                {"asked": 1, "yes": int(c.recall_answer == "yes")}
            )
    return _per_intent(counts, ("asked", "yes"))


def _per_intent(
    counts: dict[str, Counter[str]], keys: tuple[str, str]
) -> dict[str, dict[str, int]]:
    """Both counts for every intent (0 included), the busiest intent first."""
    order = sorted(counts, key=lambda i: (-sum(counts[i].values()), i))
    return {i: {k: counts[i][k] for k in keys} for i in order}


def daily(
    calls: Iterable[CallRow],
    *,
    tz: str = "UTC",
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> list[DayCounts]:
    """Calls per local day by outcome, every day from ``since`` (else the first call's day) to
    ``until`` inclusive (else the last call's), days without calls included, for charts."""
    zone = ZoneInfo(tz)
    per_day: dict[dt.date, Counter[str]] = {}
    shed_per_day: Counter[dt.date] = Counter()
    for c in calls:
        day = c.started_at.astimezone(zone).date()
        per_day.setdefault(day, Counter())[c.outcome or "unfinished"] += 1
        shed_per_day[day] += shed(c)
    first = since or min(per_day, default=None)
    last = until or max(per_day, default=None)
    if first is None or last is None:
        return []
    out: list[DayCounts] = []
    day = first
    while day <= last:
        counts = per_day.get(day, Counter())
        out.append(DayCounts(day, sum(counts.values()), _sorted(counts), shed_per_day[day]))
        day += dt.timedelta(days=1)
    return out


def to_json(report: Report, days: Sequence[DayCounts] | None = None) -> dict[str, Any]:
    out = asdict(report)
    out["top_unmatched"] = [{"text": t, "count": n} for t, n in report.top_unmatched]
    if days is not None:
        out["daily"] = [
            {"day": d.day.isoformat(), "calls": d.calls, "outcomes": d.outcomes, "shed": d.shed}
            for d in days
        ]
    return out


def render(report: Report, days: Sequence[DayCounts] | None = None) -> str:
    """A plain-text table for a terminal."""
    lines = [
        _row("calls", report.calls),
        _row("ended", report.ended),
        _row("solved by the robot", f"{report.solved_by_robot} ({_pct(report.solved_share)})"),
        _row("hang-ups after an announcement", report.hangups_after_announcement),
        _row("shed (bot too busy: to a person)", report.shed),
        _row("utterances judged", report.utterances),
        _row("no-match rate", _pct(report.no_match_rate)),
        _row("clarification rate", _pct(report.clarification_rate)),
        _row("median time to a decision", _secs(report.median_decision_s)),
        _row("median call duration", _secs(report.median_duration_s)),
    ]
    for title, counts in (
        ("outcomes", report.outcomes),
        ("transfers by group", report.transfers_by_group),
        ("transfer reasons", report.transfer_reasons),
        ("calls per intent", report.intents),
    ):
        lines += ["", title]
        lines += [_row("  " + k, v) for k, v in counts.items()] or ["  (none)"]
    for title, per_intent in (
        ("lookups per intent", report.lookups),
        ("repeat callers recalled per intent", report.recalled),
    ):
        lines += ["", title]
        lines += [
            _row("  " + intent, ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in n.items()))
            for intent, n in per_intent.items()
        ] or ["  (none)"]
    lines += ["", "top unmatched utterances"]
    lines += [_row(f"  {t}", n) for t, n in report.top_unmatched] or ["  (none)"]
    if days is not None:
        lines += ["", "per day"]
        for d in days:
            detail = ", ".join(f"{k} {v}" for k, v in d.outcomes.items())
            if d.shed:
                detail += f" (shed {d.shed})"
            lines.append(_row(f"  {d.day.isoformat()}", f"{d.calls}  {detail}".rstrip()))
    return "\n".join(lines) + "\n"


def _sorted(counts: Counter[str]) -> dict[str, int]:
    """Most frequent first, ties by name, so output is stable."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f} %"


def _secs(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _row(label: str, value: object) -> str:
    return f"{label:<34} {value}"
