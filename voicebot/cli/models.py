"""``voicebot models ...``: list, download and locate the speech models, as thin shells over
``voicebot.speech.model_store``. Errors (``ModelError``) are one sentence on stderr and exit status
1, never a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from voicebot.cli.common import Subparsers, usage
from voicebot.speech import model_store as models


def register(subparsers: Subparsers) -> None:
    """Add the ``models`` command (with ``list``, ``download LANG``, ``path LANG``)."""
    parser = subparsers.add_parser("models", help="list, download and locate speech models")
    parser.set_defaults(run=lambda _args: usage(parser))
    sub = parser.add_subparsers(title="model commands", metavar="ACTION")

    lister = sub.add_parser("list", help="every catalogued language and whether it is here")
    lister.set_defaults(run=cmd_list)

    download = sub.add_parser("download", help="download a language's model (once)")
    download.add_argument("lang", help="language tag, e.g. sv-SE")
    download.add_argument("--sha256", help="expected SHA-256 of the zip, checked before unpacking")
    download.add_argument(
        "--url-base",
        help=f"mirror to fetch from (default: ${models.URL_BASE_ENV} or {models.DEFAULT_URL_BASE})",
    )
    download.set_defaults(run=cmd_download)

    where = sub.add_parser("path", help="print the directory of an installed model")
    where.add_argument("lang", help="language tag, e.g. sv-SE")
    where.set_defaults(run=cmd_path)


def cmd_list(args: argparse.Namespace) -> int:
    print(f"models in {models.model_dir()} (set ${models.MODEL_DIR_ENV} to move them)")
    for e in models.CATALOGUE.values():
        where = models.path(e)
        status = f"installed: {where}" if models.is_model_dir(where) else "not installed"
        print(f"{e.lang:<7} {e.name:<34} {e.approx_size:>5}  {status}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    e = models.entry(args.lang)
    bar = ProgressBar(e.name, sys.stderr)
    where, fetched = models.download(e, bar, url_base=args.url_base, sha256=args.sha256)
    bar.done()
    if fetched:
        print(f"installed the {e.lang} model in {where}")
    else:
        print(f"the {e.lang} model is already installed in {where}; nothing downloaded")
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    print(models.require(args.lang))
    return 0


class ProgressBar:
    """Download progress on stderr: a redrawn bar on a terminal, a line per 10 % otherwise
    (so logs stay readable)."""

    WIDTH = 30

    def __init__(self, name: str, out: TextIO) -> None:
        self._name = name
        self._out = out
        self._tty = out.isatty()
        self._last_step = -1
        self._drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        mb = f"{done / 1e6:.1f}" + (f"/{total / 1e6:.1f} MB" if total else " MB")
        if total:
            fraction = min(1.0, done / total)
            filled = round(fraction * self.WIDTH)
            line = f"{self._name} [{'#' * filled}{' ' * (self.WIDTH - filled)}] "
            line += f"{fraction:4.0%} {mb}"
            step = int(fraction * 10)
        else:
            line, step = f"{self._name} {mb}", done // 10_000_000
        if self._tty:
            self._out.write("\r" + line)
            self._drawn = True
        elif step != self._last_step:
            self._out.write(line + "\n")
        self._last_step = step
        self._out.flush()

    def done(self) -> None:
        if self._drawn:
            self._out.write("\n")
            self._drawn = False
