"""Failed dashboard logins, counted per client so guessing the token is slow.

A token is long, but nothing should let anyone try a thousand a second. A few mistakes are free
(people mistype); after that each further failure locks that client out for twice as long as the
last (1 s, 2 s, 4 s ... up to ``MAX_LOCK_S``), and while it is locked no token it sends is even
checked, so parallel requests gain nothing. A success or an hour without failures forgets the
client. The count is per instance and per client address: behind a proxy, ``serve
--trusted-proxy`` makes the address the browser's, not the proxy's (and only a trusted proxy's
``X-Forwarded-For`` counts, so nobody can pose as another address). A lock refuses wrong
tokens only: the right one always logs in (``app._check_token``), so a lock is never a way to
shut the admin out.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

FREE_FAILURES: Final = 3
FIRST_LOCK_S: Final = 1.0
MAX_LOCK_S: Final = 300.0
FORGET_AFTER_S: Final = 3600.0
MAX_CLIENTS: Final = 10_000  # memory bound; the oldest are forgotten first


@dataclass(slots=True)
class _Client:
    failures: int
    last: float
    locked_until: float


class FailedLogins:
    """Thread-safe; ``clock`` is wall-clock seconds (tests move it)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def retry_after(self, client: str) -> int:
        """Whole seconds until ``client`` may try a token again; 0 when it may now."""
        with self._lock:
            entry = self._entry(client)
            if entry is None:
                return 0
            left = entry.locked_until - self._clock()
            return math.ceil(left) if left > 0 else 0

    def failed(self, client: str) -> tuple[int, float]:
        """Count a failure; the failures in a row and the lock (seconds) it brought."""
        with self._lock:
            now = self._clock()
            entry = self._entry(client) or _Client(0, now, now)
            entry.failures += 1
            entry.last = now
            over = entry.failures - FREE_FAILURES
            lock = min(MAX_LOCK_S, FIRST_LOCK_S * 2 ** (over - 1)) if over > 0 else 0.0
            entry.locked_until = now + lock
            self._clients[client] = entry
            self._clients.move_to_end(client)
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
            return entry.failures, lock

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def _entry(self, client: str) -> _Client | None:
        entry = self._clients.get(client)
        if entry is not None and self._clock() - entry.last > FORGET_AFTER_S:
            del self._clients[client]
            return None
        return entry
