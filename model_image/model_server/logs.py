"""JSON logs on stdout: one object per line, for the server's own events, uvicorn's, the access log and payloads.

Loggers:
* `model_server.app`: the server's own events: the model loading, ready or failed, drift monitoring's state, a
  model that failed on a request's input, an unhandled error.
* `model_server.access`: one line per request (request id, route, status, duration, rows, sizes). Probes and
  `/metrics` are not logged, so a pod's log is its traffic.
* `model_server.payload`: when PAYLOAD_LOG_SAMPLE_RATE > 0, that share of scoring requests is logged with its
  inputs (as columns + rows) and its predictions, for drift analysis downstream.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

EVENTS = logging.getLogger("model_server.app")
ACCESS = logging.getLogger("model_server.access")
PAYLOAD = logging.getLogger("model_server.payload")


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", "pid", ...fields}`; structured fields come from `extra={"fields": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def configure_logging(level: str) -> None:
    """Send every logger (ours, uvicorn's, mlflow's) through one JSON handler on stdout."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # mlflow would install its own text handler
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mlflow"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the access log is ours (JSON, with request ids)
    logging.captureWarnings(True)
