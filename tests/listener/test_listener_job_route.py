"""POST /api/webhooks/databricks-job: the Databricks job that stands in for Unity Catalog model webhooks."""

from __future__ import annotations

import json
import time

import pytest

from tests.listener.helpers import JOB_TOKEN, SECRET, Listener, MakeListener, job_headers, job_request
from webhook_listener.schemas import Source


async def test_alias_set_by_the_job_is_queued(listener: Listener) -> None:
    request = job_request(model="main.ml.churn", version="4", delivery_id="run-881-main.ml.churn-4-champion")
    response = await listener.post_job(request)

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "delivery_id": "run-881-main.ml.churn-4-champion"}
    [queued] = await listener.queued()
    assert (queued.source, queued.model, queued.version, queued.alias, queued.stage) == (
        Source.DATABRICKS_JOB,
        "main.ml.churn",
        "4",
        "champion",
        None,
    )


async def test_job_retry_with_the_same_delivery_id_is_a_duplicate(listener: Listener) -> None:
    request = job_request()
    assert (await listener.post_job(request)).json()["status"] == "accepted"
    again = await listener.post_job({**request, "timestamp": int(time.time())})
    assert (again.status_code, again.json()["status"]) == (202, "duplicate")
    assert len(await listener.queued()) == 1


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "missing bearer token"),
        ("Bearer ", "missing bearer token"),
        ("Bearer wrong-token-0123456789abc", "bad bearer token"),
        (f"Bearer {JOB_TOKEN}x", "bad bearer token"),
    ],
)
async def test_missing_or_wrong_token_is_401(listener: Listener, authorization: str | None, reason: str) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await listener.post("databricks-job", json.dumps(job_request()).encode(), headers)
    assert response.status_code == 401
    assert response.json() == {"status": "rejected", "reason": reason}
    assert await listener.queued() == []


async def test_route_without_a_configured_token_refuses_everyone(make_listener: MakeListener) -> None:
    listener = await make_listener(job_token=None)
    response = await listener.post_job(job_request())
    assert response.status_code == 401
    assert response.json()["reason"] == "the job route is not configured"


async def test_webhook_secret_is_not_a_job_token(listener: Listener) -> None:
    assert (await listener.post_job(job_request(), token=SECRET)).status_code == 401


@pytest.mark.parametrize("skew", [-301, 301])
async def test_timestamp_outside_the_window_is_401(listener: Listener, skew: int) -> None:
    response = await listener.post_job(job_request(timestamp=int(time.time()) + skew))
    assert response.status_code == 401
    assert response.json()["reason"] == "timestamp outside the tolerance window"


async def test_body_over_the_limit_is_413(make_listener: MakeListener) -> None:
    listener = await make_listener(max_body_bytes=1024)
    response = await listener.post_job({**job_request(), "model": "m" * 2000})
    assert response.status_code == 413


async def test_other_media_type_is_415(listener: Listener) -> None:
    headers = {**job_headers(), "Content-Type": "text/plain"}
    response = await listener.post("databricks-job", json.dumps(job_request()).encode(), headers)
    assert response.status_code == 415


async def test_body_that_is_not_json_is_400(listener: Listener) -> None:
    response = await listener.post("databricks-job", b"model=x", job_headers())
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": "v4"}, "version"),
        ({"delivery_id": "has/slash"}, "delivery_id"),
        ({"model": ""}, "model"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_wrong_shape_is_400_naming_the_field(listener: Listener, change: dict[str, object], field: str) -> None:
    response = await listener.post_job({**job_request(), **change})
    assert response.status_code == 400
    assert field in response.json()["reason"]


async def test_missing_field_is_400(listener: Listener) -> None:
    request = job_request()
    del request["alias"]
    response = await listener.post_job(request)
    assert response.status_code == 400
    assert "alias: Field required" in response.json()["reason"]


async def test_other_alias_is_202_ignored(listener: Listener) -> None:
    response = await listener.post_job(job_request(alias="challenger"))
    assert (response.status_code, response.json()["status"]) == (202, "ignored")
    assert await listener.queued() == []


async def test_other_model_is_202_ignored(make_listener: MakeListener) -> None:
    listener = await make_listener(models="main.ml.churn")
    response = await listener.post_job(job_request(model="main.ml.pricing"))
    assert (response.status_code, response.json()["status"]) == (202, "ignored")
