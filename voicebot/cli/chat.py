"""``voicebot chat``: type what a caller says and see what the bot does (``shells.chat``)."""

from __future__ import annotations

import argparse
import sys
import uuid
from dataclasses import replace

from voicebot.cli.common import (
    Subparsers,
    UsageError,
    caller_arg,
    config_args,
    datetime_arg,
    in_line_zone,
    language,
)
from voicebot.core import phone


def register(subparsers: Subparsers) -> None:
    chat = subparsers.add_parser("chat", help="type what a caller says and see what the bot does")
    config_args(chat)
    chat.add_argument(
        "--caller",
        default="+46701234567",
        help="caller's number, +46701234567 or national (0701234567, read with the line's "
        "country), or 'withheld' (default: a Swedish mobile number)",
    )
    chat.add_argument(
        "--at",
        type=datetime_arg,
        help="time of the call, ISO 8601; without an offset, in the line's timezone (default: now)",
    )
    chat.add_argument(
        "--explain",
        action="store_true",
        help="after each utterance, show the top intents and their scores and the verdict",
    )
    chat.add_argument("--sms-fails", action="store_true", help="simulate a failing SMS gateway")
    chat.add_argument(
        "--database",
        metavar="URL",
        help="record the call in this call log (sqlite:///path or postgresql://...) and, with "
        "recall on, recall the caller from it, so a second chat of the same --caller is recalled",
    )
    chat.set_defaults(run=cmd_chat)


def cmd_chat(args: argparse.Namespace) -> int:
    from voicebot.calllog.log import CallLog
    from voicebot.calllog.scripted import caller_recall
    from voicebot.matching.matcher import Matcher
    from voicebot.shells.chat import HELP, ChatOptions, run_chat
    from voicebot.shells.lookup import lookup_secret

    config = language(args)
    if config is None:
        return 1
    caller = caller_arg(args.caller)
    if caller is not None:
        try:  # as the telephone network gives it: E.164, so SMS and opening rules see a number
            caller = phone.parse(caller, config.calling_code)
        except phone.NotANumber as exc:
            raise UsageError(f"--caller: {exc}, or 'withheld'") from None
    at = in_line_zone(args.at, config)
    matcher = Matcher(tuple(config.intents.values()), config.thresholds)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"voicebot chat ({config.language}, {config.source}), caller {caller or 'withheld'}")
        print(HELP)
    options = ChatOptions(
        caller=caller,
        at=at,
        sms_works=not args.sms_fails,
        explain=args.explain,
        lookup_secret=lookup_secret(),
        call_id=f"chat-{uuid.uuid4().hex[:16]}",
    )
    prompt = "you> " if interactive else ""
    if args.database is None:
        run_chat(config, matcher, options, sys.stdin, sys.stdout, prompt=prompt)
        return 0
    with CallLog.open(args.database) as log:
        history = caller_recall(log, config, caller, at, options.call_id)
        options = replace(options, history=history)
        run_chat(config, matcher, options, sys.stdin, sys.stdout, prompt=prompt, log=log)
    return 0
