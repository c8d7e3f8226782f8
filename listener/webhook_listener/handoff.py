"""The durable hand-off: accepted promotions go to an Azure Storage queue; failures end on a poison queue.

Messages never expire (`time_to_live=-1`): a promotion waits for as long as CI is down.
"""

from __future__ import annotations

import logging

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.queue.aio import QueueClient

from webhook_listener.logs import get_logger, log_event
from webhook_listener.schemas import PoisonMessage, QueuedEvent

_log = get_logger("handoff")
NEVER_EXPIRE = -1
MAX_VISIBILITY_DELAY_SECONDS = 7 * 24 * 3600 - 1  # the service's limit


class PromotionQueue:
    def __init__(self, queue: QueueClient, poison_queue: QueueClient) -> None:
        self._queue = queue
        self._poison = poison_queue

    @property
    def client(self) -> QueueClient:
        return self._queue

    async def ensure_queues(self) -> None:
        for client in (self._queue, self._poison):
            try:
                await client.create_queue()
            except ResourceExistsError:
                pass
            except HttpResponseError as exc:  # the identity may be allowed to use the queue but not create it
                log_event(_log, logging.WARNING, "queue not created", queue=client.queue_name, error=type(exc).__name__)

    async def ping(self) -> None:
        """Raise if the queue cannot be reached."""
        await self._queue.get_queue_properties()

    async def enqueue(self, promotion: QueuedEvent, delay_seconds: int = 0) -> None:
        await self._queue.send_message(
            promotion.model_dump_json(),
            visibility_timeout=min(max(delay_seconds, 0), MAX_VISIBILITY_DELAY_SECONDS) or None,
            time_to_live=NEVER_EXPIRE,
        )

    async def send_to_poison(self, message: PoisonMessage) -> None:
        await self._poison.send_message(message.model_dump_json(), time_to_live=NEVER_EXPIRE)
