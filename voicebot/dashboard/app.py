"""The ops dashboard: a Starlette sub-application that ``voicebot serve`` mounts (e.g. at
``/dashboard``), with the page, its JSON API and a token login.

Access: one shared token (``VOICEBOT_DASHBOARD_TOKEN``), typed into the login form (a POST, so it
never appears in a URL, where access logs, proxies and browser history would keep it). Each login
gets its own random session: an HttpOnly, SameSite=Strict cookie (Secure unless the page is
served over plain http to this machine) that expires after ``SESSION_S`` and dies at "Log out".
Sessions live in the call log database, as hashes, so every instance sharing it accepts them.
Scripts may send ``Authorization: Bearer <token>``. Wrong tokens, by form or header, are counted
per client and logged, and lock that client out for longer and longer (``limits``). ``?token=``
is ignored. Without a configured token every path answers 404: the dashboard shows transcripts,
so it is never open by default. The page is static HTML/JS/CSS from the package (no CDN), under
a CSP that allows only those files; it builds every element from the JSON with ``textContent``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import html
import importlib.resources
import ipaddress
import logging
import os
import secrets
import time
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
from voicebot.dashboard.limits import FREE_FAILURES, FailedLogins

__all__ = ["COOKIE", "FREE_FAILURES", "SESSION_S", "dashboard_app", "token_from_env"]

TOKEN_ENV = "VOICEBOT_DASHBOARD_TOKEN"
COOKIE = "voicebot_dashboard"
MIN_TOKEN_LENGTH = 16
DEFAULT_DAYS = 30  # the range shown when the page gives none
MAX_DAYS = 366
MAX_CALLS = 500
FAILED_LOGIN_DELAY_S = 0.3  # each wrong token answers late, on top of the per-client lockout
SESSION_S = 12 * 3600  # a working day; then log in again

_logger = logging.getLogger("voicebot.dashboard.app")

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
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
    log: CallLog,
    configs: Callable[[], Deployment],
    *,
    token: str | None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The dashboard; ``configs`` returns the deployment now serving (e.g. a ConfigHolder's
    ``current``), so the snippet lines follow config reloads. A token shorter than 16
    characters is refused: the page is reachable wherever Twilio can reach the server.
    ``clock`` (wall-clock seconds) times sessions and lockouts."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"{TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters; make one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    if not token:
        return Starlette(routes=[Route("/{path:path}", _not_found, methods=["GET", "POST"])])
    return _Dashboard(log, configs, token, clock).app()


async def _not_found(request: Request) -> Response:
    return Response("Not Found", status_code=404, media_type="text/plain")


Handler = Callable[[Request], Awaitable[Response]]


class _Dashboard:
    """The routes of a dashboard with a token; ``app()`` builds the Starlette app."""

    def __init__(
        self,
        log: CallLog,
        configs: Callable[[], Deployment],
        token: str,
        clock: Callable[[], float],
    ) -> None:
        self.log = log
        self.configs = configs
        self.token = token
        self.clock = clock
        self.failures = FailedLogins(clock)

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

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    async def _in_session(self, request: Request) -> bool:
        cookie = request.cookies.get(COOKIE, "")
        if not cookie:
            return False
        return await run_in_threadpool(self.log.session_alive, _hash(cookie), self._now())

    async def _check_token(self, request: Request, given: str) -> int | None:
        """None when ``given`` is the token; else the HTTP status to refuse with: 429 while
        this client is locked out (the token is not even compared), 401 after a failure,
        which is counted, logged and answered late."""
        client = _client(request)
        if self.failures.retry_after(client):
            return 429
        if hmac.compare_digest(
            hashlib.sha256(given.strip().encode()).digest(),
            hashlib.sha256(self.token.encode()).digest(),
        ):
            self.failures.succeeded(client)
            return None
        count, lock = self.failures.failed(client)
        _logger.warning(
            "failed dashboard login from %s (%d in a row%s)",
            client,
            count,
            f"; locked out for {lock:.0f} s" if lock else "",
        )
        await asyncio.sleep(FAILED_LOGIN_DELAY_S)
        return 401

    def _locked(self, request: Request, *, page: bool) -> Response:
        wait = self.failures.retry_after(_client(request))
        message = f"Too many wrong tokens from your address: try again in {max(1, wait)} s."
        if page:
            response = _login_form(_base(request), message, status=429)
        else:
            response = JSONResponse({"error": message}, status_code=429)
        response.headers["Retry-After"] = str(max(1, wait))
        return response

    def _guarded(self, handler: Handler, *, page: bool = False) -> Handler:
        async def guarded(request: Request) -> Response:
            if "token" in request.query_params:
                _logger.warning(
                    "dashboard: ignored a token in a URL (URLs get logged); log in with the "
                    "form or an Authorization header"
                )
            refused: int | None = 401
            if await self._in_session(request):
                refused = None
            else:
                auth = request.headers.get("authorization", "")
                if auth.startswith("Bearer "):
                    refused = await self._check_token(request, auth[7:])
            if refused is None:
                response = await handler(request)
            elif refused == 429:
                response = self._locked(request, page=page)
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
        refused = await self._check_token(request, given or "")
        if refused is None:
            return await self._logged_in(request, base)
        if refused == 429:
            return self._locked(request, page=True)
        return _login_form(base, "That token is not right.", status=401)

    async def _logged_in(self, request: Request, target: str) -> Response:
        """A new random session: stored (hashed) for every instance, sent as the cookie."""
        session = secrets.token_urlsafe(32)
        now = self._now()
        expires = now + dt.timedelta(seconds=SESSION_S)
        await run_in_threadpool(self.log.open_session, _hash(session), now, expires)
        secure = request.url.scheme == "https" or not _loopback(request.url.hostname)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            session,
            max_age=SESSION_S,
            path=_base(request),
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        response.headers.update(_SECURITY_HEADERS)
        return response

    async def logout(self, request: Request) -> Response:
        """Ends the session everywhere, not only in this browser."""
        base = _base(request)
        cookie = request.cookies.get(COOKIE, "")
        if cookie:
            await run_in_threadpool(self.log.close_session, _hash(cookie))
        response = RedirectResponse(base + "login", status_code=303)
        response.delete_cookie(COOKIE, path=base, httponly=True, samesite="strict")
        response.headers.update(_SECURITY_HEADERS)
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
        tz, since, until, language = self._range(request)
        rows = await self._fetch(tz, since, until, language)
        top = _int(request, "top", 10, 1, 100)
        body = data.summary(rows.calls, rows.utterances, tz=tz, since=since, until=until, top=top)
        body.update(language=language, languages=sorted(self.configs().languages))
        return _json(body)

    async def api_calls(self, request: Request) -> Response:
        tz, since, until, language = self._range(request)
        rows = await self._fetch(tz, since, until, language)
        limit = _int(request, "limit", 50, 1, MAX_CALLS)
        return _json({"calls": data.recent_calls(rows.calls, rows.utterances, limit=limit)})

    async def api_call(self, request: Request) -> Response:
        call_id = request.path_params["call_id"]
        events = await run_in_threadpool(self.log.timeline, call_id)
        if not events:
            return _json({"error": f"no call {call_id!r} (or its timeline was purged)"}, 404)
        return _json({"call_id": call_id, "timeline": data.timeline(events)})

    async def api_unmatched(self, request: Request) -> Response:
        tz, since, until, language = self._range(request)
        rows = await self._fetch(tz, since, until, language)
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

    def _range(self, request: Request) -> tuple[str, dt.date, dt.date, str | None]:
        """Local days [since, until] from the query, by default the last 30 days, and the
        ``language`` (line) to show, default all; the zone is ``tz``, else that language's,
        else the default language's."""
        q = request.query_params
        deployment = self.configs()
        language = q.get("language") or None
        if language is not None and language not in deployment.languages:
            known = ", ".join(sorted(deployment.languages))
            raise _BadRequest(f"no language {language!r} (the lines answer in: {known})")
        tz = q.get("tz") or deployment.language(language).timezone
        try:
            zone = ZoneInfo(tz)
            until = _day(q.get("until")) or dt.datetime.now(zone).date()
            since = _day(q.get("since")) or until - dt.timedelta(days=DEFAULT_DAYS - 1)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise _BadRequest(str(exc)) from None
        if since > until or (until - since).days >= MAX_DAYS:
            raise _BadRequest(f"since must be before until, at most {MAX_DAYS} days apart")
        return tz, since, until, language

    async def _fetch(
        self, tz: str, since: dt.date, until: dt.date, language: str | None = None
    ) -> Rows:
        zone = ZoneInfo(tz)
        start = dt.datetime.combine(since, dt.time(), zone)
        end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), zone)
        rows = await run_in_threadpool(self.log.fetch, start, end)
        return rows.in_language(language)


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


def _hash(session: str) -> str:
    """What the database keeps of a session cookie: enough to check it, not to use it."""
    return hashlib.sha256(session.encode()).hexdigest()


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _loopback(host: str | None) -> bool:
    """Served to this machine (a local trial over http): browsers drop Secure cookies there."""
    if host is None or host == "localhost":
        return host is not None
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
