"""The long-lived clients one process needs, built on first use and shared by the HTTP side and the worker.

Built lazily because the Azure host starts the ASGI lifespan only on the first HTTP request, and a queue-triggered
invocation may come first; both must find the same clients on the same event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import httpx
from azure.core.exceptions import AzureError

from webhook_listener.deliveries import DeliveryStore
from webhook_listener.dispatch import Dispatcher, build_dispatcher, build_http_client
from webhook_listener.handoff import PromotionQueue
from webhook_listener.logs import get_logger, log_event, register_secrets
from webhook_listener.settings import ListenerSettings
from webhook_listener.storage import StorageClients, build_storage_clients

_log = get_logger("runtime")
ENSURE_RETRY_SECONDS = 30.0


@dataclass
class Services:
    store: DeliveryStore
    queue: PromotionQueue
    dispatcher: Dispatcher
    storage: StorageClients
    http: httpx.AsyncClient


class Runtime:
    def __init__(self, settings: ListenerSettings) -> None:
        self.settings = settings
        register_secrets(settings.secret_values())  # scrubbed from every log line and error text from now on
        self._services: Services | None = None
        self._lock: asyncio.Lock | None = None
        self._resources_ready = False
        self._next_ensure_at = 0.0

    async def services(self) -> Services:
        if self._services is not None and self._resources_ready:
            return self._services
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # concurrent first requests wait for one build and one resource check
            if self._services is None:
                self._services = self._build()
            if not self._resources_ready and time.monotonic() >= self._next_ensure_at:
                await self._ensure_resources(self._services)
            return self._services

    def _build(self) -> Services:
        storage = build_storage_clients(self.settings)
        http = build_http_client(self.settings)
        return Services(
            store=DeliveryStore(storage.table),
            queue=PromotionQueue(storage.queue, storage.poison_queue),
            dispatcher=build_dispatcher(self.settings, http),
            storage=storage,
            http=http,
        )

    async def _ensure_resources(self, services: Services) -> None:
        """Create the queues and the table if missing. If storage is unreachable, say so and go on: the operation
        itself fails and is answered for. Try again later, not on every request, so an outage does not spend
        each request's time budget on it."""
        self._next_ensure_at = time.monotonic() + ENSURE_RETRY_SECONDS
        ready = True
        for ensure in (services.queue.ensure_queues, services.store.ensure_table):
            try:
                await ensure()
            except (AzureError, OSError) as exc:
                ready = False
                log_event(_log, logging.WARNING, "storage unreachable", step=ensure.__name__, error=type(exc).__name__)
        self._resources_ready = ready

    async def aclose(self) -> None:
        services, self._services = self._services, None
        self._resources_ready = False
        if services is not None:
            await services.http.aclose()
            await services.storage.aclose()
