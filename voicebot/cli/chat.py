"""``voicebot chat``: type what a caller says and see what the bot does (``shells.chat``)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from voicebot.cli.common import Subparsers, caller_arg, config_args, datetime_arg, language


def register(subparsers: Subparsers) -> None:
    chat = subparsers.add_parser("chat", help="type what a caller says and see what the bot does")
    config_args(chat)
    chat.add_argument(
        "--caller",
        default="+46701234567",
        help="caller's number, or 'withheld' (default: a Swedish mobile number)",
    )
    chat.add_argument("--at", type=datetime_arg, help="time of the call, ISO 8601 (default: now)")
    chat.add_argument("--sms-fails", action="store_true", help="simulate a failing SMS gateway")
    chat.set_defaults(run=cmd_chat)


def cmd_chat(args: argparse.Namespace) -> int:
    from voicebot.matching.matcher import Matcher
    from voicebot.shells.chat import HELP, ChatOptions, run_chat
    from voicebot.shells.lookup import lookup_secret

    config = language(args)
    if config is None:
        return 1
    caller = caller_arg(args.caller)
    at = args.at or dt.datetime.now().astimezone()
    matcher = Matcher(tuple(config.intents.values()), config.thresholds)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"voicebot chat ({config.language}, {config.source}), caller {caller or 'withheld'}")
        print(HELP)
    options = ChatOptions(
        caller=caller, at=at, sms_works=not args.sms_fails, lookup_secret=lookup_secret()
    )
    run_chat(config, matcher, options, sys.stdin, sys.stdout, prompt="you> " if interactive else "")
    return 0
