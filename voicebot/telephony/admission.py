"""Admission control (issue #21): overload goes to people, not to a slow robot.

An instance that takes more calls than it can decode in real time makes every caller wait, and
the last ones wait until they give up. So it decides three things here, in the shell (the
dialogue only learns ``Overloaded`` and decides where the caller goes):

- **At the door.** At most ``max_calls`` calls at once: the calls with a session here that the
  bot has not decided yet (a decided call decodes nothing more, though its transfer may take
  Twilio a while to confirm and its stream stays open until then) plus the webhooks answered
  here whose media stream has not attached yet (Twilio plays the greeting's ``<Say>`` first,
  3-6 s; each counts for at most ``PENDING_TTL_S``, or until its status
  callback says it ended, since behind a load balancer its stream may attach elsewhere and
  would then count twice). The webhook of a call beyond that gets TwiML that puts the
  caller straight through to the overflow group (``refuse``), logged with reason ``shed``.
- **During a call.** A call whose caller audio waits more than ``max_backlog_s`` to be decoded
  is handed over (``behind``), as many calls at a time as it takes for the decoder to catch
  up, no more (``hand_overs``): all calls share the decoding pool, so their backlogs grow
  together, at a rate that says how far beyond its capacity the pool is (a lag growing 0.25 s
  per second with 20 calls: the pool decodes 15 calls' audio in real time). Each round of
  ``SHED_INTERVAL_S`` hands over that excess, plus enough calls for the backlog to shrink
  back under the limit within ``RECOVER_S``; the next round sees whether that sufficed
  (lags falling: nobody more). One call at a time (the rule before) was too slow when the
  machine got busier; all lagging calls at once would throw capacity away.
- **Behind a load balancer.** ``weight`` is the room left, as a percentage, which HAProxy's
  ``agent-check`` reads from a small TCP agent (``serve_agent``), so a busy instance gets fewer
  new calls before it must refuse any. Never 0%: with every instance at 0 HAProxy would have
  no server left and Twilio would play its error message; an instance that is full still
  answers, with a person.

The default ``max_calls`` is ``CALLS_PER_CORE`` times the cores this process may run on (the
decoding pool uses them all); see ``CALLS_PER_CORE`` for where its figure comes from. Measure
your own machine and set ``--max-calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from voicebot.core.actions import SendSms, Transfer
from voicebot.core.config import LanguageConfig
from voicebot.core.dialogue import step
from voicebot.core.events import Overloaded
from voicebot.core.match import Match, Verdict
from voicebot.core.phone import mask
from voicebot.core.state import State
from voicebot.speech.recognizer import usable_cpus
from voicebot.telephony.session import CallServices, decision_twiml
from voicebot.telephony.settings import CALLS_PER_CORE

__all__ = [
    "CALLS_PER_CORE",
    "Admission",
    "default_max_calls",
    "hand_overs",
    "refuse",
    "serve_agent",
]

log = logging.getLogger(__name__)

PENDING_TTL_S: Final = 8.0  # an answered webhook counts this long unless its stream attaches
SHED_INTERVAL_S: Final = 0.5  # a round of mid-call hand-overs: its budget, then a new look
MIN_BASELINE_S: Final = 0.2  # a lag's growth measured over less is a chunk's jitter
RECOVER_S: Final = 2.0  # a lagging pool's backlog should be back under the limit by then
MIN_WEIGHT: Final = 1  # percent: a full instance still answers (with a person)


def default_max_calls() -> int:
    """``CALLS_PER_CORE`` for every core this process may run on."""
    return CALLS_PER_CORE * usable_cpus()


class Held(Protocol):
    """A live call as admission sees it (``session.CallSession``)."""

    @property
    def done(self) -> bool:
        """Decided or ended: the decoder has nothing more to do for it."""
        ...


class Admission:
    """How many calls this instance holds and may still take; ``sessions`` are the server's
    live calls by CallSid (the same dict, so a session that is decided or ends frees its place
    at once)."""

    def __init__(
        self,
        sessions: Mapping[str, Held],
        *,
        max_calls: int | None,
        max_backlog_s: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_calls is not None and max_calls < 0:
            raise ValueError(f"max_calls must be 0 or more, not {max_calls}")
        self.sessions = sessions
        self.max_calls = max_calls  # None: no limit
        self.max_backlog_s = max_backlog_s  # None: never hand a call over for lagging
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # CallSid -> until when it counts
        self._round_ends = float("-inf")  # the current round of hand-overs lasts until then
        self._budget = 0  # calls the current round may still hand over
        self._shed: set[str] = set()  # calls handed over mid-call (once each)
        # Per call: when its lag first passed half the limit, and that lag: the baseline its
        # growth rate is measured from (a 100 ms chunk's sawtooth is too noisy a step).
        self._rising: dict[str, tuple[float, float]] = {}

    def load(self) -> int:
        """Calls that cost decoding here: live sessions not decided yet, plus webhooks answered
        whose stream is not here yet."""
        now = self._clock()
        sessions = list(self.sessions.items())  # the event loop may change the dict meanwhile
        with self._lock:
            for sid, until in list(self._pending.items()):
                if until < now or sid in self.sessions:
                    del self._pending[sid]
            return sum(not s.done for _, s in sessions) + len(self._pending)

    def admit(self, call_sid: str) -> bool:
        """Whether a new call may have the bot; if so it counts from now."""
        if self.max_calls is not None and self.load() >= self.max_calls:
            return False
        with self._lock:
            self._pending[call_sid] = self._clock() + PENDING_TTL_S
        return True

    def ended(self, call_sid: str) -> None:
        """The call is over (status callback): it no longer counts, wherever its stream was."""
        with self._lock:
            self._pending.pop(call_sid, None)

    def room(self) -> float:
        """The share of ``max_calls`` still free, 0..1 (1 without a limit)."""
        if self.max_calls is None:
            return 1.0
        if self.max_calls == 0:
            return 0.0
        return max(0.0, 1.0 - self.load() / self.max_calls)

    def weight(self, lagging: bool = False) -> int:
        """The agent-check weight in percent: the room left, at least ``MIN_WEIGHT``; the
        minimum while decoding lags (``lagging``)."""
        if lagging:
            return MIN_WEIGHT
        return max(MIN_WEIGHT, round(100 * self.room()))

    def behind(self, call_sid: str, backlog_s: float) -> bool:
        """Whether to hand this call over now: its audio waits more than ``max_backlog_s`` and
        the current round of hand-overs has budget left (``hand_overs``). True once per call."""
        limit = self.max_backlog_s
        if limit is None:
            return False
        now = self._clock()
        with self._lock:
            if backlog_s <= limit / 2:
                self._rising.pop(call_sid, None)
                return False
            since, first = self._rising.setdefault(call_sid, (now, backlog_s))
            if backlog_s <= limit or call_sid in self._shed:
                return False
            if now >= self._round_ends:
                # Too short a baseline says nothing yet: one call, as for a steady lag.
                seen = now - since
                growth = (backlog_s - first) / seen if seen >= MIN_BASELINE_S else 0.0
                self._round_ends = now + SHED_INTERVAL_S
                self._budget = hand_overs(self._held(), growth, backlog_s, limit)
            if self._budget <= 0:
                return False
            self._budget -= 1
            self._shed.add(call_sid)
            self._rising.pop(call_sid, None)
            if len(self._shed) > 10_000:  # old calls long gone
                self._shed.clear()
                self._shed.add(call_sid)
            if len(self._rising) > 10_000:
                self._rising.clear()
        return True

    def _held(self) -> int:
        """Live calls not decided yet (the lock is held: no pending webhooks, they decode
        nothing yet)."""
        return sum(not s.done for s in list(self.sessions.values()))


def hand_overs(calls: int, growth: float, lag_s: float, limit_s: float) -> int:
    """How many of ``calls`` (sharing one decoding pool) to hand over so that their lag, now
    ``lag_s`` and growing ``growth`` seconds per second, is back under ``limit_s`` within
    ``RECOVER_S``; at least 1 (this call is over the limit).

    The pool decodes ``calls * (1 - growth)`` calls' audio in real time (its capacity now);
    for the lag to fall at ``s`` seconds per second, the calls left must be that capacity
    ``/ (1 + s)``. A lag already falling fast enough needs nobody more but this call."""
    growth = min(max(growth, -1.0), 1.0)
    capacity = calls * (1.0 - growth)
    falling = max(0.0, lag_s - limit_s) / RECOVER_S
    keep = math.floor(capacity / (1.0 + falling))
    return max(1, calls - keep)


def _no_match(alternatives: object) -> Match:
    """The door has heard nothing, so nothing is ever matched there."""
    return Match("", (), Verdict.REJECT)


def refuse(
    services: CallServices,
    call_sid: str,
    caller: str | None,
    config: LanguageConfig,
    at: dt.datetime,
    why: str,
) -> str:
    """A call with no room: the dialogue decides where it goes (``Overloaded`` before it
    started), the call log gets its start, the event and the outcome, and the answer is the
    TwiML that puts the caller through. A closed overflow group texts as it says."""
    state, actions = step(State(caller=caller, call_id=call_sid), Overloaded(at), config, _no_match)
    observer = services.observer
    observer.call_started(call_sid, at, config.language, caller)
    observer.event(call_sid, Overloaded(at))
    observer.actions(call_sid, at, actions)
    if state.outcome is not None:
        observer.call_ended(call_sid, at, state.outcome)
    services.metrics.shed("door")
    transfer = next((a for a in actions if isinstance(a, Transfer)), None)
    log.warning(
        "call %s from %s shed at the door (%s): %s",
        call_sid,
        mask(caller),
        why,
        f"put through to {transfer.group}" if transfer else state.outcome,
    )
    for sms in (a for a in actions if isinstance(a, SendSms)):
        threading.Thread(
            target=services.rest.send_sms, args=(sms.to, sms.body), daemon=True
        ).start()
    return decision_twiml(services, call_sid, config, actions)


async def serve_agent(host: str, port: int, weight: Callable[[], int]) -> asyncio.Server:
    """HAProxy's ``agent-check``: each connection gets one line, ``<weight>%``, and is
    closed. HAProxy scales the server's configured weight by it."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(f"{weight()}%\n".encode())
            await writer.drain()
        except Exception:
            log.exception("agent-check answer failed")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port)
