"""``voicebot simulate``: play Twilio toward a running server, so a call needs no phone.

For each call it posts the signed incoming-call webhook, reads the TwiML (what the caller hears,
the stream URL and its parameters), opens the media stream with a valid signature, sends
``connected``/``start``, the caller's audio as 20 ms mu-law frames, DTMF and finally ``stop``;
it echoes our ``mark``s once the audio before them has "played" and honours ``clear``, as
Twilio does. What the bot did through the REST API (transfers, hang-ups, redirects, texts) is
read from a ``FakeTwilio`` the server was pointed at (``TWILIO_API_BASE_URL``); simulate follows
a redirect to a new stream like Twilio would.

Pacing: caller speech is sent as fast as the connection takes it (the server's decisions only
depend on the audio, not on wall time) unless ``realtime``; the silence after the caller's
audio is always real time, so prompts and timeouts happen as on a real line.

The parts it plays with live next to it: ``caller_line`` (Twilio's side of one media stream:
frames, marks, ``clear``), ``twiml_reader`` (what a TwiML document makes Twilio do, including the
``<Dial>`` after the stream) and ``call_report`` (the per-call report and its printing).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voicebot.speech.audio import read_wav, ulaw_decode, ulaw_encode
from voicebot.telephony.media_stream import FRAME_BYTES, MULAW_SILENCE, split_frames
from voicebot.telephony.settings import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN
from voicebot.telephony.signature import SIGNATURE_HEADER, sign
from voicebot.telephony.testing.call_report import CallReport
from voicebot.telephony.testing.caller_line import FRAME_S, CallerLine
from voicebot.telephony.testing.fake_rest import FakeTwilio, RecordedRequest
from voicebot.telephony.testing.twiml_reader import Twiml, parse_twiml

SILENCE: Final = bytes([MULAW_SILENCE]) * FRAME_BYTES


@dataclass(frozen=True)
class SimOptions:
    url: str = "http://127.0.0.1:8080"  # the server's public base, as in its --public-url
    auth_token: str = DEV_AUTH_TOKEN
    account_sid: str = DEV_ACCOUNT_SID
    caller: str | None = "+821012345678"  # None: withheld
    to: str = "+82212340000"
    dtmf: str = ""  # keys pressed after the caller's audio
    realtime: bool = False
    barge_in: bool = False  # later turns start as soon as the bot speaks, not after its prompt
    pause_s: float = 0.3  # silence between the bot's prompt ending and the caller's next turn
    max_wait_s: float = 30.0  # after the caller's audio: give up (hang up) after this long
    junk: tuple[str, ...] = ()  # raw frames sent right after "start" (fault tests)


def load_audio(path: Path) -> bytes:
    """A WAV file as 8 kHz mu-law, whatever its rate."""
    return ulaw_encode(read_wav(path).resampled(8000).samples)


# ---------------------------------------------------------------------------------------------
# HTTP side


def voiced_frames(frames: Sequence[bytes], floor: float = 0.1) -> int:
    """How many frames it takes to reach the last one whose level is at least ``floor`` of the
    loudest frame's (-20 dB): the end of the speech in a recording with trailing silence or
    low noise. Deliberately not the recogniser's EnergyVad: the yardstick for the bot's reaction
    must not share the bot's own idea of when speech ended."""
    levels = [float(np.sqrt(np.mean(ulaw_decode(f).astype(np.float64) ** 2))) for f in frames]
    if not levels or max(levels) <= 0:
        return len(frames)
    loud = max(levels) * floor
    return max(i for i, level in enumerate(levels, 1) if level >= loud)


def _post(url: str, params: Mapping[str, str], token: str) -> tuple[int, str]:
    data = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header(SIGNATURE_HEADER, sign(url, params, token))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")


# ---------------------------------------------------------------------------------------------
# One call


class _Call:
    def __init__(
        self,
        turns: Sequence[bytes],
        options: SimOptions,
        fake: FakeTwilio | None,
        caller: str | None,
        call_sid: str | None = None,
    ) -> None:
        self.turns = turns
        self.options = options
        self.fake = fake
        self.call_sid = call_sid or "CA" + secrets.token_hex(16)
        self.report = CallReport(self.call_sid, caller)
        self.caller = caller
        self.done = asyncio.Event()  # the call is over (decision, or hang-up)
        self.redirect: Twiml | None = None
        self.redirected = asyncio.Event()
        self.hung_up = False  # the caller gave up waiting and hung up (Twilio runs nothing more)
        self.speech_end: float | None = None  # when the caller's last word (or key) was sent
        self.seen_updates = 0
        # Texts are matched by the caller's number: earlier calls from it do not count.
        self.seen_messages = (
            0 if fake is None or caller is None else sum(m.to == caller for m in fake.messages())
        )

    def _params(self, status: str) -> dict[str, str]:
        return {
            "CallSid": self.call_sid,
            "AccountSid": self.options.account_sid,
            "From": self.caller or "anonymous",
            "To": self.options.to,
            "CallStatus": status,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }

    async def run(self) -> CallReport:
        base = self.options.url.rstrip("/")
        status, body = await asyncio.to_thread(
            _post, base + "/twilio/voice", self._params("ringing"), self.options.auth_token
        )
        if status != 200:
            self.report.rejected = status
            self.report.error = f"webhook answered HTTP {status}"
            return self.report
        twiml = parse_twiml(body)
        self.report.said += list(twiml.said)
        watcher = asyncio.ensure_future(self._watch_rest())
        try:
            if twiml.stream_url is None:
                self._decide(twiml.final or "hangup", dict(twiml.context))
            else:
                await self._streams(twiml)
        finally:
            watcher.cancel()
            await asyncio.to_thread(
                _post, base + "/twilio/status", self._params("completed"), self.options.auth_token
            )
        if not self.report.decision:
            self.report.decision = "none"
        return self.report

    def _decide(self, decision: str, context: dict[str, str]) -> None:
        if not self.report.decision:
            self.report.decision = decision
            self.report.context = context
        self._react()
        self.done.set()

    def _react(self) -> None:
        if self.speech_end is not None and self.report.latency_s is None:
            self.report.latency_s = time.perf_counter() - self.speech_end

    async def _watch_rest(self) -> None:
        """What the bot asked Twilio's REST API for this call: follow it as Twilio would."""
        seen = -1
        while self.fake is not None:
            # Scan the fake's request log only when it grew: every call polls every 5 ms, and
            # scanning each time cost the load generator more CPU than the calls themselves.
            count = len(self.fake.requests)
            if count != seen:
                seen = count
                self._check_rest()
            await asyncio.sleep(0.005)

    def _check_rest(self) -> None:
        if self.fake is None:
            return
        updates = [u for u in self.fake.call_updates() if u.call_sid == self.call_sid]
        for update in updates[self.seen_updates :]:
            self._on_update(update)
        self.seen_updates = len(updates)
        if self.caller is not None:
            texts = [m for m in self.fake.messages() if m.to == self.caller]
            for m in texts[self.seen_messages :]:
                self.report.texted.append((m.to or "", m.body or ""))
                self._react()
            self.seen_messages = len(texts)

    def _on_update(self, update: RecordedRequest) -> None:
        if update.form.get("Status") == "completed":
            self.report.updates.append("<hang up>")
            self._decide("hangup", {})
            return
        xml = update.twiml or ""
        self.report.updates.append(xml)
        twiml = parse_twiml(xml)
        self.report.said += list(twiml.said)
        if twiml.stream_url is not None:
            self.redirect = twiml
            self.redirected.set()
            self._react()
            return
        kind = "transfer " if twiml.final.startswith(("dial", "enqueue")) else ""
        self._decide(kind + (twiml.final or "hangup"), dict(twiml.context))

    async def _streams(self, twiml: Twiml) -> None:
        turns = list(self.turns)
        current: Twiml | None = twiml
        while current is not None and current.stream_url is not None:
            self.redirect = None
            self.redirected.clear()
            turns = await self._stream(current, turns)
            self._check_rest()  # the server updates the call before it closes the stream
            if self.hung_up:
                return
            ended, current = current, self.redirect
            if current is None and not self.done.is_set():
                # The server closed the socket (or died) without redirecting the call: Twilio
                # goes on with the TwiML after <Connect><Stream>, as the caller would hear it.
                self.report.said += list(ended.after)
                self._decide(f"fallback {ended.final}" if ended.final else "none", {})

    async def _stream(self, twiml: Twiml, turns: list[bytes]) -> list[bytes]:
        """One media stream; returns the turns not yet spoken (for the next stream)."""
        assert twiml.stream_url is not None
        url = twiml.stream_url
        headers = {SIGNATURE_HEADER: sign(url, {}, self.options.auth_token)}
        try:
            # No permessage-deflate: Twilio does not compress, and deflating every 20 ms frame
            # (and the server deflating its prompt audio) cost both sides CPU for nothing.
            ws = await connect(url, additional_headers=headers, max_size=2**20, compression=None)
        except InvalidStatus as exc:
            self.report.rejected = exc.response.status_code
            self.report.error = f"stream upgrade refused: HTTP {exc.response.status_code}"
            self.done.set()
            return []
        self.report.streams += 1
        line = CallerLine(ws, "MZ" + secrets.token_hex(16))
        receiver = asyncio.ensure_future(line.receive(self.report, self._react))
        try:
            await line.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            await line.send(
                {
                    "event": "start",
                    "sequenceNumber": line._next(),
                    "streamSid": line.stream_sid,
                    "start": {
                        "accountSid": self.options.account_sid,
                        "streamSid": line.stream_sid,
                        "callSid": self.call_sid,
                        "tracks": ["inbound"],
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                        "customParameters": dict(twiml.parameters),
                    },
                }
            )
            for junk in self.options.junk:
                await ws.send(junk)
            turns = await self._talk(line, turns)
        except ConnectionClosed:
            pass
        finally:
            if not line.closed.is_set():
                await line.stop(self.call_sid, self.options.account_sid)
            await receiver
            self.report.audio_s += line.chunk * FRAME_S
        return turns

    async def _talk(self, line: CallerLine, turns: list[bytes]) -> list[bytes]:
        first = True
        while turns:
            if not first:
                line.media_seen.clear()
                line.mark_echoed.clear()
                trigger = line.media_seen if self.options.barge_in else line.mark_echoed
                if not await self._silence_until(line, trigger, self.options.max_wait_s):
                    self._give_up(line, "no prompt")
                    return turns
                if not self.options.barge_in:
                    await self._silence_until(line, None, self.options.pause_s)
            first = False
            await self._speak(line, turns.pop(0))
            if self.done.is_set() or self.redirected.is_set() or line.closed.is_set():
                return turns
        if self.options.dtmf:  # the caller's last input is the keypad, not the speech
            for digit in self.options.dtmf:
                await line.dtmf(digit)
                await self._silence_until(line, None, 0.1)
            self.speech_end = time.perf_counter()
            self.report.latency_s = None
        await self._silence_until(line, None, self.options.max_wait_s)
        self._give_up(line, "no decision")
        return turns

    def _give_up(self, line: CallerLine, what: str) -> None:
        """``max_wait_s`` passed with the line still open: the caller hangs up undecided."""
        if not (self.done.is_set() or self.redirected.is_set() or line.closed.is_set()):
            self.hung_up = True
            self.report.error = f"{what} {self.options.max_wait_s:g} s after the caller's audio"

    async def _speak(self, line: CallerLine, audio: bytes) -> None:
        """Send one turn; the reaction is timed from its last voiced frame, since the bot may
        answer during the silence that ends a recording."""
        self.speech_end = None
        self.report.latency_s = None
        frames = split_frames(audio)
        last = voiced_frames(frames)
        next_at = time.perf_counter()
        for i, frame in enumerate(frames, 1):
            if line.closed.is_set() or self.done.is_set() or self.redirected.is_set():
                return
            await line.frame(frame)
            if i >= last and self.speech_end is None:
                self.speech_end = time.perf_counter()
            if self.options.realtime:
                next_at += FRAME_S
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def _silence_until(
        self, line: CallerLine, until: asyncio.Event | None, limit_s: float
    ) -> bool:
        """Real-time silence until ``until`` is set (True), the call ends or ``limit_s`` pass."""
        started = next_at = time.perf_counter()
        while time.perf_counter() - started < limit_s:
            if until is not None and until.is_set():
                return True
            if line.closed.is_set() or self.done.is_set() or self.redirected.is_set():
                return until is None
            await line.frame(SILENCE)
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        return until is None


async def simulate_call(
    turns: Sequence[bytes],
    options: SimOptions,
    fake: FakeTwilio | None = None,
    caller: str | None = None,
    call_sid: str | None = None,
) -> CallReport:
    """One simulated call: ``turns`` are what the caller says, one after each bot prompt;
    ``call_sid`` (default: a random one) lets a test find the call elsewhere while it runs."""
    call = _Call(turns, options, fake, caller if caller is not None else options.caller, call_sid)
    try:
        return await call.run()
    except (OSError, ConnectionClosed, ET.ParseError) as exc:
        call.report.error = _problem(exc, options.url)
        if not call.report.decision:
            call.report.decision = "none"
        return call.report


def _problem(exc: BaseException, url: str) -> str:
    """What went wrong, in a line: a server that does not answer in plain words (urllib's
    ``URLError: <urlopen error [Errno 111] ...>`` says it in its own; an HTTP error status is
    the webhook's answer, read where it is sent)."""
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) else None
        return f"cannot reach {url}: {reason or exc.reason}"
    return f"{type(exc).__name__}: {exc}"


async def simulate_calls(
    turns: Sequence[bytes],
    options: SimOptions,
    fake: FakeTwilio | None,
    calls: int,
    *,
    rotate: bool = False,
    stagger_s: float = 0.0,
    rounds: int = 1,
) -> list[CallReport]:
    """``calls`` concurrent calls, each from its own number (so their texts can be told apart).

    ``rotate``: call i says only ``turns[i % len(turns)]`` (a mix of callers, one turn each);
    ``stagger_s``: line i starts i * stagger_s seconds after the first;
    ``rounds``: each of the ``calls`` lines calls again as soon as its call ends, ``rounds``
    calls in all. A busy line is like that: the server holds ``calls`` calls at every moment,
    each at its own stage (one speaking, another hearing an answer), where one round starts
    them all together and everyone speaks at once. With ``rotate``, line i's call number r says
    ``turns[(i + r) % len(turns)]``: each line goes through the mix, whatever ``calls`` is.
    Reports are in call order: report ``r * calls + i`` is line i's call number r.
    """
    total = calls * rounds

    def number(j: int) -> str | None:
        if options.caller is None or total == 1:
            return options.caller
        return options.caller[:-4] + f"{(int(options.caller[-4:]) + j) % 10000:04d}"

    async def line(i: int) -> list[CallReport]:
        await asyncio.sleep(i * stagger_s)
        reports = []
        for r in range(rounds):
            said = [turns[(i + r) % len(turns)]] if rotate and turns else turns
            reports.append(await simulate_call(said, options, fake, number(r * calls + i)))
        return reports

    lines = await asyncio.gather(*(line(i) for i in range(calls)))
    return [lines[j % calls][j // calls] for j in range(total)]
