"""The gate every route passes, and the hand-off behind it: what the webhook routes (`app.py`) and the alert routes
(`alert_routes.py`) share.

In order, each request is answered by the first check that fails: 413 body over LISTENER_MAX_BODY_BYTES, 415 not
application/json, 401 not authenticated (the route's own check, through `authenticated`), 400 not JSON or not the
shape its event needs. An event that passes is handed off: recorded in the dedupe table, written to the queue, then
answered 202; a storage failure is a 503 with Retry-After, so the sender delivers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.exceptions import AzureError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from webhook_listener.deliveries import DeliveryRecord, State
from webhook_listener.logs import get_logger, log_event
from webhook_listener.runtime import Runtime
from webhook_listener.schemas import QueuedEvent
from webhook_listener.settings import ListenerSettings
from webhook_listener.signatures import AuthenticationError

_log = get_logger("http")
RETRY_AFTER_SECONDS = "5"
MAX_REASON_ERRORS = 5
# What a storage failure looks like from the Azure SDK, a socket, or our own deadline.
STORAGE_ERRORS = (AzureError, OSError, TimeoutError)
_Model = TypeVar("_Model", bound=BaseModel)
_T = TypeVar("_T")


class Rejection(Exception):
    """The request fails a check: answered `status` with `reason`, logged, never acted on."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def reply(status: int, outcome: str, **fields: Any) -> JSONResponse:
    """`{"status": outcome, ...fields}` (fields that are None left out); a 503 says when to deliver again."""
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    body = {"status": outcome, **{k: v for k, v in fields.items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers)


def describe(exc: ValidationError) -> str:
    """The first few validation errors as `field.path: message`, for a 400's reason."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:MAX_REASON_ERRORS]]
    more = exc.error_count() - MAX_REASON_ERRORS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejection(413, f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejection(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_media_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise Rejection(415, f"content type must be application/json, not {media_type[:80] or 'missing'}")


def parse(body: bytes, model: type[_Model]) -> _Model:
    """The body as `model`, or a 400 that says what is wrong with it."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Rejection(400, "body is not JSON") from None
    if not isinstance(document, dict):
        raise Rejection(400, "body is not a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise Rejection(400, f"unexpected shape: {describe(exc)}") from None


def authenticated(check: Callable[[], _T]) -> _T:
    """The result of the route's authentication `check`; its AuthenticationError becomes a 401."""
    try:
        return check()
    except AuthenticationError as exc:
        raise Rejection(401, str(exc)) from None


class Gate:
    """Owns the checks before authentication (size, media type) and the hand-off of a verified event."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings: ListenerSettings = runtime.settings

    async def admit(self, request: Request) -> bytes:
        """The body of a request within the size limit and of JSON media type (413, then 415)."""
        body = await read_body(request, self.settings.max_body_bytes)
        check_media_type(request)
        return body

    async def hand_off(self, event: QueuedEvent) -> str:
        """Record, enqueue, mark enqueued. Returns "accepted" or "duplicate"; raises one of STORAGE_ERRORS if
        storage fails before the event is queued."""
        async with asyncio.timeout(self.settings.accept_timeout_seconds):
            services = await self.runtime.services()
            seen = await services.store.record_received(event)
            if isinstance(seen, DeliveryRecord) and seen.state is not State.RECEIVED:
                return "duplicate"
            # First sighting, or seen but possibly never enqueued (the earlier attempt failed or died): enqueue.
            await services.queue.enqueue(event)
        try:
            async with asyncio.timeout(self.settings.accept_timeout_seconds):
                await services.store.mark_enqueued(event, seen.etag)
        except STORAGE_ERRORS as exc:
            # The message is queued; a stale `received` only means a redelivery enqueues a harmless copy.
            log_event(
                _log,
                logging.WARNING,
                "could not mark delivery enqueued",
                delivery_id=event.delivery_id,
                error=type(exc).__name__,
            )
        return "accepted"
