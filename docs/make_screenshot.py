"""Make docs/dashboard.png, the dashboard screenshot in docs/deployment.md.

Fills a throwaway SQLite call log with two weeks of made-up calls on the example deployment (the
real dialogue, a scripted matcher, a fixed random seed), serves the dashboard on a local port and
photographs it with headless Chromium (``apt-get install chromium``). The throwaway server adds
the token as an ``Authorization`` header to every request, the way a script logs in, so the
one-shot ``chromium --screenshot`` needs no login form and no token in its URL.

    python docs/make_screenshot.py [--out docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from voicebot.calllog.log import CallLog
from voicebot.calllog.scripted import log_text_call
from voicebot.core.match import Match, Scored, Verdict
from voicebot.core.text import normalize
from voicebot.dashboard.app import dashboard_app
from voicebot.loading.loader import load_deployment
from voicebot.telephony.testing.serving import serving

TOKEN = "screenshot-token-not-a-secret"
FIRST_DAY = dt.date(2026, 11, 9)
DAYS = 14
CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# What callers say (and what the scripted matcher makes of it); weights are how often.
ACCEPT = {
    "I forgot my password": "login_password",
    "my invoice is wrong": "invoice",
    "what are your opening hours": "opening_hours",
    "I want to book a course": "course_booking",
    "I have moved": "change_address",
    "I want to cancel my membership": "cancel_membership",
    "where is my tax statement": "tax_statement",
}
UNMATCHED = {
    "where is my parcel": 6,
    "can I bring my dog to the course": 3,
    "do you sell gift cards": 2,
    "is the office wheelchair accessible": 1,
}
CLARIFY = "something about money"


def classify(alternatives: Sequence[tuple[str, float]]) -> Match:
    text = alternatives[0][0]
    by_norm = {normalize(k): v for k, v in ACCEPT.items()}
    if normalize(text) in by_norm:
        return Match(text, (Scored(by_norm[normalize(text)], 0.9),), Verdict.ACCEPT)
    if normalize(text) == CLARIFY:
        pair = (Scored("invoice", 0.45), Scored("payment_problem", 0.41))
        return Match(text, pair, Verdict.CLARIFY)
    return Match(text, (Scored("join", 0.1),), Verdict.REJECT)


def script(rng: random.Random) -> list[str]:
    """One caller's lines: mostly a known request, sometimes not understood or unsure."""
    roll = rng.random()
    if roll < 0.62:
        return [rng.choice(list(ACCEPT)), "/hangup"]
    if roll < 0.72:
        return [CLARIFY, "the invoice", "/hangup"]
    lost = rng.choices(list(UNMATCHED), weights=list(UNMATCHED.values()))[0]
    return [lost, "/hangup"] if rng.random() < 0.4 else [lost, lost]


def fill(log: CallLog, seed: int = 7) -> None:
    rng = random.Random(seed)
    config = load_deployment(None).language("en-US")
    n = 0
    for d in range(DAYS):
        day = FIRST_DAY + dt.timedelta(days=d)
        weekend = day.weekday() >= 5
        for _ in range(rng.randint(3, 6) if weekend else rng.randint(12, 22)):
            n += 1
            start = dt.datetime.combine(day, dt.time(7), dt.UTC) + dt.timedelta(
                minutes=rng.randint(0, 9 * 60)
            )
            call_id = f"CA{n:07d}"
            caller = f"+4670{call_id[-7:]:0>7}"
            log_text_call(log, config, classify, call_id, caller, start, script(rng), turn_s=6)
    log.flush()


def with_token(app: ASGIApp, token: str) -> ASGIApp:
    """``app`` as seen by a client that sends ``Authorization: Bearer <token>``."""

    async def authorised(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
            headers.append((b"authorization", f"Bearer {token}".encode()))
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return authorised


def serve(app: ASGIApp) -> AbstractContextManager[str]:
    return serving(app, log_level="warning")


def find_chromium() -> str | None:
    return next((path for name in CHROMIUMS if (path := shutil.which(name))), None)


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with its own profile; ``args`` end with the URL."""
    return subprocess.run(
        [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1280,1600",
            "--virtual-time-budget=5000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "dashboard.png")
    args = parser.parse_args(argv)
    binary = find_chromium()
    if binary is None:
        print("no chromium found: apt-get install chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        log = CallLog.open(f"sqlite:///{tmp}/calls.sqlite3", salt="screenshot")
        try:
            fill(log)
            dashboard = dashboard_app(log, lambda: load_deployment(None), token=TOKEN)
            app = Starlette(routes=[Mount("/dashboard", app=dashboard)])
            last = FIRST_DAY + dt.timedelta(days=DAYS - 1)
            with serve(with_token(app, TOKEN)) as base:
                url = f"{base}/dashboard/?since={FIRST_DAY}&until={last}"
                out = args.out.resolve()
                result = chromium(binary, Path(tmp) / "profile", f"--screenshot={out}", url)
        finally:
            log.close()
    if result.returncode != 0 or not out.is_file():
        print(f"chromium failed ({result.returncode}):\n{result.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
