"""The ``voicebot`` command line: one sub-command per job, all thin shells over the core."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from voicebot import __version__
from voicebot.core.config import Deployment, LanguageConfig
from voicebot.loading.loader import ConfigError
from voicebot.matching.labelled import LabelledFileError


class UsageError(Exception):
    """A mistake in how the command was called: printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        code: int = args.run(args)
    except UsageError as exc:
        print(f"voicebot: {exc}", file=sys.stderr)
        return 2
    except (LabelledFileError, ConfigError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `voicebot replay ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicebot",
        description="Offline first-line voice robot for support lines.",
    )
    parser.add_argument("--version", action="version", version=f"voicebot {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    check = sub.add_parser("check", help="validate an intents configuration")
    check.add_argument("path", nargs="?", type=Path, help="file or folder (default: embedded)")
    check.add_argument("--today", type=_date, help="date for 'announcement ended' warnings")
    check.set_defaults(run=cmd_check)

    chat = sub.add_parser("chat", help="type what a caller says and see what the bot does")
    _config_args(chat)
    chat.add_argument(
        "--caller",
        default="+46701234567",
        help="caller's number, or 'withheld' (default: a Swedish mobile number)",
    )
    chat.add_argument("--at", type=_datetime, help="time of the call, ISO 8601 (default: now)")
    chat.add_argument("--sms-fails", action="store_true", help="simulate a failing SMS gateway")
    chat.set_defaults(run=cmd_chat)

    ev = sub.add_parser("eval", help="measure routing accuracy on labelled utterances")
    ev.add_argument(
        "utterances", type=Path, help="CSV with columns text,intent (intent oos = none)"
    )
    _config_args(ev)
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

    imp = sub.add_parser("import", help="build intents YAML from labelled utterances")
    imp.add_argument("labelled", type=Path, help="CSV with columns text,intent")
    imp.add_argument("--routes", type=Path, required=True, help="YAML: each intent's action")
    imp.add_argument("--out", type=Path, required=True, help="intents YAML to write")
    imp.add_argument("--max-examples", type=int, help="keep at most N examples per intent")
    imp.add_argument("--seed", type=int, default=0, help="sampling seed for --max-examples")
    imp.set_defaults(run=cmd_import)

    from voicebot.cli import calllog as calllog_cli
    from voicebot.cli import listen as listen_cli
    from voicebot.cli import models as speech_cli
    from voicebot.cli import replay as replay_cli
    from voicebot.cli import serve as serve_cli

    speech_cli.register(sub)
    serve_cli.register(sub)
    replay_cli.register(sub)
    listen_cli.register(sub)
    calllog_cli.register(sub)
    return parser


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="intents file or folder (default: the embedded examples)"
    )
    parser.add_argument("--lang", help="language to use, e.g. sv-SE (default: the deployment's)")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _datetime(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date and time (e.g. 2026-05-04T09:30): {text!r}"
        ) from None


def fail(message: str) -> int:
    """A command that could not do its job: one line on stderr, exit status 1."""
    print(f"voicebot: {message}", file=sys.stderr)
    return 1


def usage(parser: argparse.ArgumentParser) -> int:
    """A command group called without its action: its help, exit status 2."""
    parser.print_help(sys.stderr)
    return 2


def caller_arg(text: str) -> str | None:
    """``--caller``: a number, or empty / 'withheld' / 'none' for a withheld caller ID."""
    return None if text in ("", "withheld", "none") else text


def _load(path: Path | None) -> Deployment | None:
    """Load a deployment, printing every problem; None when it does not load."""
    from voicebot.loading.loader import ConfigError, load_deployment

    try:
        return load_deployment(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None


def _language(args: argparse.Namespace, config: Path | None = None) -> LanguageConfig | None:
    """The ``--lang`` language of ``--config`` (or of ``config``, when given)."""
    deployment = _load(config or args.config)
    if deployment is None:
        return None
    if args.lang is not None and args.lang not in deployment.languages:
        known = ", ".join(sorted(deployment.languages))
        raise UsageError(f"no language {args.lang!r} in the configuration (it has: {known})")
    return deployment.language(args.lang)


def cmd_check(args: argparse.Namespace) -> int:
    from voicebot.loading.lint import lint
    from voicebot.speech.grammar import unknown_grammar_words

    deployment = _load(args.path)
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
        unknown = unknown_grammar_words(config)
        if unknown:
            warnings += 1
            print(
                f"{code}: warning: {len(unknown)} grammar words unknown to the model: "
                + ", ".join(unknown)
            )
    print(f"ok: {len(deployment.languages)} language(s), {warnings} warning(s)")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from voicebot.matching.matcher import Matcher
    from voicebot.shells.chat import HELP, ChatOptions, run_chat

    config = _language(args)
    if config is None:
        return 1
    caller = caller_arg(args.caller)
    at = args.at or dt.datetime.now().astimezone()
    matcher = Matcher(tuple(config.intents.values()), config.thresholds)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"voicebot chat ({config.language}, {config.source}), caller {caller or 'withheld'}")
        print(HELP)
    options = ChatOptions(caller=caller, at=at, sms_works=not args.sms_fails)
    run_chat(config, matcher, options, sys.stdin, sys.stdout, prompt="you> " if interactive else "")
    return 0


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
    config = _language(args)
    old_config = None
    if args.against is not None:
        old_config = _language(args, args.against)
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


def cmd_import(args: argparse.Namespace) -> int:
    from voicebot.loading.importer import import_labelled
    from voicebot.loading.loader import ConfigError, load_language

    if args.max_examples is not None and args.max_examples < 1:
        raise UsageError("--max-examples must be at least 1")
    text = import_labelled(args.labelled, args.routes, args.max_examples, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.out)
    try:
        config = load_language(args.out)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    examples = sum(len(i.examples) for i in config.intents.values())
    print(
        f"wrote {args.out}: {len(config.intents)} intents, {examples} examples,"
        f" {len(config.groups)} agent groups"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
