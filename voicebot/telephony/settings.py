"""Where the Twilio shell's settings come from, each written once.

``TwilioEnv`` is the one place that knows the ``TWILIO_*`` environment names: the REST client,
``voicebot serve`` (its refusal to start without credentials, its ``--dev`` defaults) and
``voicebot simulate`` all read them through it, so a renamed or added variable cannot drift
between them. The dev credentials (``DEV_*``) live here rather than in the simulator because
both sides use them: ``serve --dev`` signs with the token the simulator signs with and points
its REST client at the port where the simulator runs its fake REST API. ``ServerSettings`` is
the server's own knobs, set by the caller (CLI, tests, benchmark), never by the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from voicebot.telephony.media_stream import DEFAULT_MAX_PAYLOAD_BYTES

__all__ = [
    "ACCOUNT_SID_VAR",
    "API_BASE_URL_VAR",
    "AUTH_TOKEN_VAR",
    "CALLS_PER_CORE",
    "DEV_ACCOUNT_SID",
    "DEV_AUTH_TOKEN",
    "DEV_FROM_NUMBER",
    "DEV_REST_PORT",
    "FROM_NUMBER_VAR",
    "MESSAGING_SERVICE_SID_VAR",
    "ServerSettings",
    "TwilioEnv",
]

ACCOUNT_SID_VAR: Final = "TWILIO_ACCOUNT_SID"
AUTH_TOKEN_VAR: Final = "TWILIO_AUTH_TOKEN"
FROM_NUMBER_VAR: Final = "TWILIO_FROM_NUMBER"
MESSAGING_SERVICE_SID_VAR: Final = "TWILIO_MESSAGING_SERVICE_SID"
API_BASE_URL_VAR: Final = "TWILIO_API_BASE_URL"  # the fake REST API instead of api.twilio.com

CALLS_PER_CORE: Final = 18
"""Calls one core decodes in real time: the default ``--max-calls`` per core, and the ONE place
that figure lives (``serve --help``, docs/deployment.md and the README quote it; a test checks
they agree). 18 is ``python bench/bench_capacity.py --nice -10 --all-cores`` on a quiet 2-core
machine after issue #20's second round (the run the day before measured 22, with the bare Vosk
loop at 36 where this run's held 27: the machine itself was slower, and the lower figure is the
default; ``voicebot serve`` pinned to one core, its stream on picows, every call
decided as expected, decisions within 300 ms p95, all callers speaking in the same few seconds;
docs/benchmarks.md). ``python bench/bench_overload.py``'s capacity phase, the same bar with
calls arriving and leaving, finds more; the stricter figure is the default because a language's
model may cost more than the Korean test model these were measured with."""

DEV_REST_PORT: Final = 8099  # where simulate runs its fake REST API and `serve --dev` points
DEV_ACCOUNT_SID: Final = "AC" + "0" * 32
DEV_AUTH_TOKEN: Final = "fake-auth-token"
DEV_FROM_NUMBER: Final = "+15005550006"  # Twilio's magic test number that always sends


@dataclass(frozen=True)
class TwilioEnv:
    """The ``TWILIO_*`` variables; an unset or empty variable is ``None``."""

    account_sid: str | None = None
    auth_token: str | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = None  # SMS sender instead of from_number
    api_base_url: str | None = None

    @classmethod
    def read(cls, env: Mapping[str, str] | None = None) -> TwilioEnv:
        env = os.environ if env is None else env
        return cls(
            account_sid=env.get(ACCOUNT_SID_VAR) or None,
            auth_token=env.get(AUTH_TOKEN_VAR) or None,
            from_number=env.get(FROM_NUMBER_VAR) or None,
            messaging_service_sid=env.get(MESSAGING_SERVICE_SID_VAR) or None,
            api_base_url=env.get(API_BASE_URL_VAR) or None,
        )

    def missing_credentials(self) -> list[str]:
        """The variables the REST client cannot do without, by name, in the order to set them."""
        return [
            name
            for name, value in (
                (ACCOUNT_SID_VAR, self.account_sid),
                (AUTH_TOKEN_VAR, self.auth_token),
            )
            if value is None
        ]

    def missing_for_serving(self) -> list[str]:
        """What ``serve`` needs besides credentials: a sender, since the bot texts callers."""
        missing = self.missing_credentials()
        if self.from_number is None and self.messaging_service_sid is None:
            missing.append(f"{FROM_NUMBER_VAR} (or {MESSAGING_SERVICE_SID_VAR})")
        return missing

    @staticmethod
    def with_dev_defaults(env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with the dev account and fake REST API filled in where it is silent."""
        out = dict(env)
        out.setdefault(ACCOUNT_SID_VAR, DEV_ACCOUNT_SID)
        out.setdefault(AUTH_TOKEN_VAR, DEV_AUTH_TOKEN)
        out.setdefault(FROM_NUMBER_VAR, DEV_FROM_NUMBER)
        out.setdefault(API_BASE_URL_VAR, f"http://127.0.0.1:{DEV_REST_PORT}")
        return out


@dataclass(frozen=True)
class ServerSettings:
    public_url: str  # the origin Twilio calls, e.g. https://bot.example.com (signatures, TwiML)
    auth_token: str  # signs webhooks and the stream upgrade
    # The origin the media stream's URL (TwiML ``<Stream url>``) is on, and its upgrade signed
    # against: ``public_url`` unless the stream has its own (``serve --media-port`` without a
    # proxy in front: ``ws://HOST:MEDIA_PORT``).
    stream_public_url: str | None = None
    check_signatures: bool = True
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    feed_bytes: int = 800  # caller audio handed to the recogniser in 100 ms chunks (its block)
    # /healthz answers 503 "overloaded" while some call has more caller audio than this
    # waiting to be decoded: its caller already waits that much longer for the bot.
    overload_backlog_s: float = 1.0
    # Admission control (``admission``): calls beyond ``max_calls`` are put through to a person
    # at the door; a call whose audio waits more than ``max_backlog_s`` to be decoded is put
    # through mid-call. None: no limit (``voicebot serve`` sets both; see its --help).
    max_calls: int | None = None
    max_backlog_s: float | None = None
    max_bad_messages: int = 100  # malformed frames in one call before a person takes over
    send_timeout_s: float = 5.0  # a client that does not read for this long is gone
    unattached_ttl_s: float = 120.0  # a session whose stream never connected is dropped
    # What a client may make the server hold (``limits``): Twilio's webhooks are a few KB and
    # arrive at once; its media stream sends a frame every 20 ms from "start" to "stop".
    max_body_bytes: int = 64 * 1024  # larger request bodies are refused unread (413)
    body_timeout_s: float = 10.0  # a request body not in by then is refused (408)
    header_timeout_s: float = 10.0  # a connection without a complete request head is closed
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed
    max_ws_message_bytes: int = 64 * 1024  # a larger WebSocket message closes the stream
    stream_start_timeout_s: float = 10.0  # a WebSocket without "start" by then is closed
    # A stream's parameters expire this long after Twilio has spoken what comes before the
    # stream in its TwiML (``handoff.expiry``): Twilio opens it within a second or two.
    stream_parameters_s: float = 60.0
    media_timeout_s: float = 10.0  # a stream silent this long ends in a transfer to a person
