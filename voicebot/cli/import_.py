"""``voicebot import``: build an intents YAML from a labelled call history and a routes file.

(The module is ``import_`` because ``import`` is a Python keyword.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from voicebot.atomic import write_bytes_atomic
from voicebot.cli.common import Subparsers, UsageError
from voicebot.errors import VoicebotError


def register(subparsers: Subparsers) -> None:
    imp = subparsers.add_parser("import", help="build intents YAML from labelled utterances")
    imp.add_argument("labelled", type=Path, help="CSV with columns text,intent")
    imp.add_argument("--routes", type=Path, required=True, help="YAML: each intent's action")
    imp.add_argument("--out", type=Path, required=True, help="intents YAML to write")
    imp.add_argument("--max-examples", type=int, help="keep at most N examples per intent")
    imp.add_argument("--seed", type=int, default=0, help="sampling seed for --max-examples")
    imp.set_defaults(run=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from voicebot.loading.importer import import_labelled
    from voicebot.loading.loader import ConfigError, load_language

    if args.max_examples is not None and args.max_examples < 1:
        raise UsageError("--max-examples must be at least 1")
    out: Path = args.out
    if out.is_dir():
        raise UsageError(
            f"--out {out} is a folder; give the file to write, e.g. {out / 'intents.yaml'}"
        )
    text = import_labelled(args.labelled, args.routes, args.max_examples, args.seed)
    _write(out, text)
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


def _write(out: Path, text: str) -> None:
    """Write through a temporary file renamed over ``out``, so a reader never sees half a file;
    on failure nothing is left behind (``voicebot.atomic``: no planted temporary file)."""
    try:
        write_bytes_atomic(out, text.encode("utf-8"))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CannotWrite(
            f"cannot write {out}: {reason}; give --out a file in a folder you can write to"
        ) from None


class CannotWrite(VoicebotError):
    """The output file cannot be written."""
