"""The ASGI application: routing, body limits, the two scoring protocols, probes, identity and metrics.

A plain ASGI callable rather than a framework: a dict lookup routes a request, there is no middleware stack, and the
only per-request work besides scoring is one metrics update and one access-log line. The model loads in a background
thread so that liveness answers at once and readiness turns true only after the warm-up prediction succeeded.

Why a plain ASGI callable and not Starlette, like the listener: docs/decisions/0002-model-server-plain-asgi.md
(measured: Starlette costs some 40-120 us per request, 8 % more CPU where the server is fastest, for little code).
"""

from __future__ import annotations

import asyncio
import logging
import platform
import random
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from model_server import SERVER_NAME, SERVER_VERSION, mlflow_compat
from model_server.batching import MicroBatcher
from model_server.contract import Routes
from model_server.drift import DriftMonitor, DriftSettings
from model_server.drift_reference import REFERENCE_FILE
from model_server.loading import LoadedModel, ModelIdentity, load_model, resolve_identity
from model_server.logs import ACCESS, PAYLOAD
from model_server.metrics import Metrics
from model_server.parsing import (
    PARQUET_NEEDS_PYARROW,
    Frame,
    InputError,
    parquet_readable,
    parse_csv,
    parse_mlflow_json,
    parse_parquet,
)
from model_server.protocol_v2 import infer_response, model_metadata, parse_infer
from model_server.scoring import ScoringPath, mlflow_response_body
from model_server.settings import Settings
from model_server.startup import process_started, startup_report

log = logging.getLogger("model_server.app")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = ("application/json", "text/csv", PARQUET)
QUIET_ROUTES = frozenset(
    {"/ping", "/health", Routes.HEALTH_LIVE, Routes.HEALTH_READY, Routes.METRICS, "/v2/health/live", "/v2/health/ready"}
)
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


def _json(status: int, document: Any) -> Response:
    return status, orjson.dumps(document), JSON


class ModelServer:
    """The ASGI app serving one model."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        loader: Callable[[Settings], LoadedModel] = load_model,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        # The server's imports are done once it is built: what remains before ready is MLflow, the model, the warm-up.
        self._process_start, self._created = process_started(), time.monotonic()
        self.startup: dict[str, float] = {}
        self.identity: ModelIdentity = resolve_identity(settings)
        self.loaded: LoadedModel | None = None
        self.load_error: str | None = None
        self.draining = False
        self.batcher: MicroBatcher | None = None
        self.drift: DriftMonitor | None = None
        self._drift_off_reason = "the model is still loading"
        self._drift_task: asyncio.Task[None] | None = None
        self._loader = loader
        self._on_fatal = on_fatal
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sample_rate = settings.payload_log_sample_rate
        self._routes: dict[str, tuple[str, Handler]] = {
            Routes.INVOCATIONS: ("POST", self._invocations),
            "/ping": ("GET", self._ping),
            "/health": ("GET", self._ping),
            Routes.HEALTH_LIVE: ("GET", self._live),
            Routes.HEALTH_READY: ("GET", self._ready),
            Routes.VERSION: ("GET", self._version),
            Routes.METRICS: ("GET", self._metrics),
            "/v2": ("GET", self._v2_server),
            "/v2/health/live": ("GET", self._v2_live),
            "/v2/health/ready": ("GET", self._v2_ready),
        }
        self._v2_routes: dict[str, tuple[str, Handler]] = {
            "": ("GET", self._v2_metadata),
            "ready": ("GET", self._v2_model_ready),
            "infer": ("POST", self._v2_infer),
        }

    # ------------------------------------------------------------------------------------------------ ASGI

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
        v2 = route.startswith("/v2")
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
                log.exception("unhandled error", extra={"fields": {"request_id": request.request_id, "path": path}})
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
        if self.settings.access_log and route not in QUIET_ROUTES:
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

    def _route(self, path: str, request: Request) -> tuple[str, str, Handler | None]:
        """(route template for metrics, method, handler)."""
        entry = self._routes.get(path)
        if entry is not None:
            return path, entry[0], entry[1]
        if path.startswith("/v2/models/"):
            parts = path[len("/v2/models/") :].split("/")
            name, rest = parts[0], parts[1:]
            template = "/v2/models/{name}"
            if len(rest) >= 2 and rest[0] == "versions":
                request.params["version"] = rest[1]
                template += "/versions/{version}"
                rest = rest[2:]
            action = "/".join(rest)
            v2_entry = self._v2_routes.get(action)
            if name and v2_entry is not None:
                request.params["name"] = name
                return template + (f"/{action}" if action else ""), v2_entry[0], v2_entry[1]
            return "/v2/other", "GET", None
        return "other", "GET", None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                threading.Thread(target=self._load_in_background, name="model-loader", daemon=True).start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._drift_task is not None:
                    self._drift_task.cancel()
                if self.batcher is not None:
                    await self.batcher.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------------------------------------ loading

    def _load_in_background(self) -> None:
        assert self._loop is not None
        log.info(
            "loading model", extra={"fields": {"model_dir": str(self.settings.model_dir), **self.identity.as_dict()}}
        )
        try:
            loaded = self._loader(self.settings)
        except Exception as exc:
            log.exception("model failed to load or warm up")
            self._loop.call_soon_threadsafe(self._load_failed, f"{type(exc).__name__}: {exc}")
            return
        self._loop.call_soon_threadsafe(self._load_succeeded, loaded)

    def _load_failed(self, error: str) -> None:
        self.load_error = error
        self._drift_off_reason = "the model failed to load"
        if self._on_fatal is not None:
            self._on_fatal(error)

    def _start_drift(self, loaded: LoadedModel) -> DriftMonitor | None:
        """The drift monitor, or None with the reason in `_drift_off_reason`."""
        if not self.settings.drift_monitoring:
            self._drift_off_reason = "DRIFT_MONITORING is false"
        elif loaded.drift_reference is None:
            self._drift_off_reason = f"the model has no drift reference ({REFERENCE_FILE})"
        elif loaded.schema is None:
            self._drift_off_reason = "MLflow parses this model's inputs (no column signature), so the rows are not seen"
        else:
            s = self.settings
            settings = DriftSettings(s.drift_window_rows, s.drift_min_rows, s.drift_psi_threshold)
            try:
                monitor = DriftMonitor(loaded.drift_reference, loaded.schema, settings, self.metrics)
            except Exception as exc:  # the model was checked at load; never let monitoring stop it from serving
                log.exception("drift monitoring could not start")
                self._drift_off_reason = f"drift monitoring could not start: {type(exc).__name__}: {exc}"
                return None
            self._drift_task = asyncio.get_running_loop().create_task(self._refresh_drift(monitor), name="drift")
            return monitor
        log.info("drift monitoring is off: %s", self._drift_off_reason)
        return None

    async def _refresh_drift(self, monitor: DriftMonitor) -> None:
        # Scrapes refresh the answering worker; this keeps every worker's gauges current when WORKERS > 1.
        while True:
            await asyncio.sleep(self.settings.drift_refresh_seconds)
            monitor.refresh()

    def _load_succeeded(self, loaded: LoadedModel) -> None:
        self.drift = self._start_drift(loaded)
        self.batcher = MicroBatcher(
            loaded.scorer,
            max_rows=self.settings.batch_max_rows,
            mergeable=loaded.mergeable,
            in_thread=self.settings.predict_in_thread,
            observe=self.metrics.observe_batch,
            on_scored=self.drift.observe if self.drift is not None else None,
        )
        self.batcher.start()
        self.identity = loaded.identity
        self.metrics.load_seconds.set(loaded.load_seconds)
        self.metrics.warmup_seconds.set(loaded.warmup_seconds)
        ident = loaded.identity
        self.metrics.info.labels(
            model_name=ident.name,
            model_version=ident.version or "",
            model_run_id=ident.run_id or "",
            image_code_hash=ident.image_code_hash or "",
            scoring_path=loaded.scorer.path.value,
        ).set(1)
        self.loaded = loaded
        self.startup = startup_report(
            process_start=self._process_start,
            app_created=self._created,
            mlflow_import_seconds=loaded.mlflow_import_seconds,
            load_seconds=loaded.load_seconds,
            warmup_seconds=loaded.warmup_seconds,
            ready_at=time.monotonic(),
        )
        self.metrics.ready.set(1)
        log.info(
            "model ready",
            extra={
                "fields": {
                    **ident.as_dict(),
                    "flavor": loaded.flavor,
                    "scoring_path": loaded.scorer.path.value,
                    "batching": self._batching_description(),
                    "drift_monitoring": self._drift_description()["monitoring"],
                    "load_seconds": round(loaded.load_seconds, 3),
                    "warmup_seconds": round(loaded.warmup_seconds, 3),
                    "startup": self.startup,
                }
            },
        )

    def _batching_description(self) -> str:
        if self.loaded is None or not self.loaded.mergeable or self.settings.batch_max_rows <= 1:
            return "off"
        return f"greedy, up to {self.settings.batch_max_rows} rows"

    def _drift_description(self) -> dict[str, Any]:
        if self.drift is None:
            return {"monitoring": "off", "reason": self._drift_off_reason}
        return self.drift.describe()

    def _require_model(self) -> tuple[LoadedModel, MicroBatcher]:
        if self.loaded is None or self.batcher is None:
            state = "failed to load" if self.load_error else "still loading"
            raise HttpError(503, f"The model is {state}; try again later.", "TEMPORARILY_UNAVAILABLE")
        return self.loaded, self.batcher

    # ------------------------------------------------------------------------------------------------ body

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        if request.content_length is not None:
            if not request.content_length.isdigit():
                raise HttpError(400, f"Content-Length {request.content_length!r} is not a number.")
            declared = int(request.content_length)
            if declared > limit:
                raise HttpError(
                    413,
                    f"The body is {declared} bytes; the limit is {limit} (MAX_BODY_BYTES). It was not read.",
                    "REQUEST_LIMIT_EXCEEDED",
                    headers=((b"connection", b"close"),),
                )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientGoneError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(
                    413,
                    f"The body exceeds the limit of {limit} bytes (MAX_BODY_BYTES).",
                    "REQUEST_LIMIT_EXCEEDED",
                    headers=((b"connection", b"close"),),
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not body:
            raise HttpError(400, "The request has no body; send the rows to score.")
        return body

    # ------------------------------------------------------------------------------------------------ MLflow protocol

    @staticmethod
    def _media_type(content_type: str | None) -> str:
        """The MIME type of an MLflow scoring request, checked as `mlflow models serve` does (UTF-8 only)."""
        if content_type is None:
            return "application/json"
        parts = [part.strip() for part in content_type.split(";")]
        media = parts[0].lower()
        parameters = {
            key.strip().lower(): value.strip() for key, _, value in (p.partition("=") for p in parts[1:] if p)
        }
        if parameters.get("charset", "utf-8").strip('"').lower() != "utf-8":
            raise HttpError(415, "The scoring server only supports UTF-8.", "UNSUPPORTED_MEDIA_TYPE")
        unexpected = sorted(set(parameters) - {"charset"})
        if unexpected:
            raise HttpError(
                415, f"Unrecognized content type parameters: {', '.join(unexpected)}.", "UNSUPPORTED_MEDIA_TYPE"
            )
        if media not in CONTENT_TYPES:
            raise HttpError(
                415,
                f"This predictor only supports the content types {list(CONTENT_TYPES)}. Got {content_type!r}.",
                "UNSUPPORTED_MEDIA_TYPE",
            )
        return media

    async def _invocations(self, request: Request) -> Response:
        loaded, batcher = self._require_model()
        media = self._media_type(request.content_type)
        if media == PARQUET and not parquet_readable():
            raise HttpError(415, PARQUET_NEEDS_PYARROW, "UNSUPPORTED_MEDIA_TYPE")
        body = await self._read_body(request)
        if loaded.scorer.path is ScoringPath.MLFLOW or loaded.schema is None:
            return await self._invoke_with_mlflow(loaded, batcher, body, request.content_type or "application/json")
        limit = self.settings.max_request_rows
        params: dict[str, Any] | None = None
        if media == "application/json":
            frame, params = parse_mlflow_json(loaded.schema, body, limit)
        elif media == "text/csv":
            frame = parse_csv(loaded.schema, body, limit)
        else:
            frame = parse_parquet(loaded.schema, body, limit)
        request.rows = frame.n_rows
        raw = await self._predict(batcher, frame, params, request)
        if self._sample_rate and random.random() < self._sample_rate:  # noqa: S311 (sampling, not security)
            self._log_payload(loaded, request, Routes.INVOCATIONS, frame, raw)
        return 200, mlflow_response_body(raw), JSON

    async def _predict(
        self, batcher: MicroBatcher, frame: Frame, params: dict[str, Any] | None, request: Request
    ) -> Any:
        try:
            return await batcher.predict(frame, params)
        except Exception as exc:
            return self._prediction_failed(exc, request)

    def _prediction_failed(self, exc: Exception, request: Request) -> Any:
        self.metrics.prediction_errors.inc()
        log.warning(
            "the model failed on a request's input",
            exc_info=exc,
            extra={"fields": {"request_id": request.request_id}},
        )
        if mlflow_compat.is_mlflow_exception(exc):
            raise HttpError(
                mlflow_compat.http_status(exc), str(exc), str(getattr(exc, "error_code", "BAD_REQUEST"))
            ) from None
        # The input passed the signature checks, so the model itself refused it (as MLflow, answer 400).
        raise HttpError(400, f"The model could not score this input: {type(exc).__name__}: {exc}") from None

    async def _invoke_with_mlflow(
        self, loaded: LoadedModel, batcher: MicroBatcher, body: bytes, content_type: str
    ) -> Response:
        try:
            status, answer, media = await batcher.call(lambda: loaded.scorer.score_with_mlflow(body, content_type))
        except Exception as exc:
            if not mlflow_compat.is_mlflow_exception(exc):
                raise
            return mlflow_compat.http_status(exc), mlflow_compat.error_json(exc), JSON
        return status, answer, media.encode()

    def _log_payload(self, loaded: LoadedModel, request: Request, route: str, frame: Frame, raw: Any) -> None:
        names = list(loaded.schema.names) if loaded.schema is not None else []
        present = names if frame.matrix is not None else [n for n in names if n in (frame.columns or {})]
        PAYLOAD.info(
            "payload",
            extra={
                "fields": {
                    "request_id": request.request_id,
                    "route": route,
                    "model_name": loaded.identity.name,
                    "model_version": loaded.identity.version,
                    "inputs": {"columns": present, "data": frame.rows(present)},
                    "outputs": mlflow_compat.jsonable(raw),
                }
            },
        )

    async def _ping(self, request: Request) -> Response:
        return (200 if self.loaded is not None else 503), b"\n", JSON

    # ------------------------------------------------------------------------------------------------ probes, identity

    async def _live(self, request: Request) -> Response:
        return _json(200, {"status": "alive"})

    def _readiness(self) -> tuple[bool, str]:
        if self.load_error is not None:
            return False, "failed"
        if self.loaded is None:
            return False, "loading"
        if self.draining:
            return False, "draining"
        return True, "ready"

    async def _ready(self, request: Request) -> Response:
        ready, state = self._readiness()
        document: dict[str, Any] = {"status": state, "model_name": self.identity.name}
        if self.load_error:
            document["error"] = self.load_error
        return _json(200 if ready else 503, document)

    async def _version(self, request: Request) -> Response:
        loaded = self.loaded
        document: dict[str, Any] = {
            **self.identity.as_dict(),
            "server": f"{SERVER_NAME} {SERVER_VERSION}",
            "mlflow_version": mlflow_compat.mlflow_version(),
            "python_version": platform.python_version(),
            "model_flavor": loaded.flavor if loaded else None,
            "scoring_path": loaded.scorer.path.value if loaded else None,
            "batching": self._batching_description(),
            "drift": self._drift_description(),
            "ready": self._readiness()[0],
            "startup": self.startup or None,
        }
        return _json(200, document)

    async def _metrics(self, request: Request) -> Response:
        if self.drift is not None:
            self.drift.refresh()
        body, content_type = self.metrics.render()
        return 200, body, content_type.encode()

    # ------------------------------------------------------------------------------------------------ V2 protocol

    async def _v2_server(self, request: Request) -> Response:
        return _json(200, {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []})

    async def _v2_live(self, request: Request) -> Response:
        return _json(200, {"live": True})

    async def _v2_ready(self, request: Request) -> Response:
        ready = self._readiness()[0]
        return _json(200 if ready else 503, {"ready": ready})

    def _check_v2_model(self, request: Request) -> None:
        name, version = request.params.get("name"), request.params.get("version")
        ident = self.identity
        if name != ident.name or (version is not None and version != ident.version):
            served = ident.name + (f" version {ident.version}" if ident.version else "")
            asked = f"{name}" + (f" version {version}" if version else "")
            raise HttpError(404, f"Model {asked} is not served here; this server serves {served}.")

    async def _v2_model_ready(self, request: Request) -> Response:
        self._check_v2_model(request)
        ready = self._readiness()[0]
        return _json(200 if ready else 503, {"name": self.identity.name, "ready": ready})

    async def _v2_metadata(self, request: Request) -> Response:
        self._check_v2_model(request)
        loaded, _ = self._require_model()
        return _json(200, model_metadata(loaded))

    async def _v2_infer(self, request: Request) -> Response:
        self._check_v2_model(request)
        loaded, batcher = self._require_model()
        body = await self._read_body(request)
        if loaded.schema is None:
            raise HttpError(400, "This model's signature is not a table of named columns; use /invocations.")
        frame, request_id = parse_infer(loaded.schema, body, self.settings.max_request_rows)
        request.rows = frame.n_rows
        raw = await self._predict(batcher, frame, None, request)
        if self._sample_rate and random.random() < self._sample_rate:  # noqa: S311 (sampling, not security)
            self._log_payload(loaded, request, "/v2/models/{name}/infer", frame, raw)
        return 200, orjson.dumps(infer_response(loaded, raw, request_id), option=orjson.OPT_SERIALIZE_NUMPY), JSON
