"""Fixtures for the listener tests: one Azurite per session, a recording CI API per test, the app in-process.

Every test gets its own queue, poison queue and dedupe table, so tests share Azurite without seeing each other.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from localrun.processes import LOOPBACK, AzuritePorts, ManagedProcess, azurite, free_port, mlflow_server, running
from tests.listener.helpers import GITHUB_TOKEN, JOB_TOKEN, SECRET, CiRecorder, Listener, MakeListener, MakeSettings
from webhook_listener.app import create_app
from webhook_listener.settings import ENV_PREFIX, ListenerSettings, load_settings


@pytest.fixture(scope="session")
def azurite_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuritePorts]:
    proc, ports = azurite(tmp_path_factory.mktemp("azurite"))
    with running(proc):
        yield ports


@pytest.fixture
def ci() -> Iterator[CiRecorder]:
    recorder = CiRecorder().start()
    yield recorder
    recorder.stop()


@pytest.fixture
def storage_names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "queue_name": f"promotions-{suffix}",
        "poison_queue_name": f"promotions-{suffix}-poison",
        "dedupe_table_name": f"deliveries{suffix}",
    }


@pytest.fixture
def base_settings(azurite_ports: AzuritePorts, ci: CiRecorder, storage_names: dict[str, str]) -> dict[str, Any]:
    """Keyword arguments for `load_settings`: Azurite storage, the recorder as GitHub, fast retries."""
    return {
        "webhook_secret": SECRET,
        "job_token": JOB_TOKEN,
        "storage_connection_string": azurite_ports.connection_string,
        **storage_names,
        "github_api_url": ci.url,
        "github_repository": "acme/serving",
        "github_token": GITHUB_TOKEN,
        "retry_base_seconds": 1,
        "retry_max_seconds": 2,
        "dispatch_timeout_seconds": 1.0,
        "worker_poll_seconds": 0.1,
    }


@pytest.fixture
def make_settings(base_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> MakeSettings:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX) or name.upper() == "AZURE_CLIENT_ID":
            monkeypatch.delenv(name)

    def make(**overrides: Any) -> ListenerSettings:
        return load_settings(**{**base_settings, **overrides})

    return make


@pytest.fixture
async def make_listener(make_settings: MakeSettings) -> AsyncIterator[MakeListener]:
    made: list[Listener] = []

    async def make(**overrides: Any) -> Listener:
        settings = make_settings(**overrides)
        app = create_app(settings)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://listener.test")
        listener = Listener(settings=settings, runtime=app.state.runtime, client=client)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        await listener.client.aclose()
        await listener.runtime.aclose()


@pytest.fixture
async def listener(make_listener: MakeListener) -> Listener:
    return await make_listener()


# --- integration: real processes ----------------------------------------------------------------------------


class _Background:
    """A server started on a thread, so its slow start overlaps with the tests that do not need it. The same
    thread also imports the MLflow client (seconds of imports) for the test that uses it."""

    def __init__(self, process: ManagedProcess, timeout: float) -> None:
        self.process = process
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start, args=(timeout,), daemon=True)
        self.thread.start()

    def _start(self, timeout: float) -> None:
        try:
            self.process.start(timeout)
            importlib.import_module("mlflow.tracking")
        except BaseException as exc:  # handed to the fixture that waits for it
            self.error = exc

    def wait(self) -> ManagedProcess:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.process


@pytest.fixture(scope="session")
def _mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Background]:
    from cryptography.fernet import Fernet

    server = mlflow_server(tmp_path_factory.mktemp("mlflow"), fernet_key=Fernet.generate_key().decode())
    background = _Background(server, timeout=300)
    yield background
    background.thread.join()
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _start_mlflow_early(request: pytest.FixtureRequest) -> None:
    """`mlflow server` takes half a minute or more to start: begin at once if any selected test needs it."""
    if any("mlflow_url" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("_mlflow_server")


@pytest.fixture(scope="session")
def mlflow_url(_mlflow_server: _Background) -> str:
    """A real `mlflow server` (SQLite store, webhooks to loopback allowed), one per session."""
    server = _mlflow_server.wait()
    assert server.ready_url is not None
    return server.ready_url.removesuffix("/health")


@pytest.fixture
def start_listener(base_settings: dict[str, Any], tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """Start `python -m webhook_listener serve` as its own process (settings as LISTENER_* variables)."""
    started: list[ManagedProcess] = []

    def start(*, port: int | None = None, **overrides: Any) -> ManagedProcess:
        port = port or free_port()
        settings = {**base_settings, **overrides}
        env = {f"{ENV_PREFIX}{key.upper()}": str(value) for key, value in settings.items() if value is not None}
        process = ManagedProcess(
            name=f"listener-{port}",
            argv=[sys.executable, "-m", "webhook_listener", "serve", "--host", LOOPBACK, "--port", str(port)],
            log_path=tmp_path / f"listener-{len(started)}.log",
            env=env,
            ready_url=f"http://{LOOPBACK}:{port}/api/health",
        )
        started.append(process.start(timeout=60))
        return process

    yield start
    for process in started:
        process.stop()
