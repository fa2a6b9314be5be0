"""The stream parameters that let any instance take a call's media stream: what the webhook
puts in the TwiML comes back intact, and nothing else is accepted."""

from __future__ import annotations

import datetime as dt

from test_e2e_twilio import CALLER, CONFIG, _serving

from voicebot.speech.recognizer import SpeechModel
from voicebot.telephony.app import SpeechProvider, VoiceServer
from voicebot.telephony.handoff import StreamParameters, health
from voicebot.telephony.testing.cluster import http_status
from voicebot.telephony.testing.simulator import _post
from voicebot.telephony.testing.twiml_reader import parse_twiml

SECRET = "auth-token"
CALL = StreamParameters(
    call_sid="CA" + "1" * 32,
    language="ko-KR",
    line="+82212340000",
    caller="+821012345678",
    started_at=dt.datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=dt.UTC),
    expires=dt.datetime(2026, 12, 1, 9, 31, 20, tzinfo=dt.UTC),
)


def test_parameters_come_back_as_they_were_sent() -> None:
    custom = CALL.encode(SECRET)
    assert all(isinstance(v, str) for v in custom.values())  # TwiML attributes are strings
    assert StreamParameters.read(CALL.call_sid, custom, SECRET) == CALL
    withheld = StreamParameters(CALL.call_sid, "ko-KR", "", None, CALL.started_at, 1, CALL.expires)
    assert StreamParameters.read(CALL.call_sid, withheld.encode(SECRET), SECRET) == withheld


def test_altered_or_foreign_parameters_are_refused() -> None:
    custom = CALL.encode(SECRET)
    for name, value in (
        ("language", "sv-SE"),
        ("caller", "+821099999999"),
        ("startedAt", "2026-12-01T09:00:00+00:00"),
        ("stream", "2"),
        ("expires", "2026-12-01T10:31:20+00:00"),  # a later expiry
        ("expires", ""),  # none
        ("token", ""),
    ):
        assert StreamParameters.read(CALL.call_sid, {**custom, name: value}, SECRET) is None, name
    assert StreamParameters.read("CA" + "2" * 32, custom, SECRET) is None  # another call
    assert StreamParameters.read(CALL.call_sid, custom, "another-token") is None
    assert StreamParameters.read(CALL.call_sid, {"callSid": CALL.call_sid}, SECRET) is None


def test_a_redirected_stream_is_told_apart_from_the_first() -> None:
    second = CALL.next_stream()
    read = StreamParameters.read(CALL.call_sid, second.encode(SECRET), SECRET)
    assert read is not None and read.stream == 2
    assert second.token(SECRET) != CALL.token(SECRET)


def test_health_says_not_ready_while_loading_and_draining() -> None:
    assert health(ready=False, draining=False, overloaded=None, calls=0)[0] == 503
    assert health(ready=True, draining=True, overloaded=None, calls=3) == (
        503,
        "draining 3 calls\n",
    )
    assert health(ready=True, draining=False, overloaded="lagging", calls=2)[0] == 503
    assert health(ready=True, draining=False, overloaded=None, calls=2) == (200, "ok 2 calls\n")


def test_a_webhook_before_the_models_are_loaded_reaches_a_person(ko_model: SpeechModel) -> None:
    """An instance still loading answers 503 on /healthz; a webhook that reaches it anyway gets
    valid TwiML: the default group's <Dial>, no stream to a bot that cannot listen yet."""

    def not_ready(server: VoiceServer) -> None:
        server.ready = False

    speech = SpeechProvider(lambda _config: ko_model)
    with _serving(CONFIG, speech, before_start=not_ready) as live:
        assert http_status(live.url + "/healthz") == 503
        params = {"CallSid": "CA" + "3" * 32, "From": CALLER, "To": "+82212340000"}
        status, body = _post(live.url + "/twilio/voice", params, live.fake.auth_token)
        assert status == 200
        twiml = parse_twiml(body)
        assert twiml.stream_url is None and twiml.final == "dial number:+82212345678"
        live.server.prepare()
        assert http_status(live.url + "/healthz") == 200
        report = live.call("billing.wav")
        assert report.decision == "transfer enqueue billing"
