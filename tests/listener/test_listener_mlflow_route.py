"""POST /api/webhooks/mlflow: every rejection and acceptance case for the open-source MLflow format."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.listener.helpers import Listener, MakeListener, mlflow_body, mlflow_envelope, mlflow_headers
from webhook_listener.deliveries import State
from webhook_listener.schemas import Source


async def test_promotion_is_queued_before_the_202(listener: Listener) -> None:
    delivery_id = str(uuid.uuid4())
    response = await listener.post_mlflow(mlflow_envelope(version="7"), delivery_id=delivery_id)

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "delivery_id": delivery_id}
    [queued] = await listener.queued()
    assert queued.model_dump() == {
        "schema_version": 1,
        "source": Source.MLFLOW,
        "delivery_id": delivery_id,
        "model": "churn-model",
        "version": "7",
        "stage": None,
        "alias": "champion",
        "target_stack": "staging",
    }
    record = await listener.record(queued)
    assert record is not None
    assert record.state is State.ENQUEUED


async def test_redelivery_is_acknowledged_and_not_queued_again(listener: Listener) -> None:
    # MLflow retries with the same delivery id, timestamp and signature (platform-facts §1.5).
    body = mlflow_body(mlflow_envelope())
    headers = mlflow_headers(body)

    first = await listener.post("mlflow", body, headers)
    second = await listener.post("mlflow", body, headers)

    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert (second.status_code, second.json()["status"]) == (202, "duplicate")
    assert len(await listener.queued()) == 1


async def test_same_event_with_a_new_delivery_id_is_a_new_delivery(listener: Listener) -> None:
    await listener.post_mlflow(mlflow_envelope())
    second = await listener.post_mlflow(mlflow_envelope())
    assert second.json()["status"] == "accepted"
    assert len(await listener.queued()) == 2


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        ("X-MLflow-Signature", "missing X-MLflow-Signature"),
        ("X-MLflow-Delivery-Id", "missing X-MLflow-Delivery-Id or X-MLflow-Timestamp"),
        ("X-MLflow-Timestamp", "missing X-MLflow-Delivery-Id or X-MLflow-Timestamp"),
    ],
)
async def test_missing_header_is_401(listener: Listener, drop: str, reason: str) -> None:
    body = mlflow_body(mlflow_envelope())
    headers = mlflow_headers(body)
    del headers[drop]
    response = await listener.post("mlflow", body, headers)
    assert response.status_code == 401
    assert response.json() == {"status": "rejected", "reason": reason}
    assert await listener.queued() == []


async def test_wrong_secret_is_401(listener: Listener) -> None:
    response = await listener.post_mlflow(mlflow_envelope(), secret="not-the-shared-secret-at-all")
    assert response.status_code == 401
    assert response.json()["reason"] == "bad signature"
    assert await listener.queued() == []


async def test_tampered_body_is_401(listener: Listener) -> None:
    body = mlflow_body(mlflow_envelope(version="3"))
    headers = mlflow_headers(body)
    tampered = body.replace(b'"version": "3"', b'"version": "4"')
    assert tampered != body
    response = await listener.post("mlflow", tampered, headers)
    assert response.status_code == 401


async def test_signature_over_another_delivery_id_is_401(listener: Listener) -> None:
    # The delivery id is signed: a replay under a fresh id (to dodge dedupe) does not verify.
    body = mlflow_body(mlflow_envelope())
    headers = mlflow_headers(body)
    headers["X-MLflow-Delivery-Id"] = str(uuid.uuid4())
    assert (await listener.post("mlflow", body, headers)).status_code == 401


@pytest.mark.parametrize("signature", ["v2,abc", "abc", "v1,", "v1,***not-base64***"])
async def test_malformed_signature_is_401(listener: Listener, signature: str) -> None:
    body = mlflow_body(mlflow_envelope())
    headers = mlflow_headers(body)
    headers["X-MLflow-Signature"] = signature
    assert (await listener.post("mlflow", body, headers)).status_code == 401


@pytest.mark.parametrize("skew", [-301, 301, -3600])
async def test_timestamp_outside_the_window_is_401(listener: Listener, skew: int) -> None:
    # Correctly signed, but too old (a replay) or too far in the future.
    response = await listener.post_mlflow(mlflow_envelope(), timestamp=int(time.time()) + skew)
    assert response.status_code == 401
    assert response.json()["reason"] == "timestamp outside the tolerance window"


async def test_timestamp_inside_the_window_is_accepted(listener: Listener) -> None:
    response = await listener.post_mlflow(mlflow_envelope(), timestamp=int(time.time()) - 290)
    assert response.status_code == 202


async def test_tolerance_is_a_setting(make_listener: MakeListener) -> None:
    strict = await make_listener(timestamp_tolerance_seconds=10)
    response = await strict.post_mlflow(mlflow_envelope(), timestamp=int(time.time()) - 60)
    assert response.status_code == 401


async def test_malformed_timestamp_is_401(listener: Listener) -> None:
    body = mlflow_body(mlflow_envelope())
    headers = mlflow_headers(body)
    headers["X-MLflow-Timestamp"] = "yesterday"
    assert (await listener.post("mlflow", body, headers)).status_code == 401


async def test_delivery_id_unfit_for_a_row_key_is_401(listener: Listener) -> None:
    response = await listener.post_mlflow(mlflow_envelope(), delivery_id="a/b#c")
    assert response.status_code == 401


async def test_body_over_the_limit_is_413(make_listener: MakeListener) -> None:
    listener = await make_listener(max_body_bytes=1024)
    document = mlflow_envelope()
    document["data"]["description"] = "x" * 2000
    response = await listener.post_mlflow(document)
    assert response.status_code == 413
    assert await listener.queued() == []


async def test_body_over_the_limit_without_content_length_is_413(make_listener: MakeListener) -> None:
    listener = await make_listener(max_body_bytes=1024)
    body = mlflow_body({**mlflow_envelope(), "padding": "x" * 2000})

    async def chunks() -> AsyncIterator[bytes]:  # a streamed (chunked) body has no Content-Length
        for start in range(0, len(body), 256):
            yield body[start : start + 256]

    response = await listener.client.post("/api/webhooks/mlflow", content=chunks(), headers=mlflow_headers(body))
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_other_media_type_is_415(listener: Listener, content_type: str | None) -> None:
    body = mlflow_body(mlflow_envelope())
    headers = mlflow_headers(body)
    del headers["Content-Type"]
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await listener.post("mlflow", body, headers)
    assert response.status_code == 415


async def test_json_with_charset_is_accepted(listener: Listener) -> None:
    body = mlflow_body(mlflow_envelope())
    headers = mlflow_headers(body)
    headers["Content-Type"] = "application/json; charset=utf-8"
    assert (await listener.post("mlflow", body, headers)).status_code == 202


async def test_signed_body_that_is_not_json_is_400(listener: Listener) -> None:
    body = b"entity=model_version_alias&action=created"
    response = await listener.post("mlflow", body, mlflow_headers(body))
    assert response.status_code == 400
    assert response.json()["reason"] == "body is not JSON"


async def test_signed_json_that_is_not_an_object_is_400(listener: Listener) -> None:
    body = b"[1, 2, 3]"
    response = await listener.post("mlflow", body, mlflow_headers(body))
    assert response.status_code == 400


async def test_envelope_without_data_is_400_with_the_reason(listener: Listener) -> None:
    document = mlflow_envelope()
    del document["data"]
    response = await listener.post_mlflow(document)
    assert response.status_code == 400
    assert "data: Field required" in response.json()["reason"]


async def test_alias_event_without_version_is_400(listener: Listener) -> None:
    document = mlflow_envelope()
    del document["data"]["version"]
    response = await listener.post_mlflow(document)
    assert response.status_code == 400
    assert "version" in response.json()["reason"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("model_version.created", "event 'model_version.created' is not 'model_version_alias.created'"),
        ("registered_model.created", "event 'registered_model.created' is not 'model_version_alias.created'"),
        ("model_version_alias.deleted", "event 'model_version_alias.deleted' is not 'model_version_alias.created'"),
    ],
)
async def test_other_event_is_202_ignored(listener: Listener, event: str, reason: str) -> None:
    response = await listener.post_mlflow(mlflow_envelope(event))
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert response.json()["reason"] == reason
    assert await listener.queued() == []


async def test_other_alias_is_202_ignored(listener: Listener) -> None:
    response = await listener.post_mlflow(mlflow_envelope(alias="challenger"))
    assert response.status_code == 202
    assert response.json()["reason"] == "alias 'challenger' is not the promote alias 'champion'"
    assert await listener.queued() == []


async def test_other_model_is_202_ignored(make_listener: MakeListener) -> None:
    listener = await make_listener(models="fraud-model, churn-model")
    ignored = await listener.post_mlflow(mlflow_envelope(name="pricing-model"))
    accepted = await listener.post_mlflow(mlflow_envelope(name="fraud-model"))
    assert (ignored.status_code, ignored.json()["status"]) == (202, "ignored")
    assert "pricing-model" in ignored.json()["reason"]
    assert (accepted.status_code, accepted.json()["status"]) == (202, "accepted")
    assert [p.model for p in await listener.queued()] == ["fraud-model"]


async def test_promote_alias_and_target_stack_are_settings(make_listener: MakeListener) -> None:
    listener = await make_listener(promote_alias="prod", target_stack="canary")
    assert (await listener.post_mlflow(mlflow_envelope(alias="champion"))).json()["status"] == "ignored"
    assert (await listener.post_mlflow(mlflow_envelope(alias="prod"))).json()["status"] == "accepted"
    [queued] = await listener.queued()
    assert (queued.alias, queued.target_stack) == ("prod", "canary")


async def test_get_on_a_webhook_route_is_405(listener: Listener) -> None:
    assert (await listener.client.get("/api/webhooks/mlflow")).status_code == 405


async def test_extra_envelope_fields_are_allowed(listener: Listener) -> None:
    # `workspace` is added when MLFLOW_ENABLE_WORKSPACES is on (platform-facts §1.3).
    document = {**mlflow_envelope(), "workspace": "default"}
    assert (await listener.post_mlflow(document)).status_code == 202


async def test_integer_version_is_read_as_a_string(listener: Listener) -> None:
    document = mlflow_envelope()
    document["data"]["version"] = 12
    body = json.dumps(document).encode()
    assert (await listener.post("mlflow", body, mlflow_headers(body))).status_code == 202
    [queued] = await listener.queued()
    assert queued.version == "12"
