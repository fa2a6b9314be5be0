"""What a call needs of its media stream's socket, whichever server carries it.

A ``CallSession`` sends marks, prompt audio and clears, and closes its stream, through a
``MediaSocket``; ``MediaConnection`` reads the stream. Two transports implement it: Starlette's
WebSocket on the main port (``StarletteSocket``, one public URL for everything) and picows on
the media port (``media_listener.PicowsSocket``, no future per frame). The session compares
sockets by identity (``session.ws is socket``), so one adapter object stands for one stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

__all__ = ["SEND_ERRORS", "MediaSocket", "StarletteSocket"]

# What a send to a socket that went away raises, on either transport.
SEND_ERRORS = (TimeoutError, RuntimeError, OSError, WebSocketDisconnect)


class MediaSocket(Protocol):
    """One media stream's socket, as the call sees it."""

    carrier: str  # what carries it ("uvicorn", "picows"), for the log

    @property
    def open(self) -> bool:
        """Still connected and not closed by us: sending makes sense."""

    async def send_texts(self, texts: Sequence[str], patience_s: float) -> None:
        """Send ``texts`` in order; each may wait ``patience_s`` for the peer to read (then
        ``TimeoutError``). Raises one of ``SEND_ERRORS`` when the socket has gone."""

    async def close(self) -> None:
        """Close the stream (normal closure); nothing if it is closed already."""

    def pause_reading(self) -> None:
        """Stop reading the socket: the stream's handler is far behind (read-ahead limit)."""

    def resume_reading(self) -> None:
        """Read again."""


class StarletteSocket:
    """A Starlette (uvicorn) WebSocket as a ``MediaSocket``; its reader (``MediaRoute.serve``)
    waits on ``readable`` between messages when reading is paused."""

    carrier = "uvicorn"

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.readable = asyncio.Event()
        self.readable.set()

    @property
    def open(self) -> bool:
        return self.ws.client_state is WebSocketState.CONNECTED

    async def send_texts(self, texts: Sequence[str], patience_s: float) -> None:
        # One deadline, moved on by each message sent: a task per message (``wait_for``) cost
        # more than sending it, and a prompt is 50 messages per second of audio.
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(patience_s) as deadline:
            for text in texts:
                await self.ws.send_text(text)
                deadline.reschedule(loop.time() + patience_s)

    async def close(self) -> None:
        if self.ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(*SEND_ERRORS):
                await self.ws.close()

    def pause_reading(self) -> None:
        self.readable.clear()

    def resume_reading(self) -> None:
        self.readable.set()
