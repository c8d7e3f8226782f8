"""The dedupe store: one Table storage entity per delivery, shared by every instance (Flex Consumption scales out).

PartitionKey is the source (`mlflow`, `databricks`, `databricks-job`), RowKey the delivery id. States:

    received ──enqueue──▶ enqueued ──claim──▶ dispatching ──▶ dispatched
        ▲                     ▲                   │  └───────▶ poisoned
        │                     └──── retrying ◀────┘
    (insert-if-absent is the first-seen test)

Webhook side: insert `received` (a conflict means "seen before"), enqueue, then mark `enqueued`. A redelivery that
finds `received` enqueues again: the first attempt may have died between the insert and the enqueue, and a second
message is harmless because the dispatch side dedupes too. Dispatch side: a message *claims* the delivery with an
ETag-conditional update (`dispatching` + a lease), so of two copies of a message only one dispatches; a copy that
finds a live lease comes back later, one that finds `dispatched`/`poisoned` is dropped.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from webhook_listener.logs import get_logger, log_event
from webhook_listener.schemas import QueuedEvent

_log = get_logger("deliveries")
MAX_ERROR_LENGTH = 1000


class State(enum.StrEnum):
    RECEIVED = "received"
    ENQUEUED = "enqueued"
    DISPATCHING = "dispatching"
    RETRYING = "retrying"
    DISPATCHED = "dispatched"
    POISONED = "poisoned"


FINAL_STATES = frozenset({State.DISPATCHED, State.POISONED})


@dataclass(frozen=True)
class DeliveryRecord:
    source: str
    delivery_id: str
    state: State
    attempts: int
    lease_until: float
    last_error: str | None
    etag: str

    @classmethod
    def from_entity(cls, entity: Any) -> DeliveryRecord:
        return cls(
            source=str(entity["PartitionKey"]),
            delivery_id=str(entity["RowKey"]),
            state=State(entity["state"]),
            attempts=int(entity.get("attempts", 0)),
            lease_until=float(entity.get("lease_until", 0.0)),
            last_error=entity.get("last_error"),
            etag=str(entity.metadata["etag"]),
        )


@dataclass(frozen=True)
class Received:
    """First sighting of a delivery; `etag` is the new record's."""

    etag: str


@dataclass(frozen=True)
class Claimed:
    """This message owns the delivery until `lease_until`; `attempt` counts claims, this one included."""

    attempt: int
    etag: str


@dataclass(frozen=True)
class AlreadyDone:
    state: State


@dataclass(frozen=True)
class Busy:
    """Another message holds a live lease; look again after `retry_in` seconds."""

    retry_in: float


ClaimResult = Claimed | AlreadyDone | Busy


class DeliveryStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def ensure_table(self) -> None:
        try:
            await self._table.create_table()
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:  # e.g. the identity may use the table but not create it
            table = self._table.table_name
            log_event(_log, logging.WARNING, "dedupe table not created", table=table, error=type(exc).__name__)

    async def ping(self) -> None:
        """Raise if the table cannot be read."""
        async for _ in self._table.query_entities("PartitionKey eq 'health'", results_per_page=1):
            break

    async def get(self, source: str, delivery_id: str) -> DeliveryRecord | None:
        try:
            entity = await self._table.get_entity(source, delivery_id)
        except ResourceNotFoundError:
            return None
        return DeliveryRecord.from_entity(entity)

    # --- webhook side -------------------------------------------------------------------------------------

    async def record_received(self, promotion: QueuedEvent) -> Received | DeliveryRecord:
        """Insert the delivery as `received`: `Received` on its first sighting, else the existing record."""
        entity = {
            "PartitionKey": promotion.source.value,
            "RowKey": promotion.delivery_id,
            "state": State.RECEIVED.value,
            "attempts": 0,
            "lease_until": 0.0,
            "model": promotion.model,
            "version": promotion.version,
            "received_at": time.time(),
        }
        for _ in range(3):
            try:
                created = await self._table.create_entity(entity)
            except ResourceExistsError:
                existing = await self.get(promotion.source.value, promotion.delivery_id)
                if existing is not None:
                    return existing
                continue  # deleted in between (manual cleanup): insert again
            return Received(etag=str(created["etag"]))
        raise RuntimeError(f"delivery {promotion.delivery_id} keeps vanishing from the dedupe table")

    async def mark_enqueued(self, promotion: QueuedEvent, etag: str) -> None:
        """`received` -> `enqueued`, unless the dispatch side has moved it on already (then its state wins)."""
        with contextlib.suppress(ResourceModifiedError):
            await self._update(promotion.source.value, promotion.delivery_id, etag, state=State.ENQUEUED.value)

    # --- dispatch side ------------------------------------------------------------------------------------

    async def claim(self, promotion: QueuedEvent, lease_seconds: float) -> ClaimResult:
        source, delivery_id = promotion.source.value, promotion.delivery_id
        for _ in range(5):
            now = time.time()
            record = await self.get(source, delivery_id)
            if record is None:
                # The message outlived its record (e.g. the table was cleaned): recreate it and claim.
                try:
                    created = await self._table.create_entity(
                        {
                            "PartitionKey": source,
                            "RowKey": delivery_id,
                            "state": State.DISPATCHING.value,
                            "attempts": 1,
                            "lease_until": now + lease_seconds,
                            "model": promotion.model,
                            "version": promotion.version,
                            "received_at": now,
                        }
                    )
                except ResourceExistsError:
                    continue
                return Claimed(attempt=1, etag=str(created["etag"]))
            if record.state in FINAL_STATES:
                return AlreadyDone(record.state)
            if record.state is State.DISPATCHING and record.lease_until > now:
                return Busy(retry_in=record.lease_until - now)
            attempt = record.attempts + 1
            try:
                etag = await self._update(
                    source,
                    delivery_id,
                    record.etag,
                    state=State.DISPATCHING.value,
                    attempts=attempt,
                    lease_until=now + lease_seconds,
                )
            except ResourceModifiedError:
                continue  # another copy got there first: look again
            return Claimed(attempt=attempt, etag=etag)
        return Busy(retry_in=1.0)

    async def finish(self, promotion: QueuedEvent, state: State, error: str | None = None) -> None:
        """Record the outcome of a claimed attempt (unconditionally: the outcome happened whatever the lease)."""
        fields: dict[str, Any] = {"state": state.value, "lease_until": 0.0, "updated_at": time.time()}
        if error is not None:
            fields["last_error"] = error[:MAX_ERROR_LENGTH]
        await self._update(promotion.source.value, promotion.delivery_id, None, **fields)

    async def _update(self, source: str, delivery_id: str, etag: str | None, **fields: Any) -> str:
        entity = {"PartitionKey": source, "RowKey": delivery_id, **fields}
        if etag is None:
            result = await self._table.update_entity(entity, mode=UpdateMode.MERGE)
        else:
            result = await self._table.update_entity(
                entity, mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        return str(result["etag"])
