"""function_app.py: what the Azure Functions host indexes, and both functions called the way the host calls them."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import azure.functions as func
import pytest

from localrun.processes import AzuritePorts
from tests.listener.helpers import GITHUB_TOKEN, SECRET, CiRecorder, mlflow_body, mlflow_envelope, mlflow_headers
from webhook_listener.schemas import Promotion, Source
from webhook_listener.settings import ALL_SETTINGS


@pytest.fixture
async def function_app(
    monkeypatch: pytest.MonkeyPatch, azurite_ports: AzuritePorts, ci: CiRecorder, storage_names: dict[str, str]
) -> AsyncIterator[ModuleType]:
    for name in ALL_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    env = {
        "LISTENER_WEBHOOK_SECRET": SECRET,
        "LISTENER_STORAGE_CONNECTION_STRING": azurite_ports.connection_string,
        "LISTENER_QUEUE_NAME": storage_names["queue_name"],
        "LISTENER_POISON_QUEUE_NAME": storage_names["poison_queue_name"],
        "LISTENER_DEDUPE_TABLE_NAME": storage_names["dedupe_table_name"],
        "LISTENER_QUEUE_TRIGGER_CONNECTION": "PromotionsStorage",
        "LISTENER_GITHUB_API_URL": ci.url,
        "LISTENER_GITHUB_REPOSITORY": "acme/serving",
        "LISTENER_GITHUB_TOKEN": GITHUB_TOKEN,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("function_app", None)
    module = importlib.import_module("function_app")
    yield module
    await module.runtime.aclose()
    sys.modules.pop("function_app", None)


def _functions(module: ModuleType) -> dict[str, Any]:
    return {f.get_function_name(): f for f in module.app.get_functions()}


def test_the_host_indexes_the_http_functions_and_one_queue_trigger(
    function_app: ModuleType, storage_names: dict[str, str]
) -> None:
    functions = _functions(function_app)
    assert set(functions) == {"http_app_func", "health", "dispatch_promotion"}

    http = json.loads(functions["http_app_func"].get_function_json())
    [http_trigger] = [b for b in http["bindings"] if b["type"] == "httpTrigger"]
    assert http_trigger["route"] == "/{*route}"
    # No function key: each route checks its own signature or token, and a key cannot be read from a new app
    # before its code is published (the first `pulumi up` would fail).
    assert http_trigger["authLevel"] == "ANONYMOUS"

    health = json.loads(functions["health"].get_function_json())
    [health_trigger] = [b for b in health["bindings"] if b["type"] == "httpTrigger"]
    assert (health_trigger["route"], health_trigger["authLevel"], health_trigger["methods"]) == (
        "health",
        "ANONYMOUS",
        ["GET"],
    )

    queue = json.loads(functions["dispatch_promotion"].get_function_json())
    [queue_trigger] = queue["bindings"]
    assert queue_trigger["type"] == "queueTrigger"
    assert queue_trigger["queueName"] == storage_names["queue_name"]
    assert queue_trigger["connection"] == "PromotionsStorage"


async def test_http_requests_reach_the_asgi_app_under_api(function_app: ModuleType) -> None:
    body = mlflow_body(mlflow_envelope())
    request = func.HttpRequest(
        method="POST",
        url="https://listener.azurewebsites.net/api/webhooks/mlflow",
        headers=mlflow_headers(body),
        params={},
        route_params={"route": "webhooks/mlflow"},
        body=body,
    )
    response = await function_app.app.middleware.handle_async(request)
    assert response.status_code == 202
    assert json.loads(response.get_body())["status"] == "accepted"

    health = func.HttpRequest(
        method="GET", url="https://listener.azurewebsites.net/api/health", headers={}, params={}, body=b""
    )
    assert (await function_app.app.middleware.handle_async(health)).status_code == 200
    health_function = _functions(function_app)["health"].get_user_function()
    assert (await health_function(health)).status_code == 200


async def test_queue_trigger_dispatches_the_message(function_app: ModuleType, ci: CiRecorder) -> None:
    promotion = Promotion(
        source=Source.MLFLOW, delivery_id="fa-1", model="m", version="2", alias="champion", target_stack="staging"
    )
    trigger = _functions(function_app)["dispatch_promotion"].get_user_function()
    await trigger(func.QueueMessage(id="1", body=promotion.model_dump_json().encode()))
    await trigger(func.QueueMessage(id="2", body=promotion.model_dump_json().encode()))

    [request] = ci.snapshot()
    assert request.path == "/repos/acme/serving/dispatches"
    assert request.json()["client_payload"]["delivery_id"] == "fa-1"


def test_host_json_keeps_the_host_from_poisoning_before_the_handler() -> None:
    from pathlib import Path

    from webhook_listener.worker import MAX_DEQUEUE_COUNT

    host = json.loads((Path(__file__).resolve().parents[2] / "listener" / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensions"]["http"]["routePrefix"] == "api"
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"
    assert host["extensions"]["queues"]["maxDequeueCount"] == MAX_DEQUEUE_COUNT
