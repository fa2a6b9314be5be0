"""What is wrong with a configuration, and where: ``Problem`` and the ``ConfigError`` carrying them.

Every part of the loader appends problems to one list instead of raising at the first one, so
ops see every mistake of every file in one round; ``ConfigError`` is raised once at the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from voicebot.core.config import Origin
from voicebot.errors import ProblemListError

__all__ = ["ConfigError", "Problem", "place"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in the configuration, and where it was written."""

    origin: Origin
    message: str

    def __str__(self) -> str:
        return f"{place(self.origin)}: {self.message}"


def place(origin: Origin) -> str:
    if origin.line <= 0:
        return origin.file
    if origin.column <= 0:
        return f"{origin.file}:{origin.line}"
    return str(origin)


class ConfigError(ProblemListError):
    """The configuration cannot be used; ``problems`` lists everything found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(
            problems, key=lambda p: (p.origin.file, p.origin.line, p.origin.column)
        )
        super().__init__("\n".join(str(p) for p in self.problems))
