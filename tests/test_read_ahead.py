"""The media WebSocket's read-ahead: reading pauses only when the app is far behind.

Through real uvicorn and a real WebSocket client on a loopback socket: every message arrives,
in order, however the app keeps up; a stream read as it arrives never pauses the socket (the
per-frame pause and resume was a sixth of the server's CPU); an app that stops reading stops
the socket too, so what a client sends cannot pile up in memory.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from websockets.asyncio.client import connect

from voicebot.telephony.read_ahead import HIGH_WATER, ReadAheadWebSocketProtocol
from voicebot.telephony.testing.serving import serving


class CountingProtocol(ReadAheadWebSocketProtocol):
    """The product's protocol, recording its socket pauses and its queue's high point."""

    instances: ClassVar[list[CountingProtocol]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pauses = 0
        self.most_queued = 0
        CountingProtocol.instances.append(self)

    def send_receive_event_to_app(self) -> None:
        was = self.read_paused
        super().send_receive_event_to_app()
        self.pauses += self.read_paused and not was
        self.most_queued = max(self.most_queued, self.queue.qsize())


@contextmanager
def app_server(read: str) -> Iterator[tuple[str, list[str]]]:
    """A WebSocket app that reads ``"all"`` messages (a short sleep every 50), or ``"none"``
    until told to (``release``); yields its URL and the texts it got."""
    got: list[str] = []
    release = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            if read == "none":
                while not release.is_set():
                    await asyncio.sleep(0.01)
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            got.append(message["text"])
            if len(got) % 50 == 0:
                await asyncio.sleep(0.005)

    CountingProtocol.instances.clear()
    with serving(app, ws=CountingProtocol, log_level="warning") as url:
        try:
            yield url.replace("http", "ws") + "/", got
        finally:
            release.set()


async def send_all(url: str, texts: list[str], gap_s: float = 0.0) -> None:
    async with connect(url, compression=None) as ws:
        for text in texts:
            await ws.send(text)
            if gap_s:
                await asyncio.sleep(gap_s)
        await asyncio.sleep(0.3)


def test_every_message_arrives_in_order_when_the_app_reads_slower_than_the_client_sends() -> None:
    texts = [f'{{"n":{i}}}' for i in range(2000)]
    with app_server("all") as (url, got):
        asyncio.run(send_all(url, texts))
        deadline = asyncio.run(_until(lambda: len(got) == len(texts)))
    assert deadline, f"{len(got)} of {len(texts)} messages arrived"
    assert got == texts
    assert CountingProtocol.instances[0].pauses >= 1  # the burst did fill the read-ahead


def test_a_stream_read_as_it_arrives_never_pauses_the_socket() -> None:
    texts = [f'{{"n":{i}}}' for i in range(150)]
    with app_server("all") as (url, got):
        asyncio.run(send_all(url, texts, gap_s=0.002))
        asyncio.run(_until(lambda: len(got) == len(texts)))
    assert got == texts
    assert CountingProtocol.instances[0].pauses == 0  # uvicorn's own protocol: 150


def test_an_app_that_stops_reading_stops_the_socket() -> None:
    texts = ["x" * 1000 for _ in range(3000)]  # 3 MB, far more than the read-ahead holds

    async def send_some() -> None:
        async with connect(url, compression=None) as ws:
            for text in texts:
                try:
                    await asyncio.wait_for(ws.send(text), 0.5)
                except TimeoutError:
                    return  # held back: the server stopped reading

    with app_server("none") as (url, _got):
        asyncio.run(send_some())
        protocol = CountingProtocol.instances[0]
        assert asyncio.run(_until(lambda: protocol.read_paused))
        # On top of the read-ahead the queue holds at most what one read of the socket brought
        # (asyncio reads up to 256 KiB at a time), however the kernel batched them; the rest
        # stays in the kernel's socket buffers, never the 3000 sent in the process's memory.
        one_read = 256 * 1024 // len(texts[0])
        assert HIGH_WATER <= protocol.most_queued <= HIGH_WATER + one_read


async def _until(done: Any, timeout_s: float = 10.0) -> bool:
    for _ in range(int(timeout_s / 0.01)):
        if done():
            return True
        await asyncio.sleep(0.01)
    return bool(done())
