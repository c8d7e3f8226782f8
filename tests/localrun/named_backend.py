"""A tiny real HTTP server on 127.0.0.1 that answers every request with its own name, for the proxy's tests.

    python -m tests.localrun.named_backend <name> <port>

GET: the name. POST: the name and how many body bytes arrived (`<name> <n>`). It also sends its own
`X-Canary-Side`, which the proxy must replace with the side it chose.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from localrun.processes import LOOPBACK


def serve(name: str, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Canary-Side", "set-by-the-backend")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(name.encode())

        def do_POST(self) -> None:
            received = len(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self._answer(f"{name} {received}".encode())

        def log_message(self, format: str, *args: object) -> None:
            pass  # thousands of requests per test; the proxy's access log has them

    ThreadingHTTPServer((LOOPBACK, port), Handler).serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
