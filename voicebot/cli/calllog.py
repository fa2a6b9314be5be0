"""``voicebot report``, ``voicebot purge`` and ``voicebot forget NUMBER``: thin shells over the
call log. Errors (``VoicebotError``) are one sentence on stderr, never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voicebot.calllog import report
from voicebot.calllog.db import DATABASE_URL_ENV, parse_url
from voicebot.calllog.log import DEFAULT_RETENTION_DAYS, CallLog, default_url
from voicebot.calllog.records import SALT_ENV, SALT_FILE
from voicebot.cli.common import Subparsers, UsageError, date_arg, load
from voicebot.core import phone


def register(subparsers: Subparsers) -> None:
    """Add ``report``, ``purge`` and ``forget``."""
    rep = subparsers.add_parser("report", help="what the call log says about the line")
    _database(rep)
    rep.add_argument(
        "--since", type=date_arg, help="first day, YYYY-MM-DD (default: the first call)"
    )
    rep.add_argument("--until", type=date_arg, help="last day, inclusive (default: the last call)")
    rep.add_argument(
        "--tz",
        help="time zone of the days (default: the line's timezone, as on the dashboard)",
    )
    rep.add_argument(
        "--config",
        type=Path,
        help="the line's intents file or folder, for its timezone (default: the embedded one)",
    )
    rep.add_argument(
        "--lang",
        metavar="CODE",
        help="only the calls answered in this language, e.g. sv-SE (each line answers in its "
        "own; default: all)",
    )
    rep.add_argument("--top", type=int, default=10, help="unmatched utterances to list")
    rep.add_argument("--daily", action="store_true", help="add calls per day by outcome")
    rep.add_argument("--json", action="store_true", help="print one JSON object")
    rep.set_defaults(run=cmd_report)

    purge = subparsers.add_parser(
        "purge", help="delete transcripts and caller numbers older than the retention period"
    )
    _database(purge)
    purge.add_argument(
        "--retention-days",
        type=int,
        default=DEFAULT_RETENTION_DAYS,
        help=f"keep this many days (default: {DEFAULT_RETENTION_DAYS})",
    )
    purge.set_defaults(run=cmd_purge)

    forget = subparsers.add_parser("forget", help="delete everything about one caller")
    _database(forget)
    forget.add_argument(
        "number", help="the caller's phone number, e.g. +46701234567 (or 0701234567 with --config)"
    )
    forget.add_argument(
        "--config",
        type=Path,
        help="the line's intents file or folder: a national number is read with its country",
    )
    forget.set_defaults(run=cmd_forget)


def _database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help=f"postgresql://... or sqlite:///path (default: ${DATABASE_URL_ENV}, else "
        "calls.sqlite3 in $VOICEBOT_DATA_DIR or ~/.local/share/voicebot)",
    )
    number_salt_arg(parser)


def number_salt_arg(parser: argparse.ArgumentParser) -> None:
    """``--number-salt-file``: where the secret that caller numbers are hashed with is kept."""
    parser.add_argument(
        "--number-salt-file",
        type=Path,
        metavar="PATH",
        help=f"file holding the secret caller numbers are hashed with (default: ${SALT_ENV}, "
        f"else {SALT_FILE} in the data folder, made on first use); every process using one "
        "call log needs the same",
    )


def cmd_report(args: argparse.Namespace) -> int:
    if args.tz is None:
        deployment = load(args.config)
        if deployment is None:
            return 1
        # the language's own zone when it is configured; calls in a language no longer
        # configured are still in the log and still reported, in the default language's zone
        args.tz = deployment.languages.get(args.lang, deployment.language()).timezone
    zone = _zone(args.tz)
    since = _start_of(args.since, zone)
    until = _start_of(args.until + dt.timedelta(days=1), zone) if args.until else None
    with _open(args) as log:
        rows = log.fetch(since, until).in_language(args.lang)
    summary = report.summarize(rows.calls, rows.utterances, top=args.top)
    days = (
        report.daily(rows.calls, tz=args.tz, since=args.since, until=args.until)
        if args.daily
        else None
    )
    if args.json:
        print(json.dumps(report.to_json(summary, days), ensure_ascii=False))
    else:
        sys.stdout.write(report.render(summary, days))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    with _open(args, retention_days=args.retention_days) as log:
        purged = log.purge()
    print(
        f"purged calls older than {args.retention_days} days: {purged.events} timeline "
        f"entries deleted, {purged.transcripts} transcripts and {purged.callers} caller "
        "numbers erased"
    )
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    calling_code = None
    if args.config is not None:
        deployment = load(args.config)
        if deployment is None:
            return 1
        calling_code = deployment.calling_code
    try:
        # normalised here, not left to the hash: a number the hash cannot read would find no
        # calls and "forget 0 calls" while the caller's calls stay stored
        number = phone.parse(args.number, calling_code)
    except phone.NotANumber as exc:
        unplaced = exc.national and args.config is None
        hint = " (or give --config with the line's configuration)" if unplaced else ""
        raise UsageError(f"{exc}{hint}") from None
    with _open(args) as log:
        gone = log.forget(number)
    print(
        f"forgot {gone.calls} calls ({gone.events} timeline entries, {gone.utterances} utterances)"
    )
    return 0


def _open(args: argparse.Namespace, retention_days: int | None = DEFAULT_RETENTION_DAYS) -> CallLog:
    url = args.database or default_url()
    parse_url(url)  # a malformed URL fails here, before anything is created
    # report, purge and forget never create a log: on a wrong path they would report 0 calls
    # or "forget" a caller whose calls are still stored elsewhere
    return CallLog.open(
        url, salt_file=args.number_salt_file, retention_days=retention_days, create=False
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UsageError(
            f"--tz {name!r} is not a time zone; use a name like Europe/Stockholm or UTC"
        ) from None


def _start_of(day: dt.date | None, zone: ZoneInfo) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(day, dt.time(), zone)
