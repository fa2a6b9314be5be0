"""The two Twilio REST calls the bot makes: redirect a live call, and send an SMS.

Both return a ``RestResult`` instead of raising, because every failure has the same consequence
for the dialogue (fall back: read the answer, transfer, ...). Transient failures (HTTP 5xx, 429,
network errors) are retried a bounded number of times with exponential backoff; a 4xx such as
21211 (invalid number) or 20003 (bad credentials) is final at once, since repeating it cannot
succeed and the caller is waiting. Calls block: run them in a worker thread.

Creating a message is not safe to repeat: when an attempt's answer is lost (a timeout, a broken
connection, a 5xx) Twilio may have sent the text all the same, and Twilio's API takes no
idempotency key. So before sending again, ``send_sms`` lists the messages to that number from the
same sender and takes one with the same body created since just before the first attempt as the
text it sent (``RestResult.recovered``). When even that lookup fails, it does not send blindly:
the send is reported failed, and the dialogue falls back (reads the answer or transfers), which
is better for the caller than two or three copies of one text.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
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
# A message found when looking for a lost send counts as ours if created at most this long
# before the first attempt: Twilio's dates have whole seconds and its clock is not ours. The
# price: the same text to the same number within this window is taken for the one being sent.
CLOCK_SLACK: Final = dt.timedelta(seconds=60)
LOOKUP_PAGE: Final = 20  # the newest messages to that number are enough


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
    recovered: bool = False  # an answer was lost, but the message was found on Twilio

    def __str__(self) -> str:
        if self.ok:
            found = " (found after a lost answer)" if self.recovered else ""
            return f"ok {self.sid} {self.status} after {self.attempts} attempt(s){found}"
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
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
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
        self._clock = clock
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
        since = self._clock() - CLOCK_SLACK
        return self._retrying(
            lambda: self._client.messages.create(to=to, body=body, **sender, **extra),
            lookup=lambda: self._find_message(to, body, sender, since),
        )

    def _find_message(
        self, to: str, body: str, sender: Mapping[str, str], since: dt.datetime
    ) -> Any | None:
        """The message a lost attempt may have created: to ``to`` from the same sender, with
        ``body`` (trial accounts prefix it), created since ``since``; None if there is none."""
        filters = {"from_": sender["from_"]} if "from_" in sender else {}
        for message in self._client.messages.list(
            to=to, limit=LOOKUP_PAGE, page_size=LOOKUP_PAGE, **filters
        ):
            created = message.date_created
            if created is not None and created < since:
                continue
            service = sender.get("messaging_service_sid")
            if service is not None and message.messaging_service_sid != service:
                continue
            if (message.body or "").endswith(body):
                return message
        return None

    def _retrying(
        self, request: Callable[[], Any], lookup: Callable[[], Any | None] | None = None
    ) -> RestResult:
        """``lookup``: for a request not safe to repeat, finds what a lost attempt created."""
        failure = RestResult(ok=False)
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self._sleep(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 2)))
                if lookup is not None and _maybe_done(failure):
                    try:
                        found = lookup()
                    except (TwilioException, OSError) as exc:
                        note = "could not check whether it was sent"
                        first = (failure.error_message or "").split(f"; {note}")[0]
                        failure = replace(
                            failure, attempts=attempt, error_message=f"{first}; {note}: {exc}"
                        )
                        continue  # never send again without knowing
                    if found is not None:
                        return RestResult(
                            ok=True,
                            sid=str(found.sid),
                            status=str(found.status),
                            attempts=attempt,
                            recovered=True,
                        )
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


def _maybe_done(failure: RestResult) -> bool:
    """The attempt's answer was lost (network) or Twilio erred (5xx) after perhaps acting;
    a 429 says it did nothing."""
    return failure.transient and failure.http_status != 429
