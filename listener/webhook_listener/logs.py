"""Structured logs: every line is one JSON object carrying the delivery id when there is one.

The JSON is the log *message*, so it stays structured whichever handler ships it: a plain stderr handler locally,
the Functions worker's handler (Application Insights traces) in Azure. The code never passes a secret to a log
call; as a last line of defence `log_event` also replaces any registered secret value with `[redacted]`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

LOGGER_NAME = "webhook_listener"
REDACTED = "[redacted]"
_HANDLER_MARK = "_webhook_listener_stderr"

# Secret values seen by `register_secrets`; only ever grows, so a value is never un-redacted.
_secrets: set[str] = set()


def get_logger(component: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{component}")


def register_secrets(secrets: Iterable[str]) -> None:
    _secrets.update(s for s in secrets if s)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event` as one JSON object with `fields` (None values are dropped)."""
    if not logger.isEnabledFor(level):
        return
    record: dict[str, Any] = {
        "ts": round(time.time(), 3),
        "level": logging.getLevelName(level),
        "logger": logger.name,
        "event": event,
    }
    record.update({key: value for key, value in fields.items() if value is not None})
    logger.log(level, redact(json.dumps(record, default=str, separators=(",", ":"))))


def configure_logging(level: str, secrets: Iterable[str], *, stream_to_stderr: bool) -> None:
    """Set the package logger's level and register the secrets to redact; locally also log to stderr.

    In Azure the Functions worker owns the root handler, so `stream_to_stderr` is False there and records
    propagate to it.
    """
    register_secrets(secrets)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if stream_to_stderr and not any(getattr(h, _HANDLER_MARK, False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
        logger.propagate = False
