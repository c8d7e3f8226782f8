"""A stand-in for GitHub's API on 127.0.0.1: it takes the listener's `repository_dispatch` calls, checks the token,
and hands each payload to the local release workflow. Only what the listener calls exists; everything is recorded.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_DISPATCH = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/dispatches$")


@dataclass
class Dispatch:
    """One repository_dispatch as GitHub would have received it."""

    repository: str
    event_type: str
    client_payload: dict[str, Any]


@dataclass
class LocalCI:
    """The local GitHub API stand-in; `dispatches` yields each accepted dispatch in arrival order."""

    token: str
    repository: str
    dispatches: queue.Queue[Dispatch] = field(default_factory=queue.Queue)
    rejected: list[str] = field(default_factory=list)
    received: int = 0
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        ci = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, body: dict[str, Any] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                ci.received += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                match = _DISPATCH.match(self.path)
                if match is None:
                    self._answer(404, {"message": "Not Found"})
                    return
                if self.headers.get("Authorization") != f"Bearer {ci.token}":
                    ci.rejected.append("bad credentials")
                    self._answer(401, {"message": "Bad credentials"})
                    return
                repository = f"{match['owner']}/{match['repo']}"
                if repository != ci.repository:
                    self._answer(404, {"message": "Not Found"})
                    return
                try:
                    data = json.loads(body)
                    dispatch = Dispatch(repository, str(data["event_type"]), dict(data.get("client_payload") or {}))
                except (ValueError, KeyError, TypeError):
                    self._answer(422, {"message": "Invalid request"})
                    return
                ci.dispatches.put(dispatch)
                self._answer(204)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="local-ci", daemon=True).start()
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
