"""``voicebot suggest``: what callers asked that no intent covers, grouped by meaning.

Reads the utterances the bot did not understand from the call log (the same ones the dashboard
lists: rejected transcripts, within the retention window) or from a CSV, groups them
(``voicebot.matching.suggest``) and prints the groups, most callers first. Vectors of what
callers said stay in this process's memory; ``--yaml`` writes a file only where asked, and never
over an existing one.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from voicebot.calllog import report
from voicebot.cli.calllog import _database, _open, _start_of, _zone
from voicebot.cli.common import Subparsers, UsageError, config_args, date_arg, language
from voicebot.core.config import LanguageConfig
from voicebot.matching.suggest import Group, Said, Suggestions

SHOWN_UNASSIGNED = 10  # unassigned utterances printed (all of them in --json)


def register(subparsers: Subparsers) -> None:
    sug = subparsers.add_parser(
        "suggest", help="group what the bot did not understand into suggested new intents"
    )
    _database(sug)
    sug.add_argument("--since", type=date_arg, help="first day, YYYY-MM-DD (default: all kept)")
    sug.add_argument("--until", type=date_arg, help="last day, inclusive (default: the last call)")
    sug.add_argument("--tz", help="time zone of the days (default: the line's timezone)")
    sug.add_argument(
        "--csv", type=Path, metavar="FILE", help="read utterances from a CSV (text, optional count)"
    )
    sug.add_argument(
        "--include-retries",
        action="store_true",
        help="add what callers said in calls transferred after a clarification or a second try",
    )
    config_args(sug)
    sug.add_argument(
        "--yaml", type=Path, metavar="FILE", help="write the groups as an intents block to FILE"
    )
    sug.add_argument("--json", action="store_true", help="print one JSON object")
    sug.set_defaults(run=cmd_suggest)


def cmd_suggest(args: argparse.Namespace) -> int:
    if args.csv is not None and (args.database or args.since or args.until or args.include_retries):
        raise UsageError(
            "--csv reads utterances from a file: leave out --database, --since, --until and "
            "--include-retries"
        )
    if args.yaml is not None and args.yaml.exists():
        raise UsageError(f"{args.yaml} already exists: give a new file for --yaml")
    config = language(args)
    if config is None:
        return 1
    counts = _from_csv(args.csv) if args.csv is not None else _from_log(args, config)
    from voicebot.matching.embedding_cache import shared_embeddings
    from voicebot.matching.suggest import suggest, tally

    found = suggest(
        tally(counts.items()),
        tuple(config.intents.values()),
        shared_embeddings(),
        stop=config.words.stop,
    )
    if args.yaml is not None:
        _write_yaml(args.yaml, found, config)
    if args.json:
        print(json.dumps(to_json(found), ensure_ascii=False))
    else:
        sys.stdout.write(render(found))
        if args.yaml is not None and found.groups:
            print(f"\nwrote {len(found.groups)} suggested intents to {args.yaml}")
    return 0


def _from_log(args: argparse.Namespace, config: LanguageConfig) -> Counter[str]:
    zone = _zone(args.tz or config.timezone)
    since = _start_of(args.since, zone)
    until = _start_of(args.until + dt.timedelta(days=1), zone) if args.until else None
    with _open(args) as log:
        rows = log.fetch(since, until).in_language(config.language)
    counts = report.not_understood(rows.utterances)
    if args.include_retries:
        counts.update(report.retried(rows.calls, rows.utterances))
    return counts


def _from_csv(path: Path) -> Counter[str]:
    """``text`` and an optional whole-number ``count`` per row; any problem is one line naming
    the file and line."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    counts: Counter[str] = Counter()
    with handle:
        try:
            reader = csv.DictReader(handle)
            header = [(h or "").strip().lower() for h in reader.fieldnames or []]
            if "text" not in header:
                found = ", ".join(h for h in header if h) or "nothing"
                raise UsageError(
                    f"{path}:1: the first line must name a text column (and optionally count); "
                    f"found: {found}"
                )
            reader.fieldnames = header
            for row in reader:
                text = (row.get("text") or "").strip()
                raw = (row.get("count") or "").strip()
                if not text:
                    continue
                try:
                    count = int(raw) if raw else 1
                except ValueError:
                    count = -1
                if count < 1:
                    raise UsageError(
                        f"{path}:{reader.line_num}: count {raw!r} is not a whole number of 1 "
                        "or more"
                    )
                counts[text] += count
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path}: is not UTF-8 ({exc.reason}); save it as UTF-8") from None
        except csv.Error as exc:
            raise UsageError(f"{path}: is not valid CSV: {exc}") from None
    return counts


def render(found: Suggestions) -> str:
    if not found.groups and not found.unassigned:
        return "nothing to group: no utterances the bot did not understand\n"
    lines = [
        f"{_n(len(found.groups), 'suggested intent')} from {_n(found.callers, 'utterance')} "
        f"({sum(g.count for g in found.groups)} in groups, "
        f"{sum(s.count for s in found.unassigned)} fit no group)"
    ]
    for g in found.groups:
        ways = len(g.utterances)
        lines += ["", f"{g.name}  {_n(g.count, 'caller')}, {_n(ways, 'way')} of saying it"]
        lines.append(f"  closest intent: {_closest(g)}")
        lines += [f"    {text}" for text in g.examples]
    if found.unassigned:
        lines += ["", f"unassigned ({_n(len(found.unassigned), 'different utterance')})"]
        lines += [f"  {s.count:>4}  {s.text}" for s in found.unassigned[:SHOWN_UNASSIGNED]]
        if len(found.unassigned) > SHOWN_UNASSIGNED:
            lines.append(f"  ... and {len(found.unassigned) - SHOWN_UNASSIGNED} more (--json)")
    return "\n".join(lines) + "\n"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _closest(g: Group) -> str:
    if g.nearest is None or g.similarity is None:
        return "none (the configuration has no phrases)"
    return f"{g.nearest} (similarity {g.similarity:.2f})"


def to_json(found: Suggestions) -> dict[str, Any]:
    def said(items: tuple[Said, ...]) -> list[dict[str, Any]]:
        return [{"text": s.text, "count": s.count} for s in items]

    return {
        "groups": [
            {
                "name": g.name,
                "count": g.count,
                "examples": list(g.examples),
                "nearest_intent": g.nearest,
                "similarity": g.similarity,
                "utterances": said(g.utterances),
            }
            for g in found.groups
        ],
        "unassigned": said(found.unassigned),
    }


def _write_yaml(path: Path, found: Suggestions, config: LanguageConfig) -> None:
    """An ``intents:`` block: each group with its examples as phrases and a transfer to the
    default group as the placeholder action."""
    if not found.groups:
        return
    block = {
        "intents": {
            g.name: {
                "label": g.name.replace("_", " "),
                "transfer": config.default_group,
                "phrases": list(g.examples),
            }
            for g in found.groups
        }
    }
    header = (
        "# Suggested by `voicebot suggest`: paste the intents you want under `intents:` of\n"
        f"# {config.source}. Each transfers to {config.default_group} as a placeholder: set the\n"
        "# action, group and label, and check the phrases (they are what callers said).\n"
    )
    body = yaml.safe_dump(block, allow_unicode=True, sort_keys=False, width=10_000)
    try:
        with path.open("x", encoding="utf-8") as handle:  # never over an existing file
            handle.write(header + body)
    except FileExistsError:
        raise UsageError(f"{path} already exists: give a new file for --yaml") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be written: {exc.strerror or exc}") from None
