"""``voicebot init DIR``: write a commented starting configuration for a new line.

It never overwrites: ``DIR`` must be new or empty, checked before anything is written, so a
mistyped folder cannot cost ops their edited intents.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from voicebot.cli.common import Subparsers
from voicebot.errors import VoicebotError


class InitError(VoicebotError):
    """The folder cannot take a new configuration."""


def register(subparsers: Subparsers) -> None:
    init = subparsers.add_parser(
        "init", help="write a commented starting configuration for a new line"
    )
    init.add_argument("dir", type=Path, help="new (or empty) folder to write it into")
    init.add_argument(
        "--lang", default="en-US", help="language of the line: sv-SE or en-US (default: en-US)"
    )
    init.set_defaults(run=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from voicebot.loading.starter import starter_files

    folder: Path = args.dir
    files = starter_files(args.lang, str(folder), dt.date.today())
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InitError(
            f"{folder} already exists and is not empty; init writes only into a new or empty "
            "folder and never overwrites (choose another folder)"
        )
    try:
        for relative, text in files.items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InitError(f"cannot write into {folder}: {exc.strerror or exc}") from exc
    written = ", ".join(str(folder / relative) for relative in files)
    print(f"wrote {written}")
    print(f"next: edit the groups and intents, then: voicebot check {folder}")
    print(f"      and try it: voicebot chat --config {folder}")
    return 0
