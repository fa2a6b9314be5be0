"""Run an ASGI app with uvicorn in a thread of this process, on a free local port.

The simulator needs a server to call, and so do the end-to-end tests, the dashboard tests and
screenshot, and the call benchmark: they all start one here rather than each keeping a copy of
the start/wait/stop dance. It is the in-process counterpart of ``voicebot serve``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from voicebot.telephony.read_ahead import ReadAheadWebSocketProtocol

__all__ = ["free_port", "serving"]

START_TIMEOUT_S = 10.0


_GIVEN: set[int] = set()  # ports free_port has handed out in this process
_GIVEN_LOCK = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, for a server whose URL must be known before it
    starts (Twilio signatures cover the public URL). Never one it gave out before in this
    process: the port is free again once it is returned, so two asked for in a row (a server's
    main and media ports) could be the same one, and the second server failed to bind."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        with _GIVEN_LOCK:
            if port not in _GIVEN:
                _GIVEN.add(port)
                return port


Beside = Callable[[], Awaitable[asyncio.Server]]


class _Server(uvicorn.Server):
    """uvicorn with another server on its event loop (``serve --media-port``'s listener)."""

    def __init__(self, config: uvicorn.Config, beside: Beside | None) -> None:
        super().__init__(config)
        self.beside = beside
        self.other: asyncio.Server | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.beside is not None:
            self.other = await self.beside()
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.other is not None:
            self.other.close()
        await super().shutdown(sockets)


@contextmanager
def serving(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    beside: Beside | None = None,
    **options: Any,
) -> Iterator[str]:
    """Serve ``app`` (an ASGI app, or a ready ``uvicorn.Config``) until the block ends; yields
    its base URL once it accepts connections. ``port`` 0 takes any free one; ``options`` go to
    ``uvicorn.Config`` (e.g. ``log_level="warning"``); WebSockets use ``serve``'s protocol.
    ``beside`` starts another server on the same event loop (the picows media listener, whose
    calls are the app's sessions), closed with it."""
    if isinstance(app, uvicorn.Config):
        config = app
    else:
        options.setdefault("ws", ReadAheadWebSocketProtocol)  # the media path as served
        config = uvicorn.Config(app, host=host, port=port, lifespan="off", **options)
    server = _Server(config, beside)
    thread = threading.Thread(target=server.run, name="voicebot-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on {config.host}:{config.port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
