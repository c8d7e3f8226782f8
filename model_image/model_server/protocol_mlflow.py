"""The MLflow scoring protocol, as `mlflow models serve` speaks it: `POST /invocations` and the `/ping` probe.

Requests in JSON, CSV or Parquet are parsed by the server's own parser and scored through the batcher; models whose
signature that parser does not cover go to MLflow's own scoring code (the MLFLOW scoring path, see scoring.py).
"""

from __future__ import annotations

import random
from typing import Any

from model_server import mlflow_compat
from model_server.batching import MicroBatcher
from model_server.contract import Routes
from model_server.lifecycle import Lifecycle
from model_server.loading import LoadedModel
from model_server.metrics import Metrics
from model_server.parsing import PARQUET_NEEDS_PYARROW, parquet_readable, parse_csv, parse_mlflow_json, parse_parquet
from model_server.predicting import ScoringProtocol, log_payload, predict
from model_server.scoring import ScoringPath, mlflow_response_body
from model_server.settings import Settings
from model_server.transport import JSON, HttpError, Request, Response, RouteTable, read_body

PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = ("application/json", "text/csv", PARQUET)


def media_type(content_type: str | None) -> str:
    """The MIME type of an MLflow scoring request, checked as `mlflow models serve` does (UTF-8 only)."""
    if content_type is None:
        return "application/json"
    parts = [part.strip() for part in content_type.split(";")]
    media = parts[0].lower()
    parameters = {key.strip().lower(): value.strip() for key, _, value in (p.partition("=") for p in parts[1:] if p)}
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


class MlflowProtocol(ScoringProtocol):
    """Owns the MLflow scoring protocol's routes: `/invocations` (media type, parsing, scoring, MLflow's answers
    and error shapes) and `/ping` and `/health`, which answer 200 once the model is loaded, as MLflow's do.
    """

    # Probes, left out of the access log.
    quiet_routes = frozenset({"/ping", "/health"})

    def __init__(self, settings: Settings, metrics: Metrics, lifecycle: Lifecycle) -> None:
        super().__init__(settings, metrics, lifecycle)
        self.routes: RouteTable = {
            Routes.INVOCATIONS: ("POST", self.invocations),
            "/ping": ("GET", self.ping),
            "/health": ("GET", self.ping),
        }

    async def invocations(self, request: Request) -> Response:
        loaded, batcher = self.lifecycle.require_model()
        media = media_type(request.content_type)
        if media == PARQUET and not parquet_readable():
            raise HttpError(415, PARQUET_NEEDS_PYARROW, "UNSUPPORTED_MEDIA_TYPE")
        body = await read_body(request, self.settings.max_body_bytes)
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
        raw = await predict(batcher, frame, params, request, self.metrics)
        if self._sample_rate and random.random() < self._sample_rate:  # noqa: S311 (sampling, not security)
            log_payload(loaded, request, Routes.INVOCATIONS, frame, raw)
        return 200, mlflow_response_body(raw), JSON

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

    async def ping(self, request: Request) -> Response:
        return (200 if self.lifecycle.loaded is not None else 503), b"\n", JSON
