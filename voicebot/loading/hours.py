"""Opening hours: ``mon-fri: "08:00-17:00"``, closed days and windows, each in a time zone.

The rules ops get wrong most (overlaps, ranges past midnight, day names, missing time zones) are
checked here with a message that shows the fix; the result is a frozen ``OpeningHours``.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
from types import MappingProxyType

import yaml

from voicebot.core.config import WEEKDAYS, OpeningHours, TimeRange
from voicebot.loading.keys import HOURS_EXTRA_KEYS
from voicebot.loading.reader import Reader, describe, did_you_mean, is_null, quote

__all__ = ["PUBLIC_HOLIDAYS", "public_holidays", "read_hours"]

# ``closed_days: [public_holidays]``: the country's public holidays (and the days it treats as
# such in practice, Sweden's Midsummer, Christmas and New Year's Eves), from the ``holidays``
# package, so ops need not work out Easter each year. The core stays free of the package: the
# dates are worked out here, for the years a loaded configuration can be in use.
PUBLIC_HOLIDAYS = "public_holidays"
_HOLIDAY_CATEGORIES = ("public", "de_facto")
_YEARS_BACK, _YEARS_AHEAD = 1, 5  # a configuration is reloaded far more often than that

_TIME_RANGE_RE = re.compile(r"^(\d{1,2}):(\d{2})\s*[-\u2013]\s*(\d{1,2}):(\d{2})$")  # - or en dash
_MAX_CLOSED_WINDOW_DAYS = 366


def read_hours(
    ctx: Reader,
    where: str,
    hk: yaml.ScalarNode,
    hv: yaml.Node,
    timezone: str,
    timezone_given: bool,
    country: str | None = None,
) -> OpeningHours | None:
    """A group's ``hours:`` mapping; without day keys it is open all week (closed days apply)."""
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
        days = _closed_days(ctx, where, pairs["closed_days"][1], country)
        if days is None:
            ok = False
        else:
            closed = days

    weekly: dict[str, tuple[TimeRange, ...]] = {}
    defined_at: dict[str, yaml.Node] = {}
    any_day_key = False
    for key, (knode, vnode) in pairs.items():
        if key in HOURS_EXTRA_KEYS:
            continue
        any_day_key = True
        days_of_key = _day_key(ctx, where, key, knode)
        ranges = _ranges(ctx, where, key, vnode)
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


def _day_key(ctx: Reader, where: str, key: str, knode: yaml.Node) -> list[str] | None:
    days: list[str] = []
    for part in key.lower().replace(" ", "").split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(end in WEEKDAYS for end in ends):
            guess = "-".join(end[:3] for end in ends)
            allowed = [*WEEKDAYS, "mon-fri", *HOURS_EXTRA_KEYS]
            hint = (
                f" (did you mean {quote(guess)}?)"
                if all(end[:3] in WEEKDAYS for end in ends) and len(ends) <= 2
                else did_you_mean(key, allowed)
            )
            ctx.fail(
                knode,
                f"{where}: {quote(key)} is not a day; write days as mon, tue, wed, thu, fri, "
                f"sat, sun or a range like mon-fri{hint}",
            )
            return None
        first = WEEKDAYS.index(ends[0])
        last = WEEKDAYS.index(ends[-1])
        span = (last - first) % 7
        days.extend(WEEKDAYS[(first + i) % 7] for i in range(span + 1))
    return days


def _ranges(ctx: Reader, where: str, key: str, node: yaml.Node) -> tuple[TimeRange, ...] | None:
    """Opening ranges for one day key: "closed", "08:00-17:00" or a list of such ranges."""
    if isinstance(node, yaml.SequenceNode):
        items = [(n, ctx.text(n, where, f"a range of {quote(key)}")) for n in node.value]
    elif isinstance(node, yaml.ScalarNode) and not is_null(node):
        raw = str(node.value).strip()
        items = [(node, part.strip()) for part in raw.split(",")]
    else:
        ctx.fail(
            node,
            f'{where}: {quote(key)} must be opening times like "08:00-17:00" or "closed", '
            f"not {describe(node)}",
        )
        return None
    if len(items) == 1 and items[0][1] is not None and items[0][1].lower() == "closed":
        return ()
    ranges: list[TimeRange] = []
    for item_node, text in items:
        if text is None:
            return None
        parsed = _range(ctx, where, key, item_node, text)
        if parsed is None:
            return None
        ranges.append(parsed)
    ranges.sort(key=lambda r: r.start)
    for a, b in itertools.pairwise(ranges):
        if b.start < a.end:
            ctx.fail(node, f"{where}: the opening times of {quote(key)} overlap")
            return None
    return tuple(ranges)


def _range(ctx: Reader, where: str, key: str, node: yaml.Node, text: str) -> TimeRange | None:
    match = _TIME_RANGE_RE.match(text)
    bad = f"{where}: {quote(text)} for {quote(key)} "
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


def _closed_days(
    ctx: Reader, where: str, node: yaml.Node, country: str | None
) -> set[dt.date] | None:
    items = ctx.texts(node, where, "'closed_days'", single_ok=True)
    if items is None:
        return None
    nodes = list(node.value) if isinstance(node, yaml.SequenceNode) else [node]
    days: set[dt.date] = set()
    ok = True
    for (text, _), item in zip(items, nodes, strict=False):
        if text.split()[:1] == [PUBLIC_HOLIDAYS]:
            holidays = _public_holidays(ctx, where, item, text, country)
            ok = ok and holidays is not None
            days.update(holidays or ())
        elif ".." in text:
            first_text, _, last_text = text.partition("..")
            first = ctx.parse_date(first_text.strip(), item, where, "the closed window start")
            last = ctx.parse_date(last_text.strip(), item, where, "the closed window end")
            if first is None or last is None:
                ok = False
            elif last < first:
                ctx.fail(item, f"{where}: the closed window {quote(text)} ends before it starts")
                ok = False
            elif (last - first).days >= _MAX_CLOSED_WINDOW_DAYS:
                ctx.fail(item, f"{where}: the closed window {quote(text)} is longer than a year")
                ok = False
            else:
                days.update(first + dt.timedelta(days=i) for i in range((last - first).days + 1))
        else:
            day = ctx.parse_date(text, item, where, "the closed day")
            if day is None:
                ok = False
            else:
                days.add(day)
    return days if ok else None


def _public_holidays(
    ctx: Reader, where: str, node: yaml.Node, text: str, country: str | None
) -> frozenset[dt.date] | None:
    """``public_holidays`` (the language's country, sv-SE: SE) or ``public_holidays SE``."""
    parts = text.split()
    code = parts[1].upper() if len(parts) == 2 else country if len(parts) == 1 else None
    if len(parts) > 2 or code is None:
        ctx.fail(
            node,
            f"{where}: {quote(text)}: write 'public_holidays' followed by the country, e.g. "
            "'public_holidays SE' (the language code names none)",
        )
        return None
    try:
        return public_holidays(code, dt.date.today().year)
    except (NotImplementedError, KeyError):
        ctx.fail(
            node,
            f"{where}: {quote(text)}: there is no public-holiday calendar for {quote(code)}; "
            "use a two-letter country code such as SE, NO, DK, FI, GB or US",
        )
        return None


@functools.cache
def public_holidays(country: str, year: int) -> frozenset[dt.date]:
    """The holidays of ``country`` from the year before ``year`` to five years after."""
    import holidays

    kind = holidays.country_holidays(country)
    categories = tuple(c for c in _HOLIDAY_CATEGORIES if c in kind.supported_categories)
    years = range(year - _YEARS_BACK, year + _YEARS_AHEAD + 1)
    return frozenset(holidays.country_holidays(country, years=years, categories=categories))
