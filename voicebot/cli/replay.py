"""``voicebot replay``: recorded calls (WAV) through the call pipeline, a thin shell over
``voicebot.shells.replay``. Errors are one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from voicebot.cli.common import (
    Subparsers,
    UsageError,
    caller_arg,
    config_args,
    datetime_arg,
    fail,
    in_line_zone,
    language,
)

if TYPE_CHECKING:
    from voicebot.core.config import LanguageConfig
    from voicebot.shells.replay import FileResult
    from voicebot.speech.pipeline import SpeechKit

DEFAULT_CALLER = "+46701234567"  # a mobile number, so SMS actions are taken
DEFAULT_AT = "2026-01-05T10:00"  # a Monday morning: fixed, so replays repeat exactly


def register(subparsers: Subparsers) -> None:
    """Add ``replay``."""
    replay = subparsers.add_parser("replay", help="run recorded calls (WAV) through the bot")
    replay.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="WAV files or folders")
    config_args(replay)
    replay.add_argument("--expect", type=Path, help="CSV file,intent or file,action to check")
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    replay.add_argument("--workers", type=int, default=1, help="files decoded in parallel")
    replay.add_argument(
        "--caller", default=DEFAULT_CALLER, help="caller's number, or 'withheld' (no SMS)"
    )
    replay.add_argument(
        "--at",
        type=datetime_arg,
        help=f"time of the calls (with --database, of the first), ISO 8601 (default {DEFAULT_AT} "
        "in the language's time zone)",
    )
    replay.add_argument(
        "--database",
        metavar="URL",
        help="each file is one call of --caller, in the order given: recorded in this call log "
        "(sqlite:///path or postgresql://...) and, with recall on, recalled from it, as "
        "`voicebot chat --database` does (one file at a time: not with --workers)",
    )
    replay.set_defaults(run=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from voicebot.shells.replay import (
        NO_CHECK,
        check,
        find_wavs,
        format_result,
        junit_xml,
        read_expectations,
        replay_file,
        result_json,
    )
    from voicebot.speech.pipeline import load_speech_model, speech_kit

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.database is not None and args.workers != 1:
        raise UsageError("--database replays the files one after another as one caller's calls")
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:  # a typo: said now, not after the speech model has loaded
        return fail(", ".join(missing) + ": no such file or folder")
    config = language(args)
    if config is None:
        return 1
    expectations = read_expectations(args.expect) if args.expect else {}
    model = load_speech_model(config)
    files = find_wavs(args.paths)
    if not files:
        return fail("no WAV files found in " + ", ".join(map(str, args.paths)))
    caller = caller_arg(args.caller)
    at = in_line_zone(args.at or dt.datetime.fromisoformat(DEFAULT_AT), config)
    kit = speech_kit(config, model, lambda m: _warn(m))

    def one(path: Path) -> FileResult:
        return replay_file(path, config, kit, caller=caller, at=at)

    progress = Progress(len(files), sys.stderr) if any(p.is_dir() for p in args.paths) else None
    results: list[FileResult] = []
    if args.database is not None:
        results = _replay_calls(files, config, kit, caller, at, args.database, progress)
    else:
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            for result in pool.map(one, files):  # map keeps the input order
                results.append(result)
                if progress is not None:
                    progress.update(len(results))
    if progress is not None:
        progress.done()

    checks = [check(r, expectations) if expectations else NO_CHECK for r in results]
    checked = [c for c in checks if c.ok is not None]
    passed = sum(1 for c in checked if c.ok)
    errors = [r for r in results if r.error is not None]
    for r in errors:
        print(f"voicebot: {r.error}", file=sys.stderr)
    audio_s = sum(r.duration_s for r in results)
    wall_s = sum(r.wall_s for r in results)
    if args.json:
        summary = {
            "files": [result_json(r, c) for r, c in zip(results, checks, strict=True)],
            "checked": len(checked),
            "passed": passed,
            "accuracy": round(passed / len(checked), 4) if checked else None,
            "errors": len(errors),
            "audio_s": round(audio_s, 2),
        }
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for r, c in zip(results, checks, strict=True):
            if r.error is None:
                print(format_result(r, c))
        ok_files = len(results) - len(errors)
        print(f"replayed {ok_files} file(s), {audio_s:.1f} s of audio in {wall_s:.1f} s decoding")
        if expectations:
            pct = f" ({passed / len(checked):.0%})" if checked else ""
            print(f"expectations: {passed}/{len(checked)} as expected{pct}")
            for r, c in zip(results, checks, strict=True):
                if c.ok is False:
                    print(f"  MISMATCH {r.file}: expected {c.want}, got {c.got}")
    if args.junit:
        args.junit.parent.mkdir(parents=True, exist_ok=True)
        args.junit.write_text(junit_xml(results, checks), encoding="utf-8")
    return 1 if errors or passed < len(checked) else 0


def _replay_calls(
    files: list[Path],
    config: LanguageConfig,
    kit: SpeechKit,
    caller: str | None,
    at: dt.datetime,
    database: str,
    progress: Progress | None,
) -> list[FileResult]:
    """``--database``: the files as one caller's calls, one after another, each starting where
    the one before ended, so a call is recalled from the ones replayed before it."""
    from voicebot.calllog.log import CallLog
    from voicebot.shells.replay import replay_file

    results: list[FileResult] = []
    with CallLog.open(database) as log:
        for path in files:
            call_id = f"replay-{uuid.uuid4().hex[:16]}"
            result = replay_file(path, config, kit, caller=caller, at=at, log=log, call_id=call_id)
            at += dt.timedelta(seconds=result.call_s)
            results.append(result)
            if progress is not None:
                progress.update(len(results))
    return results


class Progress:
    """Files done, on stderr: a redrawn bar on a terminal, else a line per 10 %."""

    WIDTH = 30

    def __init__(self, total: int, out: TextIO) -> None:
        self._total = total
        self._out = out
        self._tty = out.isatty()
        self._last = 0

    def update(self, done: int) -> None:
        fraction = done / self._total
        if self._tty:
            filled = round(fraction * self.WIDTH)
            bar = "#" * filled + " " * (self.WIDTH - filled)
            self._out.write(f"\rreplay [{bar}] {done}/{self._total}")
        elif int(fraction * 10) > self._last:
            self._last = int(fraction * 10)
            self._out.write(f"replay: {done}/{self._total} files ({fraction:.0%})\n")
        self._out.flush()

    def done(self) -> None:
        if self._tty:
            self._out.write("\n")


def _warn(message: str) -> None:
    print(f"voicebot: warning: {message}", file=sys.stderr)
