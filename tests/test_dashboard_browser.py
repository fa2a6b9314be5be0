"""The dashboard page in a real browser: headless Chromium logs in through the form (the token is
posted, never put in a URL), runs the page's script against the live API, and must draw every
figure the API reports, list the calls, show caller input as text, and paint a screenshot that is
not blank; logging out in the browser ends the session.

Skipped only when no Chromium binary is installed (``apt-get install chromium``).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from test_dashboard import RANGE, SCRIPT, TOKEN, fill, mounted, serve
from websockets.sync.client import ClientConnection, connect

from voicebot.calllog.log import CallLog
from voicebot.loading.loader import load_deployment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import make_screenshot  # noqa: E402

BINARY = make_screenshot.find_chromium()
pytestmark = pytest.mark.skipif(
    BINARY is None, reason="no chromium binary: apt-get install chromium"
)
WIDTH, HEIGHT = 1280, 1600


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    deployment = load_deployment(None)
    path = tmp_path_factory.mktemp("browser") / "calls.sqlite3"
    log = CallLog.open(f"sqlite:///{path}", salt="test-salt")
    try:
        fill(log, deployment)
        with serve(mounted(log, deployment)) as url:
            yield url
    finally:
        log.close()


def page_url(base: str) -> str:
    return f"{base}/dashboard/?since={RANGE['since']}&until={RANGE['until']}"


def api(base: str, path: str) -> Any:
    response = requests.get(
        f"{base}/dashboard/{path}",
        params=RANGE,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def dom(base: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The page's DOM once its script has drawn everything, as a logged-in browser has it."""
    with devtools(tmp_path_factory.mktemp("chromium-dom")) as browser:
        log_in(browser, base)
        browser.call("Page.navigate", url=page_url(base))
        browser.wait_for(LOADED)
        text: str = browser.js("document.documentElement.outerHTML")
    return text


def elements(dom: str, tag: str, css_class: str) -> list[dict[str, str]]:
    """Attributes of every ``<tag class="... css_class ...">`` in the dumped DOM."""
    found = []
    for match in re.finditer(rf"<{tag}\s([^>]*)>", dom):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1)))
        if css_class in attrs.get("class", "").split():
            found.append(attrs)
    return found


def test_the_page_loads_its_data_without_errors(dom: str) -> None:
    assert 'data-loaded="true"' in dom
    assert "Could not load" not in dom
    assert 'name="token"' not in dom  # not the login form


def test_calls_per_day_bars_match_the_api(dom: str, base: str) -> None:
    series = api(base, "api/summary")["series"]
    expected = {
        (d["day"], kind): d[kind]
        for d in series
        for kind in ("transferred", "solved", "hung_up", "other", "unfinished")
        if d[kind]
    }
    bars = elements(dom, "rect", "bar")
    drawn = {(b["data-day"], b["data-kind"]): int(b["data-count"]) for b in bars}
    assert len(bars) == len(drawn)  # one bar per day and outcome
    assert drawn == expected
    assert sum(drawn.values()) == 11
    heights = {(b["data-day"], b["data-kind"]): float(b["height"]) for b in bars}
    one = heights[("2026-11-23", "solved")]  # one call
    assert heights[("2026-11-23", "transferred")] == pytest.approx(2 * one, abs=0.2)


def test_rate_points_match_the_api(dom: str, base: str) -> None:
    series = api(base, "api/summary")["series"]
    points = {
        (p["data-day"], p["data-series"]): p["data-rate"] for p in elements(dom, "circle", "point")
    }
    for d in series:
        assert points[(d["day"], "no_match")] == f"{d['no_match_rate']:.4f}"
        assert points[(d["day"], "clarification")] == f"{d['clarification_rate']:.4f}"
    assert len(elements(dom, "polyline", "line")) == 2


def test_group_and_intent_bars_match_the_api(dom: str, base: str) -> None:
    summary = api(base, "api/summary")
    drawn = [(b["data-name"], int(b["data-count"])) for b in elements(dom, "rect", "hbar")]
    assert drawn == [*summary["transfers_by_group"].items(), *summary["intents"].items()]


def test_recent_calls_and_unmatched_rows(dom: str, base: str) -> None:
    calls = api(base, "api/calls")["calls"]
    rows = elements(dom, "tr", "call")
    assert [r["data-call-id"] for r in rows] == [c["call_id"] for c in calls]
    assert [r["data-outcome"] for r in rows][:2] == ["", "caller_hung_up"]  # U still running
    unmatched = api(base, "api/unmatched")["unmatched"]
    assert [r["data-count"] for r in elements(dom, "tr", "unmatched")] == [
        str(u["count"]) for u in unmatched
    ]
    assert ">where is my parcel<" in dom


def test_caller_input_is_shown_as_text_not_run(dom: str) -> None:
    escaped = SCRIPT.replace("<", "&lt;").replace(">", "&gt;")
    assert f'<span class="utt">{escaped}' in dom
    assert SCRIPT not in dom
    assert re.findall(r"<script[^>]*>", dom) == ['<script src="/dashboard/dashboard.js" defer="">']


def test_a_screenshot_shows_the_charts(base: str, browser: DevTools) -> None:
    log_in(browser, base)
    browser.call("Page.navigate", url=page_url(base))
    browser.wait_for(LOADED)
    shot = browser.call("Page.captureScreenshot", format="png")
    width, height, pixels = read_png(base64.b64decode(shot["data"]))
    assert (width, height) == (WIDTH, HEIGHT)
    colours = {pixels[i : i + 3] for i in range(0, len(pixels), 4 * 7)}  # every 7th pixel
    assert len(colours) > 50  # text, charts and tables, not a blank or error page
    for css in ("d9822b", "2e9e5b", "c23b3b"):  # transferred, solved and hung-up bars
        assert bytes.fromhex(css) in colours, css


def test_the_readme_screenshot_script_works(tmp_path: Path) -> None:
    out = tmp_path / "readme.png"
    assert make_screenshot.main(["--out", str(out)]) == 0
    width, height, pixels = read_png(out.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    assert len({pixels[i : i + 3] for i in range(0, len(pixels), 4 * 7)}) > 50


class DevTools:
    """Just enough of the Chrome DevTools protocol to click through the page."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == ident:
                assert "error" not in message, message["error"]
                result: dict[str, Any] = message["result"]
                return result

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0) -> None:
        """Poll ``expression`` until it is true, across page loads (while one replaces the
        document, evaluating fails: that only means not yet)."""
        deadline = time.monotonic() + timeout
        while True:
            ident = next(self.ids)
            self.ws.send(
                json.dumps(
                    {
                        "id": ident,
                        "method": "Runtime.evaluate",
                        "params": {"expression": expression, "returnByValue": True},
                    }
                )
            )
            while (message := json.loads(self.ws.recv(timeout=30))).get("id") != ident:
                pass
            result = message.get("result", {})
            if "exceptionDetails" not in result and result.get("result", {}).get("value"):
                return
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.05)


@contextlib.contextmanager
def devtools(profile: Path) -> Iterator[DevTools]:
    """A headless Chromium with its own profile, driven over the DevTools protocol."""
    assert BINARY is not None
    process = subprocess.Popen(
        [
            BINARY,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if found := re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line):
                break
        else:
            pytest.fail("chromium did not open a DevTools port")
        url = f"http://127.0.0.1:{found.group(1)}/json/list"
        with urllib.request.urlopen(url, timeout=10) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            tools = DevTools(ws)
            tools.call(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield tools
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    with devtools(tmp_path / "profile") as tools:
        yield tools


LOADED = "document.body && document.body.dataset.loaded === 'true'"


def log_in(browser: DevTools, base: str) -> None:
    """As a person does: open the page, get the login form, type the token, press Log in."""
    browser.call("Page.navigate", url=f"{base}/dashboard/")
    browser.wait_for("document.querySelector('input[name=token]') !== null")
    assert browser.js("location.search") == ""
    browser.js(
        f"document.querySelector('input[name=token]').value = {json.dumps(TOKEN)};"
        "document.querySelector('form button[type=submit]').click(); true"
    )
    browser.wait_for(LOADED)  # the form posts, the answer redirects to the page, it loads
    assert TOKEN not in browser.js("location.href")


def test_logging_in_and_out_in_the_browser(base: str, browser: DevTools) -> None:
    log_in(browser, base)
    assert browser.js("document.cookie") == ""  # HttpOnly: the page's script cannot read it
    browser.js("document.querySelector('form[action$=logout] button').click(); true")
    browser.wait_for("document.querySelector('input[name=token]') !== null")
    browser.call("Page.navigate", url=page_url(base))
    browser.wait_for("document.readyState === 'complete'")
    assert browser.js("document.querySelector('input[name=token]') !== null")  # logged out


COPY_FIRST_UNMATCHED = """(async () => {
  const row = document.querySelector("#unmatched tr.unmatched");
  row.querySelector("select").value = "invoice";
  row.querySelector("button").click();
  const note = row.querySelector(".note");
  for (let i = 0; i < 250 && !note.textContent; i++) await new Promise(r => setTimeout(r, 20));
  const area = document.getElementById("snippet-text");
  return {
    text: row.querySelector(".text").textContent,
    note: note.textContent,
    snippet: area.value,
    selected: document.activeElement === area && area.selectionEnd === area.value.length,
    where: document.getElementById("snippet-where").textContent,
  };
})()"""


def test_one_click_copies_the_snippet_for_the_chosen_intent(base: str, browser: DevTools) -> None:
    log_in(browser, base)
    browser.call("Page.navigate", url=page_url(base))
    browser.wait_for(LOADED)
    expected = api(base, "api/snippet?intent=invoice&text=where+is+my+parcel")

    # no clipboard (the page is not focused): the snippet is shown selected, ready for Ctrl+C
    fallback = browser.js(COPY_FIRST_UNMATCHED)
    assert fallback["text"] == "where is my parcel"
    assert fallback["snippet"] == expected["snippet"]
    assert fallback["note"] == "Press Ctrl+C to copy the selected snippet." and fallback["selected"]
    assert f"below line {expected['insert_after']} of {expected['file']}" in fallback["where"]

    browser.call("Emulation.setFocusEmulationEnabled", enabled=True)
    browser.call(
        "Browser.grantPermissions",
        permissions=["clipboardReadWrite", "clipboardSanitizedWrite"],
        origin=base,
    )
    copied = browser.js(COPY_FIRST_UNMATCHED)
    assert copied["note"] == "Copied."
    assert browser.js("navigator.clipboard.readText()") == expected["snippet"]


def test_clicking_a_call_shows_its_timeline(base: str, browser: DevTools) -> None:
    log_in(browser, base)
    browser.call("Page.navigate", url=page_url(base))
    browser.wait_for(LOADED)
    browser.js("document.querySelector('#calls tr.call[data-call-id=\"A\"]').click()")
    shown = "document.querySelector('#calls tr.timeline-row pre')"
    browser.wait_for(f"{shown} && !{shown}.textContent.startsWith('loading')")
    lines = browser.js(f"{shown}.textContent").splitlines()
    assert [line.split()[2] for line in lines][:3] == ["CallStarted", "Say", "Listen"]
    assert any("SendSms" in line and "login_password" in line for line in lines)
    browser.js("document.querySelector('#calls tr.call[data-call-id=\"A\"]').click()")
    assert browser.js(shown) is None  # a second click folds it away


def read_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGBA bytes of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 4 if colour == 6 else 3
    raw = zlib.decompress(b"".join(chunks))
    stride = width * bpp
    out = bytearray()
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        previous = line
        if bpp == 3:
            out += b"".join(bytes(line[i : i + 3]) + b"\xff" for i in range(0, stride, 3))
        else:
            out += line
    return width, height, bytes(out)


def test_call_times_are_the_lines_clock_and_lines_can_be_chosen(dom: str) -> None:
    """Call A started at 10:00 UTC: on a Stockholm line that is 11:00, whatever the browser's
    zone; the Line menu offers each language the lines answer in."""
    found = re.search(r'data-call-id="A"[^>]*><td>([^<]*)</td>', dom)
    assert found is not None and "11:00" in found.group(1), found
    menu = re.search(r'<select id="language"[^>]*>(.*?)</select>', dom, re.S)
    assert menu is not None
    assert re.findall(r'<option value="([^"]*)"', menu.group(1)) == ["", "en-US", "sv-SE"]
