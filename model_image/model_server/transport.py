"""The ASGI transport: reading a request, its body and its limits, routing, error answers, and the access log.

A plain ASGI callable rather than a framework: a dict lookup routes a request, there is no middleware stack, and the
only per-request work besides the handler is one metrics update and one access-log line. Why not Starlette, like
the listener: docs/decisions/0002-model-server-plain-asgi.md (it costs some 40-120 us per request).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from model_server.logs import ACCESS, EVENTS
from model_server.metrics import Metrics
from model_server.parsing import InputError
from model_server.settings import Settings

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
# Routes whose labels start with this answer errors in the Open Inference Protocol's shape.
V2_PREFIX = "/v2"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class HttpError(Exception):
    """An error answer, in MLflow's shape (`error_code`, `message`) or the Open Inference Protocol's (`error`)."""

    def __init__(
        self,
        status: int,
        message: str,
        error_code: str = "BAD_REQUEST",
        *,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.error_code = status, message, error_code
        self.headers = headers
        self.column = column

    def body(self, request_id: str, *, v2: bool) -> bytes:
        if v2:
            return orjson.dumps({"error": self.message})
        document: dict[str, Any] = {"error_code": self.error_code, "message": self.message}
        if self.column is not None:
            document["column"] = self.column
        document["request_id"] = request_id
        return orjson.dumps(document)


class ClientGoneError(Exception):
    """The client disconnected before its request body arrived."""


class Request:
    """What a handler needs from one HTTP request."""

    __slots__ = ("content_length", "content_type", "params", "receive", "request_id", "rows")

    def __init__(self, receive: Receive, request_id: str, content_type: str | None, content_length: str | None):
        self.receive = receive
        self.request_id = request_id
        self.content_type = content_type
        self.content_length = content_length
        self.params: dict[str, str] = {}
        self.rows = 0


Response = tuple[int, bytes, bytes]  # status, body, content type
Handler = Callable[[Request], Awaitable[Response]]
RouteTable = dict[str, tuple[str, Handler]]  # path -> (method, handler)
Resolved = tuple[str, str, Handler | None]  # (route label for metrics and logs, method, handler)
Resolver = Callable[[str, Request], Resolved]  # a path under a routed prefix (and the request, for its params)


def json_response(status: int, document: Any) -> Response:
    return status, orjson.dumps(document), JSON


def _too_large(message: str) -> HttpError:
    # The rest of the body is never read, so the connection cannot carry another request.
    return HttpError(413, message, "REQUEST_LIMIT_EXCEEDED", headers=((b"connection", b"close"),))


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 before reading when Content-Length says it exceeds `limit`."""
    if request.content_length is not None:
        if not request.content_length.isdigit():
            raise HttpError(400, f"Content-Length {request.content_length!r} is not a number.")
        declared = int(request.content_length)
        if declared > limit:
            raise _too_large(f"The body is {declared} bytes; the limit is {limit} (MAX_BODY_BYTES). It was not read.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(f"The body exceeds the limit of {limit} bytes (MAX_BODY_BYTES).")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not body:
        raise HttpError(400, "The request has no body; send the rows to score.")
    return body


class Lifespan(Protocol):
    """What the transport runs on the ASGI lifespan's startup and shutdown."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class Transport:
    """The ASGI callable: owns reading the request's headers, routing it, turning errors into answers, sending the
    response, the in-flight and request metrics, and the access log. The handlers it routes to own everything else.

    `routes` are exact paths; a path under `prefix` that is not one of them goes to `resolve`; anything else is 404.
    Routes in `quiet_routes` (probes, /metrics) are left out of the access log.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        lifespan: Lifespan,
        routes: RouteTable,
        prefix: str,
        resolve: Resolver,
        quiet_routes: frozenset[str],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._lifespan_hooks = lifespan
        self._routes = routes
        self._prefix = prefix
        self._resolve = resolve
        self._quiet_routes = quiet_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = content_type = content_length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value.decode("latin-1")
            elif name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID.fullmatch(candidate):
                    request_id = candidate
        request = Request(receive, request_id or uuid.uuid4().hex, content_type, content_length)
        path: str = scope["path"]
        route, method, handler = self._route(path, request)
        v2 = route.startswith(V2_PREFIX)
        headers: tuple[tuple[bytes, bytes], ...] = ()
        self.metrics.in_flight.inc()
        try:
            try:
                if handler is None:
                    raise HttpError(404, f"No endpoint at {path}.", "ENDPOINT_NOT_FOUND")
                if scope["method"] != method:
                    raise HttpError(
                        405,
                        f"{path} accepts {method}, not {scope['method']}.",
                        "METHOD_NOT_ALLOWED",
                        headers=((b"allow", method.encode()),),
                    )
                status, body, media_type = await handler(request)
            except HttpError as exc:
                status, body, media_type, headers = exc.status, exc.body(request.request_id, v2=v2), JSON, exc.headers
            except InputError as exc:
                error = HttpError(exc.status, exc.message, exc.error_code, column=exc.column)
                status, body, media_type = error.status, error.body(request.request_id, v2=v2), JSON
            except ClientGoneError:
                return
            except Exception:
                EVENTS.exception("unhandled error", extra={"fields": {"request_id": request.request_id, "path": path}})
                message = f"Internal error; see the server log for request {request.request_id}."
                status, body, media_type = (
                    500,
                    HttpError(500, message, "INTERNAL_ERROR").body(request.request_id, v2=v2),
                    JSON,
                )
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", media_type),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-request-id", request.request_id.encode()),
                        *headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            self.metrics.in_flight.dec()
        elapsed = time.perf_counter() - started
        self.metrics.observe_request(route, status, elapsed)
        if self.settings.access_log and route not in self._quiet_routes:
            self._log_access(scope, request, route, status=status, elapsed=elapsed, size=len(body))

    def _log_access(
        self, scope: Scope, request: Request, route: str, *, status: int, elapsed: float, size: int
    ) -> None:
        client = scope.get("client")
        length = request.content_length
        ACCESS.info(
            "request",
            extra={
                "fields": {
                    "request_id": request.request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "rows": request.rows,
                    "bytes_in": int(length) if length and length.isdigit() else None,
                    "bytes_out": size,
                    "client": f"{client[0]}:{client[1]}" if client else None,
                }
            },
        )

    def _route(self, path: str, request: Request) -> Resolved:
        entry = self._routes.get(path)
        if entry is not None:
            return path, entry[0], entry[1]
        if path.startswith(self._prefix):
            return self._resolve(path, request)
        return "other", "GET", None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._lifespan_hooks.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._lifespan_hooks.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
