"""The ops dashboard over HTTP: login, the JSON behind each chart and table, snippets that load.

A real SQLite call log is filled by running the real dialogue on a handful of calls (a fake
matcher decides what each sentence means), and the dashboard is mounted at ``/dashboard`` the way
``voicebot serve`` mounts it.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import logging
import re
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from starlette.applications import Starlette
from starlette.routing import Mount

from voicebot.calllog import report
from voicebot.calllog.log import CallLog, StoreNumbers
from voicebot.calllog.scripted import log_text_call
from voicebot.core.config import Deployment
from voicebot.core.match import Match, Scored, Verdict
from voicebot.core.text import normalize
from voicebot.dashboard.app import COOKIE, FREE_FAILURES, SESSION_S, dashboard_app
from voicebot.dashboard.data import Snippet, snippet
from voicebot.loading.loader import load_deployment, load_language, load_language_text
from voicebot.telephony.access_log import server_config
from voicebot.telephony.testing.serving import serving

TOKEN = "test-dashboard-token-0123456789"
ALICE = "+46701234567"
BOB = "+46739876543"
DAY1 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)  # a Monday: every group open
DAY2 = DAY1 + dt.timedelta(days=1)
DAY3 = DAY1 + dt.timedelta(days=2)
RANGE = {"since": "2026-11-23", "until": "2026-11-25"}
SCRIPT = "<script>alert(1)</script>"

ANSWERS: dict[str, tuple[Verdict, tuple[Scored, ...]]] = {
    "i forgot my password": (Verdict.ACCEPT, (Scored("login_password", 0.91),)),
    "my invoice is wrong": (Verdict.ACCEPT, (Scored("invoice", 0.88),)),
    "what are your opening hours": (Verdict.ACCEPT, (Scored("opening_hours", 0.9),)),
    "something about money": (
        Verdict.CLARIFY,
        (Scored("invoice", 0.45), Scored("insurance", 0.41)),
    ),
}

# (call id, start, caller, language, what the caller says; "/hangup" hangs up)
CALLS: list[tuple[str, dt.datetime, str | None, str, list[str]]] = [
    ("A", DAY1, ALICE, "en-US", ["I forgot my password", "/hangup"]),  # SMS link: solved
    ("B", DAY1 + dt.timedelta(hours=1), BOB, "en-US", ["my invoice is wrong"]),  # to billing
    ("C", DAY1 + dt.timedelta(hours=2), ALICE, "en-US", ["Where is my parcel?"] * 2),  # no match
    ("D", DAY2, BOB, "en-US", ["what are your opening hours", "/hangup"]),  # served, hung up
    ("E", DAY2 + dt.timedelta(hours=1), None, "en-US", ["where is my parcel", "/hangup"]),
    ("F", DAY2 + dt.timedelta(hours=2), ALICE, "en-US", ["can I bring my dog", "blue whale"]),
    ("G", DAY3, BOB, "en-US", [SCRIPT, "my invoice is wrong"]),
    ("H", DAY3 + dt.timedelta(hours=1), ALICE, "en-US", ["something about money", "/hangup"]),
    ("I", DAY3 + dt.timedelta(hours=2), BOB, "en-US", ["Can I bring my dog", "/hangup"]),
    ("S", DAY3 + dt.timedelta(hours=3), ALICE, "sv-SE", ["var är mitt paket", "/hangup"]),
]


def classify(alternatives: object) -> Match:
    text = next(iter(alternatives))[0]  # type: ignore[call-overload]
    verdict, ranked = ANSWERS.get(normalize(text), (Verdict.REJECT, (Scored("join", 0.1),)))
    return Match(text, ranked, verdict)


def fill(log: CallLog, deployment: Deployment) -> None:
    for call_id, start, caller, language, lines in CALLS:
        config = deployment.language(language)
        dialogue = log_text_call(log, config, classify, call_id, caller, start, lines)
        assert dialogue.outcome is not None
    # a call still running (or cut off by a crash): counted, never ended
    log.call_started("U", DAY3 + dt.timedelta(hours=4), "en-US", BOB)
    assert log.flush()


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return load_deployment(None)


@pytest.fixture(scope="module")
def call_log(tmp_path_factory: pytest.TempPathFactory, deployment: Deployment) -> Iterator[CallLog]:
    path = tmp_path_factory.mktemp("dashboard") / "calls.sqlite3"
    # numbers in clear in the log: the dashboard must still show them masked only
    log = CallLog.open(f"sqlite:///{path}", salt="test-salt", store_numbers=StoreNumbers.CLEAR)
    fill(log, deployment)
    yield log
    log.close()


def mounted(log: CallLog, deployment: Deployment, token: str | None = TOKEN) -> Starlette:
    """The dashboard where ``voicebot serve`` puts it."""
    dashboard = dashboard_app(log, lambda: deployment, token=token)
    return Starlette(routes=[Mount("/dashboard", app=dashboard)])


def serve(
    app: Starlette, *, access_log: bool = False, trusted_proxies: tuple[str, ...] = ()
) -> AbstractContextManager[str]:
    """``app`` on a free local port in a thread, for real HTTP clients; yields its base URL.
    With ``access_log``, uvicorn logs requests as ``voicebot serve`` configures it."""
    level = "info" if access_log else "warning"
    config = server_config(
        app,
        host="127.0.0.1",
        port=0,
        log_level=level,
        lifespan="off",
        trusted_proxies=trusted_proxies,
    )
    return serving(config)


class AccessLines(logging.Handler):
    """Keeps the messages of uvicorn's access logger. ``with AccessLines() as lines`` puts the
    logger back as it was afterwards: a server started with ``log_level="info"`` leaves it at
    INFO with its own handler, which would make later servers in this process log every
    request (to a stream pytest has since closed). Attach it once the server has started:
    starting one reconfigures the logger's handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.logger = logging.getLogger("uvicorn.access")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def attach(self) -> None:
        self.logger.addHandler(self)

    def __enter__(self) -> AccessLines:
        log = self.logger
        self._saved = (log.level, list(log.handlers), list(log.filters), log.propagate)
        return self

    def __exit__(self, *_exc: object) -> None:
        log = self.logger
        log.setLevel(self._saved[0])
        log.handlers[:] = self._saved[1]
        log.filters[:] = self._saved[2]
        log.propagate = self._saved[3]


class Client:
    """A browser-like session (it keeps cookies) that does not follow redirects."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.base + path, allow_redirects=False, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base + path, allow_redirects=False, timeout=10, **kwargs)


@pytest.fixture(scope="module")
def server(call_log: CallLog, deployment: Deployment) -> Iterator[str]:
    with serve(mounted(call_log, deployment)) as base:
        yield base


@pytest.fixture
def client(server: str) -> Client:
    return Client(server)


@pytest.fixture
def logged_in(client: Client) -> Client:
    assert client.post("/dashboard/login", data={"token": TOKEN}).status_code == 303
    return client


API = ["api/summary", "api/calls", "api/calls/A", "api/unmatched", "api/snippet?intent=x&text=y"]


# ---------------------------------------------------------------------------------------------
# Access


def test_without_a_configured_token_the_dashboard_does_not_exist(
    call_log: CallLog, deployment: Deployment
) -> None:
    with serve(mounted(call_log, deployment, token=None)) as base:
        client = Client(base)
        for path in ["", "login", *API, f"?token={TOKEN}"]:
            assert client.get(f"/dashboard/{path}").status_code == 404, path
        assert client.post("/dashboard/login", data={"token": TOKEN}).status_code == 404


def test_a_short_token_is_refused(call_log: CallLog, deployment: Deployment) -> None:
    with pytest.raises(ValueError, match="at least 16"):
        dashboard_app(call_log, lambda: deployment, token="secret")


def test_nothing_is_served_before_logging_in(client: Client) -> None:
    page = client.get("/dashboard/")
    assert page.status_code == 401
    assert 'name="token"' in page.text  # the login form
    assert "chart-calls" not in page.text
    for path in API:
        response = client.get(f"/dashboard/{path}")
        assert response.status_code == 401, path
        assert "transcript" not in response.text
    wrong = client.get("/dashboard/api/summary", params={"token": "x" * 30})
    assert wrong.status_code == 401
    assert COOKIE not in wrong.headers.get("set-cookie", "")
    forged = client.get("/dashboard/api/summary", cookies={COOKIE: TOKEN})
    assert forged.status_code == 401  # the cookie is a session id, not the token


def test_the_login_form_sets_a_strict_http_only_cookie(client: Client) -> None:
    bad = client.post("/dashboard/login", data={"token": TOKEN + "x"})
    assert bad.status_code == 401
    assert "not right" in bad.text
    assert "set-cookie" not in bad.headers

    good = client.post("/dashboard/login", data={"token": TOKEN})
    assert good.status_code == 303
    assert good.headers["location"] == "/dashboard/"
    cookie = good.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert TOKEN not in cookie
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/dashboard/"):
        assert attribute.lower() in cookie.lower(), attribute

    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert "chart-calls" in page.text
    assert client.get("/dashboard/api/summary", params=RANGE).status_code == 200

    assert client.post("/dashboard/logout").status_code == 303
    assert client.get("/dashboard/api/summary").status_code == 401


def test_a_token_in_the_address_does_not_log_in(client: Client) -> None:
    """URLs end up in access logs, proxies and browser history: a token never travels in one."""
    response = client.get("/dashboard/", params={"token": TOKEN, **RANGE})
    assert response.status_code == 401 and 'name="token"' in response.text
    assert "set-cookie" not in response.headers
    assert client.get("/dashboard/api/summary", params={"token": TOKEN}).status_code == 401


def test_the_access_log_keeps_no_token_and_no_query_value(
    call_log: CallLog, deployment: Deployment
) -> None:
    with AccessLines() as access, serve(mounted(call_log, deployment), access_log=True) as base:
        access.attach()
        client = Client(base)
        client.get("/dashboard/", params={"token": TOKEN, "since": "2026-11-23"})
        client.get("/dashboard/api/calls", headers={"Authorization": f"Bearer {TOKEN}"})
    lines = access.lines
    assert any('"GET /dashboard/?token=...&since=... HTTP/1.1" 401' in line for line in lines)
    assert any("/dashboard/api/calls" in line for line in lines)
    assert not any(TOKEN in line or "2026-11-23" in line for line in lines), lines


class Clock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@contextmanager
def clocked(
    log: CallLog, deployment: Deployment, trusted_proxies: tuple[str, ...] = ()
) -> Iterator[tuple[Client, Clock]]:
    """A dashboard of its own (its own failure counts) on a clock the test moves, served
    as ``serve --trusted-proxy`` serves it."""
    clock = Clock()
    dashboard = dashboard_app(log, lambda: deployment, token=TOKEN, clock=clock)
    app = Starlette(routes=[Mount("/dashboard", app=dashboard)])
    with serve(app, trusted_proxies=trusted_proxies) as base:
        yield Client(base), clock


def test_each_login_gets_its_own_session_and_log_out_ends_it(server: str) -> None:
    first, second = Client(server), Client(server)
    for c in (first, second):
        assert c.post("/dashboard/login", data={"token": TOKEN}).status_code == 303
    one, two = (c.session.cookies[COOKIE] for c in (first, second))
    assert one != two and len(one) >= 32  # random, not derived from the token
    assert first.post("/dashboard/logout").status_code == 303
    replayed = Client(server).get("/dashboard/api/summary", cookies={COOKIE: one})
    assert replayed.status_code == 401  # the stolen or kept cookie is dead after logging out
    assert second.get("/dashboard/api/summary", params=RANGE).status_code == 200


def test_a_session_expires(call_log: CallLog, deployment: Deployment) -> None:
    with clocked(call_log, deployment) as (client, clock):
        login = client.post("/dashboard/login", data={"token": TOKEN})
        assert f"max-age={SESSION_S}" in login.headers["set-cookie"].lower()
        assert client.get("/dashboard/api/summary", params=RANGE).status_code == 200
        clock.now += SESSION_S + 1
        assert client.get("/dashboard/api/summary", params=RANGE).status_code == 401


def test_a_session_holds_on_every_instance_sharing_the_call_log(
    tmp_path: Path, deployment: Deployment
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    with (
        CallLog.open(url, salt="s") as log_a,
        CallLog.open(url, salt="s") as log_b,
        serve(mounted(log_a, deployment)) as a,
        serve(mounted(log_b, deployment)) as b,
    ):
        on_a = Client(a)
        assert on_a.post("/dashboard/login", data={"token": TOKEN}).status_code == 303
        cookie = {COOKIE: on_a.session.cookies[COOKIE]}
        on_b = Client(b)
        assert on_b.get("/dashboard/api/summary", cookies=cookie).status_code == 200
        on_b.session.cookies.set(COOKIE, cookie[COOKIE], path="/dashboard/")
        assert on_b.post("/dashboard/logout").status_code == 303
        assert on_a.get("/dashboard/api/summary").status_code == 401


def test_the_cookie_is_secure_unless_served_to_this_machine_over_http(client: Client) -> None:
    local = client.post("/dashboard/login", data={"token": TOKEN})
    assert "secure" not in local.headers["set-cookie"].lower()  # http://127.0.0.1 in tests
    public = Client(client.base).post(
        "/dashboard/login", data={"token": TOKEN}, headers={"Host": "dash.example.org"}
    )
    cookie = public.headers["set-cookie"].lower()
    for attribute in ("secure", "httponly", "samesite=strict"):
        assert attribute in cookie, attribute


def test_wrong_tokens_are_slowed_per_client_and_logged(
    call_log: CallLog, deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="voicebot.dashboard.app")
    wrong = {"Authorization": "Bearer wrong-token-wrong-token"}
    right = {"Authorization": f"Bearer {TOKEN}"}
    with clocked(call_log, deployment) as (client, clock):
        for _ in range(FREE_FAILURES):
            assert client.get("/dashboard/api/summary", headers=wrong).status_code == 401
        assert client.get("/dashboard/api/summary", headers=right).status_code == 200
        for _ in range(FREE_FAILURES + 1):  # the right token did reset the count
            assert client.get("/dashboard/api/summary", headers=wrong).status_code == 401
        locked = client.get("/dashboard/api/summary", headers=wrong)
        assert locked.status_code == 429  # backing off: wrong tokens are told to wait
        wait = int(locked.headers["retry-after"])
        assert wait >= 1
        form = client.post("/dashboard/login", data={"token": "wrong-token-wrong-token"})
        assert form.status_code == 429 and "Too many" in form.text
        clock.now += wait
        assert client.get("/dashboard/api/summary", headers=wrong).status_code == 401
    failures = [r for r in caplog.records if "failed dashboard login" in r.getMessage()]
    assert len(failures) == 2 * FREE_FAILURES + 2  # the ones refused while waiting are not
    assert "127.0.0.1" in failures[0].getMessage()
    assert TOKEN not in caplog.text and "wrong-token" not in caplog.text


WRONG = {"token": "wrong-token-wrong-token"}


def post_from(
    base: str, source: str, path: str, body: str, headers: dict[str, str]
) -> http.client.HTTPResponse:
    """A form post from the loopback address ``source`` (127.0.0.2 ...): a second machine."""
    url = urllib.parse.urlsplit(base)
    assert url.hostname is not None
    connection = http.client.HTTPConnection(
        url.hostname, url.port, timeout=10, source_address=(source, 0)
    )
    form = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    connection.request("POST", path, body=body.encode(), headers=form)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_the_right_token_logs_in_after_six_wrong_ones(
    call_log: CallLog, deployment: Deployment
) -> None:
    with clocked(call_log, deployment) as (client, _clock):
        statuses = [client.post("/dashboard/login", data=WRONG).status_code for _ in range(6)]
        assert statuses[-1] == 429  # the wrong ones back off ...
        login = client.post("/dashboard/login", data={"token": TOKEN})
        assert login.status_code == 303  # ... the right one is never locked out
        assert client.get("/dashboard/api/summary", params=RANGE).status_code == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert Client(client.base).get("/dashboard/api/summary", headers=bearer).status_code == 200


def test_rotating_x_forwarded_for_from_an_untrusted_client_does_not_reset_the_backoff(
    call_log: CallLog, deployment: Deployment
) -> None:
    for proxies in ((), ("10.0.0.10",)):  # no proxy configured, or one that is not this client
        with clocked(call_log, deployment, trusted_proxies=proxies) as (client, _clock):
            statuses = [
                client.post(
                    "/dashboard/login", data=WRONG, headers={"X-Forwarded-For": f"203.0.113.{i}"}
                ).status_code
                for i in range(FREE_FAILURES + 3)
            ]
        assert statuses[FREE_FAILURES + 1 :] == [429, 429], (proxies, statuses)


def test_a_forged_x_forwarded_for_cannot_lock_another_address_out(
    call_log: CallLog, deployment: Deployment
) -> None:
    with clocked(call_log, deployment) as (client, _clock):
        for _ in range(FREE_FAILURES + 3):  # 127.0.0.1 poses as 127.0.0.2
            client.post("/dashboard/login", data=WRONG, headers={"X-Forwarded-For": "127.0.0.2"})
        victim = post_from(client.base, "127.0.0.2", "/dashboard/login", "token=typo", {})
        assert victim.status == 401  # its own first mistake, not a lockout someone else made
        assert client.post("/dashboard/login", data=WRONG).status_code == 429


def test_behind_a_trusted_proxy_each_browser_backs_off_on_its_own(
    call_log: CallLog, deployment: Deployment
) -> None:
    """HAProxy's ``option forwardfor`` appends the browser's address to what it was sent."""
    with clocked(call_log, deployment, trusted_proxies=("127.0.0.1",)) as (proxy, _clock):
        a = {"X-Forwarded-For": "198.51.100.1"}
        forged = {"X-Forwarded-For": "198.51.100.2, 198.51.100.1"}  # a poses as b, in vain
        for _ in range(FREE_FAILURES + 1):
            assert proxy.post("/dashboard/login", data=WRONG, headers=forged).status_code == 401
        assert proxy.post("/dashboard/login", data=WRONG, headers=a).status_code == 429
        b = {"X-Forwarded-For": "198.51.100.2"}
        assert proxy.post("/dashboard/login", data=WRONG, headers=b).status_code == 401
        assert proxy.post("/dashboard/login", data={"token": TOKEN}, headers=b).status_code == 303


def test_a_cross_site_form_post_to_login_is_refused(
    call_log: CallLog, deployment: Deployment
) -> None:
    """A foreign page can post a text/plain form (no CORS preflight) or an urlencoded one;
    neither may count as a failure (locking the admin's address) nor log anyone in."""
    with clocked(call_log, deployment) as (client, _clock):
        text_plain = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
        for _ in range(FREE_FAILURES + 3):
            response = client.post(
                "/dashboard/login", data="token=wrong-token-wrong-token", headers=text_plain
            )
            assert response.status_code == 403
        cross = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        assert client.post("/dashboard/login", data=WRONG, headers=cross).status_code == 403
        older = {"Origin": "https://evil.example"}  # a browser without Sec-Fetch-Site
        assert client.post("/dashboard/login", data=WRONG, headers=older).status_code == 403
        as_text = {"Content-Type": "text/plain"}
        text = client.post("/dashboard/login", data=f"token={TOKEN}", headers=as_text)
        assert text.status_code == 403 and COOKIE not in text.headers.get("set-cookie", "")
        host = urllib.parse.urlsplit(client.base).netloc
        own = {"Origin": client.base, "Sec-Fetch-Site": "same-origin", "Host": host}
        assert client.post("/dashboard/login", data=WRONG, headers=own).status_code == 401
        assert (
            client.post("/dashboard/login", data={"token": TOKEN}, headers=own).status_code == 303
        )


def test_scripts_may_use_a_bearer_token(client: Client) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/dashboard/api/summary", headers=headers).status_code == 200
    headers = {"Authorization": "Bearer wrong-token-wrong-token"}
    assert client.get("/dashboard/api/summary", headers=headers).status_code == 401


# ---------------------------------------------------------------------------------------------
# The figures


def test_summary_figures_are_the_reports(logged_in: Client, call_log: CallLog) -> None:
    body = logged_in.get("/dashboard/api/summary", params=RANGE).json()
    rows = call_log.fetch()
    expected = report.to_json(
        report.summarize(rows.calls, rows.utterances),
        report.daily(
            rows.calls,
            tz="Europe/Stockholm",
            since=dt.date(2026, 11, 23),
            until=dt.date(2026, 11, 25),
        ),
    )
    assert {k: body[k] for k in expected} == json.loads(json.dumps(expected))
    # worked out from CALLS by hand
    assert (body["calls"], body["ended"]) == (11, 10)
    assert body["solved_by_robot"] == 2  # A by SMS, D by an announcement before hanging up
    assert body["transfers_by_group"] == {"billing": 2, "members": 2}
    assert [d["calls"] for d in body["daily"]] == [3, 3, 5]

    series = body["series"]
    assert [d["day"] for d in series] == ["2026-11-23", "2026-11-24", "2026-11-25"]
    day1, day2, day3 = series
    assert (day1["transferred"], day1["solved"], day1["hung_up"]) == (2, 1, 0)
    assert (day2["transferred"], day2["solved"], day2["hung_up"]) == (1, 1, 1)
    assert (day3["transferred"], day3["hung_up"], day3["unfinished"]) == (1, 3, 1)
    for d in series:
        parts = ("transferred", "solved", "hung_up", "other", "unfinished")
        assert sum(d[k] for k in parts) == d["calls"]
    # day 1: password, invoice (accepted), parcel twice (rejected)
    assert day1["no_match_rate"] == pytest.approx(2 / 4)
    assert day3["clarification_rate"] == pytest.approx(1 / 5)  # 5 judged utterances on day 3


def test_a_range_selects_the_days(logged_in: Client) -> None:
    body = logged_in.get("/dashboard/api/summary", params={"since": "2026-11-24"} | RANGE).json()
    one = logged_in.get(
        "/dashboard/api/summary", params={"since": "2026-11-24", "until": "2026-11-24"}
    ).json()
    assert body["calls"] == 11
    assert one["calls"] == 3
    assert [d["day"] for d in one["series"]] == ["2026-11-24"]
    bad = logged_in.get("/dashboard/api/summary", params={"since": "2026-11-25", "until": "x"})
    assert bad.status_code == 400
    backwards = {"since": "2026-11-25", "until": "2026-11-01"}
    assert logged_in.get("/dashboard/api/summary", params=backwards).status_code == 400


def test_recent_calls_newest_first_with_transcripts_and_decisions(
    logged_in: Client,
) -> None:
    response = logged_in.get("/dashboard/api/calls", params={"limit": 4, **RANGE})
    calls = response.json()["calls"]
    assert [c["call_id"] for c in calls] == ["U", "S", "I", "H"]
    hung_up = calls[2]
    assert [u["transcript"] for u in hung_up["utterances"]] == ["Can I bring my dog"]
    assert hung_up["utterances"][0]["verdict"] == "reject"
    assert (hung_up["outcome"], hung_up["after"]) == ("caller_hung_up", "no_match")
    every = logged_in.get("/dashboard/api/calls", params=RANGE).json()["calls"]
    invoice = next(c for c in every if c["call_id"] == "B")
    assert (invoice["outcome"], invoice["group"], invoice["intent"]) == (
        "transferred",
        "billing",
        "invoice",
    )
    assert invoice["decision_s"] == 5.0


def test_numbers_stored_in_clear_are_shown_masked_only(logged_in: Client) -> None:
    calls = logged_in.get("/dashboard/api/calls", params=RANGE)
    assert next(c for c in calls.json()["calls"] if c["call_id"] == "A")["caller"] == (
        "+46*****4567"
    )
    timeline = logged_in.get("/dashboard/api/calls/A")
    for text in (calls.text, timeline.text):
        for number in (ALICE, BOB, ALICE[1:], BOB[1:]):
            assert number not in text


def test_a_calls_timeline(logged_in: Client) -> None:
    body = logged_in.get("/dashboard/api/calls/A").json()
    types = [e["type"] for e in body["timeline"]]
    assert types[0] == "CallStarted"
    assert "SendSms" in types and "SmsResult" in types
    sms = next(e for e in body["timeline"] if e["type"] == "SendSms")
    assert sms["payload"]["to"] == "+46*****4567"
    assert logged_in.get("/dashboard/api/calls/nope").status_code == 404


# ---------------------------------------------------------------------------------------------
# Unmatched utterances and snippets


def test_unmatched_utterances_are_ranked_by_frequency(logged_in: Client) -> None:
    body = logged_in.get("/dashboard/api/unmatched", params=RANGE).json()
    ranked = [(u["language"], u["text"], u["count"]) for u in body["unmatched"]]
    assert ranked == [
        ("en-US", "where is my parcel", 3),
        ("en-US", "can i bring my dog", 2),
        ("en-US", "blue whale", 1),
        ("en-US", "script alert 1 script", 1),
        ("sv-SE", "var är mitt paket", 1),
    ]
    assert "invoice" in [i["name"] for i in body["intents"]["en-US"]]
    assert set(body["intents"]) == {"en-US", "sv-SE"}


@pytest.mark.parametrize(
    "text", ["where is my parcel", "what's this: a #hashtag, - and 'quotes'", "väntar på paket"]
)
def test_a_snippet_pasted_where_it_says_adds_the_phrase(
    logged_in: Client, deployment: Deployment, tmp_path: Path, text: str
) -> None:
    s = logged_in.get(
        "/dashboard/api/snippet", params={"intent": "invoice", "text": text, "language": "en-US"}
    ).json()
    invoice = deployment.language("en-US").intents["invoice"]
    assert (s["file"], s["line"]) == (invoice.origin.file, invoice.origin.line)
    assert s["insert_after"] == invoice.phrase_origins[-1].line
    assert yaml.safe_load(s["block"]) == {"invoice": {"phrases": [text]}}

    copy = tmp_path / "en-US"
    shutil.copytree(Path(s["file"]).parent, copy)
    target = copy / Path(s["file"]).name
    lines = target.read_text().splitlines(keepends=True)
    lines.insert(s["insert_after"], s["snippet"])
    target.write_text("".join(lines))
    loaded = load_language(copy)
    assert loaded.intents["invoice"].phrases == (*invoice.phrases, text)
    before = deployment.language("en-US").intents
    for name, intent in loaded.intents.items():
        if name != "invoice":
            assert intent.phrases == before[name].phrases, name


def test_a_snippet_for_a_phrase_that_exists_says_where(logged_in: Client) -> None:
    s = logged_in.get(
        "/dashboard/api/snippet", params={"intent": "invoice", "text": "My  invoice"}
    ).json()
    assert s["text"] == "My invoice"
    assert s["duplicate_of"] == "invoice"


def test_snippet_requests_that_cannot_be_a_phrase(logged_in: Client) -> None:
    for params in (
        {"intent": "no_such_intent", "text": "hello"},
        {"intent": "invoice", "text": "   "},
        {"intent": "invoice", "text": "x" * 201},
        {"intent": "invoice", "text": "hello", "language": "xx-XX"},
    ):
        response = logged_in.get("/dashboard/api/snippet", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]


# ---------------------------------------------------------------------------------------------
# Caller input is data, never markup


def test_a_transcript_with_markup_is_returned_as_data(logged_in: Client) -> None:
    response = logged_in.get("/dashboard/api/calls", params=RANGE)
    assert response.headers["content-type"] == "application/json"
    call = next(c for c in response.json()["calls"] if c["call_id"] == "G")
    assert call["utterances"][0]["transcript"] == SCRIPT
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_page_never_turns_data_into_markup(logged_in: Client) -> None:
    page = logged_in.get("/dashboard/")
    script = logged_in.get("/dashboard/dashboard.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|srcdoc"
    )
    for text in (page.text, script.text):
        assert not sinks.search(text), sinks.search(text)
    # the only script is the file, so the CSP can forbid inline code
    assert re.findall(r"<script[^>]*>", page.text) == [
        '<script src="/dashboard/dashboard.js" defer>'
    ]
    assert "textContent" in script.text


FLOW_AND_EXAMPLES = """\
language: en-US
timezone: Europe/Stockholm
default_group: members
groups:
  members:
    queue: members
intents:
  invoice:
    label: invoices
    transfer: members
    phrases: [my invoice, the bill]
  fees:
    transfer: members
    examples: [how much is the fee]
"""


def test_snippets_for_an_intent_without_phrases_and_for_a_flow_list() -> None:
    config = load_language_text(FLOW_AND_EXAMPLES, "x.yaml")
    fees = snippet(config, "fees", "what does it cost")
    assert (fees.file, fees.line, fees.insert_after) == ("x.yaml", 12, 12)
    lines = FLOW_AND_EXAMPLES.splitlines(keepends=True)
    lines.insert(fees.insert_after, fees.snippet)
    loaded = load_language_text("".join(lines), "x.yaml")
    assert loaded.intents["fees"].phrases == ("what does it cost",)
    assert loaded.intents["fees"].examples == ("how much is the fee",)

    flow = snippet(config, "invoice", "my bill")
    assert flow.insert_after is None  # no line to paste below: ops edit the list by hand
    assert yaml.safe_load(flow.block) == {"invoice": {"phrases": ["my bill"]}}
    assert flow.duplicate_of is None
    assert snippet(config, "invoice", "The bill!").duplicate_of == "invoice"


LAYOUT_HEAD = """\
language: en-US
default_group: members
groups:
  members:
    queue: members
intents:
  other:
    transfer: members
    phrases: [something else]
"""

# (name, how the intent "invoice" is written); each must take one more phrase, nothing else
LAYOUTS = {
    "folded last phrase": """\
  invoice:
    transfer: members
    phrases:
      - my invoice
      - >-
        the bill I got
        is wrong
    label: invoices
""",
    "plain phrase over two lines": """\
  invoice:
    phrases:
      - my invoice
      - the bill I got
        is wrong
    transfer: members
""",
    "quoted phrase over two lines, then a blank line and a comment": """\
  invoice:
    phrases:
      - "the bill I got
        is wrong"

      # more to come
    transfer: members
""",
    "list at the key's indentation": """\
  invoice:
    phrases:
    - my invoice
    - my bill  # the common one
    transfer: members
""",
    "flow list": """\
  invoice:
    phrases: [my invoice, "the bill, again"]
    transfer: members
""",
    "flow list over two lines": """\
  invoice:
    phrases: [my invoice,
      the bill]
    transfer: members
""",
    "empty flow list": """\
  invoice:
    phrases: []
    examples: [my invoice]
    transfer: members
""",
    "no phrases yet": """\
  invoice:
    examples:
      - my invoice
    transfer: members
""",
    "empty phrases key": """\
  invoice:
    phrases:
    examples: [my invoice]
    transfer: members
""",
    "flow mapping": """\
  invoice: {transfer: members, phrases: [my invoice]}
""",
    "merged from a mapping of its own": """\
  invoice:
    <<: {transfer: members, phrases: [my invoice]}
    label: invoices
""",
}


def pasted(text: str, s: Snippet) -> str:
    """``text`` after doing what the page says: a line pasted below ``insert_after``, or the
    snippet typed at ``insert_at``."""
    lines = text.splitlines(keepends=True)
    if s.insert_after is not None:
        lines.insert(s.insert_after, s.snippet)
    else:
        assert s.insert_at is not None
        line, column = s.insert_at
        lines[line - 1] = lines[line - 1][: column - 1] + s.snippet + lines[line - 1][column - 1 :]
    return "".join(lines)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("phrase", ["where is my parcel", "a: b, [c] - 'd' #e"])
def test_a_snippet_pasted_into_each_list_layout_adds_exactly_the_phrase(
    layout: str, phrase: str
) -> None:
    text = LAYOUT_HEAD + LAYOUTS[layout]
    before = load_language_text(text, "x.yaml")
    s = snippet(before, "invoice", phrase)
    after = load_language_text(pasted(text, s), "x.yaml")
    assert after.intents["invoice"].phrases == (*before.intents["invoice"].phrases, phrase)
    for name, intent in before.intents.items():
        assert after.intents[name].examples == intent.examples
        if name != "invoice":
            assert after.intents[name].phrases == intent.phrases


SHARED = (
    LAYOUT_HEAD
    + """\
  invoice:
    transfer: members
    phrases: &money [my invoice, my bill]
  payment:
    transfer: members
    phrases: *money
  fees: &base
    transfer: members
    phrases: [the fee]
  refund:
    <<: *base
    label: refunds
"""
)


@pytest.mark.parametrize("intent", ["invoice", "payment", "fees", "refund"])
def test_phrases_shared_by_an_alias_or_merge_get_no_paste_position(intent: str) -> None:
    """Typing into a list an alias repeats would add the phrase to other intents as well."""
    s = snippet(load_language_text(SHARED, "x.yaml"), intent, "where is my money")
    assert (s.insert_after, s.insert_at, s.snippet) == (None, None, "")
    assert yaml.safe_load(s.block) == {intent: {"phrases": ["where is my money"]}}


def test_the_figures_calls_and_unmatched_can_be_shown_for_one_language(
    logged_in: Client,
) -> None:
    """Each line answers in its own language: the Swedish line's figures on their own."""

    def get(path: str, language: str) -> Any:
        response = logged_in.get(f"/dashboard/api/{path}", params=RANGE | {"language": language})
        assert response.status_code == 200, response.text
        return response.json()

    swedish, english = get("summary", "sv-SE"), get("summary", "en-US")
    assert (swedish["calls"], english["calls"]) == (1, 10)
    assert swedish["language"] == "sv-SE" and swedish["languages"] == ["en-US", "sv-SE"]
    calls = get("calls", "sv-SE")["calls"]
    assert [c["call_id"] for c in calls] == ["S"]
    unmatched = get("unmatched", "sv-SE")
    assert "var är mitt paket" in json.dumps(unmatched, ensure_ascii=False)
    assert "parcel" not in json.dumps(unmatched)
    everything = logged_in.get("/dashboard/api/summary", params=RANGE).json()
    assert everything["calls"] == 11 and everything["language"] is None
    bad = logged_in.get("/dashboard/api/summary", params=RANGE | {"language": "xx-XX"})
    assert bad.status_code == 400 and "sv-SE" in bad.text
