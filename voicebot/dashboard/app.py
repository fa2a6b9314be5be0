"""The ops dashboard: a Starlette sub-application that ``voicebot serve`` mounts (e.g. at
``/dashboard``), with the page, its JSON API and a token login.

Access: one shared token (``VOICEBOT_DASHBOARD_TOKEN``), given once in the login form or as
``?token=``; that sets an HttpOnly, SameSite=Strict cookie holding an HMAC of the token, so
changing the token logs everyone out. Scripts may send ``Authorization: Bearer <token>``.
Without a configured token every path answers 404: the dashboard shows transcripts, so it is
never open by default. The page is static HTML/JS/CSS from the package (no CDN), under a CSP
that allows only those files; it builds every element from the JSON with ``textContent``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import html
import importlib.resources
import logging
import os
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from voicebot.calllog.log import CallLog, CallLogUnavailable, Rows
from voicebot.core.config import Deployment
from voicebot.dashboard import data

TOKEN_ENV = "VOICEBOT_DASHBOARD_TOKEN"
COOKIE = "voicebot_dashboard"
MIN_TOKEN_LENGTH = 16
DEFAULT_DAYS = 30  # the range shown when the page gives none
MAX_DAYS = 366
MAX_CALLS = 500
FAILED_LOGIN_DELAY_S = 0.3  # slows guessing; the token is long anyway
SESSION_S = 7 * 24 * 3600

_logger = logging.getLogger("voicebot.dashboard.app")

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # ?token= must not leak to other sites
    "Cache-Control": "no-store",
}
_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


def token_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The configured token, or None (dashboard disabled)."""
    value = (os.environ if env is None else env).get(TOKEN_ENV, "").strip()
    return value or None


def dashboard_app(
    log: CallLog, configs: Callable[[], Deployment], *, token: str | None
) -> Starlette:
    """The dashboard; ``configs`` returns the deployment now serving (e.g. a ConfigHolder's
    ``current``), so the snippet lines follow config reloads. A token shorter than 16
    characters is refused: the page is reachable wherever Twilio can reach the server."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"{TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters; make one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    if not token:
        return Starlette(routes=[Route("/{path:path}", _not_found, methods=["GET", "POST"])])
    return _Dashboard(log, configs, token).app()


async def _not_found(request: Request) -> Response:
    return Response("Not Found", status_code=404, media_type="text/plain")


Handler = Callable[[Request], Awaitable[Response]]


class _Dashboard:
    """The routes of a dashboard with a token; ``app()`` builds the Starlette app."""

    def __init__(self, log: CallLog, configs: Callable[[], Deployment], token: str) -> None:
        self.log = log
        self.configs = configs
        self.token = token
        self.session = hmac.new(token.encode(), b"voicebot dashboard session", "sha256").hexdigest()

    def app(self) -> Starlette:
        guard = self._guarded
        return Starlette(
            routes=[
                Route("/", guard(self.page, page=True)),
                Route("/login", self.login, methods=["GET", "POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/dashboard.js", self.asset),  # code only: the data is behind the API
                Route("/dashboard.css", self.asset),
                Route("/api/summary", guard(self.api_summary)),
                Route("/api/calls", guard(self.api_calls)),
                Route("/api/calls/{call_id}", guard(self.api_call)),
                Route("/api/unmatched", guard(self.api_unmatched)),
                Route("/api/snippet", guard(self.api_snippet)),
            ],
            exception_handlers={
                _BadRequest: _error(400),
                CallLogUnavailable: _error(503),
            },
        )

    # -----------------------------------------------------------------------------------------
    # Authentication

    def _authorised(self, request: Request) -> bool:
        cookie = request.cookies.get(COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), self.session.encode()):
            return True
        auth = request.headers.get("authorization", "")
        return auth.startswith("Bearer ") and self._valid(auth[7:])

    def _valid(self, given: str) -> bool:
        return hmac.compare_digest(
            hashlib.sha256(given.strip().encode()).digest(),
            hashlib.sha256(self.token.encode()).digest(),
        )

    def _guarded(self, handler: Handler, *, page: bool = False) -> Handler:
        async def guarded(request: Request) -> Response:
            given = request.query_params.get("token")
            if given is not None and request.method == "GET":
                if self._valid(given):  # log in and drop the token from the address bar
                    query = request.url.remove_query_params("token").query
                    target = request.url.path + (f"?{query}" if query else "")
                    return self._logged_in(request, target)
                await asyncio.sleep(FAILED_LOGIN_DELAY_S)
            if self._authorised(request):
                response = await handler(request)
            elif page:
                response = _login_form(_base(request), "", status=401)
            else:
                response = JSONResponse({"error": "log in first"}, status_code=401)
            response.headers.update(_SECURITY_HEADERS)
            return response

        return guarded

    async def login(self, request: Request) -> Response:
        base = _base(request)
        if request.method == "GET":
            return _login_form(base, "")
        given = await _form_field(request, "token")
        if given is not None and self._valid(given):
            return self._logged_in(request, base)
        await asyncio.sleep(FAILED_LOGIN_DELAY_S)
        _logger.warning("dashboard: failed login from %s", request.client and request.client.host)
        return _login_form(base, "That token is not right.", status=401)

    def _logged_in(self, request: Request, target: str) -> Response:
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            self.session,
            max_age=SESSION_S,
            path=_base(request),
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        response.headers.update(_SECURITY_HEADERS)
        return response

    async def logout(self, request: Request) -> Response:
        base = _base(request)
        response = RedirectResponse(base + "login", status_code=303)
        response.delete_cookie(COOKIE, path=base, httponly=True, samesite="strict")
        return response

    # -----------------------------------------------------------------------------------------
    # Page and assets

    async def page(self, request: Request) -> Response:
        text = _resource("dashboard.html").replace("{base}", html.escape(_base(request)))
        return HTMLResponse(text)

    async def asset(self, request: Request) -> Response:
        name = request.url.path.rsplit("/", 1)[-1]
        response = Response(_resource(name), media_type=_ASSETS[name])
        response.headers.update(_SECURITY_HEADERS)
        return response

    # -----------------------------------------------------------------------------------------
    # API

    async def api_summary(self, request: Request) -> Response:
        tz, since, until = self._range(request)
        rows = await self._fetch(tz, since, until)
        top = _int(request, "top", 10, 1, 100)
        return _json(
            data.summary(rows.calls, rows.utterances, tz=tz, since=since, until=until, top=top)
        )

    async def api_calls(self, request: Request) -> Response:
        tz, since, until = self._range(request)
        rows = await self._fetch(tz, since, until)
        limit = _int(request, "limit", 50, 1, MAX_CALLS)
        return _json({"calls": data.recent_calls(rows.calls, rows.utterances, limit=limit)})

    async def api_call(self, request: Request) -> Response:
        call_id = request.path_params["call_id"]
        events = await run_in_threadpool(self.log.timeline, call_id)
        if not events:
            return _json({"error": f"no call {call_id!r} (or its timeline was purged)"}, 404)
        return _json({"call_id": call_id, "timeline": data.timeline(events)})

    async def api_unmatched(self, request: Request) -> Response:
        tz, since, until = self._range(request)
        rows = await self._fetch(tz, since, until)
        top = _int(request, "top", 20, 1, 200)
        return _json(data.unmatched(rows.calls, rows.utterances, self.configs(), top=top))

    async def api_snippet(self, request: Request) -> Response:
        q = request.query_params
        try:
            config = data.language_for(self.configs(), q.get("language"))
            found = data.snippet(config, q.get("intent", ""), q.get("text", ""))
        except data.SnippetError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(data.as_dict(found))

    def _range(self, request: Request) -> tuple[str, dt.date, dt.date]:
        """Local days [since, until] from the query, by default the last 30 days; the zone is
        ``tz`` or the default language's."""
        q = request.query_params
        tz = q.get("tz") or self.configs().language().timezone
        try:
            zone = ZoneInfo(tz)
            until = _day(q.get("until")) or dt.datetime.now(zone).date()
            since = _day(q.get("since")) or until - dt.timedelta(days=DEFAULT_DAYS - 1)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise _BadRequest(str(exc)) from None
        if since > until or (until - since).days >= MAX_DAYS:
            raise _BadRequest(f"since must be before until, at most {MAX_DAYS} days apart")
        return tz, since, until

    async def _fetch(self, tz: str, since: dt.date, until: dt.date) -> Rows:
        zone = ZoneInfo(tz)
        start = dt.datetime.combine(since, dt.time(), zone)
        end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), zone)
        return await run_in_threadpool(self.log.fetch, start, end)


class _BadRequest(ValueError):
    pass


def _error(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        response = _json({"error": str(exc)}, status)
        response.headers.update(_SECURITY_HEADERS)
        return response

    return handle


async def _form_field(request: Request, name: str, limit: int = 4096) -> str | None:
    """One field of a urlencoded form (no python-multipart needed); larger bodies are refused."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    values = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get(name)
    return values[0] if values else None


def _day(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        raise _BadRequest(f"{name} must be a whole number") from None
    return min(high, max(low, value))


def _json(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


def _base(request: Request) -> str:
    """The mount point with a trailing slash: the cookie path and the page's base URL."""
    root = str(request.scope.get("root_path", ""))
    return root.rstrip("/") + "/"


def _resource(name: str) -> str:
    return (
        importlib.resources.files("voicebot.dashboard")
        .joinpath("static", name)
        .read_text(encoding="utf-8")
    )


def _login_form(base: str, error: str, status: int = 200) -> Response:
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>voicebot dashboard: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{html.escape(base)}dashboard.css"></head>
<body class="login"><form method="post" action="{html.escape(base)}login">
<h1>voicebot dashboard</h1>{message}
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus>
</label><button type="submit">Log in</button></form></body></html>
"""
    response = HTMLResponse(body, status_code=status)
    response.headers.update(_SECURITY_HEADERS)
    return response
