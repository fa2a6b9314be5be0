"""What lets any instance of a cluster take any request of a call: the call travels with Twilio.

The incoming-call webhook decides what the media stream needs (the call, its language, the
line called, the caller, when it started) and puts it into the TwiML's ``<Stream>``
``<Parameter>``s, which Twilio hands back in the stream's ``start.customParameters``. So the
WebSocket may reach another instance than the webhook did: that instance rebuilds the call from
the parameters (``StreamParameters.read``) instead of looking it up in its memory. The token is
an HMAC of the parameters under the Twilio auth token: a stream for a call the webhook did not
answer, or with altered parameters, is refused.

``stream`` counts the streams of one call: the first one is the webhook's, rebuilt from the
start anywhere; a later one (after a ``<Say>`` redirect) continues a dialogue only the instance
that redirected it holds, so elsewhere it is refused, the socket closes and Twilio's fallback
``<Dial>`` puts the caller through to a person.

The upgrade's ``X-Twilio-Signature`` covers only the fixed stream URL (that is what Twilio
signs), so one captured header opens a socket for any call: the parameters are what must not
be reusable. The token covers the call, the stream's number and ``expires`` (a stream starts
seconds after its TwiML, once Twilio has spoken what comes before it: ``expiry``), and each
(call, stream) may start one stream only (``UsedStreams`` on an instance; the call log's
``claim_stream`` across the instances sharing it). So a replay of a finished call's parameters,
of old ones, or a second socket presenting a live call's, is refused and closed, without
touching the call.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from voicebot.core.recall import CallerHistory
from voicebot.telephony.twiml import Speech

__all__ = ["StreamParameters", "UsedStreams", "expiry", "health"]

SAY_S_PER_CHAR: Final = 0.2  # <Say> speaks 10-15 characters a second: 5 is a slow voice
PLAY_S: Final = 600.0  # a recording's length is unknown here: up to 10 minutes
USED_STREAMS_KEPT: Final = 200_000  # (call, stream) pairs remembered: about 3 days of a busy line


@dataclass(frozen=True, slots=True)
class StreamParameters:
    call_sid: str
    language: str
    line: str  # the number called ("" when Twilio did not say)
    caller: str | None  # E.164, None when withheld
    started_at: dt.datetime
    stream: int = 1  # 1: the webhook's stream; n: after n - 1 redirects
    expires: dt.datetime | None = None  # the stream must start before (set when encoded)
    # What the webhook's instance read from the call log for recall, so the stream's instance
    # starts the very same dialogue without reading it again (None: recall off or no number).
    history: CallerHistory | None = None

    def next_stream(self) -> StreamParameters:
        return replace(self, stream=self.stream + 1)

    def until(self, expires: dt.datetime) -> StreamParameters:
        return replace(self, expires=expires)

    def expired(self, now: dt.datetime) -> bool:
        return self.expires is None or now >= self.expires

    def token(self, secret: str) -> str:
        fields: tuple[str, ...] = (
            self.call_sid,
            self.language,
            self.line,
            self.caller or "",
            self.started_at.isoformat(),
            str(self.stream),
            self.expires.isoformat() if self.expires is not None else "",
        )
        if self.history is not None:  # only then: tokens of calls without it stay as they were
            fields = (*fields, _history_text(self.history))
        digest = hmac.new(secret.encode(), "\n".join(fields).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def encode(self, secret: str) -> dict[str, str]:
        """The ``<Parameter>``s of the stream's TwiML (names Twilio passes back unchanged)."""
        return {
            "callSid": self.call_sid,
            "language": self.language,
            "line": self.line,
            "caller": self.caller or "",
            "startedAt": self.started_at.isoformat(),
            "stream": str(self.stream),
            "expires": self.expires.isoformat() if self.expires is not None else "",
            "token": self.token(secret),
            **({"history": _history_text(self.history)} if self.history is not None else {}),
        }

    @classmethod
    def read(cls, call_sid: str, custom: Mapping[str, str], secret: str) -> StreamParameters | None:
        """The parameters of a stream's ``start`` for ``call_sid``; None unless the webhook of
        this deployment made them (token), for this very call. Whether they are still valid
        (``expired``) and unused (``UsedStreams``, ``claim_stream``) is the caller's check."""
        try:
            params = cls(
                call_sid=call_sid,
                language=custom["language"],
                line=custom.get("line", ""),
                caller=custom.get("caller") or None,
                started_at=dt.datetime.fromisoformat(custom["startedAt"]),
                stream=int(custom.get("stream", "1")),
                expires=dt.datetime.fromisoformat(custom["expires"]),
                history=_read_history(custom["history"]) if "history" in custom else None,
            )
        except (KeyError, ValueError):
            return None
        if custom.get("callSid", call_sid) != call_sid:
            return None
        if not hmac.compare_digest(custom.get("token", ""), params.token(secret)):
            return None
        return params


def expiry(now: dt.datetime, within_s: float, speech: Sequence[Speech]) -> dt.datetime:
    """When a stream whose TwiML is made ``now`` must have started: ``within_s`` after Twilio
    has spoken ``speech`` (estimated generously), which comes before the stream: by its text
    where it has one (<Say>, or our own prompt audio), else as a long recording."""
    spoken = sum(SAY_S_PER_CHAR * len(s.text) if s.text else PLAY_S for s in speech)
    return now + dt.timedelta(seconds=within_s + spoken)


class UsedStreams:
    """The (call, stream) pairs this instance has seen start, or knows to be over: each set of
    stream parameters starts one stream. Bounded: the oldest are forgotten first (by then
    their parameters have long expired)."""

    def __init__(self, kept: int = USED_STREAMS_KEPT) -> None:
        self._used: dict[tuple[str, int], None] = {}
        self._kept = kept

    def take(self, call_sid: str, stream: int) -> bool:
        """Mark the pair used; False if it already was."""
        key = (call_sid, stream)
        if key in self._used:
            return False
        self._used[key] = None
        while len(self._used) > self._kept:
            del self._used[next(iter(self._used))]
        return True

    def close(self, call_sid: str, streams: int) -> None:
        """The call is over: none of its streams 1..``streams`` may start any more."""
        for n in range(1, streams + 1):
            self.take(call_sid, n)


def _history_text(history: CallerHistory) -> str:
    """``calls|last intent|last start|solved``: intent names have no ``|`` (``NAME_RE``)."""
    last = history.last_at.isoformat() if history.last_at is not None else ""
    solved = "1" if history.last_solved else "0"
    return f"{history.calls}|{history.last_intent or ''}|{last}|{solved}"


def _read_history(text: str) -> CallerHistory:
    """``_history_text`` back; ValueError when it is not one."""
    calls, intent, last, solved = text.split("|")
    return CallerHistory(
        int(calls),
        intent or None,
        dt.datetime.fromisoformat(last) if last else None,
        last_solved=solved == "1",
    )


def health(*, ready: bool, draining: bool, overloaded: str | None, calls: int) -> tuple[int, str]:
    """``/healthz``: 503 while the models load or while the instance drains: a load balancer
    must send it nothing new. Else 200 with the number of calls it holds, and why it is
    overloaded when decoding lags (``overloaded``). Lagging is no 503: if every instance lagged,
    the load balancer would have no server left and Twilio would play its error message; a busy
    instance tells the load balancer through its agent-check weight instead, and puts callers
    it cannot serve through to a person (``admission``)."""
    if not ready:
        return 503, "loading\n"
    if draining:
        return 503, f"draining {calls} calls\n"
    if overloaded is not None:
        return 200, f"ok {calls} calls, overloaded: {overloaded}\n"
    return 200, f"ok {calls} calls\n"
