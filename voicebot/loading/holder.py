"""``ConfigHolder``: the deployment a running server serves, swapped only for one that loads.

A reload that fails leaves the last good configuration serving and keeps the error in
``last_error`` (and the log) for ops; calls in progress keep the objects they started with.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from voicebot.core.config import Deployment, LanguageConfig, Origin
from voicebot.loading.deployment import load_deployment
from voicebot.loading.problems import ConfigError, Problem

__all__ = ["ConfigHolder"]

log = logging.getLogger(__name__)


class ConfigHolder:
    """Serves the current deployment and swaps in a reloaded one only when it loads cleanly.

    A call keeps the ``LanguageConfig`` it started with (the objects are immutable), so a reload
    never changes a call in progress; a broken edit leaves the last good config serving.
    """

    def __init__(self, path: Path | None = None, *, initial: Deployment | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._current = initial if initial is not None else load_deployment(path)
        self.last_error: ConfigError | None = None

    @property
    def current(self) -> Deployment:
        return self._current

    def language(self, code: str | None = None) -> LanguageConfig:
        return self._current.language(code)

    def reload(self) -> ConfigError | None:
        """Load the files again; the error (also kept in ``last_error``) when they do not load.

        Whatever goes wrong, the server keeps serving: an unexpected exception in the loader is
        logged with its traceback and reported as a failed reload like a broken edit.
        """
        with self._lock:
            try:
                fresh = load_deployment(self.path)
            except Exception as exc:
                if isinstance(exc, ConfigError):
                    error = exc
                else:
                    log.exception("configuration reload crashed")
                    where = Origin(str(self.path or "the configuration"), 0, 0)
                    error = ConfigError([Problem(where, f"could not be loaded: {exc!r}")])
                self.last_error = error
                log.error(
                    "configuration reload failed; still serving the previous configuration:\n%s",
                    error,
                )
                return error
            self._current = fresh
            self.last_error = None
            log.info("configuration reloaded: %s", ", ".join(fresh.languages))
            return None
