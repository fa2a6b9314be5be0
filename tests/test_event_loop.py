"""``serve``'s event loop with ``--coalesce-ms`` (issue #20): socket input is taken up in fewer
passes of the loop (CPU left to the decoder), while a hand-over from another thread (the
decoder's actions: what the caller hears next) is run at once, not after the wait."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from voicebot.cli.main import main
from voicebot.telephony.event_loop import serve_loop_factory


def _reads(coalesce_s: float, messages: int = 40, gap_s: float = 0.005) -> tuple[int, int]:
    """Passes in which the loop took up a socket's input, and bytes taken, while another thread
    writes ``messages`` small messages ``gap_s`` apart (media frames arrive like that)."""
    loop = serve_loop_factory(coalesce_s)()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    reads, received = 0, 0
    done = loop.create_future()

    def readable() -> None:
        nonlocal reads, received
        reads += 1
        received += len(ours.recv(65536))
        if received >= messages * 10 and not done.done():
            done.set_result(None)

    def write() -> None:
        for _ in range(messages):
            theirs.send(b"0123456789")
            time.sleep(gap_s)

    loop.add_reader(ours.fileno(), readable)
    writer = threading.Thread(target=write)
    try:
        writer.start()
        loop.run_until_complete(asyncio.wait_for(done, 10))
    finally:
        writer.join()
        loop.remove_reader(ours.fileno())
        loop.close()
        ours.close()
        theirs.close()
    return reads, received


def test_socket_input_is_taken_up_in_fewer_passes() -> None:
    plain, plain_bytes = _reads(0.0)
    coalesced, coalesced_bytes = _reads(0.05)
    assert plain_bytes == coalesced_bytes == 400  # nothing lost or held back
    # 40 messages over about 200 ms: a pass each on asyncio's own loop, a pass per 50 ms here
    assert coalesced <= 12
    assert plain >= 2 * coalesced


def test_a_hand_over_from_another_thread_does_not_wait_for_the_coalescing() -> None:
    """With a 2 s coalescing wait, the decoder thread's actions still run at once."""
    loop = serve_loop_factory(2.0)()

    async def hand_over() -> float:
        done: asyncio.Future[float] = loop.create_future()

        def decoder() -> None:
            time.sleep(0.3)  # the loop is waiting before its next poll by now
            loop.call_soon_threadsafe(done.set_result, time.monotonic())

        threading.Thread(target=decoder).start()
        handed_over = await done
        return time.monotonic() - handed_over

    try:
        waited = loop.run_until_complete(hand_over())
    finally:
        loop.close()
    assert waited < 1.0


@pytest.mark.parametrize("value", ["-1", "80"])
def test_serve_refuses_a_coalescing_wait_out_of_range(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--dev", "--coalesce-ms", value]) == 2
    err = capsys.readouterr().err
    assert "--coalesce-ms" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
