"""What one simulated call came to (``CallReport``) and how ``voicebot simulate`` prints calls:
in full, one line each, and a summary over many (decisions, latency percentiles). Apart from the
simulator because tests, benchmarks and the CLI read reports without running calls, and because
how a report reads is a separate concern from how Twilio is played.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voicebot.telephony.metrics import percentile


@dataclass
class CallReport:
    call_sid: str
    caller: str | None
    said: list[str] = field(default_factory=list)  # what the caller heard, in order
    streams: int = 0
    clears: int = 0  # barge-ins: the bot dropped its prompt
    texted: list[tuple[str, str]] = field(default_factory=list)  # (to, body)
    updates: list[str] = field(default_factory=list)  # TwiML of REST call updates
    decision: str = ""  # "transfer dial:+82..", "transfer enqueue:billing", "hangup", ...
    context: dict[str, str] = field(default_factory=dict)
    latency_s: float | None = None  # end of the caller's speech -> the bot's first reaction
    rejected: int | None = None  # HTTP status when the server refused the webhook/stream
    audio_s: float = 0.0  # caller audio sent on the call's streams, speech and silence
    error: str | None = None

    @property
    def decided(self) -> bool:
        return bool(self.decision) and not self.decision.startswith("none")


def format_report(report: CallReport) -> str:
    lines = [f"call {report.call_sid} from {report.caller or 'withheld'}"]
    if report.rejected is not None:
        lines.append(f"  refused: HTTP {report.rejected}")
    lines += [f"  said: {s}" for s in report.said]
    lines += [f"  texted {to}: {body}" for to, body in report.texted]
    decision = report.decision or "none"
    lines.append(f"  did: {decision}")
    if report.context:
        lines.append("  context: " + json.dumps(report.context, ensure_ascii=False, sort_keys=True))
    if report.latency_s is not None:
        lines.append(f"  reacted {report.latency_s * 1000:.0f} ms after the caller stopped talking")
    if report.error:
        lines.append(f"  problem: {report.error}")
    return "\n".join(lines)


def format_line(report: CallReport) -> str:
    """One call on one line (``--calls N``): who, what the bot did, how fast, what went wrong."""
    parts = [report.call_sid, report.caller or "withheld"]
    if report.rejected is not None:
        parts.append(f"refused HTTP {report.rejected}")
    parts.append(report.decision or "none")
    if report.texted:
        parts.append(f"texted {len(report.texted)}")
    if report.latency_s is not None:
        parts.append(f"{report.latency_s * 1000:.0f} ms")
    if report.error:
        parts.append(f"problem: {report.error}")
    return "  ".join(parts)


def summary(reports: Sequence[CallReport]) -> dict[str, Any]:
    latencies = [r.latency_s for r in reports if r.latency_s is not None]
    decisions: dict[str, int] = {}
    for r in reports:
        decisions[r.decision or "none"] = decisions.get(r.decision or "none", 0) + 1
    out: dict[str, Any] = {
        "calls": len(reports),
        "undecided": sum(1 for r in reports if not r.decided),
        "decisions": decisions,
    }
    if latencies:
        out["latency_ms"] = {
            "p50": round(percentile(latencies, 50) * 1000, 1),
            "p95": round(percentile(latencies, 95) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
        }
    return out
