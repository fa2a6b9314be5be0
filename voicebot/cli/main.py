"""The ``voicebot`` command line: one module per sub-command, all thin shells over the library.

``main`` is the one place errors meet the user: a ``VoicebotError`` (a mistake the user can fix)
is printed as its one-line report with the error's exit status; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from voicebot import __version__
from voicebot.cli import (
    calllog,
    chat,
    check,
    eval,
    grammar,
    import_,
    init,
    listen,
    models,
    replay,
    serve,
    simulate,
)
from voicebot.errors import VoicebotError

# In the order ``voicebot --help`` lists them.
COMMANDS = (
    init,
    check,
    chat,
    eval,
    import_,
    models,
    serve,
    simulate,
    replay,
    grammar,
    listen,
    calllog,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        code: int = args.run(args)
    except VoicebotError as exc:
        print(exc.report(), file=sys.stderr)
        return exc.exit_status
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
    for command in COMMANDS:
        command.register(sub)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
