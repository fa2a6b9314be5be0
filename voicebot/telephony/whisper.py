"""What the agent hears before a transferred caller is bridged, without caller words in a URL.

The agent's leg fetches the whisper URL of ``<Dial><Number url=...>``; Twilio keeps that URL in
its call logs and our access log writes it too, and neither is reached by retention, ``purge`` or
``forget``. So the URL carries only what is not the caller's: the intent, language, reason,
confidence and the caller's CallSid (``call``). The transcript stays server-side: in this
instance's memory for a while (``WhisperNotes``), and in the call log, which is where another
instance behind the same load balancer finds it (``CallObserver.transfer_transcript``). The
whisper route is signed by Twilio, so the CallSid is no key to anyone else.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from voicebot.core.actions import TransferContext

__all__ = ["WhisperNotes", "whisper_context"]

NOTE_TTL_S: Final = 15 * 60  # an agent answers within the Dial timeout; queues do not whisper
MAX_NOTES: Final = 10_000

ContextValue = str | float | bool | None


def whisper_context(call_sid: str, context: TransferContext) -> dict[str, ContextValue]:
    """The whisper URL's query: everything of ``context`` except what the caller said."""
    return {
        "intent": context.intent,
        "confidence": context.confidence,
        "language": context.language,
        "reason": context.reason,
        "call": call_sid,
        # a repeat caller's recent calls (recall on): counts, an intent name and a day
        **(
            {
                "recent_calls": str(context.recent_calls),
                "last_intent": context.last_intent,
                "last_call": context.last_call,
            }
            if context.recent_calls is not None
            else {}
        ),
    }


class WhisperNotes:
    """Transcripts of recent transfers by CallSid, bounded in number and age (thread-safe)."""

    def __init__(
        self,
        ttl_s: float = NOTE_TTL_S,
        max_notes: int = MAX_NOTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_s
        self._max = max_notes
        self._clock = clock
        self._lock = threading.Lock()
        self._notes: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def put(self, call_sid: str, transcript: str | None) -> None:
        if not transcript:
            return
        with self._lock:
            self._notes[call_sid] = (self._clock() + self._ttl, transcript)
            self._notes.move_to_end(call_sid)
            while len(self._notes) > self._max:
                self._notes.popitem(last=False)

    def get(self, call_sid: str) -> str | None:
        with self._lock:
            now = self._clock()
            while self._notes:  # the oldest first: drop what has expired
                oldest = next(iter(self._notes.values()))
                if oldest[0] > now:
                    break
                self._notes.popitem(last=False)
            note = self._notes.get(call_sid)
            return note[1] if note is not None else None

    def clear(self) -> None:
        with self._lock:
            self._notes.clear()
