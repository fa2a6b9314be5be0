"""What every ``voicebot`` sub-command shares: usage errors, ``--config``/``--lang``, loading.

Each command module registers its parser with ``register(subparsers)`` and reports a user's
mistake by raising a ``VoicebotError`` (``UsageError`` for how it was called); ``main`` prints it
as one line and exits non-zero. ``fail`` is for a command that wants to go on after reporting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TypeAlias
from zoneinfo import ZoneInfo

from voicebot.core.config import Deployment, LanguageConfig
from voicebot.errors import VoicebotError

__all__ = [
    "Subparsers",
    "UsageError",
    "caller_arg",
    "config_args",
    "date_arg",
    "datetime_arg",
    "fail",
    "in_line_zone",
    "language",
    "load",
    "usage",
]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(VoicebotError):
    """A mistake in how the command was called: printed as one line, exit status 2."""

    exit_status = 2


def fail(message: str) -> int:
    """A command that could not do its job: one line on stderr, exit status 1."""
    print(f"voicebot: {message}", file=sys.stderr)
    return 1


def usage(parser: argparse.ArgumentParser) -> int:
    """A command group called without its action: its help, exit status 2."""
    parser.print_help(sys.stderr)
    return 2


def config_args(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--lang``, read by ``language``."""
    parser.add_argument(
        "--config", type=Path, help="intents file or folder (default: the embedded examples)"
    )
    parser.add_argument("--lang", help="language to use, e.g. sv-SE (default: the deployment's)")


def date_arg(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def datetime_arg(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date and time (e.g. 2026-05-04T09:30): {text!r}"
        ) from None


def in_line_zone(at: dt.datetime | None, config: LanguageConfig) -> dt.datetime:
    """A ``--at`` time as the line means it: without an offset it is the line's own clock (its
    ``timezone``, where opening hours are read), not UTC nor this machine's; None is now."""
    zone = ZoneInfo(config.timezone)
    if at is None:
        return dt.datetime.now(zone)
    return at if at.tzinfo is not None else at.replace(tzinfo=zone)


def caller_arg(text: str) -> str | None:
    """``--caller``: a number, or empty / 'withheld' / 'none' for a withheld caller ID."""
    return None if text in ("", "withheld", "none") else text


def load(path: Path | None) -> Deployment | None:
    """Load a deployment, printing every problem; None when it does not load."""
    from voicebot.loading.loader import ConfigError, load_deployment

    try:
        return load_deployment(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None


def language(args: argparse.Namespace, config: Path | None = None) -> LanguageConfig | None:
    """The ``--lang`` language of ``--config`` (or of ``config``, when given)."""
    deployment = load(config or args.config)
    if deployment is None:
        return None
    if args.lang is not None and args.lang not in deployment.languages:
        known = ", ".join(sorted(deployment.languages))
        raise UsageError(f"no language {args.lang!r} in the configuration (it has: {known})")
    return deployment.language(args.lang)
