"""``voicebot serve``: the Twilio server, its call log, dashboard and configuration reloads."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from voicebot.calllog.records import StoreNumbers
from voicebot.cli.calllog import number_salt_arg
from voicebot.cli.common import Subparsers, UsageError
from voicebot.errors import VoicebotError
from voicebot.telephony.event_loop import COALESCE_S, serve_loop_factory
from voicebot.telephony.settings import (
    API_BASE_URL_VAR,
    AUTH_TOKEN_VAR,
    CALLS_PER_CORE,
    ServerSettings,
    TwilioEnv,
)

if TYPE_CHECKING:
    import uvicorn

    from voicebot.calllog.log import CallLog
    from voicebot.telephony.app import VoiceServer

log = logging.getLogger("voicebot.serve")

DRAIN_TIMEOUT_S = 60.0
MAX_BACKLOG_S = 1.0  # with 0.8 s end of speech, a kept caller's wait stays under 2 s


def register(subparsers: Subparsers) -> None:
    serve = subparsers.add_parser("serve", help="answer Twilio calls (webhook + media stream)")
    serve.add_argument("--config", type=Path, help="intents file or folder (default: embedded)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--public-url",
        help="base URL Twilio calls (e.g. your tunnel, https://abc.ngrok.app); used in TwiML "
        "and to check signatures (default in --dev: http://HOST:PORT)",
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="local trials: dev credentials and the fake REST API of `voicebot simulate` unless "
        "TWILIO_* variables are set (signatures are still checked)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="a proxy in front of this server (e.g. HAProxy at 10.0.0.10, or a network "
        "10.0.0.0/24), repeatable: only from these is X-Forwarded-For believed, so the "
        "dashboard sees each browser's address (default: none, the header is ignored)",
    )
    serve.add_argument(
        "--media-port",
        type=_media_port,
        metavar="PORT",
        help="also serve the media stream with picows (compiled; no future per 20 ms frame) on "
        "this port (0: any free one; off: only the main port serves it). Behind a proxy, route "
        "/twilio/media to it (docs/deployment.md); without --public-url (--dev) the TwiML's "
        "stream URL points straight at it. Default: in --dev without --public-url any free "
        "port, otherwise off (one port, as a single tunnel needs)",
    )
    serve.add_argument("--watch", action="store_true", help="reload when config files change")
    serve.add_argument("--watch-interval", type=float, default=2.0, help="seconds (default 2)")
    serve.add_argument("--no-tts", action="store_true", help="speak prompts with Twilio <Say>")
    serve.add_argument(
        "--database",
        metavar="URL",
        help="call log: postgresql://... or sqlite:///path (default: $VOICEBOT_DATABASE_URL, "
        "else calls.sqlite3 in $VOICEBOT_DATA_DIR or ~/.local/share/voicebot)",
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        default=DRAIN_TIMEOUT_S,
        metavar="S",
        help="on SIGTERM, let calls in progress finish for up to S seconds, then hand the rest "
        f"to the default group, flush the call log and exit 0 (default {DRAIN_TIMEOUT_S:g})",
    )
    number_salt_arg(serve)
    serve.add_argument(
        "--store-numbers",
        choices=[mode.value for mode in StoreNumbers],
        default=StoreNumbers.HASH.value,
        help="how the call log keeps caller numbers: hash (only a salted hash, enough for "
        "forget), mask (also +46******4567) or clear (also the number) (default: hash)",
    )
    serve.add_argument(
        "--retention-days",
        type=int,
        help="keep transcripts and caller numbers this many days; purged at start and hourly "
        "(default 90)",
    )
    load = serve.add_argument_group("overload: callers the bot cannot serve go to a person")
    load.add_argument(
        "--max-calls",
        type=int,
        metavar="N",
        help="calls this instance takes at once; the webhook of another call puts the caller "
        f"through to the overflow group (default: {CALLS_PER_CORE} per core this process may "
        "use, the capacity bench/bench_capacity.py measured on one core; 0: every call goes to "
        "a person)",
    )
    load.add_argument(
        "--max-backlog",
        type=float,
        default=MAX_BACKLOG_S,
        metavar="S",
        help="a call whose audio waits more than S seconds to be decoded is put through to a "
        f"person (default {MAX_BACKLOG_S:g})",
    )
    load.add_argument(
        "--coalesce-ms",
        type=float,
        default=COALESCE_S * 1000,
        metavar="MS",
        help="before a poll of its sockets that would wait, the event loop waits MS so that "
        "one pass takes up several media frames (CPU for the decoder); 0: asyncio's plain loop "
        f"(default {COALESCE_S * 1000:g})",
    )
    load.add_argument(
        "--agent-port",
        type=int,
        metavar="PORT",
        help="answer HAProxy's agent-check on this TCP port with the room left as a weight "
        "(e.g. '75%%'), so a busy instance gets fewer new calls (default: off)",
    )
    limits = serve.add_argument_group("limits on what a client may make the server hold")
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        default=_default("max_body_bytes"),
        help="larger request bodies are refused unread with 413 (default %(default)s; "
        "Twilio's webhooks are a few KB)",
    )
    limits.add_argument(
        "--request-timeout",
        type=float,
        default=_default("header_timeout_s"),
        metavar="S",
        help="seconds a client has to send a request's head, and again its body "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--stream-timeout",
        type=float,
        default=_default("media_timeout_s"),
        metavar="S",
        help="a media stream without 'start', or silent, this long is closed; a call on it "
        "is transferred to a person (default %(default)s)",
    )
    serve.set_defaults(run=cmd_serve)


MEDIA_OFF = -1  # --media-port off


def _media_port(text: str) -> int:
    if text == "off":
        return MEDIA_OFF
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number or 'off'") from None


def media_port(args: argparse.Namespace) -> int | None:
    """The port the picows media listener takes (0: any free one), or None: none."""
    port: int | None = args.media_port
    if port is None:  # local trials straight at the server: the fast path, on a free port
        port = 0 if args.dev and args.public_url is None else MEDIA_OFF
    return None if port == MEDIA_OFF else port


def _default(name: str) -> Any:
    return next(f.default for f in dataclasses.fields(ServerSettings) if f.name == name)


def server_settings(
    args: argparse.Namespace, public: str, auth_token: str, stream_public: str | None = None
) -> ServerSettings:
    """The server's settings from serve's options; ``stream_public``: the media listener's own
    origin, when the TwiML points straight at it."""
    from voicebot.telephony.admission import default_max_calls

    return ServerSettings(
        max_calls=default_max_calls() if args.max_calls is None else args.max_calls,
        max_backlog_s=args.max_backlog,
        public_url=public,
        stream_public_url=stream_public,
        auth_token=auth_token,
        max_body_bytes=args.max_body_bytes,
        header_timeout_s=args.request_timeout,
        body_timeout_s=args.request_timeout,
        stream_start_timeout_s=args.stream_timeout,
        media_timeout_s=args.stream_timeout,
    )


def _check_proxies(args: argparse.Namespace) -> None:
    from voicebot.telephony.access_log import parse_proxies

    try:
        parse_proxies(args.trusted_proxy)
    except ValueError as exc:
        raise UsageError(f"--trusted-proxy {exc}") from None


def _check_limits(args: argparse.Namespace) -> None:
    for option, value in (
        ("--max-body-bytes", args.max_body_bytes),
        ("--request-timeout", args.request_timeout),
        ("--stream-timeout", args.stream_timeout),
        ("--max-backlog", args.max_backlog),
    ):
        if not value > 0:
            raise UsageError(f"{option} {value} must be positive")
    if args.max_calls is not None and args.max_calls < 0:
        raise UsageError(f"--max-calls {args.max_calls} must be 0 or more")
    if not 0 <= args.coalesce_ms <= 50:
        raise UsageError(f"--coalesce-ms {args.coalesce_ms:g} must be between 0 and 50")
    if args.agent_port is not None:
        _check_port(args.agent_port, "--agent-port")
    if args.media_port is not None and args.media_port != MEDIA_OFF:
        _check_port(args.media_port, "--media-port")


# ---------------------------------------------------------------------------------------------
# serve


def dev_environment(env: Mapping[str, str]) -> dict[str, str]:
    """Dev mode: fill in the fake REST API and its credentials where the environment is silent."""
    return TwilioEnv.with_dev_defaults(env)


def missing_credentials(env: Mapping[str, str]) -> list[str]:
    return TwilioEnv.read(env).missing_for_serving()


QUIET_LOGGERS = ("twilio.http_client",)  # logs every REST request's headers at INFO


def configure_logging(level: int = logging.INFO) -> None:
    """``serve``'s log: our INFO lines, without the helper library's per-request header dumps
    (an SMS or transfer each printed every header; its warnings and errors still show)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


PURGE_INTERVAL_S = 3600.0
DASHBOARD_PATH = "/dashboard"


def attach_dashboard(server: VoiceServer, call_log: CallLog, token: str | None) -> bool:
    """Mount the dashboard over ``call_log`` at /dashboard when a token is configured (it shows
    transcripts, so without a token it is not served at all). True when mounted."""
    from voicebot.dashboard.app import dashboard_app

    if token is None:
        return False
    holder = server.holder
    server.mount(DASHBOARD_PATH, dashboard_app(call_log, lambda: holder.current, token=token))
    return True


async def purge_every(call_log: CallLog, interval_s: float = PURGE_INTERVAL_S) -> None:
    """Apply the retention period now and then every ``interval_s`` (off the event loop)."""
    while True:
        try:
            purged = await asyncio.to_thread(call_log.purge)
        except Exception:
            log.exception("call log purge failed; retrying in %.0f s", interval_s)
        else:
            if purged.events or purged.transcripts or purged.callers:
                log.info("call log purge: %s", purged)
        await asyncio.sleep(interval_s)


def uvicorn_config(server: VoiceServer, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn for ``server`` with its limits (``ServerSettings``): WebSocket message size,
    keep-alive and request-head timeouts, media frames read ahead (``read_ahead``). Request
    bodies are bounded by the app itself. Its access log keeps query parameter names, not
    values (``access_log``)."""
    from voicebot.telephony.access_log import server_config
    from voicebot.telephony.limits import HeadTimeoutH11Protocol
    from voicebot.telephony.read_ahead import ReadAheadWebSocketProtocol

    settings = server.settings
    return server_config(  # the access log without query values (tokens, if a client sends one)
        server.app,
        host=host,
        port=port,
        http=HeadTimeoutH11Protocol.with_head_timeout(settings.header_timeout_s),
        ws=ReadAheadWebSocketProtocol,  # no pause and resume of the socket per 20 ms frame
        ws_max_size=settings.max_ws_message_bytes,
        timeout_keep_alive=settings.keep_alive_s,  # a float works
        lifespan="off",
        **options,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from voicebot.calllog.log import DEFAULT_RETENTION_DAYS, CallLog
    from voicebot.dashboard.app import token_from_env

    configure_logging()
    _check_port(args.port)
    _check_limits(args)
    _check_proxies(args)
    if args.public_url is not None:
        _check_public_url(args.public_url)
    env: Mapping[str, str] = os.environ
    if args.dev:
        env = dev_environment(env)
    missing = missing_credentials(env)
    if missing:
        print(
            "voicebot: refusing to serve without Twilio credentials: set "
            + ", ".join(missing)
            + " (or use --dev for local trials)",
            file=sys.stderr,
        )
        return 2
    public = args.public_url
    if public is None and not args.dev:
        print("voicebot: --public-url is required (Twilio signs that URL)", file=sys.stderr)
        return 2
    # Bound before anything is loaded or opened: a port in use is one line, at once, instead of
    # uvicorn's error and exit from inside the server after the models have loaded.
    media = media_port(args)
    with (
        listening_socket(args.host, args.port) as sock,
        contextlib.ExitStack() as stack,
    ):
        media_sock = None
        if media is not None:
            media_sock = stack.enter_context(listening_socket(args.host, media, "--media-port"))
        stream_public = None
        if public is None:
            public = f"http://{args.host}:{sock.getsockname()[1]}"
            if media_sock is not None:  # no proxy to route the path: streams go straight there
                stream_public = f"http://{args.host}:{media_sock.getsockname()[1]}"
        token = token_from_env(env)
        retention = DEFAULT_RETENTION_DAYS if args.retention_days is None else args.retention_days
        try:
            call_log = CallLog.open(
                args.database,
                salt_file=args.number_salt_file,
                store_numbers=args.store_numbers,
                retention_days=retention,
                env=env,
            )
        except Exception as exc:  # bad URL, another number salt
            print(f"voicebot: cannot open the call log: {exc}", file=sys.stderr)
            return 2
        try:
            return _serve(args, env, public, call_log, token, sock, media_sock, stream_public)
        finally:
            call_log.close()


def listening_socket(host: str, port: int, option: str = "--port") -> socket.socket:
    """The server's socket, bound to ``host:port``; a port in use or a host that is not this
    machine's is a ``VoicebotError`` (one line), not a traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        reason = exc.strerror
        raise UsageError(f"--host {host!r} is not an address of this machine ({reason})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart beside TIME_WAIT
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise VoicebotError(
                f"port {port} on {host} is already in use (another voicebot serve?); stop that "
                f"program or choose another {option}"
            ) from None
        raise VoicebotError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _check_port(port: int, option: str = "--port") -> None:
    if not 0 <= port <= 65535:
        raise UsageError(f"{option} {port} is not a TCP port; use 1 to 65535 (0: any free port)")


def _check_public_url(url: str) -> None:
    """Twilio calls this URL and signs it, so it must be an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--public-url {url!r} is not a web address Twilio can call; write it with its "
            f"scheme, e.g. https://{url.split('://')[-1].lstrip('/') or 'your-tunnel.example'}"
        )


def _serve(
    args: argparse.Namespace,
    env: Mapping[str, str],
    public: str,
    call_log: CallLog,
    token: str | None,
    sock: socket.socket,
    media_sock: socket.socket | None = None,
    stream_public: str | None = None,
) -> int:

    from voicebot.loading.loader import ConfigHolder
    from voicebot.speech.pipeline import load_speech_model
    from voicebot.speech.tts import Tts
    from voicebot.telephony.app import SpeechProvider, VoiceServer
    from voicebot.telephony.rest import TwilioRest

    holder = ConfigHolder(args.config)
    speech = SpeechProvider(load_speech_model)
    rest = TwilioRest.from_env(env, max_attempts=3, backoff_s=0.2, timeout_s=5.0)
    tts = None if args.no_tts else Tts()
    settings = server_settings(args, public, env[AUTH_TOKEN_VAR], stream_public)
    # Not ready (/healthz 503) until prepare() has loaded the models, in the background.
    server = VoiceServer(settings, holder, rest, speech, tts=tts, observer=call_log, ready=False)
    server.known_call = call_log.has_call  # repeated webhooks of calls from before a restart
    server.claim_stream = call_log.claim_stream  # stream parameters start one stream, anywhere
    server.caller_history = call_log.caller_history  # recall (a language's `recall:`)
    try:
        dashboard = attach_dashboard(server, call_log, token)
    except ValueError as exc:  # a token too short to guard transcripts
        print(f"voicebot: {exc}", file=sys.stderr)
        return 2
    if args.dev:
        print(f"dev mode: signatures use the auth token {settings.auth_token!r}", file=sys.stderr)
        print(f"dev mode: REST API at {env.get(API_BASE_URL_VAR)}", file=sys.stderr)
    print(
        f"webhook: {public.rstrip('/')}/twilio/voice  stream: {server.stream_url}", file=sys.stderr
    )
    if media_sock is not None:
        where = f"port {media_sock.getsockname()[1]}"
        print(f"media stream: also on {where} (picows; see docs/deployment.md)", file=sys.stderr)
    print(f"call log: {call_log.store.target}", file=sys.stderr)
    if dashboard:
        print(f"dashboard: {public.rstrip('/')}{DASHBOARD_PATH}/", file=sys.stderr)
    else:
        print("dashboard: off (set VOICEBOT_DASHBOARD_TOKEN to serve it)", file=sys.stderr)
    uv = without_signal_handling(
        uvicorn_config(
            server,
            args.host,
            args.port,
            log_level="info",
            trusted_proxies=args.trusted_proxy,
            timeout_graceful_shutdown=5,  # the drain has already let the calls finish
        )
    )

    async def main() -> int:
        loop = asyncio.get_running_loop()
        reloader = Reloader(server.reload)
        restore = install_reload_signal(loop, reloader)
        stop = StopSignals(loop)
        tasks = [asyncio.ensure_future(purge_every(call_log))]
        if args.watch:
            watcher = ConfigWatcher(args.config, server.reload)
            tasks.append(asyncio.ensure_future(watcher.run(args.watch_interval, reloader.executor)))
        serving = asyncio.ensure_future(uv.serve(sockets=[sock]))
        stopping = asyncio.ensure_future(stop.first.wait())
        media: asyncio.Server | None = None
        try:
            if media_sock is not None:
                from voicebot.telephony.media_listener import start_media_listener

                media = await start_media_listener(server.media_route, sock=media_sock)
            language = holder.language().language
            print(f"loading the {language} speech model...", file=sys.stderr)
            try:
                await asyncio.to_thread(server.prepare, strict=True, warm_first=True)
            except Exception as exc:  # a missing or broken model: nothing to answer calls with
                print(f"voicebot: cannot load speech: {exc}", file=sys.stderr)
                uv.should_exit = True
                return 1
            freeze_startup_objects()
            if args.agent_port is not None:
                from voicebot.telephony.admission import serve_agent

                agent = await serve_agent(args.host, args.agent_port, server.agent_weight)
                tasks.append(asyncio.ensure_future(agent.serve_forever()))
                log.info("agent-check: room left as a weight on port %d", args.agent_port)
            log.info(
                "ready: models and intents loaded; at most %s calls at once",
                settings.max_calls,
            )
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not stop.first.is_set():
                return 1  # uvicorn stopped on its own (it has logged why)
            log.info("%s: draining (at most %g s)", stop.name, args.drain_timeout)
            handed = await server.drain(args.drain_timeout, hurry=stop.second)
            flushed = await asyncio.to_thread(call_log.flush, 10.0)
            log.info(
                "drained: %d call(s) handed to the default group; call log %s; exiting",
                handed,
                "flushed" if flushed else "NOT fully flushed",
            )
            uv.should_exit = True
            return 0
        finally:
            stopping.cancel()
            if media is not None:  # after the drain: its calls have ended or been handed over
                media.close()
            await serving
            for task in tasks:
                task.cancel()
            stop.restore()
            restore()

    with asyncio.Runner(loop_factory=serve_loop_factory(args.coalesce_ms / 1000)) as runner:
        return runner.run(main())


def freeze_startup_objects() -> None:
    """Move everything loaded at start-up (models, matchers, configuration, imported modules)
    out of the garbage collector's reach. A full collection walks every tracked object; with
    the start-up heap included it stopped both the event loop and the decoding thread for 70-110
    ms, once a minute or so at 30 calls, and every caller speaking then waited that much longer
    (scratch instrumentation of issue #20, docs/benchmarks.md). These objects live as long as
    the process, so collecting them was never going to free anything."""
    import gc

    gc.collect()
    gc.freeze()


def without_signal_handling(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn without its own SIGINT/SIGTERM handling: on SIGTERM it would close every media
    stream at once (and re-raise the signal, so the exit status would not be 0); the drain in
    ``_serve`` decides when to stop instead."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


class StopSignals:
    """SIGTERM or SIGINT: ``first`` is set at the first (drain), ``second`` at the next one
    (stop waiting for calls: hand them over now)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.first = asyncio.Event()
        self.second = asyncio.Event()
        self.name = ""
        self._loop = loop
        self._signals = [signal.SIGTERM, signal.SIGINT]
        for sig in self._signals:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.first.is_set():
            log.warning("%s again: handing the calls in progress over now", sig.name)
            self.second.set()
            return
        self.name = sig.name
        self.first.set()

    def restore(self) -> None:
        for sig in self._signals:
            self._loop.remove_signal_handler(sig)


# ---------------------------------------------------------------------------------------------
# reload triggers: SIGHUP and --watch


def _reload_logged(reload: Callable[[], object]) -> None:
    """Run a reload off the event loop; an unexpected error must not go unnoticed."""
    try:
        reload()
    except Exception:
        log.exception("configuration reload failed")


class Reloader:
    """Configuration reloads, one at a time, on a thread of their own.

    A reload blocks for as long as the configuration takes to load and its matchers to train
    (a second or more). Run on the event loop's default thread pool, as they were, 25 SIGHUPs
    took every thread that answers webhooks (``asyncio.to_thread``) for 25 s: a new call's
    webhook was answered after Twilio's 15 s timeout. Here a request while one runs marks one
    more as pending (all the requests that arrive meanwhile are served by it: it reads the
    files as they are then), and the thread is ``executor``'s alone (``ConfigWatcher`` polls
    on it too, so a watched change and a SIGHUP never reload at once)."""

    def __init__(self, reload: Callable[[], object]) -> None:
        self.reload = reload
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voicebot-reload")
        self.running = False
        self.pending = False

    def request(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reload now, or once the reload under way is done (call on ``loop``)."""
        if self.running:
            self.pending = True
            return
        self.running = True
        done = loop.run_in_executor(self.executor, _reload_logged, self.reload)
        done.add_done_callback(lambda _: self._finished(loop))

    def _finished(self, loop: asyncio.AbstractEventLoop) -> None:
        self.running = False
        if self.pending:
            self.pending = False
            self.request(loop)


def install_reload_signal(
    loop: asyncio.AbstractEventLoop, reload: Reloader | Callable[[], object]
) -> Callable[[], None]:
    """Make SIGHUP reload the configuration (through ``Reloader``: coalesced, off the webhook
    threads); returns the function that puts the previous SIGHUP handling back."""
    if not hasattr(signal, "SIGHUP"):  # Windows
        return lambda: None
    reloader = reload if isinstance(reload, Reloader) else Reloader(reload)
    previous = signal.getsignal(signal.SIGHUP)

    def on_hangup() -> None:
        log.info(
            "SIGHUP: %s",
            "a reload is under way; one more follows it" if reloader.running else "reloading",
        )
        reloader.request(loop)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGHUP)
        signal.signal(signal.SIGHUP, previous)

    return restore


Snapshot = dict[Path, tuple[int, int]]


def config_files(path: Path | None) -> Snapshot:
    """The YAML files of a config path with their modification time (ns) and size."""
    if path is None:
        return {}
    files = sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
    out: Snapshot = {}
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        out[f] = (st.st_mtime_ns, st.st_size)
    return out


class ConfigWatcher:
    """``--watch``: reload when the config files change (edit, new or removed file).

    Polls modification times rather than using inotify: it works on every file system,
    including the network and container mounts configs are often edited on. ``stat`` is
    injectable for tests.
    """

    def __init__(
        self,
        path: Path | None,
        reload: Callable[[], object],
        *,
        stat: Callable[[Path | None], Snapshot] = config_files,
    ) -> None:
        self.path = path
        self.reload = reload
        self._stat = stat
        self.seen = stat(path)

    def poll(self) -> bool:
        """Reload once if anything changed since the last poll; True when it reloaded."""
        now = self._stat(self.path)
        if now == self.seen:
            return False
        self.seen = now
        log.info("configuration files changed: reloading")
        _reload_logged(self.reload)
        return True

    async def run(self, interval_s: float, executor: Executor | None = None) -> None:
        """Poll every ``interval_s`` on ``executor`` (the ``Reloader``'s thread, so the reload
        a change makes shares no thread with the webhooks and never runs beside a SIGHUP's)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval_s)
            await loop.run_in_executor(executor, self.poll)
