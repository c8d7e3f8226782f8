"""`python -m webhook_listener`: refuses bad settings without echoing secrets; serves on loopback by default."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localrun.processes import LOOPBACK, ManagedProcess, child_env, free_port
from tests.listener.helpers import SECRET, CiRecorder, MakeListener, mlflow_envelope
from webhook_listener.settings import ALL_SETTINGS


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in child_env().items() if k not in ALL_SETTINGS}
    env.update(settings)
    return env


def test_invalid_settings_exit_2_naming_the_problem_without_the_secret() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook_listener", "serve"],
        env=_env(LISTENER_WEBHOOK_SECRET="short-secret-x", LISTENER_GITHUB_TOKEN="tok-should-not-echo"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "LISTENER_WEBHOOK_SECRET must be at least 16 characters" in result.stderr
    assert "LISTENER_STORAGE_CONNECTION_STRING" in result.stderr
    assert "short-secret-x" not in result.stderr
    assert "tok-should-not-echo" not in result.stderr


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) with a TCP socket listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


@pytest.mark.integration
def test_serve_binds_loopback_by_default_and_http_only_runs_no_worker(
    tmp_path: Path, base_settings: dict[str, Any]
) -> None:
    port = free_port()
    env = {f"LISTENER_{k.upper()}": str(v) for k, v in base_settings.items()}
    assert env["LISTENER_WEBHOOK_SECRET"] == SECRET
    log = tmp_path / "serve.log"
    process = ManagedProcess(
        name="listener-default-host",
        argv=[sys.executable, "-m", "webhook_listener", "serve", "--port", str(port), "--http-only"],
        log_path=log,
        env=env,
        ready_url=f"http://{LOOPBACK}:{port}/api/health",
    )
    process.start(timeout=60)
    try:
        text = log.read_text()
        assert f'"host":"{LOOPBACK}"' in text
        assert '"worker":false' in text
        assert "worker started" not in text
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only, nothing on 0.0.0.0 or IPv6
    finally:
        process.stop()


@pytest.mark.integration
async def test_worker_command_dispatches_what_the_http_side_queued(
    tmp_path: Path, base_settings: dict[str, Any], make_listener: MakeListener, ci: CiRecorder
) -> None:
    http_side = await make_listener()  # the same queue and table as the worker below
    accepted = await http_side.post_mlflow(mlflow_envelope(version="11"))
    assert accepted.json()["status"] == "accepted"

    env = {f"LISTENER_{k.upper()}": str(v) for k, v in base_settings.items()}
    worker = ManagedProcess(
        name="listener-worker",
        argv=[sys.executable, "-m", "webhook_listener", "worker"],
        log_path=tmp_path / "worker.log",
        env=env,
    )
    worker.start(timeout=30)
    try:
        [request] = await asyncio.to_thread(ci.wait_for, 1, 30.0)
    finally:
        worker.stop()
    assert request.json()["client_payload"]["delivery_id"] == accepted.json()["delivery_id"]
    assert worker.proc is not None
    assert worker.proc.returncode == 0  # SIGTERM: finishes the batch in hand, closes its clients, exits cleanly
    assert "worker stopped" in (tmp_path / "worker.log").read_text()
