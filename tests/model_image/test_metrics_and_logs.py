"""Metrics move as requests arrive, logs are JSON with request ids and sampled payloads, and load has no errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.model_image.serving_helpers import Served, metric_value

pytestmark = pytest.mark.integration

ROUTE = {"route": "/invocations"}


def scrape(served: Served) -> str:
    return httpx.get(served.url("/metrics")).text


def split_body(frame: Any) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}


def test_metrics_move_with_requests(wine: Served, wine_features: Any) -> None:
    before = scrape(wine)
    assert wine.post_json("/invocations", split_body(wine_features.head(1))).status_code == 200
    assert wine.post_json("/invocations", split_body(wine_features.head(5))).status_code == 200
    assert wine.post_json("/invocations", {"dataframe_split": {"columns": [], "data": [[]]}}).status_code == 400
    after = scrape(wine)

    def moved(name: str, labels: dict[str, str] | None = None) -> float:
        return metric_value(after, name, labels) - metric_value(before, name, labels)

    assert moved("model_server_requests_total", {**ROUTE, "status": "200"}) == 2
    assert moved("model_server_requests_total", {**ROUTE, "status": "400"}) == 1
    assert moved("model_server_rows_predicted_total") == 6
    assert moved("model_server_request_duration_seconds_count", ROUTE) == 3
    assert moved("model_server_request_duration_seconds_sum", ROUTE) > 0
    assert moved("model_server_batch_rows_count") == 2
    assert metric_value(after, "model_server_model_load_seconds") > 0
    assert metric_value(after, "model_server_ready") == 1


def test_access_log_is_json_with_the_request_id(wine: Served, wine_features: Any) -> None:
    response = wine.post_json("/invocations", split_body(wine_features.head(2)), headers={"x-request-id": "trace-42"})
    assert response.status_code == 200
    httpx.get(wine.url("/health/ready"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = wine.log_lines()
        access = [line for line in lines if line.get("request_id") == "trace-42" and line["logger"].endswith("access")]
        if access:
            break
        time.sleep(0.1)
    assert len(access) == 1
    entry = access[0]
    assert (entry["status"], entry["path"], entry["method"], entry["rows"]) == (200, "/invocations", "POST", 2)
    assert entry["duration_ms"] > 0
    assert entry["ts"].endswith("+00:00")
    assert not [line for line in lines if line.get("path") in {"/health/ready", "/metrics"}]  # probes stay quiet


def test_payloads_are_logged_when_sampled(wine: Served, wine_features: Any) -> None:
    # The session's wine server samples every request (PAYLOAD_LOG_SAMPLE_RATE=1).
    frame = wine_features.iloc[[1, 2]]
    response = wine.post_json("/invocations", split_body(frame), headers={"x-request-id": "payload-1"})
    assert response.status_code == 200
    payload: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while not payload and time.monotonic() < deadline:
        payload = [line for line in wine.log_lines() if line["logger"] == "model_server.payload"]
        payload = [line for line in payload if line["request_id"] == "payload-1"]
        time.sleep(0.05)
    assert len(payload) == 1
    entry = payload[0]
    assert entry["inputs"] == {"columns": list(frame.columns), "data": frame.values.tolist()}
    assert entry["outputs"] == response.json()["predictions"]
    assert (entry["model_name"], entry["model_version"]) == ("wine", "3")


def delta(before: str, after: str, name: str, labels: dict[str, str] | None = None) -> float:
    return metric_value(after, name, labels) - metric_value(before, name, labels)


async def test_concurrent_load_has_no_errors_and_batches_requests(
    wine: Served, wine_features: Any, wine_expected: Callable[[Any], list[int]]
) -> None:
    before = scrape(wine)
    frames = [wine_features.sample(n, random_state=i) for i, n in enumerate([1, 1, 1, 3, 1, 20, 1, 100])]
    expected = [wine_expected(frame) for frame in frames]
    v2_frame = wine_features.iloc[[7]]
    v2_expected = wine_expected(v2_frame)
    v2_inputs = [{"name": c, "shape": [1], "datatype": "FP64", "data": v2_frame[c].tolist()} for c in v2_frame.columns]
    v2_body = {"inputs": v2_inputs}
    failures: list[str] = []
    rows_sent = 0

    async def client(index: int) -> None:
        nonlocal rows_sent
        async with httpx.AsyncClient(base_url=wine.base_url, timeout=30) as http:
            for j in range(25):
                k = (index + j) % (len(frames) + 1)
                if k == len(frames):
                    response = await http.post("/v2/models/wine/infer", json=v2_body)
                    ok = response.status_code == 200 and response.json()["outputs"][0]["data"] == v2_expected
                    rows_sent += 1
                else:
                    response = await http.post("/invocations", json=split_body(frames[k]))
                    ok = response.status_code == 200 and response.json() == {"predictions": expected[k]}
                    rows_sent += len(frames[k])
                if not ok:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    await asyncio.gather(*(client(i) for i in range(16)))
    assert failures == []
    after = scrape(wine)
    requests = delta(before, after, "model_server_requests_total", {**ROUTE, "status": "200"}) + delta(
        before, after, "model_server_requests_total", {"route": "/v2/models/{name}/infer", "status": "200"}
    )
    predict_calls = delta(before, after, "model_server_batch_rows_count")
    assert requests == 16 * 25
    assert delta(before, after, "model_server_rows_predicted_total") == rows_sent
    assert predict_calls < requests  # concurrent requests were merged into shared predict calls
    assert delta(before, after, "model_server_batch_requests_sum") == requests
