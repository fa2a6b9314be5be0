"""Prometheus metrics in the text exposition format, written by hand (no client library).

Only what an operator watches for this service: calls in progress, decisions by action, decode
time, the decode backlog, decision latency, errors by kind and config reloads. Updates come
from the event loop and from decoding threads, hence the lock.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter, deque
from typing import Final

DECODE_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
DECISION_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
WAIT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


class Histogram:
    """Cumulative buckets plus the last ``keep`` raw samples, for percentiles in benchmarks."""

    def __init__(self, buckets: tuple[float, ...], keep: int = 10_000) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0
        self.recent: deque[float] = deque(maxlen=keep)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1
        self.recent.append(value)

    def lines(self, name: str, labels: str = "") -> list[str]:
        out: list[str] = []
        running = 0
        sep = "," if labels else ""
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {running}')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {self.total!r}")
        out.append(f"{name}_count{suffix} {self.n}")
        return out


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls_in_progress = 0
        self.calls_total = 0
        self.decisions: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.reloads: Counter[str] = Counter()
        self.shed_calls: Counter[str] = Counter()  # put through to a person: too busy
        self.decode = Histogram(DECODE_BUCKETS)
        self.decision_latency = Histogram(DECISION_BUCKETS)
        self.decode_wait = Histogram(WAIT_BUCKETS)
        self.backlog_total_s = 0.0
        self.backlog_worst_s = 0.0

    def call_started(self) -> None:
        with self._lock:
            self.calls_in_progress += 1
            self.calls_total += 1

    def call_ended(self) -> None:
        with self._lock:
            self.calls_in_progress = max(0, self.calls_in_progress - 1)

    def decision(self, action: str) -> None:
        with self._lock:
            self.decisions[action] += 1

    def latency(self, seconds: float) -> None:
        with self._lock:
            self.decision_latency.observe(seconds)

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def shed(self, stage: str) -> None:
        """A caller put through to a person because the bot was too busy: "door" (no room for
        the call), "call" (its audio waited too long to be decoded)."""
        with self._lock:
            self.shed_calls[stage] += 1

    def reload(self, ok: bool) -> None:
        with self._lock:
            self.reloads["ok" if ok else "failed"] += 1

    def backlog(self, total_s: float, worst_s: float) -> None:
        """Caller audio received but not decoded yet, over all calls and for the worst one."""
        with self._lock:
            self.backlog_total_s = total_s
            self.backlog_worst_s = worst_s

    def decoded(self, seconds: float, waited: float) -> None:
        """A chunk of caller audio decoded in ``seconds``, after ``waited`` seconds in the
        queue from when it was spoken: the decoder's queue is where a burst of callers all
        speaking at once shows first, before the decision latency."""
        with self._lock:
            self.decode.observe(seconds)
            self.decode_wait.observe(waited)

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP voicebot_calls_in_progress Calls with a live session.",
                "# TYPE voicebot_calls_in_progress gauge",
                f"voicebot_calls_in_progress {self.calls_in_progress}",
                "# HELP voicebot_calls_total Calls answered.",
                "# TYPE voicebot_calls_total counter",
                f"voicebot_calls_total {self.calls_total}",
                "# HELP voicebot_decisions_total Calls ended by the bot, by action.",
                "# TYPE voicebot_decisions_total counter",
                *_labelled("voicebot_decisions_total", "action", self.decisions),
                "# HELP voicebot_errors_total Errors by kind (none of them ends a call).",
                "# TYPE voicebot_errors_total counter",
                *_labelled("voicebot_errors_total", "kind", self.errors),
                "# HELP voicebot_shed_total Callers put through to a person because the bot was"
                " too busy, by stage (door: no room for the call; call: decoding fell behind).",
                "# TYPE voicebot_shed_total counter",
                *_labelled("voicebot_shed_total", "stage", self.shed_calls),
                "# HELP voicebot_config_reloads_total Configuration reloads by result.",
                "# TYPE voicebot_config_reloads_total counter",
                *_labelled("voicebot_config_reloads_total", "result", self.reloads),
                "# HELP voicebot_decode_seconds Time to decode one chunk of caller audio.",
                "# TYPE voicebot_decode_seconds histogram",
                *self.decode.lines("voicebot_decode_seconds"),
                "# HELP voicebot_decode_wait_seconds From when a chunk of caller audio was spoken"
                " to when the decoder took it up (the socket, the event loop and the decoder's"
                " queue).",
                "# TYPE voicebot_decode_wait_seconds histogram",
                *self.decode_wait.lines("voicebot_decode_wait_seconds"),
                "# HELP voicebot_decode_backlog_seconds Caller audio received and not yet decoded,"
                " summed over calls.",
                "# TYPE voicebot_decode_backlog_seconds gauge",
                f"voicebot_decode_backlog_seconds {self.backlog_total_s:.3f}",
                "# HELP voicebot_decode_backlog_max_seconds The largest decode backlog of one call"
                " (what its caller waits on top of the usual).",
                "# TYPE voicebot_decode_backlog_max_seconds gauge",
                f"voicebot_decode_backlog_max_seconds {self.backlog_worst_s:.3f}",
                "# HELP voicebot_decision_seconds From when the audio that completed an utterance"
                " was spoken (its media timestamp against the stream's start) to the decision"
                " leaving the server.",
                "# TYPE voicebot_decision_seconds histogram",
                *self.decision_latency.lines("voicebot_decision_seconds"),
            ]
        return "\n".join(lines) + "\n"


def _labelled(name: str, label: str, counts: Counter[str]) -> list[str]:
    return [f'{name}{{{label}="{_escape(k)}"}} {v}' for k, v in sorted(counts.items())]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]
