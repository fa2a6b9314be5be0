"""The one family of errors a user may see: ``VoicebotError`` and its message contract.

Contract: ``str(error)`` is one sentence a user can act on — what is wrong, and the fix (a
command to run, a setting to change, a file to edit), with no Python names and no traceback.
Errors that list several problems (``ConfigError``, a labelled file) give one such line per
problem, each starting with ``file:line``. ``voicebot.cli.main`` catches the family once, prints
``report()`` on stderr and exits with ``exit_status``; every other exception escaping a command is
a bug. Library code raises these for a user's mistakes or the environment (a missing model, an
unreadable database), never for programming errors.
"""

from __future__ import annotations

__all__ = ["ProblemListError", "VoicebotError"]


class VoicebotError(Exception):
    """Something the user can fix; ``str()`` says what and how, in one sentence."""

    exit_status = 1

    def report(self) -> str:
        """The text printed on stderr: the message after the program name."""
        return f"voicebot: {self}"


class ProblemListError(VoicebotError):
    """An error whose lines each start with the place they are about (``file:line: ...``), so
    the program name is not put in front of them."""

    def report(self) -> str:
        return str(self)
