"""A real local HTTP endpoint for lookup tests: the organisation's system as a test needs it.

Each path behaves one way, so one server covers the cases a lookup must survive: ``/answer/...``
answers with the JSON a test set (``answer``), ``/slow`` answers after ``slow_s``, ``/broken``
fails with HTTP 500, ``/garbage`` sends text that is no JSON. Every request is kept (headers and
body) so a test can check what the bot sent and how it was signed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LookupEndpoint", "Received"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LookupEndpoint:
    """Start with ``start()`` (a free port on 127.0.0.1), stop with ``stop()``."""

    answers: dict[str, Any] = field(default_factory=dict)  # "/answer/<name>" -> JSON answer
    slow_s: float = 3.0
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the endpoint first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LookupEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                endpoint.received.append(Received(self.path, dict(self.headers.items()), body))
                endpoint._respond(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # tests read ``received``, not stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        if path == "/broken":
            handler.send_error(500, "database down")
            return
        if path == "/slow":
            time.sleep(self.slow_s)
            data = json.dumps({"say": "Too late."}).encode()
        elif path == "/garbage":
            data = b"<html>Service temporarily unavailable</html>"
        elif path.startswith("/answer/") and path[len("/answer/") :] in self.answers:
            data = json.dumps(self.answers[path[len("/answer/") :]]).encode()
        else:
            handler.send_error(404)
            return
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the bot gave up waiting (slow) and closed the connection
