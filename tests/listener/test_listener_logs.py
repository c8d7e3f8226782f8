"""Structured logs: one JSON object per line, the delivery id on every line about a delivery, no secret anywhere."""

from __future__ import annotations

import json
import logging

import pytest

from tests.listener.helpers import (
    ALL_SECRETS,
    GITHUB_TOKEN,
    JOB_TOKEN,
    SECRET,
    CiRecorder,
    Listener,
    Reply,
    databricks_event,
    job_request,
    mlflow_envelope,
)
from webhook_listener.logs import REDACTED, get_logger, log_event, redact, register_secrets


async def test_no_secret_reaches_a_log_line_or_the_poison_queue(
    listener: Listener, ci: CiRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    # A hostile CI API that echoes the credential back in its error body.
    ci.default = Reply(401, f'{{"message": "Bad credentials", "token": "{GITHUB_TOKEN}"}}'.encode())
    with caplog.at_level(logging.DEBUG, logger="webhook_listener"):
        accepted = await listener.post_mlflow(mlflow_envelope())
        await listener.post_mlflow(mlflow_envelope(), secret=SECRET[::-1])
        await listener.post_databricks(databricks_event(), secret=JOB_TOKEN)
        await listener.post_job(job_request(), token=f"{JOB_TOKEN}-wrong")
        job = await listener.post_job(job_request())
        assert {accepted.status_code, job.status_code} == {202}

        async def both_poisoned() -> bool:
            return len(await listener.poisoned()) == 2

        await listener.work_until(both_poisoned)

    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) >= 6
    for line in lines:
        for secret in ALL_SECRETS:
            assert secret not in line
    for poison in await listener.poisoned():
        assert GITHUB_TOKEN not in poison.model_dump_json()
        assert REDACTED in poison.reason


async def test_every_line_is_json_and_deliveries_carry_their_id(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="webhook_listener"):
        accepted = await listener.post_mlflow(mlflow_envelope())
        duplicate_of = accepted.json()["delivery_id"]
        ignored = await listener.post_mlflow(mlflow_envelope(alias="challenger"))
        rejected = await listener.post_mlflow(mlflow_envelope(), secret="wrong-secret-0123456789")

    events = [json.loads(record.getMessage()) for record in caplog.records]
    by_event = {e["event"]: e for e in events}
    assert by_event["webhook accepted"]["delivery_id"] == duplicate_of
    assert by_event["webhook accepted"]["status"] == 202
    assert by_event["webhook ignored"]["delivery_id"] == ignored.json()["delivery_id"]
    assert by_event["webhook ignored"]["reason"] == ignored.json()["reason"]
    assert by_event["webhook rejected"]["status"] == rejected.status_code == 401
    assert by_event["webhook rejected"]["reason"] == "bad signature"
    assert all({"ts", "level", "logger", "event"} <= e.keys() for e in events)


def test_registered_secrets_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    register_secrets(["a-registered-secret-value"])
    assert redact("x a-registered-secret-value y") == f"x {REDACTED} y"
    with caplog.at_level(logging.INFO, logger="webhook_listener"):
        log_event(get_logger("test"), logging.INFO, "oops", detail="leaked a-registered-secret-value")
    assert "a-registered-secret-value" not in caplog.text
    assert REDACTED in caplog.text
