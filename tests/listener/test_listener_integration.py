"""End to end with real parts: `mlflow server` -> the listener process -> Azurite queue -> worker -> recorded CI API.

The CI API is the only stand-in (GitHub cannot exist here); everything else is the real thing on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from localrun.processes import AzuritePorts, ManagedProcess, free_port
from tests.listener.helpers import (
    JOB_TOKEN,
    SECRET,
    CiRecorder,
    databricks_event,
    databricks_headers,
    job_headers,
    job_request,
    mlflow_body,
    mlflow_envelope,
    mlflow_headers,
)

pytestmark = pytest.mark.integration
StartListener = Callable[..., ManagedProcess]


def _base_url(process: ManagedProcess) -> str:
    assert process.ready_url is not None
    return process.ready_url.removesuffix("/api/health")


def _delivery_ids(ci: CiRecorder) -> list[str]:
    return [r.json()["client_payload"]["delivery_id"] for r in ci.snapshot()]


def _wait_until_drained(ports: AzuritePorts, queue_name: str, timeout: float = 30.0) -> None:
    """Wait until the hand-off queue holds no message at all (visible, delayed or being handled): from then on
    nothing more can be dispatched, so counting the recorded dispatches is final."""
    with QueueClient.from_connection_string(ports.connection_string, queue_name) as queue:
        deadline = time.monotonic() + timeout
        while queue.get_queue_properties().approximate_message_count:
            assert time.monotonic() < deadline, "the queue did not drain"
            time.sleep(0.2)


def test_mlflow_alias_set_dispatches_exactly_once(
    mlflow_url: str,
    start_listener: StartListener,
    ci: CiRecorder,
    azurite_ports: AzuritePorts,
    storage_names: dict[str, str],
) -> None:
    from mlflow import MlflowClient

    listener = start_listener()
    client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    model = f"churn-{uuid.uuid4().hex[:8]}"
    webhook = client.create_webhook(
        name=f"listener-{model}",
        url=f"{_base_url(listener)}/api/webhooks/mlflow",
        events=["registered_model.created", "model_version.created", "model_version_alias.created"],
        secret=SECRET,
    )
    try:
        client.create_registered_model(model)
        version = client.create_model_version(model, source="s3://models/churn/1").version
        client.set_registered_model_alias(model, "champion", version)

        ci.wait_for(1, timeout=30)
        _wait_until_drained(azurite_ports, storage_names["queue_name"])
        [request] = ci.snapshot()
        assert request.path == "/repos/acme/serving/dispatches"
        payload = request.json()["client_payload"]
        assert payload["model"] == model
        assert payload["version"] == str(version)
        assert (payload["alias"], payload["stage"], payload["source"]) == ("champion", None, "mlflow")
        uuid.UUID(payload["delivery_id"])  # MLflow's own delivery id went all the way through

        # The same server, signing with another secret, is refused (its test delivery gets our 401).
        forged = client.create_webhook(
            name=f"forger-{model}",
            url=f"{_base_url(listener)}/api/webhooks/mlflow",
            events=["model_version_alias.created"],
            secret="not-the-listener-secret-0123456789",
        )
        result = client.test_webhook(forged.webhook_id)
        client.delete_webhook(forged.webhook_id)
        assert (result.success, result.response_status) == (False, 401)
        assert len(ci.snapshot()) == 1
    finally:
        client.delete_webhook(webhook.webhook_id)


def _signed_mlflow(version: str) -> tuple[str, bytes, dict[str, str]]:
    body = mlflow_body(mlflow_envelope(name="fraud", version=version))
    headers = mlflow_headers(body)
    return headers["X-MLflow-Delivery-Id"], body, headers


def test_events_accepted_while_ci_is_down_survive_a_restart_and_dispatch_when_it_is_back(
    start_listener: StartListener, ci: CiRecorder, azurite_ports: AzuritePorts, storage_names: dict[str, str]
) -> None:
    ci.stop()
    port = free_port()
    settings: dict[str, Any] = {"max_dispatch_attempts": 50, "retry_max_seconds": 2}
    first = start_listener(port=port, **settings)
    sent = [_signed_mlflow(str(v)) for v in range(1, 11)]
    with httpx.Client(base_url=_base_url(first), timeout=5) as http:
        for _, body, headers in sent:
            response = http.post("/api/webhooks/mlflow", content=body, headers=headers)
            assert (response.status_code, response.json()["status"]) == (202, "accepted")
    # Every event has been tried and refused (connection refused) at least once before the instance goes.
    with TableClient.from_connection_string(azurite_ports.connection_string, storage_names["dedupe_table_name"]) as t:
        deadline = time.monotonic() + 30
        while not all(t.get_entity("mlflow", delivery_id)["attempts"] >= 1 for delivery_id, _, _ in sent):
            assert time.monotonic() < deadline, "the worker did not try the events"
            time.sleep(0.2)
    first.stop()  # the instance goes away with everything still undelivered

    second = start_listener(port=port, **settings)
    with httpx.Client(base_url=_base_url(second), timeout=5) as http:
        _, body, headers = sent[0]  # a late redelivery from the sender is still recognised
        assert http.post("/api/webhooks/mlflow", content=body, headers=headers).json()["status"] == "duplicate"
    ci.start()

    ci.wait_for(len(sent), timeout=45)
    _wait_until_drained(azurite_ports, storage_names["queue_name"])
    assert sorted(_delivery_ids(ci)) == sorted(delivery_id for delivery_id, _, _ in sent)


def _burst() -> tuple[list[tuple[str, bytes, dict[str, str], int]], set[int]]:
    """200 requests: unique genuine events from all three senders, redeliveries of some, and forgeries."""
    genuine: list[tuple[str, bytes, dict[str, str], int]] = []
    for i in range(50):
        delivery_id, body, headers = _signed_mlflow(str(i + 1))
        genuine.append((delivery_id, body, headers, 202))
    for i in range(45):
        body = json.dumps(databricks_event(model="fraud", version=str(i + 1))).encode()
        genuine.append(("databricks", body, databricks_headers(body), 202))
    for i in range(45):
        request = job_request(model="main.ml.fraud", version=str(i + 1))
        genuine.append((request["delivery_id"], json.dumps(request).encode(), job_headers(), 202))
    rng = random.Random(7)
    duplicates = [rng.choice(genuine) for _ in range(30)]
    forgeries: list[tuple[str, bytes, dict[str, str], int]] = []
    for i in range(30):
        kind = i % 5
        if kind == 0:  # signed with the wrong secret
            body = mlflow_body(mlflow_envelope(name="fraud", version="999"))
            forgeries.append(("", body, mlflow_headers(body, secret="attacker-secret-0123456789"), 401))
        elif kind == 1:  # a genuine request with its body swapped
            _, _, headers = _signed_mlflow("1000")
            forgeries.append(("", mlflow_body(mlflow_envelope(name="fraud", version="1001")), headers, 401))
        elif kind == 2:  # a genuine request replayed after the tolerance window
            body = mlflow_body(mlflow_envelope(name="fraud", version="1002"))
            forgeries.append(("", body, mlflow_headers(body, timestamp=int(time.time()) - 3600), 401))
        elif kind == 3:  # Databricks format with a wrong signature
            body = json.dumps(databricks_event(model="fraud", version="1003")).encode()
            forgeries.append(("", body, databricks_headers(body, secret="attacker-secret-0123456789"), 401))
        else:  # the job route with a wrong token
            body = json.dumps(job_request(model="main.ml.fraud", version="1004")).encode()
            forgeries.append(("", body, job_headers(JOB_TOKEN[::-1]), 401))
    requests = genuine + duplicates + forgeries
    rng.shuffle(requests)
    assert len(requests) == 200
    return requests, {id(r[1]) for r in genuine}


def _route(headers: dict[str, str]) -> str:
    if "X-MLflow-Signature" in headers:
        return "mlflow"
    if "X-Databricks-Signature" in headers:
        return "databricks"
    return "databricks-job"


def test_burst_with_duplicates_and_forgeries_yields_exactly_the_unique_genuine_events(
    start_listener: StartListener, ci: CiRecorder, azurite_ports: AzuritePorts, storage_names: dict[str, str]
) -> None:
    listener = start_listener()
    requests, genuine_bodies = _burst()

    async def send_all() -> list[tuple[int, str, str]]:
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=_base_url(listener), timeout=10) as http:

            async def send(body: bytes, headers: dict[str, str]) -> tuple[int, str, str]:
                async with limit:
                    response = await http.post(f"/api/webhooks/{_route(headers)}", content=body, headers=headers)
                    data = response.json()
                    return response.status_code, data["status"], data.get("delivery_id", "")

            return await asyncio.gather(*(send(body, headers) for _, body, headers, _ in requests))

    answers = asyncio.run(send_all())

    assert [status for status, _, _ in answers] == [expected for _, _, _, expected in requests]
    accepted_ids = {delivery_id for _, outcome, delivery_id in answers if outcome == "accepted"}
    assert len(accepted_ids) == len(genuine_bodies) == 140
    ci.wait_for(140, timeout=60)
    _wait_until_drained(azurite_ports, storage_names["queue_name"])
    dispatched = _delivery_ids(ci)
    assert len(dispatched) == 140
    assert set(dispatched) == accepted_ids
