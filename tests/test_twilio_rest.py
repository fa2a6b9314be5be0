"""The REST wrapper against the local fake Twilio: what reaches Twilio, retries, and failures."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from voicebot.telephony.rest import TwilioCredentialsError, TwilioRest
from voicebot.telephony.testing.fake_rest import FakeTwilio, RequestKind, sms_segments

CALL = "CA" + "1" * 32
FROM = "+46766860000"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hi</Say></Response>'


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def rest(fake: FakeTwilio, sleeps: list[float]) -> TwilioRest:
    return TwilioRest(
        fake.account_sid,
        fake.auth_token,
        from_number=FROM,
        base_url=fake.url,
        max_attempts=3,
        backoff_s=0.1,
        sleep=sleeps.append,
    )


def test_redirect_reaches_twilio_with_the_twiml(fake: FakeTwilio, rest: TwilioRest) -> None:
    result = rest.update_call(CALL, TWIML)
    assert result.ok and result.sid == CALL and result.status == "in-progress"
    assert result.attempts == 1
    (update,) = fake.call_updates()
    assert update.call_sid == CALL and update.account_sid == fake.account_sid
    assert update.twiml == TWIML
    assert update.authorized


def test_too_long_twiml_is_refused_without_calling_twilio(
    fake: FakeTwilio, rest: TwilioRest
) -> None:
    result = rest.update_call(CALL, "<Response>" + "<Say>x</Say>" * 400 + "</Response>")
    assert not result.ok and result.attempts == 0 and "4000" in (result.error_message or "")
    assert fake.requests == []


def test_hang_up_completes_the_call_and_later_redirects_fail(
    fake: FakeTwilio, rest: TwilioRest
) -> None:
    assert rest.hang_up(CALL).status == "completed"
    assert fake.call_updates()[0].form["Status"] == "completed"
    late = rest.update_call(CALL, TWIML)
    assert not late.ok and late.error_code == 21220 and late.attempts == 1


def test_sms_is_sent_from_the_configured_number(fake: FakeTwilio, rest: TwilioRest) -> None:
    result = rest.send_sms("+46701234567", "Här är länken: https://help.example.com/a")
    assert result.ok and result.sid is not None and result.sid.startswith("SM")
    assert result.status == "queued"
    (message,) = fake.messages()
    assert message.to == "+46701234567"
    assert message.form["From"] == FROM
    assert message.body == "Här är länken: https://help.example.com/a"
    assert message.sid == result.sid


def test_sms_through_a_messaging_service(fake: FakeTwilio) -> None:
    rest = TwilioRest(
        fake.account_sid, fake.auth_token, messaging_service_sid="MG" + "2" * 32, base_url=fake.url
    )
    result = rest.send_sms("+46701234567", "x", status_callback="https://bot/sms-status")
    assert result.ok and result.status == "accepted"
    form = fake.messages()[0].form
    assert form["MessagingServiceSid"] == "MG" + "2" * 32 and "From" not in form
    assert form["StatusCallback"] == "https://bot/sms-status"


def test_sms_without_any_sender_is_a_configuration_error(fake: FakeTwilio) -> None:
    rest = TwilioRest(fake.account_sid, fake.auth_token, base_url=fake.url)
    with pytest.raises(TwilioCredentialsError, match="TWILIO_FROM_NUMBER"):
        rest.send_sms("+46701234567", "x")
    assert fake.requests == []


def test_server_errors_are_retried_with_growing_backoff_then_succeed(
    fake: FakeTwilio, rest: TwilioRest, sleeps: list[float]
) -> None:
    fake.fail_next(2, status=500)
    result = rest.update_call(CALL, TWIML)
    assert result.ok and result.attempts == 3
    assert sleeps == [0.1, 0.2]
    assert [r.status for r in fake.requests] == [500, 500, 200]
    assert len(fake.call_updates()) == 1


def test_an_sms_after_a_server_error_is_looked_for_before_it_is_sent_again(
    fake: FakeTwilio, rest: TwilioRest, sleeps: list[float]
) -> None:
    fake.fail_next(1, status=500)  # Twilio may or may not have created it: look first
    result = rest.send_sms("+46701234567", "hello")
    assert result.ok and result.attempts == 2 and not result.recovered
    assert [(r.method, r.status) for r in fake.requests] == [
        ("POST", 500),
        ("GET", 200),
        ("POST", 201),
    ]
    assert len(fake.messages()) == 1


def test_an_sms_answered_after_the_client_timeout_is_not_sent_again(
    fake: FakeTwilio, sleeps: list[float]
) -> None:
    rest = TwilioRest(
        fake.account_sid,
        fake.auth_token,
        from_number=FROM,
        base_url=fake.url,
        timeout_s=0.3,
        sleep=sleeps.append,
    )
    fake.answer_late(1, delay_s=1.5)  # created at once, answered after the client gave up
    result = rest.send_sms("+46701234567", "Your link: https://example.org/a")
    (message,) = fake.messages()  # the caller gets one text, not three
    assert result.ok and result.recovered and result.sid == message.sid
    assert result.attempts == 2 and len(sleeps) == 1
    assert [r.method for r in fake.requests] == ["POST", "GET"]
    listing = fake.requests[1]
    assert listing.query["To"] == "+46701234567" and listing.query["From"] == FROM


def test_an_earlier_text_with_another_body_is_not_taken_for_ours(
    fake: FakeTwilio, sleeps: list[float]
) -> None:
    rest = TwilioRest(
        fake.account_sid,
        fake.auth_token,
        from_number=FROM,
        base_url=fake.url,
        timeout_s=0.3,
        sleep=sleeps.append,
    )
    assert rest.send_sms("+46701234567", "an earlier answer").ok
    fake.fail_next(1, status=503)
    result = rest.send_sms("+46701234567", "this answer")
    assert result.ok and not result.recovered
    assert [m.body for m in fake.messages()] == ["an earlier answer", "this answer"]


def test_an_sms_whose_fate_cannot_be_checked_is_not_sent_blindly(fake: FakeTwilio) -> None:
    rest = TwilioRest(
        fake.account_sid,
        fake.auth_token,
        from_number=FROM,
        base_url=fake.url,
        timeout_s=0.3,
        sleep=lambda _s: fake.stop(),  # Twilio unreachable after the first attempt
    )
    fake.answer_late(1, delay_s=1.5)
    result = rest.send_sms("+46701234567", "hello")
    assert not result.ok and result.transient and result.attempts == 3
    assert "could not check whether it was sent" in (result.error_message or "")
    assert len(fake.messages()) == 1


def test_the_fake_lists_messages_newest_first_filtered_like_twilio(
    fake: FakeTwilio, rest: TwilioRest
) -> None:
    for to, body in [("+46701234567", "one"), ("+46739876543", "other"), ("+46701234567", "two")]:
        assert rest.send_sms(to, body).ok
    base = f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    query = urllib.parse.urlencode({"To": "+46701234567", "From": FROM, "PageSize": 20})
    status, body = _get(f"{base}?{query}", fake.account_sid, fake.auth_token)
    assert status == 200
    listed = body["messages"]
    assert isinstance(listed, list)
    assert [m["body"] for m in listed] == ["two", "one"]
    assert body["next_page_uri"] is None and body["page_size"] == 20
    assert _get(base, fake.account_sid, "wrong")[0] == 401


def test_rate_limiting_is_retried(fake: FakeTwilio, rest: TwilioRest) -> None:
    fake.fail_next(1, status=429)
    result = rest.update_call(CALL, TWIML)
    assert result.ok and result.attempts == 2


def test_gives_up_after_max_attempts_with_a_clear_failure(
    fake: FakeTwilio, rest: TwilioRest, sleeps: list[float]
) -> None:
    fake.fail_next(10, status=503)
    result = rest.update_call(CALL, TWIML)
    assert not result.ok and result.transient
    assert result.attempts == 3 and len(fake.requests) == 3 and len(sleeps) == 2
    assert result.http_status == 503 and result.error_code == 20500
    assert "failed after 3 attempt(s): HTTP 503 code 20500" in str(result)


def test_backoff_is_capped(fake: FakeTwilio, sleeps: list[float]) -> None:
    rest = TwilioRest(
        fake.account_sid,
        fake.auth_token,
        base_url=fake.url,
        max_attempts=5,
        backoff_s=1.0,
        max_backoff_s=3.0,
        sleep=sleeps.append,
    )
    fake.fail_next(10)
    assert not rest.hang_up(CALL).ok
    assert sleeps == [1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("code", [21211, 21614, 21610])
def test_refused_numbers_are_not_retried(
    fake: FakeTwilio, rest: TwilioRest, sleeps: list[float], code: int
) -> None:
    fake.reject_number("+46812345678", code)
    result = rest.send_sms("+46812345678", "x")
    assert not result.ok and not result.transient
    assert result.http_status == 400 and result.error_code == code
    assert result.attempts == 1 and sleeps == [] and len(fake.requests) == 1
    assert result.error_message


def test_malformed_number_gets_twilios_invalid_number_error(rest: TwilioRest) -> None:
    result = rest.send_sms("070-123", "x")
    assert result.error_code == 21211 and "070-123" in (result.error_message or "")


def test_wrong_credentials_fail_once_with_20003(fake: FakeTwilio, sleeps: list[float]) -> None:
    rest = TwilioRest(
        fake.account_sid, "wrong-token", from_number=FROM, base_url=fake.url, sleep=sleeps.append
    )
    result = rest.send_sms("+46701234567", "x")
    assert not result.ok and result.http_status == 401 and result.error_code == 20003
    assert result.attempts == 1 and sleeps == []
    assert fake.messages() == [] and not fake.requests[0].authorized


def test_network_errors_are_retried_then_reported(sleeps: list[float]) -> None:
    with FakeTwilio() as gone:
        url = gone.url
    rest = TwilioRest("AC1", "t", from_number=FROM, base_url=url, sleep=sleeps.append)
    result = rest.send_sms("+46701234567", "x")
    assert not result.ok and result.transient and result.attempts == 3
    assert result.http_status is None and "network error" in (result.error_message or "")


def test_from_env_reads_credentials_and_sender(fake: FakeTwilio) -> None:
    env = {
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_FROM_NUMBER": FROM,
        "TWILIO_API_BASE_URL": fake.url,
    }
    assert TwilioRest.from_env(env).send_sms("+46701234567", "x").ok
    assert fake.messages()[0].form["From"] == FROM
    with pytest.raises(TwilioCredentialsError, match="TWILIO_AUTH_TOKEN"):
        TwilioRest.from_env({"TWILIO_ACCOUNT_SID": "AC1"})


# --- the fake itself, as other clients (curl, the server's tests) see it ---


def _post(
    url: str, form: dict[str, str], user: str, password: str
) -> tuple[int, dict[str, object]]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": f"Basic {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _get(url: str, user: str, password: str) -> tuple[int, dict[str, object]]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_fake_checks_the_account_in_the_path_and_required_fields(fake: FakeTwilio) -> None:
    base = f"{fake.url}/2010-04-01/Accounts"
    ok = (fake.account_sid, fake.auth_token)
    status, body = _post(f"{base}/ACother/Messages.json", {"To": "+1"}, *ok)
    assert (status, body["code"]) == (401, 20003)
    messages = f"{base}/{fake.account_sid}/Messages.json"
    assert _post(messages, {"From": FROM, "Body": "x"}, *ok)[1]["code"] == 21604
    assert _post(messages, {"To": "+46701234567", "Body": "x"}, *ok)[1]["code"] == 21603
    assert _post(messages, {"To": "+46701234567", "From": FROM}, *ok)[1]["code"] == 21602
    too_long = {"To": "+46701234567", "From": FROM, "Body": "x" * 1601}
    assert _post(messages, too_long, *ok)[1]["code"] == 21617
    both = {"Twiml": "<Response/>", "Url": "https://x"}
    assert _post(f"{base}/{fake.account_sid}/Calls/{CALL}.json", both, *ok)[0] == 400
    assert _post(f"{base}/{fake.account_sid}/Queues.json", {}, *ok)[1]["code"] == 20404
    assert all(r.kind is not RequestKind.MESSAGE or r.status >= 400 for r in fake.requests)
    assert fake.messages() == []


def test_fake_counts_sms_segments_like_twilio() -> None:
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2
    assert sms_segments("Å" * 160) == 1  # Å Ä Ö are in GSM-7
    assert sms_segments("€" * 80) == 1  # extension characters count double
    assert sms_segments("ł" * 70) == 1  # outside GSM-7: UCS-2, 70 per segment
    assert sms_segments("ł" * 71) == 2


def test_fake_cli_prints_its_url_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "voicebot.telephony.testing.fake_rest", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = first.split(" on ", 1)[1].strip()
        status, body = _post(f"{url}/2010-04-01/Accounts/AC1/Messages.json", {}, "AC1", "x")
        assert (status, body["code"]) == (401, 20003)
    finally:
        process.terminate()
        process.wait(timeout=5)
