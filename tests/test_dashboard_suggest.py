"""The dashboard's "Not understood" groups over HTTP, with the real sentence encoder: callers who
said the same thing in different words are one group with its count, examples and closest
intent; ``forget`` removes a caller from the groups too."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_dashboard import DAY1, RANGE, TOKEN, Client, classify, fill, mounted, serve
from test_suggest import CARD, PARCEL, PASSWORD

from voicebot.calllog.log import CallLog
from voicebot.calllog.scripted import log_text_call
from voicebot.core.config import Deployment
from voicebot.loading.loader import load_deployment


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return load_deployment(None)


def logged_in(base: str) -> Client:
    client = Client(base)
    assert client.post("/dashboard/login", data={"token": TOKEN}).status_code == 303
    return client


def test_the_dashboards_calls_make_one_group(tmp_path: Path, deployment: Deployment) -> None:
    log = CallLog.open(f"sqlite:///{tmp_path / 'calls.sqlite3'}", salt="test-salt")
    try:
        fill(log, deployment)
        with serve(mounted(log, deployment)) as base:
            # the groups are behind the login, like everything else
            assert Client(base).get("/dashboard/api/suggested").status_code == 401
            client = logged_in(base)
            body = client.get("/dashboard/api/suggested", params=RANGE).json()
            plain = client.get("/dashboard/api/unmatched", params=RANGE).json()
        with serve(mounted(log, deployment, token=None)) as base:
            assert Client(base).get("/dashboard/api/suggested").status_code == 404
    finally:
        log.close()
    # three callers said where is my parcel; the dog (2), the whale (1) and the Swedish
    # parcel (1) are too few callers to make a topic
    [group] = body["groups"]
    assert group["language"] == "en-US" and group["count"] == 3 and group["sentences"] == 1
    assert group["examples"] == ["where is my parcel"]
    assert group["nearest_intent"] in deployment.language("en-US").intents
    assert 0 < group["similarity"] <= 1
    assert len(plain["unmatched"]) == 5  # the single sentences are still listed


@pytest.fixture
def paraphrases(tmp_path: Path, deployment: Deployment) -> Iterator[tuple[CallLog, str]]:
    """A caller per sentence, none understood (the fake matcher knows none of them)."""
    log = CallLog.open(f"sqlite:///{tmp_path / 'calls.sqlite3'}", salt="test-salt")
    config = deployment.language("en-US")
    texts = PARCEL + PASSWORD + CARD
    for k, text in enumerate(texts):
        caller = f"+4670000{k:04d}"
        start = DAY1 + dt.timedelta(minutes=10 * k)
        log_text_call(log, config, classify, f"P{k}", caller, start, [text, "/hangup"])
    assert log.flush()
    try:
        with serve(mounted(log, deployment)) as base:
            yield log, base
    finally:
        log.close()


def test_paraphrases_are_one_group_and_forget_applies(
    paraphrases: tuple[CallLog, str],
) -> None:
    log, base = paraphrases
    client = logged_in(base)
    body = client.get("/dashboard/api/suggested", params=RANGE).json()
    topic = {
        t: name
        for name, texts in (("parcel", PARCEL), ("password", PASSWORD), ("card", CARD))
        for t in texts
    }

    def about(g: dict[str, Any]) -> str:
        topics = [topic[e] for e in g["examples"]]
        return max(set(topics), key=topics.count)

    by_topic = {about(g): g for g in body["groups"]}
    # "i forgot my password" was understood; the four other ways of saying it were not
    password = by_topic["password"]
    assert password["count"] == password["sentences"] == len(PASSWORD) - 1
    assert set(password["examples"]) == set(PASSWORD) - {"i forgot my password"}
    assert password["nearest_intent"] == "login_password"
    # phrases missing from the example deployment's own intent
    assert by_topic["card"]["nearest_intent"] == "membership_card"
    counts = [g["count"] for g in body["groups"]]
    assert counts == sorted(counts, reverse=True)

    for k, text in enumerate(PARCEL + PASSWORD + CARD):
        if text in PASSWORD:
            log.forget(f"+4670000{k:04d}")
    body = client.get("/dashboard/api/suggested", params=RANGE).json()
    said = {e for g in body["groups"] for e in g["examples"]}
    assert not said & set(PASSWORD) and said & set(CARD)
