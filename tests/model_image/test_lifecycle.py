"""Start, readiness, drain on SIGTERM, load failures and several workers, on real server processes."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from localrun.processes import free_port
from tests.model_image.serving_helpers import Served, metric_value, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def status(served: Served, path: str) -> int:
    try:
        return httpx.get(served.url(path), timeout=5).status_code
    except httpx.HTTPError:
        return -1


def test_ready_only_after_warm_up_and_sigterm_drains_in_flight_requests(session_servers: Any) -> None:
    # The session started this server with SLOW_PREDICT_SECONDS=0.8, BATCH_MAX_ROWS=1, PREDICT_IN_THREAD=true and
    # SHUTDOWN_DRAIN_SECONDS=1; its model's load waits until the gate file exists.
    served: Served = session_servers.slow
    try:
        # Listening, alive, but the model is still loading: not ready, and scoring says so.
        assert httpx.get(served.url("/health/live")).status_code == 200
        loading = httpx.get(served.url("/health/ready"))
        assert (loading.status_code, loading.json()["status"]) == (503, "loading")
        assert status(served, "/ping") == 503
        refused = served.post_json("/invocations", {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}})
        assert refused.status_code == 503
        assert "still loading" in refused.json()["message"]
        assert httpx.get(served.url("/version")).json()["ready"] is False

        session_servers.slow_gate.touch()  # let the model load
        wait_for(lambda: status(served, "/health/ready") == 200, 90, "readiness")
        assert httpx.get(served.url("/metrics")).text.count("model_server_ready 1.0") == 1

        results: list[tuple[int, Any]] = []

        def score(value: float) -> None:
            response = served.post_json(
                "/invocations", {"dataframe_split": {"columns": ["x"], "data": [[value]]}}, timeout=30
            )
            results.append((response.status_code, response.json()))

        threads = [threading.Thread(target=score, args=(float(i),)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        assert served.process.proc is not None
        os.kill(served.process.proc.pid, signal.SIGTERM)
        started = time.monotonic()

        # Draining: readiness fails at once so the endpoint leaves the Service, but requests are still served.
        draining = httpx.get(served.url("/health/ready"))
        assert (draining.status_code, draining.json()["status"]) == (503, "draining")
        late = threading.Thread(target=score, args=(10.0,))
        late.start()
        threads.append(late)

        # After the drain the listener closes; the requests already in flight still finish.
        wait_for(lambda: status(served, "/health/live") == -1, 10, "the listener to close")
        assert time.monotonic() - started >= 0.9
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(results, key=lambda r: r[1]["predictions"][0]) == [
            (200, {"predictions": [v * 2]}) for v in (0.0, 1.0, 2.0, 3.0, 10.0)
        ]
        assert served.process.proc.wait(timeout=30) == 0
        assert served.log_lines()[-1]["msg"] == "stopped"
    finally:
        served.process.stop()


def test_a_model_dir_without_a_model_exits_with_status_3(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    served = run_cli("serve", "--model-dir", str(tmp_path / "empty"), "--port", str(free_port()), timeout=60)
    assert served.returncode == 3, served.stdout + served.stderr
    assert "holds no MLflow model (no MLmodel file)" in served.stdout
    checked = run_cli("check", "--model-dir", str(tmp_path / "empty"), timeout=60)
    assert checked.returncode == 3
    assert "holds no MLflow model" in checked.stderr


def test_invalid_settings_stop_the_start_and_name_the_variable(tmp_path: Path) -> None:
    result = run_cli(
        "serve", "--model-dir", str(tmp_path), env={"MAX_BODY_BYTES": "ten", "PAYLOAD_LOG_SAMPLE_RATE": "2"}
    )
    assert result.returncode == 2
    assert "MAX_BODY_BYTES" in result.stderr
    assert "PAYLOAD_LOG_SAMPLE_RATE" in result.stderr


def test_two_workers_split_connections_and_add_up_their_metrics(session_servers: Any) -> None:
    served: Served = session_servers.workers  # WORKERS=2
    try:
        # `model_server_ready` is the minimum over live workers: 1 once both have warmed up.
        def both_ready() -> bool:
            return metric_value(httpx.get(served.url("/metrics")).text, "model_server_ready") == 1

        wait_for(both_ready, 90, "both workers")
        body = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}  # refused (missing columns), cheap
        for _ in range(40):
            response = served.post_json("/invocations", body, headers={"connection": "close"})
            assert response.status_code == 400
        # Whichever worker answers the scrape, it reports both workers' counts.
        for _ in range(4):
            text = httpx.get(served.url("/metrics"), headers={"connection": "close"}).text
            assert metric_value(text, "model_server_requests_total", {"route": "/invocations", "status": "400"}) == 40
        # SO_REUSEPORT spread the 40 fresh connections over both workers.
        pids = {line["pid"] for line in served.log_lines() if line["logger"] == "model_server.access"}
        assert len(pids) == 2

        # Keep-alive requests are not held back by delayed ACKs (TCP_NODELAY on every worker's socket).
        with httpx.Client(base_url=served.base_url) as client:
            timings = []
            for _ in range(30):
                started = time.perf_counter()
                assert client.get("/health/live").status_code == 200
                timings.append(time.perf_counter() - started)
        assert statistics.median(timings) < 0.035

        assert served.process.proc is not None
        os.kill(served.process.proc.pid, signal.SIGTERM)
        assert served.process.proc.wait(timeout=60) == 0
    finally:
        served.process.stop()
