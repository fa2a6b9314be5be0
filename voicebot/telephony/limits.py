"""Size and time limits on what a client may make the server hold, before anything is parsed.

Every route but the media stream is reachable without a signature, and the signature can only
be checked once the whole body is in memory. Twilio's webhooks are a few KB, so ``BodyLimit``
refuses anything larger before it is read: on its ``Content-Length`` at once (413), or, for a
chunked upload without one, as soon as the bytes received cross the limit; a body that stops
arriving is answered 408 after ``timeout_s``. The app behind it gets the body in one piece.

uvicorn closes idle keep-alive connections, but not a connection that never finishes its
request head (slowloris): ``HeadTimeoutH11Protocol`` closes those after ``head_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["BodyLimit", "HeadTimeoutH11Protocol"]

log = logging.getLogger(__name__)


class _Refused(Exception):
    def __init__(self, status: int, kind: str, text: str) -> None:
        super().__init__(text)
        self.status, self.kind, self.text = status, kind, text


class BodyLimit:
    """ASGI middleware: HTTP request bodies of at most ``max_bytes``, arriving within
    ``timeout_s``; ``refused(kind)`` counts each refusal ("body_too_large", "body_timeout")."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout_s: float,
        refused: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
        except _Refused as refusal:
            self.refused(refusal.kind)
            log.warning("refused %s %s: %s", scope["method"], scope["path"], refusal.text)
            await _respond(send, refusal.status, refusal.text)
            return
        if body is None:  # the client went away
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes | None:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            raise _Refused(
                413, "body_too_large", f"body of {declared} bytes is over {self.max_bytes}"
            )
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise _Refused(413, "body_too_large", f"body over {self.max_bytes} bytes")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise _Refused(
                408, "body_timeout", f"body not received within {self.timeout_s:g} s"
            ) from None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # h11 refuses a malformed one before the app sees it
    return None


async def _respond(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the rest of the body is not read
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head has not arrived
    ``head_timeout_s`` after it opened or after the previous response. uvicorn's own
    keep-alive timer is cancelled by any byte received, so a client trickling a header byte
    at a time would otherwise hold the connection forever."""

    head_timeout_s = 10.0  # set per server by subclassing (``with_head_timeout``)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    @classmethod
    def with_head_timeout(cls, seconds: float) -> type[HeadTimeoutH11Protocol]:
        return type(cls.__name__, (cls,), {"head_timeout_s": seconds})

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # closed, or upgraded to a WebSocket
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered; the next response re-arms the timer
        log.info("closing a connection that sent no complete request in %g s", self.head_timeout_s)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)
