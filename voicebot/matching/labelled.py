"""Labelled utterance files (``text,intent`` CSV): the currency of eval and import.

These files are usually spreadsheet exports of call history, so the reader takes any valid CSV:
a BOM, ``,`` ``;`` or tab between cells (found from the header line, which must name the text and
intent columns), column names in any case or order, extra columns, blank lines, and quoted cells
with line breaks in them (whitespace is folded to single spaces). It is strict where a silent
guess would corrupt the data: a row with an unquoted separator would shift the intent into the
text, and a quote that is never closed swallows the rows after it, so those are reported with
their line instead. All bad rows are reported at once.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from voicebot.errors import ProblemListError

__all__ = ["OOS", "LabelledFileError", "LabelledRow", "read_labelled", "read_rows"]

OOS = "oos"  # the intent label meaning "should match no intent"
MAX_SHOWN = 20  # problems listed in one error; a wrong file must not print ten thousand lines
_COLUMNS = ("text", "intent")
_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True, slots=True)
class LabelledRow:
    text: str  # whitespace collapsed to single spaces
    intent: str
    line: int  # 1-based line where the row starts, for messages


class LabelledFileError(ProblemListError):
    """A labelled CSV that cannot be used; ``problems`` are (line, message), line 0: the file."""

    def __init__(
        self, path: Path, problems: list[tuple[int, str]], rows: list[LabelledRow] | None = None
    ) -> None:
        self.path = path
        self.problems = problems
        self.rows = rows or []  # the good rows, so a caller can check them too and report all
        shown = [f"{path}:{line}: {msg}" if line else f"{path}: {msg}" for line, msg in problems]
        if len(shown) > MAX_SHOWN:
            shown = [*shown[:MAX_SHOWN], f"{path}: ... and {len(shown) - MAX_SHOWN} more problems"]
        super().__init__("\n".join(shown))


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """Rows of (text, intent), in file order; every problem names file and line."""
    return [(row.text, row.intent) for row in read_rows(path)]


def read_rows(path: Path) -> list[LabelledRow]:
    """Rows with their line numbers; raises LabelledFileError listing every bad row."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LabelledFileError(path, [(0, f"cannot be read: {exc.strerror or exc}")]) from None
    handle = io.StringIO(_decode(path, raw), newline="")
    problems: list[tuple[int, str]] = []
    rows: list[LabelledRow] = []
    with handle:
        delimiter = _delimiter(handle.readline())
        handle.seek(0)
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = [cell.strip().lower() for cell in next(reader, [])]
            missing = [c for c in _COLUMNS if c not in header]
            doubled = sorted({c for c in _COLUMNS if header.count(c) > 1})
            if missing or doubled:
                found = ", ".join(c for c in header if c) or "nothing"
                what = f"missing: {', '.join(missing)}" if missing else f"twice: {doubled[0]}"
                raise LabelledFileError(
                    path,
                    [
                        (
                            1,
                            f"the first line must name the columns text,intent ({what}; found: "
                            f"{found})",
                        )
                    ],
                )
            text_col, intent_col = header.index("text"), header.index("intent")
            end = reader.line_num
            for cells in reader:
                start, end = end + 1, reader.line_num
                if not any(cell.strip() for cell in cells):
                    continue
                problem = _check(cells, len(header), text_col, intent_col, start, end)
                if problem is not None:
                    problems.append((start, problem))
                    continue
                text = " ".join(cells[text_col].split())
                rows.append(LabelledRow(text, " ".join(cells[intent_col].split()), start))
        except csv.Error as exc:
            problems.append((reader.line_num, f"is not valid CSV: {exc}"))
    if not rows and not problems:
        problems.append((0, "has no labelled rows below the text,intent header"))
    if problems:
        raise LabelledFileError(path, problems, rows)
    return rows


def _decode(path: Path, raw: bytes) -> str:
    """The file's text; a ``LabelledFileError`` naming every line that is not UTF-8. Decoded
    whole, not through a buffered reader: that fails at the first block it reads, so a file
    saved as UTF-8 and then appended to in Latin-1 was reported at line 1."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    problems = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                (number, f"is not UTF-8 text ({exc.reason}); save the whole file as UTF-8")
            )
    raise LabelledFileError(path, problems)


def _delimiter(first_line: str) -> str:
    """The separator with which the header line names both columns; ``,`` when none does (the
    missing columns are then reported as such)."""
    for delimiter in _DELIMITERS:
        cells = next(csv.reader([first_line], delimiter=delimiter), [])
        if all(c in {cell.strip().lower() for cell in cells} for c in _COLUMNS):
            return delimiter
    return ","


def _check(
    cells: list[str], width: int, text_col: int, intent_col: int, start: int, end: int
) -> str | None:
    """Why a row cannot be used, or None. A quoted cell may hold line breaks; a row that spans
    lines and is malformed all the same is almost always a quote that was never closed."""
    malformed = len(cells) != width or not cells[text_col].strip() or not cells[intent_col].strip()
    if end > start and malformed:
        return (
            f'this row runs on to line {end}: a double quote (") is not closed; close it, '
            "or put the whole cell in quotes"
        )
    if len(cells) != width:
        return (
            f"has {len(cells)} fields but the header has {width}; put text that contains "
            'commas in double quotes ("like, this")'
        )
    text = cells[text_col].strip()
    intent = cells[intent_col].strip()
    if not text:
        return f"empty text for intent {intent!r}"
    if not intent:
        return f"no intent for {text!r} (use {OOS!r} for what should match no intent)"
    return None
