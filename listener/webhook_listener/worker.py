"""Dispatching queued promotions: the handler the Azure queue trigger calls, and the local polling worker.

`handle_message` owns the retry policy instead of the Functions host, because the host's retries have a fixed
delay and its poison queue carries no reason. A retryable failure re-enqueues a copy with an exponential,
jittered delay and completes; the last failure (or any non-retryable one) writes a `PoisonMessage` with the
reason. Either way the handler returns normally and the message it was given is deleted. It raises only when
storage itself fails, and then the message comes back (the host's `maxDequeueCount`, or the local worker's
`MAX_DEQUEUE_COUNT`, bounds that).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueMessage
from pydantic import ValidationError

from webhook_listener.deliveries import AlreadyDone, Busy, Claimed, State
from webhook_listener.dispatch import DispatchError
from webhook_listener.logs import get_logger, log_event
from webhook_listener.runtime import Runtime, Services
from webhook_listener.schemas import QUEUED_EVENT, DriftAlert, PoisonMessage, QueuedEvent
from webhook_listener.settings import ListenerSettings

_log = get_logger("worker")

# Matches host.json `extensions.queues.maxDequeueCount`: a message whose handling raised this often is poisoned.
MAX_DEQUEUE_COUNT = 5


class Outcome(enum.StrEnum):
    DISPATCHED = "dispatched"
    RETRY_SCHEDULED = "retry_scheduled"
    POISONED = "poisoned"
    DUPLICATE = "duplicate"
    BUSY = "busy"


def backoff_seconds(attempt: int, settings: ListenerSettings, retry_after: float | None = None) -> int:
    """Delay before attempt `attempt + 1`: base * 2^(attempt-1), capped, with jitter in [50 %, 100 %];
    never shorter than a `Retry-After` the CI API asked for (within the cap)."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * (1 << min(max(attempt - 1, 0), 30)))
    delay = ceiling * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not cryptography)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.retry_max_seconds))
    return max(1, round(delay))


def lease_seconds(settings: ListenerSettings) -> float:
    """How long a claim is exclusive: longer than any dispatch call can take."""
    return settings.dispatch_timeout_seconds * 3 + 30


async def handle_message(runtime: Runtime, body: str) -> Outcome:
    """Dispatch one queued promotion (exactly once per delivery, whatever copies of the message exist)."""
    services = await runtime.services()
    settings = runtime.settings
    try:
        promotion = QUEUED_EVENT.validate_json(body)
    except ValidationError as exc:
        reason = f"malformed queue message: {exc.error_count()} validation error(s)"
        log_event(_log, logging.ERROR, "dispatch poisoned", reason=reason, error_kind="malformed_message")
        await services.queue.send_to_poison(
            PoisonMessage(
                promotion=None,
                raw_message=body[:4000],
                reason=reason,
                error_kind="malformed_message",
                attempts=0,
                failed_at=time.time(),
            )
        )
        return Outcome.POISONED

    fields: dict[str, str | None] = {
        "kind": "drift" if isinstance(promotion, DriftAlert) else "promotion",
        "delivery_id": promotion.delivery_id,
        "source": promotion.source.value,
        "model": promotion.model,
        "version": promotion.version,
        "target": services.dispatcher.target,
    }
    claim = await services.store.claim(promotion, lease_seconds(settings))
    if isinstance(claim, AlreadyDone):
        log_event(_log, logging.INFO, "dispatch skipped: already handled", state=claim.state.value, **fields)
        return Outcome.DUPLICATE
    if isinstance(claim, Busy):
        delay = max(1, min(settings.retry_base_seconds * 2, round(claim.retry_in)))
        await services.queue.enqueue(promotion, delay_seconds=delay)
        log_event(_log, logging.INFO, "dispatch deferred: another copy holds the lease", delay_s=delay, **fields)
        return Outcome.BUSY
    return await _attempt(services, settings, promotion, claim, fields)


async def _attempt(
    services: Services,
    settings: ListenerSettings,
    promotion: QueuedEvent,
    claim: Claimed,
    fields: dict[str, str | None],
) -> Outcome:
    started = time.perf_counter()
    try:
        await services.dispatcher.dispatch(promotion)
    except DispatchError as exc:
        return await _failed(
            services=services, settings=settings, promotion=promotion, claim=claim, error=exc, fields=fields
        )
    await services.store.finish(promotion, State.DISPATCHED)
    log_event(
        _log,
        logging.INFO,
        "dispatched",
        attempt=claim.attempt,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        **fields,
    )
    return Outcome.DISPATCHED


async def _failed(
    *,
    services: Services,
    settings: ListenerSettings,
    promotion: QueuedEvent,
    claim: Claimed,
    error: DispatchError,
    fields: dict[str, str | None],
) -> Outcome:
    reason = str(error)
    if error.retryable and claim.attempt < settings.max_dispatch_attempts:
        delay = backoff_seconds(claim.attempt, settings, error.retry_after)
        # Enqueue the retry before releasing the claim: a crash in between leaves a copy that waits out the lease.
        await services.queue.enqueue(promotion, delay_seconds=delay)
        await services.store.finish(promotion, State.RETRYING, reason)
        log_event(
            _log,
            logging.WARNING,
            "dispatch failed, will retry",
            error_kind=error.kind.value,
            status=error.status,
            attempt=claim.attempt,
            max_attempts=settings.max_dispatch_attempts,
            retry_in_s=delay,
            reason=reason,
            **fields,
        )
        return Outcome.RETRY_SCHEDULED
    why = "not retryable" if not error.retryable else f"gave up after {claim.attempt} attempts"
    await services.queue.send_to_poison(
        PoisonMessage(
            promotion=promotion,
            reason=f"{reason} ({why})",
            error_kind=error.kind.value,
            attempts=claim.attempt,
            failed_at=time.time(),
        )
    )
    await services.store.finish(promotion, State.POISONED, reason)
    log_event(
        _log,
        logging.ERROR,
        "dispatch poisoned",
        error_kind=error.kind.value,
        status=error.status,
        attempt=claim.attempt,
        reason=f"{reason} ({why})",
        **fields,
    )
    return Outcome.POISONED


# --- the local worker: polls the queue and calls the same handler -------------------------------------------


async def _process(runtime: Runtime, services: Services, message: QueueMessage) -> None:
    body = str(message.content)
    try:
        await handle_message(runtime, body)
    except (AzureError, OSError) as exc:
        dequeue_count = message.dequeue_count or 1
        log_event(
            _log, logging.ERROR, "queue message handling failed", error=type(exc).__name__, dequeue_count=dequeue_count
        )
        if dequeue_count < MAX_DEQUEUE_COUNT:
            return  # leave it: it becomes visible again after the visibility timeout
        await services.queue.send_to_poison(
            PoisonMessage(
                promotion=None,
                raw_message=body[:4000],
                reason=f"handler failed {dequeue_count} times, last: {type(exc).__name__}: {exc}"[:1000],
                error_kind="handler_error",
                attempts=dequeue_count,
                failed_at=time.time(),
            )
        )
    await services.queue.client.delete_message(message)


async def run_worker(
    runtime: Runtime,
    stop: asyncio.Event,
    *,
    batch_size: int = 16,
) -> None:
    """Poll the queue until `stop` is set; messages of one batch are handled concurrently."""
    settings = runtime.settings
    visibility = round(lease_seconds(settings))
    log_event(_log, logging.INFO, "worker started", queue=settings.queue_name)
    failures = 0
    while not stop.is_set():
        try:
            services = await runtime.services()
            messages = [
                m
                async for m in services.queue.client.receive_messages(
                    messages_per_page=batch_size, max_messages=batch_size, visibility_timeout=visibility
                )
            ]
            failures = 0
        except (AzureError, OSError) as exc:
            failures += 1
            log_event(_log, logging.WARNING, "queue unreachable", error=type(exc).__name__, failures=failures)
            await _sleep_or_stop(stop, min(30.0, settings.worker_poll_seconds * 2**failures))
            continue
        if not messages:
            await _sleep_or_stop(stop, settings.worker_poll_seconds)
            continue
        results = await asyncio.gather(*(_process(runtime, services, m) for m in messages), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log_event(_log, logging.ERROR, "queue message left for redelivery", error=type(result).__name__)
    log_event(_log, logging.INFO, "worker stopped")


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
