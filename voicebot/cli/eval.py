"""``voicebot eval``: routing accuracy on labelled utterances, and what an edit fixed and broke."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from voicebot.cli.common import Subparsers, UsageError, config_args, language
from voicebot.core.config import LanguageConfig


def register(subparsers: Subparsers) -> None:
    ev = subparsers.add_parser("eval", help="measure routing accuracy on labelled utterances")
    ev.add_argument(
        "utterances", type=Path, help="CSV with columns text,intent (intent oos = none)"
    )
    config_args(ev)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument(
        "--against",
        type=Path,
        metavar="OLD_CONFIG",
        help="also score this (earlier) configuration and show what the change fixed and broke",
    )
    ev.add_argument(
        "--fail-under",
        type=float,
        metavar="PCT",
        help="exit 1 when route accuracy is below PCT percent (for CI)",
    )
    ev.set_defaults(run=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from voicebot.matching.evaluation import (
        EvalReport,
        compare,
        evaluate,
        format_comparison,
        format_report,
        read_labelled,
        route_map,
    )
    from voicebot.matching.matcher import Matcher

    if args.fail_under is not None and not 0 <= args.fail_under <= 100:
        raise UsageError("--fail-under is a percentage between 0 and 100")
    config = language(args)
    old_config = None
    if args.against is not None:
        old_config = language(args, args.against)
    if config is None or (args.against is not None and old_config is None):
        return 1
    rows = read_labelled(args.utterances)

    def score(c: LanguageConfig) -> EvalReport:
        return evaluate(Matcher(tuple(c.intents.values()), c.thresholds), rows, route_map(c))

    report = score(config)
    comparison = None if old_config is None else compare(report, score(old_config))
    if args.json:
        out = report.to_json() if comparison is None else comparison.to_json()
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(format_report(report))
        if comparison is not None:
            print(f"\ncompared with {args.against}:")
            print(format_comparison(comparison))
    if args.fail_under is not None and 100 * report.route_accuracy < args.fail_under:
        print(
            f"route accuracy {100 * report.route_accuracy:.1f}% is below {args.fail_under:g}%",
            file=sys.stderr,
        )
        return 1
    return 0
