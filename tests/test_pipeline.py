"""The call pipeline with the real Korean model: synthetic telephone calls (audio_fixtures/ko-KR)
must reach the decision a caller would get on the phone."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from voicebot.core.actions import Action, Listen, Say, SendSms, Transfer
from voicebot.core.config import LanguageConfig
from voicebot.core.events import CallStarted, Utterance
from voicebot.core.match import Match
from voicebot.loading.loader import load_language
from voicebot.speech.audio import read_wav, ulaw_decode, ulaw_encode
from voicebot.speech.pipeline import AudioQueue, CallPipeline, SpeechKit, speech_kit
from voicebot.speech.vosk_model import SpeechModel

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "audio_fixtures" / "ko-KR"
AT = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)
CALLER = "+46701234567"
FRAME = 160  # 20 ms at 8 kHz


@pytest.fixture(scope="module")
def ko_config() -> LanguageConfig:
    return load_language(ROOT / "tests" / "data" / "ko-KR" / "intents.yaml")


@pytest.fixture(scope="module")
def kit(ko_config: LanguageConfig, ko_model: SpeechModel) -> SpeechKit:
    return speech_kit(ko_config, ko_model)


def new_call(config: LanguageConfig, kit: SpeechKit) -> CallPipeline:
    return CallPipeline(config, kit, caller=CALLER, start_at=AT)


def play(call: CallPipeline, samples: np.ndarray, silence_s: float = 20.0) -> list[Action]:
    """Feed the caller's audio in 20 ms frames, then silence until the call is decided; SMS
    sends succeed."""
    actions: list[Action] = []

    def take(new: list[Action]) -> None:
        actions.extend(new)
        for a in new:
            if isinstance(a, SendSms):
                take(call.sms_result(True, "sent"))

    silence = np.zeros(round(silence_s * 8000), np.int16)
    for chunk in (samples, silence):
        for i in range(0, len(chunk), FRAME):
            if call.ended:
                return actions
            take(call.feed(chunk[i : i + FRAME]))
    return actions


def fixture(name: str) -> np.ndarray:
    audio = read_wav(FIXTURES / f"{name}.wav")
    assert audio.rate == 8000
    return audio.samples


def transfers(actions: Sequence[Action]) -> list[Transfer]:
    return [a for a in actions if isinstance(a, Transfer)]


def says(actions: Sequence[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


def test_a_spoken_request_is_transferred_to_its_group(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    call = new_call(ko_config, kit)
    greeting = call.start()
    assert isinstance(greeting[-1], Listen)
    actions = play(call, fixture("billing"))
    [transfer] = transfers(actions)
    assert transfer.group == "billing"
    assert transfer.context.reason == "intent" and transfer.context.intent == "billing"
    heard = [s.heard for s in call.steps if s.heard is not None]
    assert heard and heard[0].match is not None and heard[0].match.intent == "billing"
    assert 0.0 < heard[0].start_s < heard[0].end_s < read_wav(FIXTURES / "billing.wav").duration_s
    # each step keeps the event the dialogue handled, for the call log
    assert isinstance(call.steps[0].handled, CallStarted) and call.steps[0].handled.at == AT
    spoken = next(s.handled for s in call.steps if s.heard is not None)
    assert isinstance(spoken, Utterance) and spoken.alternatives == heard[0].alternatives


@pytest.mark.parametrize(("name", "intent"), [("password", "password"), ("course", "course")])
def test_sms_intents_text_the_caller(
    ko_config: LanguageConfig, kit: SpeechKit, name: str, intent: str
) -> None:
    call = new_call(ko_config, kit)
    call.start()
    actions = play(call, fixture(name))
    sms = [a for a in actions if isinstance(a, SendSms)]
    assert [s.intent for s in sms] == [intent]
    assert sms[0].to == CALLER and ko_config.intents[intent].action.link in sms[0].body
    assert call.dialogue.outcome is not None and call.dialogue.outcome.served == (intent,)


def test_an_announcement_is_read_then_the_call_ends_politely(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    call = new_call(ko_config, kit)
    call.start()
    actions = play(call, fixture("hours"))
    assert ko_config.intents["hours"].action.text in says(actions)
    assert not transfers(actions)
    assert ko_config.prompts.goodbye in says(actions)


def test_silence_gets_a_reprompt_then_the_default_group(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    call = new_call(ko_config, kit)
    call.start()
    actions = play(call, fixture("silence"))
    assert says(actions)[0] == ko_config.prompts.reprompt
    [transfer] = transfers(actions)
    assert transfer.group == ko_config.default_group
    assert transfer.context.reason == "no_speech"
    times = [s.time_s for s in call.steps if s.event == "no_speech"]
    assert times == pytest.approx([5.0, 10.0], abs=0.15)  # simulated time, not wall time


def test_a_request_after_a_silent_first_turn_is_still_routed(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    call = new_call(ko_config, kit)
    call.start()
    actions = play(call, fixture("two_turns"))
    assert says(actions)[0] == ko_config.prompts.reprompt
    [transfer] = transfers(actions)
    assert (transfer.group, transfer.context.reason) == ("billing", "intent")


def test_asking_for_an_agent_transfers_at_once(ko_config: LanguageConfig, kit: SpeechKit) -> None:
    call = new_call(ko_config, kit)
    call.start()
    [transfer] = transfers(play(call, fixture("agent")))
    assert (transfer.group, transfer.context.reason) == ("general", "escape")


def test_pressing_zero_transfers(ko_config: LanguageConfig, kit: SpeechKit) -> None:
    call = new_call(ko_config, kit)
    call.start()
    call.feed(np.zeros(8000, np.int16))
    [transfer] = transfers(call.dtmf("0"))
    assert transfer.context.reason == "dtmf"
    assert call.ended and call.feed(fixture("billing")) == []


def test_a_failing_matcher_still_puts_the_caller_through(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    def broken(alternatives: Sequence[tuple[str, float]]) -> Match:
        raise RuntimeError("matcher crashed")

    call = new_call(ko_config, dataclasses.replace(kit, classify=broken))
    call.start()
    actions = play(call, fixture("billing"))
    [transfer] = transfers(actions)
    assert (transfer.group, transfer.context.reason) == ("general", "error")
    assert ko_config.prompts.error in says(actions)


def test_a_failing_recogniser_still_puts_the_caller_through(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    call = new_call(ko_config, kit)
    call.start()
    call.feed(np.zeros(1600, np.int16))
    call.recognizer.flush()  # a finished recogniser refuses audio: any decoder failure
    [transfer] = transfers(call.feed(np.zeros(FRAME, np.int16)))
    assert transfer.context.reason == "error"


def test_speech_before_the_bot_asks_is_not_an_answer(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    call = new_call(ko_config, kit)
    assert call.feed(np.concatenate([fixture("billing"), np.zeros(8000, np.int16)])) == []
    call.start()
    actions = play(call, np.zeros(0, np.int16), silence_s=12.0)
    assert [t.context.reason for t in transfers(actions)] == ["no_speech"]


def test_telephone_audio_at_another_rate_is_resampled(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    audio = read_wav(FIXTURES / "billing.wav").resampled(16000)
    call = CallPipeline(ko_config, kit, caller=CALLER, start_at=AT, call_rate=16000)
    call.start()
    actions: list[Action] = []
    samples = np.concatenate([audio.samples, np.zeros(32000, np.int16)])
    for i in range(0, len(samples), 320):
        actions += call.feed(samples[i : i + 320])
    assert [t.group for t in transfers(actions)] == ["billing"]


def test_async_feeding_decides_like_feeding(ko_config: LanguageConfig, kit: SpeechKit) -> None:
    async def run() -> list[Action]:
        call = new_call(ko_config, kit)
        call.start()
        samples = np.concatenate([fixture("billing"), np.zeros(16000, np.int16)])
        out: list[Action] = []
        for i in range(0, len(samples), FRAME):
            out += await call.feed_async(samples[i : i + FRAME])
        return out

    assert [t.group for t in transfers(asyncio.run(run()))] == ["billing"]


def test_a_calls_recogniser_is_made_by_the_thread_that_decodes_it(
    ko_config: LanguageConfig, kit: SpeechKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server builds a call's pipeline on its event loop, once in the webhook (for the
    first words) and once when the stream comes: Vosk's recogniser, with its grammar graph,
    must be built by the decoding thread when audio comes, not there, and not for a pipeline
    that never hears a sound."""
    import vosk

    real = vosk.KaldiRecognizer
    made_in: list[str] = []

    def recording(*args: object) -> object:
        made_in.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(vosk, "KaldiRecognizer", recording)
    webhooks = new_call(ko_config, kit)
    assert webhooks.start()  # the greeting, decided on the loop with no recogniser
    call = new_call(ko_config, kit)
    call.start()
    assert made_in == []
    samples = np.concatenate([fixture("billing"), silence(2.0)])
    with ThreadPoolExecutor(1, thread_name_prefix="decoder") as pool:
        actions = pool.submit(feed, call, samples).result()
    assert [t.group for t in transfers(actions)] == ["billing"]
    assert len(made_in) == 1 and made_in[0].startswith("decoder")


def feed(call: CallPipeline, samples: np.ndarray) -> list[Action]:
    actions: list[Action] = []
    for i in range(0, len(samples), FRAME):
        actions += call.feed(samples[i : i + FRAME])
    return actions


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * 8000), np.int16)


def test_the_caller_is_not_timed_out_while_a_long_prompt_plays(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    """The phone case: the silence timeout starts when the prompt has played, not before."""
    call = CallPipeline(ko_config, kit, caller=CALLER, start_at=AT, wait_for_prompts=True)
    call.start()
    assert call.awaiting_prompt_end
    assert feed(call, silence(7.0)) == []  # the greeting plays: longer than the 5 s timeout
    call.arm_no_speech()
    armed = call.time_s
    assert not call.awaiting_prompt_end
    actions = feed(call, np.concatenate([silence(3.0), fixture("billing"), silence(2.0)]))
    assert "no_speech" not in [s.event for s in call.steps]
    [transfer] = transfers(actions)
    assert (transfer.group, transfer.context.reason) == ("billing", "intent")
    [heard] = [s.heard for s in call.steps if s.heard is not None]
    assert heard.start_s > armed + 3.0


def test_after_an_answer_the_timeout_counts_from_the_end_of_the_next_prompt(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    call = CallPipeline(ko_config, kit, caller=CALLER, start_at=AT, wait_for_prompts=True)
    call.start()
    call.arm_no_speech()
    actions = feed(call, np.concatenate([fixture("hours"), silence(1.0)]))
    assert isinstance(actions[-1], Listen) and call.awaiting_prompt_end  # "anything else?"
    answered = call.steps[-1].time_s
    feed(call, silence(6.0))  # the announcement plays
    assert "no_speech" not in [s.event for s in call.steps]
    prompt_end = answered + 5.5  # the prompt ended while the audio was being fed
    call.arm_no_speech(prompt_end)
    actions = feed(call, silence(5.0))
    assert says(actions) == [ko_config.prompts.goodbye]  # silence after "anything else?"
    [timeout] = [s.time_s for s in call.steps if s.event == "no_speech"]
    assert timeout == pytest.approx(prompt_end + 5.0, abs=0.15)


def test_replay_starts_the_timeout_as_soon_as_the_bot_listens(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    call = new_call(ko_config, kit)
    call.start()
    assert not call.awaiting_prompt_end  # no prompt time to wait for
    feed(call, np.concatenate([fixture("hours"), silence(1.0)]))
    answered = call.steps[-1].time_s
    feed(call, silence(5.0))
    [timeout] = [s.time_s for s in call.steps if s.event == "no_speech"]
    assert timeout == pytest.approx(answered + 5.0, abs=0.15)


def _queued(call: CallPipeline, chunks: Sequence[np.ndarray | bytes]) -> list[Action]:
    """Feed ``chunks`` through an ``AudioQueue`` on its own decoding thread; the actions."""
    actions: list[Action] = []
    with ThreadPoolExecutor(1) as pool:
        queue = AudioQueue(call, lambda new, due: actions.extend(new), executor=pool)
        for chunk in chunks:
            queue.put(chunk, 0.0)
    return actions


def test_the_phone_lines_mulaw_queued_as_bytes_is_heard_as_its_pcm(
    ko_config: LanguageConfig, kit: SpeechKit
) -> None:
    """The server hands the caller's 100 ms of mu-law to the decoder as the bytes Twilio sent
    (issue #20: decoded into PCM in the decoding thread, not on the event loop): the call
    hears and decides exactly as from the decoded samples, at the same call time."""
    line = ulaw_encode(np.concatenate([fixture("billing"), np.zeros(16000, np.int16)]))
    chunks = [line[i : i + 800] for i in range(0, len(line), 800)]
    as_bytes, as_pcm = new_call(ko_config, kit), new_call(ko_config, kit)
    as_bytes.start()
    as_pcm.start()
    heard = _queued(as_bytes, chunks)
    assert [t.group for t in transfers(heard)] == ["billing"]
    assert heard == _queued(as_pcm, [ulaw_decode(c) for c in chunks])
    assert [s.time_s for s in as_bytes.steps] == [s.time_s for s in as_pcm.steps]
