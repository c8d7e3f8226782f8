"""A real Alertmanager (Debian's package) as the sender: what it really posts passes the route, and its repeats of a
firing alert (every `repeat_interval`) are recognised as duplicates."""

from __future__ import annotations

import datetime
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localrun.monitoring import alertmanager, port_of
from tests.listener.helpers import CiRecorder, MakeListener, Reply
from webhook_listener.schemas import QUEUED_EVENT, DriftAlert

TOKEN = "test-alertmanager-token-0123456789"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="Debian's prometheus-alertmanager"),
]


@pytest.fixture
def receiver() -> Iterator[CiRecorder]:
    recorder = CiRecorder(default=Reply(200)).start()
    yield recorder
    recorder.stop()


async def test_real_alertmanager_notifications_are_accepted_once_then_duplicates(
    make_listener: MakeListener, receiver: CiRecorder, tmp_path: Path
) -> None:
    manager = alertmanager(
        tmp_path / "am",
        webhook_url=f"{receiver.url}/api/alerts/alertmanager",
        token=TOKEN,
        group_wait="0s",
        group_interval="1s",
        repeat_interval="2s",
    )
    manager.start(timeout=60)
    try:
        starts = datetime.datetime.now(datetime.UTC).isoformat()
        alert = {
            "labels": {"alertname": "ModelDataDrift", "model_name": "wine-quality", "severity": "warning"},
            "annotations": {"summary": "drifted"},
            "startsAt": starts,
        }
        url = f"http://127.0.0.1:{port_of(manager)}/api/v2/alerts"
        deadline = time.monotonic() + 30
        while len(receiver.snapshot()) < 2 and time.monotonic() < deadline:
            httpx.post(url, json=[alert], timeout=5).raise_for_status()  # as Prometheus does, every evaluation
            time.sleep(0.5)
        sent = receiver.snapshot()
    finally:
        manager.stop()
    assert len(sent) >= 2, manager.log_tail()
    assert {r.headers["authorization"] for r in sent} == {f"Bearer {TOKEN}"}
    assert sent[0].path == "/api/alerts/alertmanager"

    listener = await make_listener(alertmanager_token=TOKEN)
    answers = []
    for request in sent[:2]:
        response = await listener.client.post(
            "/api/alerts/alertmanager", content=request.body, headers=dict(request.headers)
        )
        answers.append((response.status_code, response.json()["status"]))
    assert answers == [(202, "accepted"), (202, "duplicate")]
    services = await listener.runtime.services()
    [message] = await services.queue.client.peek_messages(max_messages=5)
    event = QUEUED_EVENT.validate_json(str(message.content))
    assert isinstance(event, DriftAlert)
    assert (event.alert, event.model) == ("ModelDataDrift", "wine-quality")
