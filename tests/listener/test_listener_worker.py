"""The queue worker: dispatch to GitHub / Azure DevOps (a local recorder stands in), retries, poison, dedupe."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable

import pytest

from tests.listener.helpers import (
    AZURE_DEVOPS_TOKEN,
    GITHUB_TOKEN,
    CiRecorder,
    Listener,
    MakeListener,
    MakeSettings,
    Reply,
    mlflow_envelope,
)
from webhook_listener.deliveries import State
from webhook_listener.schemas import Promotion, Source
from webhook_listener.worker import Outcome, backoff_seconds, handle_message


async def _accepted_promotion(listener: Listener, **envelope: str) -> Promotion:
    response = await listener.post_mlflow(mlflow_envelope(**envelope))
    assert response.json()["status"] == "accepted"
    [promotion] = await listener.queued()
    return promotion


async def _queue_empty(listener: Listener) -> bool:
    """No message left at all, visible or delayed."""
    services = await listener.runtime.services()
    properties = await services.queue.client.get_queue_properties()
    return properties.approximate_message_count == 0


def _final(listener: Listener, promotion: Promotion) -> Callable[[], Awaitable[bool]]:
    async def done() -> bool:
        record = await listener.record(promotion)
        return (
            record is not None and record.state in {State.DISPATCHED, State.POISONED} and await _queue_empty(listener)
        )

    return done


async def test_github_dispatch_carries_the_contract(listener: Listener, ci: CiRecorder) -> None:
    promotion = await _accepted_promotion(listener, version="5")
    await listener.work_until(_final(listener, promotion))

    [request] = ci.snapshot()
    assert request.path == "/repos/acme/serving/dispatches"
    assert request.headers["authorization"] == f"Bearer {GITHUB_TOKEN}"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    assert request.json() == {
        "event_type": "model-promoted",
        "client_payload": {
            "model": "churn-model",
            "version": "5",
            "stage": None,
            "alias": "champion",
            "target_stack": "staging",
            "delivery_id": promotion.delivery_id,
            "source": "mlflow",
        },
    }
    record = await listener.record(promotion)
    assert record is not None
    assert (record.state, record.attempts) == (State.DISPATCHED, 1)


async def test_event_type_is_a_setting(make_listener: MakeListener, ci: CiRecorder) -> None:
    listener = await make_listener(github_event_type="release-model", github_repository="org/infra")
    promotion = await _accepted_promotion(listener)
    await listener.work_until(_final(listener, promotion))
    [request] = ci.snapshot()
    assert request.path == "/repos/org/infra/dispatches"
    assert request.json()["event_type"] == "release-model"


async def test_azure_devops_dispatch_runs_the_pipeline(make_listener: MakeListener, ci: CiRecorder) -> None:
    ci.default = Reply(200, b'{"id": 17, "state": "inProgress"}', {"Content-Type": "application/json"})
    listener = await make_listener(
        dispatch_target="azure-devops",
        github_repository=None,
        github_token=None,
        azure_devops_org_url=f"{ci.url}/acme",
        azure_devops_project="serving",
        azure_devops_pipeline_id=42,
        azure_devops_token=AZURE_DEVOPS_TOKEN,
    )
    promotion = await _accepted_promotion(listener, version="6")
    await listener.work_until(_final(listener, promotion))

    [request] = ci.snapshot()
    assert request.path == "/acme/serving/_apis/pipelines/42/runs"
    assert request.query == "api-version=7.1"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f":{AZURE_DEVOPS_TOKEN}".encode()).decode()
    assert request.json() == {
        "variables": {
            "model": {"value": "churn-model"},
            "version": {"value": "6"},
            "stage": {"value": ""},
            "alias": {"value": "champion"},
            "target_stack": {"value": "staging"},
            "delivery_id": {"value": promotion.delivery_id},
            "source": {"value": "mlflow"},
        }
    }
    record = await listener.record(promotion)
    assert record is not None
    assert record.state is State.DISPATCHED


async def test_azure_devops_sign_in_page_is_an_auth_failure(make_listener: MakeListener, ci: CiRecorder) -> None:
    ci.default = Reply(203, b"<html>Sign in</html>", {"Content-Type": "text/html"})
    listener = await make_listener(
        dispatch_target="azure-devops",
        azure_devops_org_url=f"{ci.url}/acme",
        azure_devops_project="serving",
        azure_devops_pipeline_id=42,
        azure_devops_token=AZURE_DEVOPS_TOKEN,
    )
    promotion = await _accepted_promotion(listener)
    await listener.work_until(_final(listener, promotion))
    [poison] = await listener.poisoned()
    assert poison.error_kind == "unauthorized"
    assert len(ci.snapshot()) == 1


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply(401, b'{"message": "Bad credentials"}'), "unauthorized"),
        (Reply(404, b'{"message": "Not Found"}'), "not_found"),
        (Reply(422, b'{"message": "Invalid request"}'), "unprocessable"),
        (Reply(403, b'{"message": "Resource not accessible by integration"}'), "forbidden"),
        (Reply(400, b"bad variables"), "bad_request"),
    ],
)
async def test_non_retryable_failure_goes_to_poison_at_once_with_the_reason(
    listener: Listener, ci: CiRecorder, caplog: pytest.LogCaptureFixture, reply: Reply, kind: str
) -> None:
    ci.default = reply
    promotion = await _accepted_promotion(listener)
    with caplog.at_level(logging.INFO, logger="webhook_listener"):
        await listener.work_until(_final(listener, promotion))

    assert len(ci.snapshot()) == 1  # not retried
    [poison] = await listener.poisoned()
    assert poison.promotion == promotion
    assert poison.error_kind == kind
    assert poison.attempts == 1
    assert f"HTTP {reply.status}" in poison.reason
    assert reply.body.decode()[:20] in poison.reason
    assert "not retryable" in poison.reason
    record = await listener.record(promotion)
    assert record is not None
    assert record.state is State.POISONED
    assert record.last_error is not None
    assert f"HTTP {reply.status}" in record.last_error
    logged = [json.loads(r.getMessage()) for r in caplog.records if "dispatch poisoned" in r.getMessage()]
    assert [(e["error_kind"], e["status"], e["delivery_id"]) for e in logged] == [
        (kind, reply.status, promotion.delivery_id)
    ]


async def test_server_error_is_retried_until_it_succeeds(listener: Listener, ci: CiRecorder) -> None:
    ci.script(Reply(502, b"bad gateway"), Reply(500, b"boom"))
    promotion = await _accepted_promotion(listener)
    await listener.work_until(_final(listener, promotion))

    assert [r.json()["client_payload"]["delivery_id"] for r in ci.snapshot()] == [promotion.delivery_id] * 3
    record = await listener.record(promotion)
    assert record is not None
    assert (record.state, record.attempts) == (State.DISPATCHED, 3)
    assert await listener.poisoned() == []


async def test_retries_stop_after_the_maximum_and_poison_carries_the_last_error(
    make_listener: MakeListener, ci: CiRecorder
) -> None:
    ci.default = Reply(503, b"service unavailable")
    listener = await make_listener(max_dispatch_attempts=3)
    promotion = await _accepted_promotion(listener)
    await listener.work_until(_final(listener, promotion))

    assert len(ci.snapshot()) == 3
    [poison] = await listener.poisoned()
    assert poison.error_kind == "server_error"
    assert poison.attempts == 3
    assert "HTTP 503" in poison.reason
    assert "gave up after 3 attempts" in poison.reason


async def test_timeout_is_retried(listener: Listener, ci: CiRecorder, caplog: pytest.LogCaptureFixture) -> None:
    ci.script(Reply(204, delay=2.5))  # longer than dispatch_timeout_seconds=1
    promotion = await _accepted_promotion(listener)
    with caplog.at_level(logging.WARNING, logger="webhook_listener"):
        await listener.work_until(_final(listener, promotion))

    record = await listener.record(promotion)
    assert record is not None
    assert (record.state, record.attempts) == (State.DISPATCHED, 2)
    kinds = [json.loads(r.getMessage()).get("error_kind") for r in caplog.records]
    assert "timeout" in kinds


async def test_rate_limit_is_retried(listener: Listener, ci: CiRecorder) -> None:
    ci.script(Reply(429, b"slow down", {"Retry-After": "1"}))
    promotion = await _accepted_promotion(listener)
    await listener.work_until(_final(listener, promotion))
    record = await listener.record(promotion)
    assert record is not None
    assert (record.state, record.attempts) == (State.DISPATCHED, 2)


async def test_ci_down_then_back_loses_nothing(make_listener: MakeListener, ci: CiRecorder) -> None:
    listener = await make_listener(max_dispatch_attempts=20)
    ci.stop()  # connection refused
    promotion = await _accepted_promotion(listener)

    async def failed_twice() -> bool:
        record = await listener.record(promotion)
        return record is not None and record.attempts >= 2

    await listener.work_until(failed_twice)
    assert ci.snapshot() == []
    ci.start()
    await listener.work_until(_final(listener, promotion))

    [request] = ci.snapshot()
    assert request.json()["client_payload"]["delivery_id"] == promotion.delivery_id
    record = await listener.record(promotion)
    assert record is not None
    assert record.state is State.DISPATCHED


async def test_message_delivered_twice_dispatches_once(listener: Listener, ci: CiRecorder) -> None:
    promotion = await _accepted_promotion(listener)
    services = await listener.runtime.services()
    await services.queue.enqueue(promotion)  # a second copy, as an at-least-once queue may deliver
    await services.queue.enqueue(promotion)
    await listener.work_until(_final(listener, promotion))
    assert len(ci.snapshot()) == 1


async def test_handler_skips_a_delivery_already_dispatched(listener: Listener, ci: CiRecorder) -> None:
    promotion = await _accepted_promotion(listener)
    body = promotion.model_dump_json()
    assert await handle_message(listener.runtime, body) is Outcome.DISPATCHED
    assert await handle_message(listener.runtime, body) is Outcome.DUPLICATE
    assert len(ci.snapshot()) == 1


async def test_handler_defers_while_another_copy_holds_the_lease(listener: Listener, ci: CiRecorder) -> None:
    ci.script(Reply(204, delay=0.5))
    promotion = await _accepted_promotion(listener)
    body = promotion.model_dump_json()
    first, second = await asyncio.gather(handle_message(listener.runtime, body), handle_message(listener.runtime, body))
    assert sorted([first, second]) == sorted([Outcome.DISPATCHED, Outcome.BUSY])
    assert len(ci.snapshot()) == 1


async def test_malformed_queue_message_goes_to_poison(listener: Listener, ci: CiRecorder) -> None:
    assert await handle_message(listener.runtime, '{"model": "x"}') is Outcome.POISONED
    [poison] = await listener.poisoned()
    assert poison.error_kind == "malformed_message"
    assert poison.raw_message == '{"model": "x"}'
    assert poison.promotion is None
    assert ci.snapshot() == []


async def test_message_whose_record_is_gone_is_still_dispatched(listener: Listener, ci: CiRecorder) -> None:
    promotion = Promotion(
        source=Source.DATABRICKS_JOB, delivery_id="orphan-1", model="m", version="1", alias="champion", target_stack="s"
    )
    assert await handle_message(listener.runtime, promotion.model_dump_json()) is Outcome.DISPATCHED
    assert len(ci.snapshot()) == 1


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 2, 4), (2, 4, 8), (3, 8, 16), (10, 30, 60)])
def test_backoff_grows_exponentially_with_jitter_and_a_cap(
    make_settings: MakeSettings, attempt: int, low: int, high: int
) -> None:
    settings = make_settings(retry_base_seconds=4, retry_max_seconds=60)
    delays = {backoff_seconds(attempt, settings) for _ in range(200)}
    assert all(low <= d <= high for d in delays), delays
    assert len(delays) > 1  # jittered


def test_backoff_honours_retry_after_within_the_cap(make_settings: MakeSettings) -> None:
    settings = make_settings(retry_base_seconds=1, retry_max_seconds=60)
    assert backoff_seconds(1, settings, retry_after=30) == 30
    assert backoff_seconds(1, settings, retry_after=3600) == 60
