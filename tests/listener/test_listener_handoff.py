"""Record, enqueue, answer: the crash windows between them, storage outages, concurrent redeliveries, health."""

from __future__ import annotations

import asyncio
import time

from localrun.processes import AzuritePorts, free_port
from tests.listener.helpers import CiRecorder, Listener, MakeListener, mlflow_body, mlflow_envelope, mlflow_headers
from webhook_listener.deliveries import Received, State
from webhook_listener.schemas import Promotion, Source


def _with_dead(ports: AzuritePorts, *, queue: bool = False, table: bool = False) -> str:
    """A connection string whose queue and/or table endpoint points at a port nothing listens on."""
    dead = free_port()
    return AzuritePorts(ports.blob, dead if queue else ports.queue, dead if table else ports.table).connection_string


async def test_failed_enqueue_is_503_and_the_redelivery_is_not_lost(
    make_listener: MakeListener, azurite_ports: AzuritePorts
) -> None:
    body = mlflow_body(mlflow_envelope())
    headers = mlflow_headers(body)
    healthy = await make_listener()
    await healthy.runtime.services()  # the queues and the table exist (as Pulumi or an earlier run made them)
    queue_down = await make_listener(
        storage_connection_string=_with_dead(azurite_ports, queue=True), accept_timeout_seconds=1.0
    )
    await queue_down.runtime.services()  # a running instance that lost its queue
    started = time.perf_counter()
    failed = await queue_down.post("mlflow", body, headers)
    assert time.perf_counter() - started < 3.0
    assert failed.status_code == 503
    assert failed.headers["retry-after"] == "5"
    assert failed.json()["status"] == "unavailable"
    promotion = Promotion(
        source=Source.MLFLOW,
        delivery_id=headers["X-MLflow-Delivery-Id"],
        model="churn-model",
        version="3",
        alias="champion",
        target_stack="staging",
    )
    seen = await queue_down.record(promotion)
    assert seen is not None
    assert seen.state is State.RECEIVED  # recorded as seen, but never enqueued

    redelivered = await healthy.post("mlflow", body, headers)

    assert (redelivered.status_code, redelivered.json()["status"]) == (202, "accepted")
    [queued] = await healthy.queued()
    assert queued.delivery_id == headers["X-MLflow-Delivery-Id"]
    again = await healthy.post("mlflow", body, headers)
    assert again.json()["status"] == "duplicate"
    assert len(await healthy.queued()) == 1


async def test_crash_between_record_and_enqueue_is_recovered_by_the_redelivery(listener: Listener) -> None:
    body = mlflow_body(mlflow_envelope())
    headers = mlflow_headers(body)
    promotion = Promotion(
        source=Source.MLFLOW,
        delivery_id=headers["X-MLflow-Delivery-Id"],
        model="churn-model",
        version="3",
        alias="champion",
        target_stack="staging",
    )
    services = await listener.runtime.services()
    assert isinstance(await services.store.record_received(promotion), Received)  # ...and then the process died

    response = await listener.post("mlflow", body, headers)

    assert response.json()["status"] == "accepted"
    assert await listener.queued() == [promotion]
    record = await listener.record(promotion)
    assert record is not None
    assert record.state is State.ENQUEUED


async def test_dedupe_table_down_is_503_and_nothing_is_queued(
    make_listener: MakeListener, azurite_ports: AzuritePorts
) -> None:
    table_down = await make_listener(
        storage_connection_string=_with_dead(azurite_ports, table=True), accept_timeout_seconds=1.0
    )
    response = await table_down.post_mlflow(mlflow_envelope())
    assert response.status_code == 503
    healthy = await make_listener()
    assert await healthy.queued() == []


async def test_concurrent_redeliveries_dispatch_once(listener: Listener, ci: CiRecorder) -> None:
    body = mlflow_body(mlflow_envelope())
    headers = mlflow_headers(body)
    responses = await asyncio.gather(*(listener.post("mlflow", body, headers) for _ in range(12)))

    assert {r.status_code for r in responses} == {202}
    statuses = [r.json()["status"] for r in responses]
    assert statuses.count("accepted") >= 1
    assert set(statuses) <= {"accepted", "duplicate"}

    services = await listener.runtime.services()

    async def drained() -> bool:
        properties = await services.queue.client.get_queue_properties()
        return bool(ci.snapshot()) and properties.approximate_message_count == 0

    await listener.work_until(drained)
    assert len(ci.snapshot()) == 1


async def test_ci_down_does_not_slow_the_answer(listener: Listener, ci: CiRecorder) -> None:
    ci.stop()
    await listener.post_mlflow(mlflow_envelope())  # warm the storage clients
    started = time.perf_counter()
    response = await listener.post_mlflow(mlflow_envelope())
    assert response.status_code == 202
    assert time.perf_counter() - started < 1.0


async def test_health_reports_reachable_storage(listener: Listener) -> None:
    response = await listener.client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "queue": "ok", "table": "ok", "dispatch_target": "github"}


async def test_health_is_503_when_the_queue_is_unreachable(
    make_listener: MakeListener, azurite_ports: AzuritePorts
) -> None:
    listener = await make_listener(storage_connection_string=_with_dead(azurite_ports, queue=True, table=True))
    response = await listener.client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["queue"].startswith("unreachable")


async def test_health_needs_no_credentials_and_unknown_paths_are_404(listener: Listener) -> None:
    assert (await listener.client.get("/api/health", headers={})).status_code == 200
    assert (await listener.client.post("/api/webhooks/other", content=b"{}")).status_code == 404
