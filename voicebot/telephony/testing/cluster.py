"""Several ``voicebot serve`` processes behind a real HAProxy, on loopback ports: for the cluster
tests and ``bench/bench_cluster.py``.

The HAProxy configuration is the one ``docs/deployment.md`` recommends (``haproxy_config``), so
what the tests prove is what a deployment runs: HTTP mode (WebSocket upgrades pass through as
tunnels), ``leastconn`` (a media stream is a long connection), a health check on ``/healthz``
every 500 ms, and a retry on another instance when one refuses the connection. The instances
are real processes (``python -m voicebot serve --dev``), so SIGKILL and SIGTERM are real; they
share a PostgreSQL call log, a number salt and a fake Twilio REST API.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from voicebot.telephony.testing.serving import free_port

HEALTH_INTERVAL_MS: Final = 500
DEFAULT_DRAIN_S: Final = 30.0


def haproxy_config(
    bind: str,
    servers: Sequence[tuple[str, str, int]],
    *,
    media: Mapping[str, str] | None = None,
    stats_socket: Path | None = None,
) -> str:
    """HAProxy in front of voicebot instances: ``bind`` is what follows HAProxy's ``bind``
    keyword (``127.0.0.1:8080``, ``:443 ssl crt /etc/haproxy/voice.pem``), ``servers`` are
    (name, "host:port", agent port) triples.

    - ``mode http``: HAProxy sees the WebSocket upgrade of the media stream and then tunnels it
      (``timeout tunnel``: a call may last long); no extra WebSocket setting is needed.
    - ``balance leastconn``: streams are long-lived, so count connections, not requests.
    - ``option httpchk GET /healthz``: an instance that is loading its models or draining
      answers 503 and gets no new requests; calls in progress keep their tunnels.
    - ``retry-on conn-failure empty-response`` + ``option redispatch``: a request that hit an
      instance that just died is sent to another one (Twilio's webhook retry would be slower).
    - ``agent-check`` every 500 ms on each instance's ``--agent-port``: the instance answers
      the room it has left as a percentage of its ``weight 100`` (``admission``), so
      ``leastconn`` sends fewer new calls to a busy instance before it must refuse any.
    - ``media``: each instance's ``serve --media-port`` ("host:port" by server name). The media
      stream (``path_beg /twilio/media``) then goes to the picows listener there, each server
      tracking its instance's health (``track``: loading and draining take both ports out) and
      reading the same agent weight: ``leastconn`` in this backend counts the calls (a stream
      lasts the call; a webhook is a short request), so the weights steer the streams too.
    """
    lines = [
        "global",
        "    maxconn 4096",
    ]
    if stats_socket is not None:
        lines.append(f"    stats socket {stats_socket} mode 600 level admin")
    lines += [
        "",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout tunnel 4h",
        "    option redispatch",
        "    retries 2",
        "    retry-on conn-failure empty-response",
        "",
        "frontend twilio",
        f"    bind {bind}",
        "    option forwardfor",
        *(["    use_backend voicebot_media if { path_beg /twilio/media }"] if media else []),
        "    default_backend voicebot",
        "",
        "backend voicebot",
        "    balance leastconn",
        "    option httpchk GET /healthz",
        "    http-check expect status 200",
        f"    default-server check inter {HEALTH_INTERVAL_MS}ms fall 2 rise 1 weight 100"
        f" agent-check agent-inter {HEALTH_INTERVAL_MS}ms",
    ]
    lines += [f"    server {name} {address} agent-port {agent}" for name, address, agent in servers]
    if media:
        lines += [
            "",
            "backend voicebot_media",
            "    balance leastconn",
            f"    default-server weight 100 agent-check agent-inter {HEALTH_INTERVAL_MS}ms",
        ]
        lines += [
            f"    server {name} {media[name]} track voicebot/{name} agent-port {agent}"
            for name, _, agent in servers
        ]
    return "\n".join(lines) + "\n"


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
    )


def _wait(condition: object, timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if callable(condition) and condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """GET ``url``: its HTTP status, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


class HAProxy:
    """``haproxy -db`` (foreground) on ``port`` in front of ``servers``."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        servers: Sequence[tuple[str, str, int]],
        media: Mapping[str, str] | None = None,
    ) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise FileNotFoundError("haproxy is not installed (apt-get install haproxy)")
        self.binary = binary
        self.port = port
        self.socket = workdir / "haproxy.sock"
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(
            haproxy_config(f"127.0.0.1:{port}", servers, media=media, stats_socket=self.socket)
        )
        self.log = workdir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HAProxy:
        check = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refuses {self.config}: {check.stderr or check.stdout}")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config)], stdout=out, stderr=out
            )
        _wait(
            lambda: self.socket.exists() and http_status(self.url + "/") is not None, 10, "haproxy"
        )
        return self

    def command(self, line: str) -> str:
        """A runtime API command on the stats socket (``show stat``, ``disable server``...)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """Health of each backend server as HAProxy sees it: "UP", "DOWN", ..."""
        return {name: value.split()[0] for name, value in self._column("status").items()}

    def weights(self) -> dict[str, int]:
        """Each backend server's current weight (its agent-check answer applied)."""
        return {name: int(value or 0) for name, value in self._column("weight").items()}

    def _column(self, column: str) -> dict[str, str]:
        rows = self.command("show stat").splitlines()
        header = rows[0].lstrip("# ").split(",")
        name, kind, wanted = header.index("svname"), header.index("pxname"), header.index(column)
        out: dict[str, str] = {}
        for row in rows[1:]:
            cells = row.split(",")
            if len(cells) > wanted and cells[kind] == "voicebot" and cells[name] != "BACKEND":
                out[cells[name]] = cells[wanted]
        return out

    def wait_state(self, server: str, state: str, timeout_s: float = 15.0) -> None:
        _wait(lambda: self.states().get(server) == state, timeout_s, f"{server} {state}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Instance:
    """One ``voicebot serve`` process."""

    name: str
    port: int
    agent_port: int
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    _out: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Instance:
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._out, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until ``/healthz`` answers 200 (models and intents loaded)."""

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.text()}")
            return http_status(self.url + "/healthz") == 200

        _wait(ready, timeout_s, f"{self.name} to be ready", poll_s=0.1)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout_s)
        if self._out is not None:
            self._out.close()
            self._out = None
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.running:
            self.signal(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(10)


class Cluster:
    """``n`` instances over ``config`` sharing ``database_url``, behind one HAProxy.

    ``rest_url``: the (fake) Twilio REST API every instance calls; ``extra_env``: more
    environment (e.g. a dashboard token); ``serve_args``: more ``serve`` options for every
    instance, ``instance_args`` for one by name (``{"vb1": ["--max-calls", "2"]}``). Each
    instance's log is ``workdir/<name>.log``.
    """

    def __init__(
        self,
        workdir: Path,
        config: Path,
        database_url: str,
        rest_url: str,
        *,
        instances: int = 2,
        drain_s: float = DEFAULT_DRAIN_S,
        extra_env: Mapping[str, str] | None = None,
        serve_args: Sequence[str] = (),
        instance_args: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        public = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            {
                "TWILIO_API_BASE_URL": rest_url,
                "VOICEBOT_NUMBER_SALT": "cluster-test-salt",
                "VOICEBOT_DATA_DIR": str(workdir / "data"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("VOICEBOT_DATABASE_URL", None)
        env.update(extra_env or {})
        self.instances: list[Instance] = []
        media: dict[str, str] = {}  # each instance's picows media port, where HAProxy routes
        for i in range(instances):
            name = f"vb{i + 1}"
            port, agent_port, media_port = free_port(), free_port(), free_port()
            argv = [
                sys.executable,
                "-m",
                "voicebot",
                "serve",
                "--dev",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--public-url",
                public,
                "--database",
                database_url,
                "--drain-timeout",
                f"{drain_s:g}",
                "--agent-port",
                str(agent_port),
                "--media-port",
                str(media_port),
                "--trusted-proxy",  # HAProxy, as docs/deployment.md's unit says
                "127.0.0.1",
                *serve_args,
                *(instance_args or {}).get(name, ()),
            ]
            log = workdir / f"{name}.log"
            self.instances.append(Instance(name, port, agent_port, argv, env, log))
            media[name] = f"127.0.0.1:{media_port}"
        servers = [(i.name, f"127.0.0.1:{i.port}", i.agent_port) for i in self.instances]
        self.haproxy = HAProxy(workdir, self.port, servers, media)

    @property
    def url(self) -> str:
        return self.haproxy.url

    def instance(self, name: str) -> Instance:
        return next(i for i in self.instances if i.name == name)

    def start(self, timeout_s: float = 180.0) -> Cluster:
        for instance in self.instances:
            instance.start()
        self.haproxy.start()
        for instance in self.instances:
            instance.wait_ready(timeout_s)
            self.haproxy.wait_state(instance.name, "UP")
        return self

    def restart(self, instance: Instance, timeout_s: float = 180.0) -> None:
        """Start a stopped instance again and wait until HAProxy sends it calls."""
        assert not instance.running
        instance.start()
        instance.wait_ready(timeout_s)
        self.haproxy.wait_state(instance.name, "UP")

    def holder_of(self, call_sid: str) -> Instance | None:
        """The instance whose log says it attached ``call_sid``'s media stream."""
        needle = f"call {call_sid}: stream"
        return next((i for i in self.instances if needle in i.text()), None)

    def answered(self, call_sid: str) -> Instance | None:
        """The instance whose log says it answered ``call_sid``'s incoming-call webhook."""
        needle = f"call {call_sid} from"
        return next((i for i in self.instances if needle in i.text()), None)

    def stop(self) -> None:
        try:
            self.haproxy.stop()
        finally:
            for instance in self.instances:
                instance.stop()

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
