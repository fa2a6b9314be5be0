"""``serve``'s event loop: asyncio's own, taking up its sockets at most every few milliseconds.

Why: a call's media stream is 50 small messages a second, and twenty calls are a thousand.
Left alone, asyncio's loop wakes for almost every one of them: each frame pays a whole loop
iteration (the poll system call, the selector's Python around it, ``_run_once``'s bookkeeping)
for one callback, and on a one-core server that CPU is taken from the decoder (issue #20's
breakdown: the loop itself was the largest part of ``serve``'s per-frame cost). Waiting
``coalesce_s`` before a poll that would block lets the frames of that moment arrive first, so
one iteration serves several of them.

What must not wait does not: when callbacks are queued the loop polls without a timeout, as
before; and a hand-over from another thread (``call_soon_threadsafe``: the decoder's actions,
a finished thread-pool job) ends the wait at once, so what the caller hears next is not
delayed. Only socket input waits, at most ``coalesce_s``: a media frame's audio reaches the
decoder that much later at worst, against the 100 ms chunks the decoder takes it in.
"""

from __future__ import annotations

import asyncio
import selectors
import threading
from collections.abc import Callable
from contextvars import Context
from typing import TypeVarTuple, Unpack

__all__ = ["COALESCE_S", "CoalescingSelector", "ServeLoop", "serve_loop_factory"]

# How long a poll that would block first waits for more to arrive. 20 ms: the loop's CPU per
# media frame fell from 153 to 118 us in the last quiet run (issue #20, docs/benchmarks.md)
# for 8 ms more of the caller's wait at p50, which since decisions come with their chunk is
# about 510 ms against issue #20's 600.
COALESCE_S = 0.02

_Ts = TypeVarTuple("_Ts")


class CoalescingSelector(selectors.DefaultSelector):
    """The platform's default selector, waiting up to ``coalesce_s`` before a poll that would
    block, unless ``woken`` is set meanwhile."""

    def __init__(self, coalesce_s: float, woken: threading.Event) -> None:
        super().__init__()
        self.coalesce_s = coalesce_s
        self.woken = woken

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout > 0:
            wait = self.coalesce_s if timeout is None else min(self.coalesce_s, timeout)
            if not self.woken.wait(wait):  # releases the GIL: the decoder has the core
                timeout = None if timeout is None else max(0.0, timeout - wait)
            else:
                timeout = 0  # another thread handed something over: run it now
        self.woken.clear()
        events: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        return events


class ServeLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop with a ``CoalescingSelector`` that threads can wake."""

    def __init__(self, coalesce_s: float) -> None:
        self._woken = threading.Event()
        super().__init__(CoalescingSelector(coalesce_s, self._woken))

    def call_soon_threadsafe(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: Context | None = None,
    ) -> asyncio.Handle:
        handle = super().call_soon_threadsafe(callback, *args, context=context)
        self._woken.set()
        return handle


def serve_loop_factory(coalesce_s: float) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop factory for ``asyncio.Runner``: a ``ServeLoop``, or asyncio's default loop when
    ``coalesce_s`` is 0."""
    if coalesce_s <= 0:
        return asyncio.new_event_loop

    def factory() -> asyncio.AbstractEventLoop:
        return ServeLoop(coalesce_s)

    return factory
