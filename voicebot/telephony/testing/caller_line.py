"""The caller's side of one media stream, as Twilio behaves on it: it sends the caller's 20 ms
mu-law frames, DTMF and ``stop``, "plays" the bot's audio in step with the frames it sends,
echoes each ``mark`` once the audio before it has played, and honours ``clear`` (barge-in). The
simulator's ``_Call`` decides what to say and when; this module holds only the wire protocol and
playback timing, the part that must match Twilio frame for frame.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any, Final

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from voicebot.telephony.media_stream import mark_label
from voicebot.telephony.testing.call_report import CallReport

FRAME_S: Final = 0.02


class CallerLine:
    """The caller's side of one media stream: outbound audio queue, marks, sequence numbers."""

    def __init__(self, ws: ClientConnection, stream_sid: str) -> None:
        self.ws = ws
        self.stream_sid = stream_sid
        self.seq = 0
        self.chunk = 0
        self.queued_s = 0.0  # bot audio not yet "played"
        self.marks: list[tuple[float, str]] = []  # (position in the queue, name)
        self.media_seen = asyncio.Event()  # the bot started a prompt
        self.mark_echoed = asyncio.Event()  # a prompt finished
        self.closed = asyncio.Event()

    def _next(self) -> str:
        self.seq += 1
        return str(self.seq)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def frame(self, payload: bytes) -> None:
        # Formatted, not json.dumps'd: the simulator runs hundreds of these a second and must
        # cost little next to the server it measures. Same JSON as Twilio's (all strings).
        self.chunk += 1
        seq, chunk = self._seq_next(), self.chunk
        payload_b64 = base64.b64encode(payload).decode("ascii")
        await self.ws.send(
            f'{{"event":"media","sequenceNumber":"{seq}","streamSid":"{self.stream_sid}",'
            f'"media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{(chunk - 1) * 20}",'
            f'"payload":"{payload_b64}"}}}}'
        )
        await self._play(FRAME_S)

    def _seq_next(self) -> int:
        self.seq += 1
        return self.seq

    async def _play(self, seconds: float) -> None:
        """Twilio plays our queued audio while the caller's audio flows: echo due marks."""
        self.queued_s = max(0.0, self.queued_s - seconds)
        due: list[str] = []
        keep: list[tuple[float, str]] = []
        for position, name in self.marks:
            position -= seconds
            if position <= 1e-9:
                due.append(name)
            else:
                keep.append((position, name))
        self.marks = keep
        for name in due:
            await self._echo(name)

    async def _echo(self, name: str) -> None:
        await self.send(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )
        self.mark_echoed.set()

    async def dtmf(self, digit: str) -> None:
        await self.send(
            {
                "event": "dtmf",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def stop(self, call_sid: str, account_sid: str) -> None:
        try:
            await self.send(
                {
                    "event": "stop",
                    "sequenceNumber": self._next(),
                    "streamSid": self.stream_sid,
                    "stop": {"accountSid": account_sid, "callSid": call_sid},
                }
            )
            await self.ws.close()
        except ConnectionClosed:
            pass

    async def receive(self, report: CallReport, on_bot: Callable[[], None]) -> None:
        prompt_s = 0.0
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                event = message.get("event")
                if event == "media":
                    seconds = len(base64.b64decode(message["media"]["payload"])) / 8000
                    self.queued_s += seconds
                    prompt_s += seconds
                    self.media_seen.set()
                    on_bot()
                elif event == "mark":
                    name = message["mark"]["name"]
                    label, text = mark_label(name)
                    heard = f"(stream) {label}: {prompt_s:.1f} s of speech"
                    report.said.append(f"{heard}: {text}" if text else heard)
                    prompt_s = 0.0
                    self.marks.append((self.queued_s, name))
                    if self.queued_s <= 0:
                        await self._play(0.0)
                elif event == "clear":
                    report.clears += 1
                    report.said.append("(stream) cleared: the caller talked over it")
                    self.queued_s = 0.0
                    pending, self.marks = self.marks, []
                    for _, name in pending:
                        await self._echo(name)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
