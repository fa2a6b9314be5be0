"""Replay recorded calls: WAV files through the same pipeline as a live call.

A file is the caller's side of one call. It is fed in 20 ms frames, as a phone line delivers
it, with the call's clock driven by the audio; when the file ends the caller stays silent until
the dialogue decides (re-prompts and no-speech transfers happen as they would live). SMS sends
are simulated as successful. Same file, same configuration: same decision, every run.

With a call log (``voicebot replay --database``) each file is one call of the same caller, in the
order given: recorded in the log and, with recall on, recalled from it, with the helpers
``voicebot chat --database`` uses (``voicebot.calllog.scripted``); a file's call starts where the
one before it ended, so a run is as repeatable as the log it starts from.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from voicebot.calllog.log import CallLog
from voicebot.calllog.scripted import caller_recall, start_logged_call
from voicebot.core.actions import Action, SendSms
from voicebot.core.config import LanguageConfig
from voicebot.core.dialogue import Classify, Dialogue
from voicebot.core.lookup import Lookup
from voicebot.core.state import OutcomeKind
from voicebot.errors import VoicebotError
from voicebot.shells.chat import describe
from voicebot.shells.lookup import lookup, lookup_secret
from voicebot.speech.audio import AudioError, read_wav
from voicebot.speech.pipeline import CallPipeline, SpeechKit, Step

__all__ = [
    "NO_CHECK",
    "Check",
    "Expectation",
    "ExpectationError",
    "FileResult",
    "check",
    "find_wavs",
    "format_result",
    "junit_xml",
    "read_expectations",
    "replay_file",
    "result_json",
]

FRAME_S = 0.02  # one telephone media frame
MAX_TRAILING_S = 120.0  # a dialogue that still has not decided after this much silence hangs up


@dataclass(frozen=True)
class FileResult:
    file: str
    duration_s: float  # audio in the file
    call_s: float  # simulated call length, trailing silence included
    wall_s: float  # time spent decoding
    steps: tuple[Step, ...] = ()
    decision: str = ""  # transfer:<group>, sms:<intent>, announce:<intent> or hangup
    intent: str | None = None  # the last intent recognised
    outcome: str = ""  # the dialogue's outcome line
    error: str | None = None  # the file could not be replayed
    call_id: str = ""  # the call's id in the call log (``--database``); "" when not recorded
    history: str | None = None  # the caller's recent calls (``--database``, recall on)
    recalled: str | None = None  # the intent the caller was asked about again, if any
    recall_answer: str | None = None  # "yes", "no", "other"; None: not asked or no answer


def decision_of(kind: OutcomeKind, group: str | None, served: Sequence[str]) -> str:
    """The decision as an expectations file spells it."""
    if kind is OutcomeKind.TRANSFERRED:
        return f"transfer:{group}"
    if kind in (OutcomeKind.SMS_SENT, OutcomeKind.ANNOUNCED) and served:
        prefix = "sms" if kind is OutcomeKind.SMS_SENT else "announce"
        return f"{prefix}:{served[-1]}"
    return "hangup"


def replay_file(
    path: Path,
    config: LanguageConfig,
    kit: SpeechKit,
    *,
    caller: str | None,
    at: dt.datetime,
    log: CallLog | None = None,
    call_id: str = "",
) -> FileResult:
    """One file as one call of ``config`` with its ``speech_kit`` (one kit for all the files:
    the matcher is trained once); an unreadable file gives a result with ``error`` set (and
    is not logged). With ``log``, the call is recalled from and recorded in that call log as
    ``voicebot chat --database`` does it."""
    started = time.perf_counter()
    try:
        audio = read_wav(path)
    except AudioError as exc:
        return FileResult(str(path), 0.0, 0.0, 0.0, error=str(exc))
    history = None
    dialogue: Callable[[LanguageConfig, Classify], Dialogue] = Dialogue
    if log is not None:
        history = caller_recall(log, config, caller, at, call_id)
        dialogue = partial(start_logged_call, log, call_id=call_id, at=at, caller=caller)
    call = CallPipeline(
        config,
        kit,
        caller=caller,
        start_at=at,
        call_rate=audio.rate,
        call_id=call_id,
        history=history,
        dialogue=dialogue,
    )
    step = max(1, round(audio.rate * FRAME_S))
    _carry_out(call, call.start())
    samples = audio.samples
    for i in range(0, len(samples), step):
        if call.ended:
            break
        _carry_out(call, call.feed(samples[i : i + step]))
    silence = samples[:0].copy()
    silence.resize(step)
    limit = audio.duration_s + MAX_TRAILING_S
    while not call.ended and call.time_s < limit:
        _carry_out(call, call.feed(silence))
    if not call.ended:
        _carry_out(call, call.hang_up())
    outcome = call.dialogue.outcome
    assert outcome is not None
    if log is not None:
        log.call_ended(call_id, call.now, outcome)
    return FileResult(
        str(path),
        audio.duration_s,
        call.time_s,
        time.perf_counter() - started,
        tuple(call.steps),
        decision_of(outcome.kind, outcome.group, outcome.served),
        outcome.intent,
        str(outcome),
        call_id=call_id if log is not None else "",
        history=history.summary() if history is not None else None,
        recalled=outcome.recalled,
        recall_answer=outcome.recall_answer,
    )


def _carry_out(call: CallPipeline, actions: list[Action]) -> None:
    """The shell's part: texts are "sent" and their result fed back at once; lookups are
    real (``$VOICEBOT_LOOKUP_SECRET`` signs them), answered at the call time they were asked."""
    for action in actions:
        if isinstance(action, SendSms):
            _carry_out(call, call.sms_result(True, "simulated"))
        elif isinstance(action, Lookup):
            result = lookup(action, call.config, call.now, secret=lookup_secret())
            _carry_out(call, call.lookup_result(result))


def find_wavs(paths: Iterable[Path]) -> list[Path]:
    """Files as given, folders searched recursively for .wav files; sorted per folder."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() == ".wav")
        else:
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# Expectations


class ExpectationError(VoicebotError, ValueError):
    """An expectations file that cannot be read; one line naming the file and row."""


@dataclass(frozen=True)
class Expectation:
    file: str  # as written in the CSV
    want: str  # an intent name ("none" for no intent) or a decision such as transfer:billing

    @property
    def is_decision(self) -> bool:
        return ":" in self.want or self.want == "hangup"

    def got(self, result: FileResult) -> str:
        return result.decision if self.is_decision else (result.intent or "none")


def read_expectations(path: Path) -> dict[Path, Expectation]:
    """``file,intent`` or ``file,action`` rows (a header row is optional); files are relative
    to the CSV's folder."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ExpectationError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    out: dict[Path, Expectation] = {}
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) != 2:
            raise ExpectationError(f"{path}:{n}: expected 2 columns (file,intent), got {len(row)}")
        file, want = row[0].strip(), row[1].strip()
        if n == 1 and file.lower() == "file":
            continue
        if not file or not want:
            raise ExpectationError(f"{path}:{n}: empty file or expectation")
        out[(path.parent / file).resolve()] = Expectation(file, want)
    return out


@dataclass(frozen=True)
class Check:
    """A file's result against its expectation; ``ok`` is None when it has none."""

    ok: bool | None = None
    want: str = ""
    got: str = ""


NO_CHECK = Check()


def check(result: FileResult, expectations: dict[Path, Expectation]) -> Check:
    """How a file fared against its row of the expectations file (matched by path, else by
    a unique file name)."""
    e = expectations.get(Path(result.file).resolve())
    if e is None:
        by_name = [x for p, x in expectations.items() if p.name == Path(result.file).name]
        e = by_name[0] if len(by_name) == 1 else None
    if e is None:
        return NO_CHECK
    if result.error is not None:
        return Check(False, e.want, "error")
    got = e.got(result)
    return Check(got == e.want, e.want, got)


# ---------------------------------------------------------------------------------------------
# Reports


def format_result(result: FileResult, verdict: Check = NO_CHECK) -> str:
    """Human-readable trace of one file: utterances with their match, every action."""
    if result.error is not None:
        return f"{result.file}: error: {result.error}"
    lines = [f"{result.file} ({result.duration_s:.1f} s audio)"]
    if result.history is not None:
        lines.append(f"  caller's recent calls: {result.history}")
    for s in result.steps:
        if s.heard is not None:
            h = s.heard
            text, conf = h.alternatives[0] if h.alternatives else ("", 0.0)
            lines.append(
                f"  {h.start_s:6.2f}-{h.end_s:6.2f}  heard {text!r} ({conf:.2f})"
                f" -> {h.match_summary}"
            )
        else:
            label = s.event.replace("_", " ") + (f" {s.detail}" if s.detail else "")
            lines.append(f"  {s.time_s:6.2f}  {label}")
        lines += [f"          {describe(a)}" for a in s.actions]
    line = f"  decision: {result.decision} (intent {result.intent or 'none'}; {result.outcome})"
    if verdict.ok is not None:
        line += f" -- expected {verdict.want}: {'ok' if verdict.ok else 'MISMATCH'}"
    lines.append(line)
    return "\n".join(lines)


def result_json(result: FileResult, verdict: Check = NO_CHECK) -> dict[str, Any]:
    utterances = [
        {
            "start": round(s.heard.start_s, 2),
            "end": round(s.heard.end_s, 2),
            "alternatives": [[t, round(c, 3)] for t, c in s.heard.alternatives],
            "intent": s.heard.match.best.intent if s.heard.match and s.heard.match.best else None,
            "score": s.heard.match.best.score if s.heard.match and s.heard.match.best else None,
            "verdict": s.heard.match.verdict.value if s.heard.match else None,
        }
        for s in result.steps
        if s.heard is not None
    ]
    steps = [
        {
            "time": round(s.time_s, 2),
            "event": s.event,
            "actions": [describe(a) for a in s.actions],
        }
        for s in result.steps
    ]
    return {
        "file": result.file,
        "error": result.error,
        "duration_s": round(result.duration_s, 3),
        "decision": result.decision or None,
        "intent": result.intent,
        "outcome": result.outcome or None,
        "utterances": utterances,
        "steps": steps,
        "expected": verdict.want or None,
        "ok": verdict.ok,
        **_recall_json(result),
    }


def _recall_json(result: FileResult) -> dict[str, Any]:
    """The call log's keys, only for a recorded call (``--database``; without it the JSON
    stays as it was): the call's id there, the caller's recent calls (null: recall off or a
    withheld number) and what the caller was asked again and answered."""
    if not result.call_id:
        return {}
    recall = {"asked": result.recalled, "answer": result.recall_answer}
    return {"call": result.call_id, "recent_calls": result.history, "recall": recall}


def junit_xml(results: Sequence[FileResult], verdicts: Sequence[Check]) -> str:
    """One testcase per file: a failure for a mismatch, an error for an unreadable file."""
    pairs = list(zip(results, verdicts, strict=True))
    failures = sum(1 for r, v in pairs if v.ok is False and r.error is None)
    errors = sum(1 for r in results if r.error is not None)
    suite = ET.Element(
        "testsuite",
        name="voicebot replay",
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        time=f"{sum(r.wall_s for r in results):.3f}",
    )
    for r, v in pairs:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="replay." + Path(r.file).parent.name.replace(".", "_"),
            name=r.file,
            time=f"{r.wall_s:.3f}",
        )
        if r.error is not None:
            ET.SubElement(case, "error", message=r.error)
        elif v.ok is False:
            ET.SubElement(case, "failure", message=f"expected {v.want}, got {v.got}")
        out = ET.SubElement(case, "system-out")
        out.text = format_result(r, v)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, "unicode") + "\n"
