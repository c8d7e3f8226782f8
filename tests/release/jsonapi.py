"""Serves an in-memory stand-in for a JSON web API (GitHub's, Databricks') on 127.0.0.1, in a thread.

The stand-ins answer through one method, `handle(method, path, headers, body) -> (status, payload, headers)`,
so that what differs between them is only what the real API answers, never how HTTP is spoken.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, TypeVar

from localrun.processes import LOOPBACK


class JsonApi(Protocol):
    """What a stand-in implements: its base URL (set when served) and one handler for every request."""

    url: str

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        """Answers one request: status, JSON payload and extra response headers."""
        ...


Api = TypeVar("Api", bound=JsonApi)


class _Handler(BaseHTTPRequestHandler):
    api: JsonApi

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra = self.api.handle(self.command, self.path, headers, body)
        data = b"" if status == 204 else json.dumps(payload).encode()  # 204 No Content carries no body (RFC 9110)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return


class JsonApiServer(Generic[Api]):
    """Runs a stand-in on a free loopback port for the length of a `with` block, which yields the stand-in."""

    def __init__(self, api: Api, name: str) -> None:
        self.api = api
        handler = type("Handler", (_Handler,), {"api": api})
        self._server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._server.daemon_threads = True
        api.url = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    def __enter__(self) -> Api:
        self._thread.start()
        return self.api

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
