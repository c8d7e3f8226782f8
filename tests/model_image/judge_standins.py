"""Real HTTP servers on 127.0.0.1 for the judge's tests: the metrics a real Prometheus scrapes, a stand-in for the
Microsoft Entra token endpoint, and a stand-in for Azure Monitor's query endpoint (a proxy in front of the real
Prometheus that requires the Entra token).

The token endpoint is written from Microsoft's documentation of the request, independently of the judge, so a test
of the judge is not the judge checking itself.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from localrun.processes import LOOPBACK, free_port

# learn.microsoft.com entra/identity-platform/v2-oauth2-client-creds-grant-flow, "Third case: Access token request
# with a federated credential": POST /{tenant}/oauth2/v2.0/token, form-encoded, these parameters.
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = "application/x-www-form-urlencoded"
# The resource and its /.default scope: learn.microsoft.com azure-monitor/metrics/prometheus-api-promql
# ("resource=https://prometheus.monitor.azure.com") and the grant flow page's `scope` ("... affixed with .default").
PROMETHEUS_SCOPE = "https://prometheus.monitor.azure.com/.default"


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], port: int | None = None) -> Iterator[str]:
    """Serves `handler` on 127.0.0.1 in a thread; yields its base URL (no trailing slash)."""
    server = ThreadingHTTPServer((LOOPBACK, port or free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


def metrics_handler(text: str) -> type[BaseHTTPRequestHandler]:
    """Serves fixed Prometheus text at /metrics, as a model server's pod would."""

    class Metrics(_Quiet):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.reply(404, b"not found\n", "text/plain")
                return
            self.reply(200, text.encode(), "text/plain; version=0.0.4")

    return Metrics


@dataclass
class EntraStandIn:
    """The token endpoint for one tenant and one workload identity: it answers the client credentials grant with a
    federated assertion, and only for the assertion it trusts (the federated credential's issuer and subject, here
    reduced to one exact token). Every other request gets Entra's 400 error shape (same page, "Error response")."""

    tenant: str
    client_id: str
    trusted_assertion: str
    access_token: str
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    scope: str = PROMETHEUS_SCOPE
    """The one scope its app may be given a token for."""
    expires_in: int = 3599

    def handler(self) -> type[BaseHTTPRequestHandler]:
        entra = self

        class Token(_Quiet):
            def do_POST(self) -> None:
                form = urllib.parse.parse_qs(self.body().decode(), keep_blank_values=True)
                entra.requests.append(form)
                status, answer = entra.answer(self.path, self.headers.get("Content-Type", ""), form)
                self.reply(status, json.dumps(answer).encode())

        return Token

    def answer(self, path: str, content_type: str, form: dict[str, list[str]]) -> tuple[int, dict[str, object]]:
        if path != f"/{self.tenant}/oauth2/v2.0/token":
            return 404, _entra_error("invalid_request", f"no token endpoint at {path}")
        if content_type.split(";", maxsplit=1)[0].strip() != FORM:
            return 400, _entra_error("invalid_request", f"expected {FORM}, got {content_type!r}")
        expected = {"grant_type", "client_id", "scope", "client_assertion_type", "client_assertion"}
        if set(form) != expected or any(len(values) != 1 for values in form.values()):
            return 400, _entra_error("invalid_request", f"expected exactly {sorted(expected)}, got {sorted(form)}")
        fields = {name: values[0] for name, values in form.items()}
        if fields["grant_type"] != "client_credentials":
            return 400, _entra_error("unsupported_grant_type", "grant_type must be client_credentials")
        if fields["client_assertion_type"] != JWT_BEARER:
            return 400, _entra_error("invalid_request", f"client_assertion_type must be {JWT_BEARER}")
        if fields["scope"] != self.scope:
            return 400, _entra_error("invalid_scope", f"the scope {fields['scope']} is not valid here")
        if fields["client_id"] != self.client_id or fields["client_assertion"] != self.trusted_assertion:
            return 400, _entra_error("invalid_client", "no matching federated identity record for the assertion")
        # A successful response (same page, "Successful response").
        return 200, {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": self.access_token}


def _entra_error(error: str, description: str) -> dict[str, object]:
    return {"error": error, "error_description": description, "error_codes": [], "trace_id": "t", "correlation_id": "c"}


@dataclass
class BearerProxy:
    """Azure Monitor's query endpoint, as far as the judge can tell: `POST /api/v1/query` answered by the real
    Prometheus behind it, only with `Authorization: Bearer <the Entra token>`; 401 without it."""

    upstream: str
    access_token: str
    authorized: int = 0
    refused: int = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Query(_Quiet):
            def do_POST(self) -> None:
                body = self.body()
                if self.headers.get("Authorization") != f"Bearer {proxy.access_token}":
                    proxy.refused += 1
                    self.reply(401, b'{"error": "unauthorized"}')
                    return
                proxy.authorized += 1
                request = urllib.request.Request(  # noqa: S310 - the test's own Prometheus on 127.0.0.1
                    proxy.upstream + self.path, data=body, headers={"Content-Type": FORM}, method="POST"
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                        self.reply(response.status, response.read())
                except urllib.error.HTTPError as exc:
                    self.reply(exc.code, exc.read())

        return Query


@contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers: every request times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@dataclass
class Recorder:
    """Answers every POST with a fixed JSON document and records the headers it was sent."""

    answer: dict[str, object]
    status: int = 200
    seen: list[dict[str, str]] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Record(_Quiet):
            def do_POST(self) -> None:
                self.body()
                recorder.seen.append({name.lower(): value for name, value in self.headers.items()})
                self.reply(recorder.status, json.dumps(recorder.answer).encode())

            do_GET = do_POST

        return Record


def redirect_handler(location: str) -> type[BaseHTTPRequestHandler]:
    """Answers every request with `302 Found` to `location`. Python's urllib, left to itself, follows it: the POST
    becomes a GET there, carrying every header but the body's, the bearer token too (`HTTPRedirectHandler`)."""

    class Redirect(_Quiet):
        def do_POST(self) -> None:
            self.body()
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Redirect


def echoing_refusal_handler() -> type[BaseHTTPRequestHandler]:
    """A token endpoint that refuses and quotes the whole request back in its error description: not what Entra
    documents, but what a careless proxy in between might do; the judge must still never print the assertion."""

    class Echo(_Quiet):
        def do_POST(self) -> None:
            body = self.body().decode()
            answer = {"error": "invalid_client", "error_description": f"refused: {urllib.parse.unquote_plus(body)}"}
            self.reply(400, json.dumps(answer).encode())

    return Echo
