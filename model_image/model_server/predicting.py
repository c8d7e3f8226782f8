"""Scoring one request's rows, the same for both protocols: the batcher's predict, the model's errors as answers,
and the sampled payload log.
"""

from __future__ import annotations

from typing import Any, NoReturn

from model_server import mlflow_compat
from model_server.batching import MicroBatcher
from model_server.lifecycle import Lifecycle
from model_server.loading import LoadedModel
from model_server.logs import EVENTS, PAYLOAD
from model_server.metrics import Metrics
from model_server.parsing import Frame
from model_server.settings import Settings
from model_server.transport import HttpError, Request


class ScoringProtocol:
    """What each scoring protocol holds: the settings, the metrics, the model's lifecycle, and the share of
    requests whose payload it logs."""

    def __init__(self, settings: Settings, metrics: Metrics, lifecycle: Lifecycle) -> None:
        self.settings = settings
        self.metrics = metrics
        self.lifecycle = lifecycle
        self._sample_rate = settings.payload_log_sample_rate


async def predict(
    batcher: MicroBatcher, frame: Frame, params: dict[str, Any] | None, request: Request, metrics: Metrics
) -> Any:
    """The model's raw output for `frame`, or an HttpError when the model refused it."""
    try:
        return await batcher.predict(frame, params)
    except Exception as exc:
        _prediction_failed(exc, request, metrics)


def _prediction_failed(exc: Exception, request: Request, metrics: Metrics) -> NoReturn:
    """Count and log a model's failure on a request's input, and raise it as the answer MLflow would give."""
    metrics.prediction_errors.inc()
    EVENTS.warning(
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


def log_payload(loaded: LoadedModel, request: Request, route: str, frame: Frame, raw: Any) -> None:
    """One sampled request's inputs (as columns and rows) and outputs on the payload log."""
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
