"""The HTTP access log without query values: what ``voicebot serve`` gives uvicorn.

uvicorn's access log writes every request's path *with* its query string, and log files are
kept, shipped and backed up far from the call log's retention, ``purge`` and ``forget``. Our own
URLs carry no secrets or caller words (the dashboard logs in by form or header, the whisper URL
names the call, not what was said), but a URL is whatever a client sends: an old bookmark with
``?token=``, a script, a scanner. So the log keeps the path and the parameter names only
(``/dashboard/?token=...``): enough to see what was asked for, nothing worth stealing.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, quote

import uvicorn

__all__ = ["RedactQueries", "redact_query", "server_config"]

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "..."


def redact_query(text: str) -> str:
    """``/path?a=1&b=2`` -> ``/path?a=...&b=...``; anything else unchanged."""
    path, sep, query = text.partition("?")
    if not sep or not path.startswith("/"):
        return text
    names = [name for name, _value in parse_qsl(query, keep_blank_values=True)]
    if not names:
        return path + "?" + REDACTED if query else path + "?"
    return path + "?" + "&".join(f"{quote(name, safe='')}={REDACTED}" for name in names)


class RedactQueries(logging.Filter):
    """Rewrites the path arguments of uvicorn's access records (HTTP and WebSocket lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_query(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def server_config(app: Any, **options: Any) -> uvicorn.Config:
    """``uvicorn.Config(app, **options)`` with the access log's query values redacted.

    The filter goes on after the Config is made, because making it (re)configures uvicorn's
    loggers; it is added once however many servers a process starts.
    """
    config = uvicorn.Config(app, **options)
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactQueries) for f in logger.filters):
        logger.addFilter(RedactQueries())
    return config
