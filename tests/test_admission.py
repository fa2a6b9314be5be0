"""Mid-call hand-overs (issue #21): as many calls as the decoder is short of, not one a time.

The calls share one decoding pool, so their lags grow together; these tests drive the real
``Admission`` with its own clock the way the server does (each call reports its lag with every
100 ms chunk of caller audio) and count the callers put through to a person.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicebot.telephony.admission import SHED_INTERVAL_S, Admission

CHUNK_S = 0.1  # each call reports its lag once per chunk of caller audio


@dataclass
class Call:
    done: bool = False


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(calls: int, lag_at: float, growth: float, seconds: float) -> list[tuple[float, str]]:
    """``calls`` calls whose lag is ``lag_at`` at t=0 and grows ``growth`` s per second, for
    ``seconds``; a call handed over stops reporting (the server decided it). Returns (when,
    which) for every hand-over."""
    sessions = {f"CA{i}": Call() for i in range(calls)}
    clock = Clock()
    admission = Admission(sessions, max_calls=None, max_backlog_s=1.0, clock=clock)
    handed: list[tuple[float, str]] = []
    for tick in range(round(seconds / CHUNK_S)):
        clock.now = tick * CHUNK_S
        for sid, call in sessions.items():
            if not call.done and admission.behind(sid, lag_at + growth * clock.now):
                call.done = True
                handed.append((clock.now, sid))
    return handed


def test_a_pool_falling_far_behind_hands_over_its_excess_in_one_round() -> None:
    # 20 calls, lags growing 0.5 s per second: the pool decodes 10 calls in real time.
    handed = run(20, lag_at=0.0, growth=0.5, seconds=2.1 + SHED_INTERVAL_S / 2)
    first = [t for t, _ in handed if t < handed[0][0] + SHED_INTERVAL_S]
    assert 10 <= len(first) <= 14, handed  # the excess (10) and a little to catch up, not all
    assert len(handed) < 20


def test_a_pool_just_over_its_capacity_hands_over_few() -> None:
    # 20 calls, lags growing 0.05 s per second: one call too many.
    handed = run(20, lag_at=0.5, growth=0.05, seconds=10.5)
    first = [t for t, _ in handed if t < handed[0][0] + SHED_INTERVAL_S]
    assert 1 <= len(first) <= 3, handed


def test_a_steady_lag_just_over_the_limit_hands_over_one_call_a_round() -> None:
    handed = run(10, lag_at=1.05, growth=0.0, seconds=1.0)
    assert [t for t, _ in handed] == [0.0, 0.5], handed


def test_a_falling_lag_hands_over_one_call_a_round_once_its_fall_is_seen() -> None:
    # Lags of 1.5 s falling 0.2 s per second: the pool catches up by itself, if slowly.
    handed = run(10, lag_at=1.5, growth=-0.2, seconds=1.5)
    later = [t for t, _ in handed if t >= SHED_INTERVAL_S]
    assert later == [0.5, 1.0], handed


def test_a_lag_under_the_limit_hands_over_nobody() -> None:
    assert run(20, lag_at=0.0, growth=0.3, seconds=3.3) == []  # 0.99 s at the end
