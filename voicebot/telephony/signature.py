"""Twilio request signatures (``X-Twilio-Signature``) for webhooks and the media-stream upgrade.

The signature covers the exact URL Twilio requested plus the POST parameters, so it must be checked
against the *public* URL. Behind a TLS-terminating proxy the server sees ``http://10.0.0.5:8080/..``
while Twilio signed ``https://bot.example.com/..``: rebuild the URL with ``public_url`` from the
configured public base instead of trusting the request's scheme, host and port. Twilio signs some
URLs with and some without the default port (:443); ``is_valid`` accepts both. The WebSocket
upgrade of ``<Connect><Stream>`` is signed against its ``wss://`` URL with no parameters.
``verify`` is the one check every signed route (webhooks, whisper, stream upgrade) goes through,
so the public-URL rebuild cannot be forgotten on one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

SIGNATURE_HEADER: Final = "X-Twilio-Signature"


def sign(url: str, params: Mapping[str, str] | None, auth_token: str) -> str:
    """The signature Twilio would send for this request (for tests and the local fake)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params or {})))


def is_valid(
    url: str, params: Mapping[str, str] | None, signature: str | None, auth_token: str
) -> bool:
    """Whether ``signature`` proves the request came from the account owning ``auth_token``."""
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, dict(params or {}), signature))


def public_url(request_url: str, public_base: str, *, websocket: bool = False) -> str:
    """``request_url``'s path and query on the public origin Twilio actually called.

    ``public_base`` is e.g. ``https://bot.example.com`` (optionally with a path prefix the proxy
    strips). With ``websocket`` the scheme becomes ``wss``/``ws`` to match the signed stream URL.
    """
    base = urlsplit(public_base)
    if base.scheme not in ("http", "https", "ws", "wss") or not base.netloc:
        raise ValueError(f"public base must be an absolute http(s) URL, got {public_base!r}")
    secure = base.scheme in ("https", "wss")
    scheme = ("wss" if secure else "ws") if websocket else ("https" if secure else "http")
    request = urlsplit(request_url)
    path = base.path.rstrip("/") + (request.path or "/")
    return urlunsplit((scheme, base.netloc, path, request.query, ""))


def verify(
    request_url: str,
    params: Mapping[str, str] | None,
    signature: str | None,
    *,
    public_base: str,
    auth_token: str,
    websocket: bool = False,
) -> str | None:
    """``None`` when the request is signed; else the public URL that failed (for the log line)."""
    url = public_url(request_url, public_base, websocket=websocket)
    return None if is_valid(url, params, signature, auth_token) else url
