"""The HTTP side of self-service lookups: POST the dialogue's ``Lookup``, turn the reply into a
``LookupResult``. Used by chat, replay and the Twilio server alike, so a lookup behaves the same
in a test as on the phone.

The request is JSON (``call``, ``caller``, ``intent``, ``transcript``, ``language``), signed with
an HMAC-SHA256 of the exact body under ``$VOICEBOT_LOOKUP_SECRET`` in the ``X-Voicebot-Signature``
header (``sha256=<hex>``), so the organisation's endpoint can refuse requests that are not ours;
without the secret requests go unsigned (``voicebot check`` warns). The whole exchange, connect
to last byte, has ``Lookup.timeout_s``: a caller is waiting in silence. Every failure becomes a
``LookupResult`` without an answer and with the reason, never an exception: the dialogue then
transfers to the intent's ``otherwise`` group. Standard library only (``urllib``): one POST
needs no HTTP client dependency.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from voicebot.core.config import LanguageConfig
from voicebot.core.lookup import Lookup, LookupAnswer, LookupResult, answer_problem

__all__ = [
    "LOOKUP_SECRET_ENV",
    "SIGNATURE_HEADER",
    "lookup",
    "lookup_secret",
    "parse_answer",
    "request_body",
    "signature",
]

LOOKUP_SECRET_ENV = "VOICEBOT_LOOKUP_SECRET"
SIGNATURE_HEADER = "X-Voicebot-Signature"
MAX_ANSWER_BYTES = 64 * 1024  # an answer is a sentence or two; more is a broken endpoint


def lookup_secret(env: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if env is None else env).get(LOOKUP_SECRET_ENV, "")
    return value or None


def request_body(request: Lookup) -> bytes:
    """The JSON the endpoint receives (these bytes are what the signature covers)."""
    body = {
        "call": request.call_id,
        "caller": request.caller,
        "intent": request.intent,
        "transcript": request.transcript,
        "language": request.language,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(body: bytes, secret: str) -> str:
    """The header value: ``sha256=`` and the hex HMAC-SHA256 of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def lookup(
    request: Lookup,
    config: LanguageConfig,
    at: dt.datetime,
    *,
    secret: str | None = None,
) -> LookupResult:
    """POST ``request`` and wait at most its ``timeout_s``; never raises. ``at`` is the call
    time the result is reported at (the shell's clock, not the wall clock)."""
    body = request_body(request)
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "voicebot"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(body, secret)
    http = urllib.request.Request(request.url, data=body, headers=headers, method="POST")
    outcome: list[LookupResult] = []

    def run() -> None:  # in a thread, so the deadline covers the whole exchange
        outcome.append(_exchange(http, request.timeout_s, config, at))

    worker = threading.Thread(target=run, name="voicebot-lookup", daemon=True)
    worker.start()
    worker.join(request.timeout_s)
    if not outcome:
        return LookupResult(None, _late(request.timeout_s), at)
    return outcome[0]


def _exchange(
    http: urllib.request.Request, timeout_s: float, config: LanguageConfig, at: dt.datetime
) -> LookupResult:
    try:
        with urllib.request.urlopen(http, timeout=timeout_s) as response:
            raw = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        return LookupResult(None, f"HTTP {exc.code}", at)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):  # the socket's own timeout beat the join's
            return LookupResult(None, _late(timeout_s), at)
        return LookupResult(None, f"request failed: {reason}", at)
    if len(raw) > MAX_ANSWER_BYTES:
        return LookupResult(None, f"answer larger than {MAX_ANSWER_BYTES} bytes", at)
    return parse_answer(raw, config, at)


def _late(timeout_s: float) -> str:
    return f"no answer within {timeout_s:g} s"


def parse_answer(raw: bytes, config: LanguageConfig, at: dt.datetime) -> LookupResult:
    """The endpoint's JSON as a result: an answer the dialogue may act on, or why not."""
    try:
        data: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return LookupResult(None, f"answer is not JSON: {exc}", at)
    if not isinstance(data, dict):
        return LookupResult(None, "answer is not a JSON object", at)
    say, sms, transfer, hangup = (data.get(k) for k in ("say", "sms", "transfer", "hangup"))
    if not isinstance(say, str):
        return LookupResult(None, "answer has no 'say' text", at)
    if (sms is not None and not isinstance(sms, str)) or (
        transfer is not None and not isinstance(transfer, str)
    ):
        return LookupResult(None, "'sms' and 'transfer' must be text", at)
    if hangup is not None and not isinstance(hangup, bool):
        return LookupResult(None, "'hangup' must be true or false", at)
    answer = LookupAnswer(say.strip(), sms, transfer, bool(hangup))
    problem = answer_problem(answer, config)
    if problem is not None:
        return LookupResult(None, problem, at)
    return LookupResult(answer, "", at)
