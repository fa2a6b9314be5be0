"""The HTTP access log without query values: what ``voicebot serve`` gives uvicorn.

uvicorn's access log writes every request's path *with* its query string, and log files are
kept, shipped and backed up far from the call log's retention, ``purge`` and ``forget``. Our own
URLs carry no secrets or caller words (the dashboard logs in by form or header, the whisper URL
names the call, not what was said), but a URL is whatever a client sends: an old bookmark with
``?token=``, a script, a scanner. So the log keeps the path and the parameter names only
(``/dashboard/?token=...``): enough to see what was asked for, nothing worth stealing.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote

import uvicorn

__all__ = ["RedactQueries", "parse_proxies", "redact_query", "server_config"]

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


def parse_proxies(addresses: Iterable[str]) -> list[str]:
    """Trusted proxy addresses or networks (``10.0.0.10``, ``10.0.0.0/24``, ``::1``), checked
    and normalised; a ``ValueError`` names the first that is not one."""
    parsed = []
    for address in addresses:
        try:
            parsed.append(str(ipaddress.ip_network(address.strip(), strict=False)))
        except ValueError:
            raise ValueError(
                f"{address!r} is not an IP address or network (e.g. 10.0.0.10 or 10.0.0.0/24)"
            ) from None
    return parsed


def server_config(
    app: Any, *, trusted_proxies: Iterable[str] = (), **options: Any
) -> uvicorn.Config:
    """``uvicorn.Config(app, **options)`` with the access log's query values redacted, and
    ``X-Forwarded-For``/``-Proto`` believed only from ``trusted_proxies`` (addresses or
    networks, see ``parse_proxies``).

    uvicorn on its own believes those headers from 127.0.0.1 (or ``$FORWARDED_ALLOW_IPS``), so
    any local client could pose as any address and defeat, or aim, the dashboard's per-client
    lockout. With proxies given, the client is the right-most address in the chain that is not
    a trusted proxy (what HAProxy's ``option forwardfor`` appended), so a forged left part
    changes nothing. Without, the headers are ignored and the client is the peer address.

    The filter goes on after the Config is made, because making it (re)configures uvicorn's
    loggers; it is added once however many servers a process starts.
    """
    proxies = parse_proxies(trusted_proxies)
    config = uvicorn.Config(
        app, proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None, **options
    )
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactQueries) for f in logger.filters):
        logger.addFilter(RedactQueries())
    return config
