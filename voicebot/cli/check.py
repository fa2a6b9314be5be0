"""``voicebot check``: load a configuration, print every error with its place and the warnings."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from voicebot.cli.common import Subparsers, date_arg, load


def register(subparsers: Subparsers) -> None:
    check = subparsers.add_parser("check", help="validate an intents configuration")
    check.add_argument("path", nargs="?", type=Path, help="file or folder (default: embedded)")
    check.add_argument("--today", type=date_arg, help="date for 'announcement ended' warnings")
    check.set_defaults(run=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from voicebot.loading.lint import lint
    from voicebot.shells.lookup import LOOKUP_SECRET_ENV, lookup_secret
    from voicebot.speech.grammar import vocabulary_gaps
    from voicebot.speech.model_store import ModelError

    deployment = load(args.path)
    if deployment is None:
        print("configuration has errors: not loaded", file=sys.stderr)
        return 1
    today = args.today or dt.date.today()
    warnings = 0
    for code, config in sorted(deployment.languages.items()):
        found = lint(config, today=today)
        warnings += len(found)
        for warning in found:
            print(f"{warning.origin}: warning: {warning.message}")
        print(
            f"{code}: {len(config.intents)} intents, {len(config.groups)} agent groups,"
            f" {len(config.announcements)} announcements ({config.source})"
        )
        escape = config.words.escape
        print(f"{code}: escape phrases (a person at once): " + ", ".join(escape))
        try:
            unknown = vocabulary_gaps(config)
        except ModelError as exc:  # say so: a silent skip reads as "every word is known"
            print(f"{code}: note: phrase words not checked against the speech model: {exc}")
            unknown = []
        if unknown:
            warnings += 1
            print(
                f"{code}: warning: {len(unknown)} grammar words unknown to the model: "
                + ", ".join(unknown)
            )
    lookups = [i for c in deployment.languages.values() for i in c.intents.values() if i.action.url]
    if lookups and lookup_secret() is None:
        warnings += 1
        print(
            f"{lookups[0].origin}: warning: ${LOOKUP_SECRET_ENV} is not set, so lookups go "
            "unsigned and the endpoint cannot tell them from anyone else's requests"
        )
    print(f"ok: {len(deployment.languages)} language(s), {warnings} warning(s)")
    return 0
