"""POST /api/webhooks/databricks: every rejection and acceptance case for Databricks registry webhooks."""

from __future__ import annotations

import json
import time

import pytest

from tests.listener.helpers import Listener, MakeListener, databricks_event, databricks_headers
from webhook_listener.schemas import Source


async def test_transition_to_a_promote_stage_is_queued(listener: Listener) -> None:
    response = await listener.post_databricks(databricks_event(model="fraud", version="8", to_stage="Production"))

    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    [queued] = await listener.queued()
    assert response.json()["delivery_id"] == queued.delivery_id
    assert queued.delivery_id.startswith("dbx-")
    assert (queued.source, queued.model, queued.version, queued.stage, queued.alias) == (
        Source.DATABRICKS,
        "fraud",
        "8",
        "Production",
        None,
    )


async def test_stage_specific_event_without_to_stage_uses_the_event_name(listener: Listener) -> None:
    document = databricks_event(event="MODEL_VERSION_TRANSITIONED_TO_PRODUCTION", to_stage=None)
    assert (await listener.post_databricks(document)).json()["status"] == "accepted"
    [queued] = await listener.queued()
    assert queued.stage == "Production"


async def test_redelivery_of_the_same_event_is_not_queued_again(listener: Listener) -> None:
    # Same webhook id, timestamp, model, version and stage: the same event, even re-serialised differently.
    document = databricks_event()
    first = await listener.post_databricks(document)
    body = json.dumps(document, indent=2, sort_keys=True).encode()
    second = await listener.post("databricks", body, databricks_headers(body))

    assert first.json()["status"] == "accepted"
    assert (second.status_code, second.json()["status"]) == (202, "duplicate")
    assert second.json()["delivery_id"] == first.json()["delivery_id"]
    assert len(await listener.queued()) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("event_timestamp", None), ("version", "9"), ("webhook_id", "another-webhook"), ("model_name", "other-model")],
)
async def test_an_event_differing_in_any_key_field_is_new(listener: Listener, field: str, value: str | None) -> None:
    original = databricks_event()
    other = {**original, field: value if value is not None else original["event_timestamp"] + 1}
    assert (await listener.post_databricks(original)).json()["status"] == "accepted"
    assert (await listener.post_databricks(other)).json()["status"] == "accepted"
    assert len(await listener.queued()) == 2


async def test_missing_signature_is_401(listener: Listener) -> None:
    body = json.dumps(databricks_event()).encode()
    response = await listener.post("databricks", body, {"Content-Type": "application/json"})
    assert response.status_code == 401
    assert response.json()["reason"] == "missing X-Databricks-Signature"


async def test_wrong_secret_is_401(listener: Listener) -> None:
    response = await listener.post_databricks(databricks_event(), secret="some-other-secret-0123456789")
    assert response.status_code == 401
    assert response.json()["reason"] == "bad signature"
    assert await listener.queued() == []


async def test_mlflow_style_signature_on_the_databricks_route_is_401(listener: Listener) -> None:
    body = json.dumps(databricks_event()).encode()
    headers = {**databricks_headers(body), "X-Databricks-Signature": "v1,AAAA"}
    assert (await listener.post("databricks", body, headers)).status_code == 401


async def test_tampered_body_is_401(listener: Listener) -> None:
    body = json.dumps(databricks_event(version="8")).encode()
    headers = databricks_headers(body)
    assert (await listener.post("databricks", body.replace(b'"8"', b'"9"'), headers)).status_code == 401


async def test_uppercase_hex_signature_is_accepted(listener: Listener) -> None:
    body = json.dumps(databricks_event()).encode()
    headers = databricks_headers(body)
    headers["X-Databricks-Signature"] = headers["X-Databricks-Signature"].upper()
    assert (await listener.post("databricks", body, headers)).status_code == 202


@pytest.mark.parametrize("age_seconds", [301, 3600 * 24, -301])
async def test_event_timestamp_outside_the_window_is_401(listener: Listener, age_seconds: int) -> None:
    # Databricks signs no timestamp header; the signed body's event_timestamp (ms) is what ages.
    stale = databricks_event(event_timestamp_ms=int((time.time() - age_seconds) * 1000))
    response = await listener.post_databricks(stale)
    assert response.status_code == 401
    assert response.json()["reason"] == "timestamp outside the tolerance window"
    assert await listener.queued() == []


async def test_body_over_the_limit_is_413(make_listener: MakeListener) -> None:
    listener = await make_listener(max_body_bytes=1024)
    document = {**databricks_event(), "text": "y" * 3000}
    assert (await listener.post_databricks(document)).status_code == 413


async def test_other_media_type_is_415(listener: Listener) -> None:
    body = json.dumps(databricks_event()).encode()
    headers = {**databricks_headers(body), "Content-Type": "text/plain"}
    assert (await listener.post("databricks", body, headers)).status_code == 415


async def test_signed_body_that_is_not_json_is_400(listener: Listener) -> None:
    body = b"<event/>"
    response = await listener.post("databricks", body, databricks_headers(body))
    assert response.status_code == 400
    assert response.json()["reason"] == "body is not JSON"


@pytest.mark.parametrize("missing", ["event", "webhook_id", "event_timestamp"])
async def test_body_missing_an_envelope_field_is_400(listener: Listener, missing: str) -> None:
    document = databricks_event()
    del document[missing]
    response = await listener.post_databricks(document)
    assert response.status_code == 400
    assert missing in response.json()["reason"]


async def test_transition_without_version_is_400(listener: Listener) -> None:
    document = databricks_event()
    del document["version"]
    response = await listener.post_databricks(document)
    assert response.status_code == 400
    assert response.json()["reason"] == "MODEL_VERSION_TRANSITIONED_STAGE needs model_name, version and to_stage"


async def test_non_numeric_version_is_400(listener: Listener) -> None:
    response = await listener.post_databricks(databricks_event(version="latest"))
    assert response.status_code == 400


@pytest.mark.parametrize("stage", ["Staging", "Archived", "None"])
async def test_other_stage_is_202_ignored(listener: Listener, stage: str) -> None:
    response = await listener.post_databricks(databricks_event(to_stage=stage))
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert response.json()["reason"] == f"stage '{stage}' is not one of the promote stages ['Production']"
    assert await listener.queued() == []


@pytest.mark.parametrize(
    "event", ["MODEL_VERSION_CREATED", "TRANSITION_REQUEST_TO_PRODUCTION_CREATED", "COMMENT_CREATED"]
)
async def test_other_event_is_202_ignored(listener: Listener, event: str) -> None:
    response = await listener.post_databricks(databricks_event(event=event))
    assert (response.status_code, response.json()["status"]) == (202, "ignored")
    assert await listener.queued() == []


async def test_registry_wide_event_without_a_model_is_202_ignored(listener: Listener) -> None:
    document = {"event": "REGISTERED_MODEL_CREATED", "webhook_id": "w1", "event_timestamp": int(time.time() * 1000)}
    assert (await listener.post_databricks(document)).json()["status"] == "ignored"


async def test_promote_stages_are_a_setting_and_case_insensitive(make_listener: MakeListener) -> None:
    listener = await make_listener(promote_stages="staging,Production")
    assert (await listener.post_databricks(databricks_event(to_stage="Staging"))).json()["status"] == "accepted"
    assert (await listener.post_databricks(databricks_event(to_stage="Archived"))).json()["status"] == "ignored"


async def test_other_model_is_202_ignored(make_listener: MakeListener) -> None:
    listener = await make_listener(models="churn-model")
    response = await listener.post_databricks(databricks_event(model="pricing"))
    assert (response.status_code, response.json()["status"]) == (202, "ignored")
    assert await listener.queued() == []
