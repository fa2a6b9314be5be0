"""Labelled utterance files (``text,intent`` CSV): the currency of eval and import."""

from __future__ import annotations

import csv
from pathlib import Path

OOS = "oos"  # the intent label meaning "should match no intent"


class LabelledFileError(Exception):
    """A labelled CSV that cannot be used; the message names the file and line."""


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """Rows of (text, intent), in file order; every problem names file and line."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise LabelledFileError(f"{path}: cannot read: {exc.strerror}") from None
    rows: list[tuple[str, str]] = []
    with handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in reader.fieldnames or []]
        missing = [c for c in ("text", "intent") if c not in fields]
        if missing:
            raise LabelledFileError(
                f"{path}:1: the header must name the columns text,intent"
                f" (missing: {', '.join(missing)}; found: {', '.join(fields) or 'nothing'})"
            )
        reader.fieldnames = fields
        try:
            for record in reader:
                line = reader.line_num
                text = (record.get("text") or "").strip()
                intent = (record.get("intent") or "").strip()
                if not text and not intent:
                    continue
                if not text:
                    raise LabelledFileError(f"{path}:{line}: empty text for intent {intent!r}")
                if not intent:
                    raise LabelledFileError(f"{path}:{line}: no intent for {text!r}")
                rows.append((text, intent))
        except UnicodeDecodeError:
            raise LabelledFileError(f"{path}: not UTF-8 text") from None
        except csv.Error as exc:
            raise LabelledFileError(f"{path}:{reader.line_num}: {exc}") from None
    if not rows:
        raise LabelledFileError(f"{path}: no labelled rows")
    return rows
