"""A local fake of the Twilio REST endpoints the bot uses, for tests and offline demos.

It speaks the real wire format (form-encoded POSTs, basic auth, Twilio's JSON bodies and error
codes), so ``voicebot.telephony.rest`` talks to it through the official helper library unchanged:
call updates, message creation, and the message list (``GET Messages.json`` with ``To`` and
``From`` filters, newest first), which the bot reads before it sends a text again. It records
every request and can be told to fail, to exercise retries and error handling::

    with FakeTwilio() as fake:
        rest = TwilioRest(fake.account_sid, fake.auth_token, base_url=fake.url, ...)
        fake.fail_next(2)                      # two 500s, then normal answers
        fake.reject_number("+15005550001", 21211)
        fake.answer_late(1, delay_s=6)         # create the next message, answer after 6 s

CLI: ``python -m voicebot.telephony.testing.fake_rest --port 8099`` prints its URL and credentials.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email.utils
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl

from voicebot.core.phone import normalize
from voicebot.telephony.settings import (
    ACCOUNT_SID_VAR,
    API_BASE_URL_VAR,
    AUTH_TOKEN_VAR,
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
)

API: Final = "/2010-04-01/Accounts/"
_CALL_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Calls/([^/]+)\.json$")
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")

# Twilio's wording for the error codes the fake can produce.
ERROR_MESSAGES: Final[Mapping[int, str]] = {
    20003: "Authenticate",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21201: "No 'To' number is specified",
    21211: "Invalid 'To' Phone Number: {to}",
    21220: "Call is not in-progress. Cannot redirect.",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "The 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}

_GSM7: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def sms_segments(body: str) -> int:
    """Billed segments: 160/153 GSM-7 characters, or 70/67 UCS-2 ones when any is outside GSM-7."""
    if all(c in _GSM7 for c in body):
        length = sum(2 if c in "^{}\\[~]|€" else 1 for c in body)
        single, multi = 160, 153
    else:
        length, single, multi = len(body), 70, 67
    return 1 if length <= single else -(-length // multi)


class RequestKind(StrEnum):
    CALL_UPDATE = "call_update"
    MESSAGE = "message"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received and what it answered."""

    kind: RequestKind
    method: str
    path: str
    form: Mapping[str, str]
    authorized: bool
    status: int  # HTTP status the fake answered with
    query: Mapping[str, str] = field(default_factory=dict)  # of a GET: the list filters
    account_sid: str | None = None
    call_sid: str | None = None
    error_code: int | None = None
    sid: str | None = None  # of the created/updated resource, when it succeeded

    @property
    def twiml(self) -> str | None:
        return self.form.get("Twiml")

    @property
    def to(self) -> str | None:
        return self.form.get("To")

    @property
    def body(self) -> str | None:
        return self.form.get("Body")


@dataclass
class _Failures:
    next_n: int = 0
    next_status: int = 500
    rejected: dict[str, int] = field(default_factory=dict)
    ended_calls: set[str] = field(default_factory=set)
    late_n: int = 0  # message creations still to answer late
    late_s: float = 0.0
    late_updates: bool = False  # answer_late holds back call updates, not messages


class FakeTwilio:
    """Threaded local HTTP server; ``url`` is the base to use instead of https://api.twilio.com."""

    def __init__(
        self,
        account_sid: str = DEV_ACCOUNT_SID,
        auth_token: str = DEV_AUTH_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._created: list[dict[str, Any]] = []  # message resources, oldest first
        self._failures = _Failures()
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeTwilio:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- what tests inspect ---

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def call_updates(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind is RequestKind.CALL_UPDATE and r.status < 300]

    def messages(self) -> list[RecordedRequest]:
        """The messages created (sent), in order; list requests are not among them."""
        return [
            r
            for r in self.requests
            if r.kind is RequestKind.MESSAGE and r.method == "POST" and r.status < 300
        ]

    # --- failure injection ---

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next ``n`` authorised requests with ``status`` (500, 503, 429...)."""
        with self._lock:
            self._failures.next_n = n
            self._failures.next_status = status

    def reject_number(self, number: str, code: int = 21211) -> None:
        """SMS to ``number`` gets HTTP 400 with Twilio ``code`` (21211, 21614, 21610)."""
        with self._lock:
            self._failures.rejected[number] = code

    def answer_late(self, n: int, delay_s: float, *, updates: bool = False) -> None:
        """Create the next ``n`` messages at once but answer only after ``delay_s``: what
        Twilio does when it is slow, so a client with a shorter timeout sees a network error
        for a message that was sent. ``updates``: the next ``n`` call updates instead (the
        update is recorded, so a simulated caller hears it, while the bot still waits)."""
        with self._lock:
            self._failures.late_n = n
            self._failures.late_s = delay_s
            self._failures.late_updates = updates

    def end_call(self, call_sid: str) -> None:
        """The caller hung up: later updates of this call fail with 21220, as on Twilio."""
        with self._lock:
            self._failures.ended_calls.add(call_sid)

    # --- request handling (runs on the server's threads) ---

    def handle(
        self, method: str, path: str, authorization: str | None, raw_body: bytes, query: str = ""
    ) -> tuple[int, dict[str, Any]]:
        status, payload, _delay = self._handle(method, path, authorization, raw_body, query)
        return status, payload

    def _handle(
        self, method: str, path: str, authorization: str | None, raw_body: bytes, query: str
    ) -> tuple[int, dict[str, Any], float]:
        """The answer and how long to hold it back (``answer_late``)."""
        form = dict(parse_qsl(raw_body.decode("utf-8", "replace"), keep_blank_values=True))
        filters = dict(parse_qsl(query, keep_blank_values=True))
        call = _CALL_PATH.match(path)
        message = _MESSAGES_PATH.match(path)
        kind = (
            RequestKind.CALL_UPDATE
            if call
            else RequestKind.MESSAGE
            if message
            else RequestKind.OTHER
        )
        match = call or message
        account = match.group(1) if match else None
        call_sid = call.group(2) if call else None
        authorized = self._authorized(authorization, account)
        status, payload = self._answer(
            method, kind, path, form, filters, authorized, account, call_sid
        )
        delay = 0.0
        if kind is RequestKind.MESSAGE and method == "POST" and status == 201:
            with self._lock:
                self._created.append(payload)
        late = RequestKind.CALL_UPDATE if self._failures.late_updates else RequestKind.MESSAGE
        if kind is late and method == "POST" and status < 300:
            with self._lock:
                if self._failures.late_n > 0:
                    self._failures.late_n -= 1
                    delay = self._failures.late_s
        record = RecordedRequest(
            kind=kind,
            method=method,
            path=path,
            form=form,
            authorized=authorized,
            status=status,
            query=filters,
            account_sid=account,
            call_sid=call_sid,
            error_code=payload.get("code") if status >= 400 else None,
            sid=payload.get("sid") if status < 300 else None,
        )
        with self._lock:
            self._requests.append(record)
        return status, payload, delay

    def _authorized(self, header: str | None, account: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (
            hmac.compare_digest(user, self.account_sid)
            and hmac.compare_digest(password, self.auth_token)
            and account in (None, self.account_sid)
        )

    def _answer(
        self,
        method: str,
        kind: RequestKind,
        path: str,
        form: Mapping[str, str],
        filters: Mapping[str, str],
        authorized: bool,
        account: str | None,
        call_sid: str | None,
    ) -> tuple[int, dict[str, Any]]:
        if not authorized:
            return _error(401, 20003)
        with self._lock:
            if self._failures.next_n > 0:
                self._failures.next_n -= 1
                status = self._failures.next_status
                return _error(status, 20429 if status == 429 else 20500)
            rejected = dict(self._failures.rejected)
            ended = set(self._failures.ended_calls)
        if kind is RequestKind.MESSAGE and method == "GET":
            assert account is not None
            return self._list_messages(account, filters)
        if kind is RequestKind.OTHER or method != "POST":
            return _error(404, 20404, path=path)
        assert account is not None
        if kind is RequestKind.CALL_UPDATE:
            assert call_sid is not None
            return self._update_call(account, call_sid, form, ended)
        return self._create_message(account, form, rejected)

    def _update_call(
        self, account: str, call_sid: str, form: Mapping[str, str], ended: set[str]
    ) -> tuple[int, dict[str, Any]]:
        if call_sid in ended:
            return _error(400, 21220)
        if "Twiml" in form and "Url" in form:
            return _error(400, 21205, message="Provide either Url or Twiml, not both")
        hanging_up = form.get("Status") == "completed"
        if hanging_up:
            with self._lock:
                self._failures.ended_calls.add(call_sid)
        now = email.utils.formatdate(usegmt=True)
        return 200, {
            "sid": call_sid,
            "account_sid": account,
            "api_version": "2010-04-01",
            "status": "completed" if hanging_up else "in-progress",
            "direction": "inbound",
            "date_created": now,
            "date_updated": now,
            "uri": f"{API}{account}/Calls/{call_sid}.json",
        }

    def _list_messages(
        self, account: str, filters: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """One page of the account's messages, newest first, with Twilio's ``To``/``From``
        filters and its paging fields (always one page here)."""
        try:
            size = max(1, min(1000, int(filters.get("PageSize", "50"))))
        except ValueError:
            size = 50
        with self._lock:
            found = [
                m
                for m in reversed(self._created)
                if m["account_sid"] == account
                and filters.get("To", m["to"]) == m["to"]
                and filters.get("From", m["from"]) == m["from"]
            ][:size]
        uri = f"{API}{account}/Messages.json?PageSize={size}&Page=0"
        return 200, {
            "messages": found,
            "end": max(0, len(found) - 1),
            "first_page_uri": uri,
            "next_page_uri": None,
            "page": 0,
            "page_size": size,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }

    def _create_message(
        self, account: str, form: Mapping[str, str], rejected: Mapping[str, int]
    ) -> tuple[int, dict[str, Any]]:
        to, body = form.get("To", ""), form.get("Body", "")
        if not to:
            return _error(400, 21604)
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return _error(400, 21603)
        if not body:
            return _error(400, 21602)
        if len(body) > 1600:
            return _error(400, 21617)
        if to in rejected:
            return _error(400, rejected[to], to=to)
        if normalize(to) != to:
            return _error(400, 21211, to=to)
        sid = "SM" + secrets.token_hex(16)
        now = email.utils.formatdate(usegmt=True)
        return 201, {
            "sid": sid,
            "account_sid": account,
            "api_version": "2010-04-01",
            "to": to,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": body,
            "status": "accepted" if form.get("MessagingServiceSid") else "queued",
            "direction": "outbound-api",
            "num_segments": str(sms_segments(body)),
            "num_media": "0",
            "error_code": None,
            "error_message": None,
            "price": None,
            "price_unit": "USD",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "uri": f"{API}{account}/Messages/{sid}.json",
        }


def _error(
    status: int, code: int, message: str | None = None, **fmt: str
) -> tuple[int, dict[str, Any]]:
    text = message or ERROR_MESSAGES.get(code, "Error").format(**fmt)
    return status, {
        "code": code,
        "message": text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _make_handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms stalls

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            path, _, query = self.path.partition("?")
            status, payload, delay = fake._handle(
                self.command, path, self.headers.get("Authorization"), body, query
            )
            if delay > 0:
                time.sleep(delay)  # the work is done; only the answer is late
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client gave up waiting, as clients do

        do_POST = _serve
        do_GET = _serve
        do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests inspect ``fake.requests`` instead."""

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local fake of the Twilio REST API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account-sid", default=DEV_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEV_AUTH_TOKEN)
    args = parser.parse_args(argv)
    fake = FakeTwilio(args.account_sid, args.auth_token, args.host, args.port)
    print(f"fake Twilio on {fake.url}", flush=True)
    print(f"{API_BASE_URL_VAR}={fake.url}", flush=True)
    print(f"{ACCOUNT_SID_VAR}={fake.account_sid}", flush=True)
    print(f"{AUTH_TOKEN_VAR}={fake.auth_token}", flush=True)
    try:
        fake._server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()


if __name__ == "__main__":
    main()
