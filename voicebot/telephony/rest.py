"""The two Twilio REST calls the bot makes: redirect a live call, and send an SMS.

Both return a ``RestResult`` instead of raising, because every failure has the same consequence
for the dialogue (fall back: read the answer, transfer, ...). Transient failures (HTTP 5xx, 429,
network errors) are retried a bounded number of times with exponential backoff; a 4xx such as
21211 (invalid number) or 20003 (bad credentials) is final at once, since repeating it cannot
succeed and the caller is waiting. Calls block: run them in a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from twilio.base.exceptions import (  # type: ignore[import-untyped]
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from voicebot.telephony.settings import FROM_NUMBER_VAR, MESSAGING_SERVICE_SID_VAR, TwilioEnv

TWILIO_API: Final = "https://api.twilio.com"
MAX_TWIML_CHARS: Final = 4000  # Twilio refuses longer inline TwiML in a call update


class TwilioCredentialsError(ValueError):
    """Credentials or sender are missing from the environment; names the variable."""


@dataclass(frozen=True, slots=True)
class RestResult:
    ok: bool
    sid: str | None = None  # of the call or message
    status: str | None = None  # Twilio's resource status: "in-progress", "queued", ...
    http_status: int | None = None  # of the last failed attempt; None for network errors
    error_code: int | None = None  # Twilio error code, e.g. 21211
    error_message: str | None = None
    attempts: int = 1
    transient: bool = False  # the last failure was retryable: we gave up, Twilio did not refuse

    def __str__(self) -> str:
        if self.ok:
            return f"ok {self.sid} {self.status} after {self.attempts} attempt(s)"
        return (
            f"failed after {self.attempts} attempt(s): HTTP {self.http_status} "
            f"code {self.error_code}: {self.error_message}"
        )


class _RebasedHttpClient:
    """Sends the helper library's requests to another origin (the local fake) instead."""

    is_async = False

    def __init__(self, base_url: str | None, timeout_s: float) -> None:
        self._inner = TwilioHttpClient(timeout=timeout_s)
        self._base = base_url.rstrip("/") if base_url else None
        self.timeout = timeout_s

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if self._base is not None and url.startswith(TWILIO_API):
            url = self._base + url[len(TWILIO_API) :]
        return self._inner.request(method, url, *args, **kwargs)


class TwilioRest:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str | None = None,
        max_attempts: int = 3,
        backoff_s: float = 0.25,
        max_backoff_s: float = 2.0,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``base_url`` replaces https://api.twilio.com (e.g. ``FakeTwilio.url``).

        Worst case a call takes ``max_attempts * timeout_s`` plus the backoff sleeps
        (``backoff_s * 2**n``, capped at ``max_backoff_s``): keep both small for redirects.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._client = Client(
            account_sid, auth_token, http_client=_RebasedHttpClient(base_url, timeout_s)
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> TwilioRest:
        """From the ``TWILIO_*`` variables ``TwilioEnv`` reads: account SID and auth token,
        the SMS sender (a from number or a messaging service), and the optional API base."""
        twilio = TwilioEnv.read(env)
        if twilio.account_sid is None or twilio.auth_token is None:
            first = twilio.missing_credentials()[0]
            raise TwilioCredentialsError(f"environment variable {first} is not set")
        options.setdefault("from_number", twilio.from_number)
        options.setdefault("messaging_service_sid", twilio.messaging_service_sid)
        options.setdefault("base_url", twilio.api_base_url)
        return cls(twilio.account_sid, twilio.auth_token, **options)

    def update_call(self, call_sid: str, twiml: str) -> RestResult:
        """Replace what a live call is doing with ``twiml`` (ends its media stream)."""
        if len(twiml) > MAX_TWIML_CHARS:
            return RestResult(
                ok=False,
                error_message=f"TwiML of {len(twiml)} characters is over {MAX_TWIML_CHARS}",
                attempts=0,
            )
        return self._retrying(lambda: self._client.calls(call_sid).update(twiml=twiml))

    def hang_up(self, call_sid: str) -> RestResult:
        return self._retrying(lambda: self._client.calls(call_sid).update(status="completed"))

    def send_sms(
        self,
        to: str,
        body: str,
        from_: str | None = None,
        status_callback: str | None = None,
    ) -> RestResult:
        """Send ``body`` to ``to`` from ``from_``, the configured number or messaging service."""
        sender: dict[str, str] = {}
        if from_ or self.from_number:
            sender["from_"] = from_ or self.from_number or ""
        elif self.messaging_service_sid:
            sender["messaging_service_sid"] = self.messaging_service_sid
        else:
            raise TwilioCredentialsError(
                f"no SMS sender: set {FROM_NUMBER_VAR} or {MESSAGING_SERVICE_SID_VAR}"
            )
        extra = {"status_callback": status_callback} if status_callback else {}
        return self._retrying(
            lambda: self._client.messages.create(to=to, body=body, **sender, **extra)
        )

    def _retrying(self, request: Callable[[], Any]) -> RestResult:
        failure = RestResult(ok=False)
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self._sleep(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 2)))
            try:
                resource = request()
            except (TwilioRestException, TwilioServiceException) as exc:
                status = int(exc.status)
                failure = RestResult(
                    ok=False,
                    http_status=status,
                    error_code=int(exc.code) if exc.code is not None else None,
                    error_message=str(getattr(exc, "msg", None) or getattr(exc, "detail", "")),
                    attempts=attempt,
                    transient=status >= 500 or status == 429,
                )
            except OSError as exc:  # requests' connection errors and timeouts are OSErrors
                failure = RestResult(
                    ok=False,
                    error_message=f"network error: {type(exc).__name__}: {exc}",
                    attempts=attempt,
                    transient=True,
                )
            except TwilioException as exc:
                return RestResult(ok=False, error_message=str(exc), attempts=attempt)
            else:
                return RestResult(
                    ok=True,
                    sid=str(resource.sid),
                    status=str(resource.status),
                    attempts=attempt,
                )
            if not failure.transient:
                return failure
        return failure
