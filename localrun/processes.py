"""Start and stop the local servers the tests, the demo and the benchmarks run (all on 127.0.0.1).

Each server runs in its own session so that stopping it stops every child it started (`mlflow server`
starts uvicorn, a job runner and huey consumers). Output goes to a log file, never to a pipe that could fill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_BIN = REPO_ROOT / "node_modules" / ".bin"
LOOPBACK = "127.0.0.1"

# Every process the project starts gets these: no tool may phone home from here.
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PULUMI_SKIP_UPDATE_CHECK": "true",
}

# The well-known Azurite development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: ours, telemetry off, and the source roots importable."""
    env = dict(os.environ)
    env.update(TELEMETRY_OFF)
    roots = [str(REPO_ROOT), str(REPO_ROOT / "listener"), str(REPO_ROOT / "model_image")]
    if env.get("PYTHONPATH"):
        roots.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(roots)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(NODE_BIN), env.get("PATH", "")])
    if extra:
        env.update(extra)
    return env


class ProcessFailedError(RuntimeError):
    """A server exited or did not become ready; the message carries the tail of its log."""


@dataclass
class ManagedProcess:
    """One local server process, its log file and how to tell it is ready."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    ready_url: str | None = None
    ready_port: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, timeout: float = 60.0) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env(self.env),
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ProcessFailedError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._is_ready():
                return
            time.sleep(0.1)
        self.stop()
        raise ProcessFailedError(f"{self.name} was not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def _is_ready(self) -> bool:
        if self.ready_url is not None:
            try:
                return httpx.get(self.ready_url, timeout=1.0).status_code < 500
            except httpx.HTTPError:
                return False
        if self.ready_port is not None:
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, self.ready_port), timeout=0.5):
                return True
            return False
        return True

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after `grace` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


@contextlib.contextmanager
def running(process: ManagedProcess, timeout: float = 60.0) -> Iterator[ManagedProcess]:
    """Start `process`, yield it, and always stop it."""
    process.start(timeout)
    try:
        yield process
    finally:
        process.stop()


@dataclass
class AzuritePorts:
    blob: int
    queue: int
    table: int

    @property
    def connection_string(self) -> str:
        """Connection string for the well-known local development account on these ports."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://{LOOPBACK}:{self.blob}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint=http://{LOOPBACK}:{self.queue}/{AZURITE_ACCOUNT};"
            f"TableEndpoint=http://{LOOPBACK}:{self.table}/{AZURITE_ACCOUNT};"
        )


def azurite(workdir: Path, ports: AzuritePorts | None = None) -> tuple[ManagedProcess, AzuritePorts]:
    """All three Azurite services (blob, queue, table) on 127.0.0.1, telemetry off, data under `workdir`."""
    ports = ports or AzuritePorts(free_port(), free_port(), free_port())
    proc = ManagedProcess(
        name="azurite",
        argv=[
            str(NODE_BIN / "azurite"),
            "--blobHost",
            LOOPBACK,
            "--blobPort",
            str(ports.blob),
            "--queueHost",
            LOOPBACK,
            "--queuePort",
            str(ports.queue),
            "--tableHost",
            LOOPBACK,
            "--tablePort",
            str(ports.table),
            "--location",
            str(workdir),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ],
        log_path=workdir / "azurite.log",
        ready_port=ports.table,
    )
    return proc, ports


def mlflow_server(workdir: Path, port: int | None = None, *, fernet_key: str) -> ManagedProcess:
    """A real `mlflow server` with a SQLite store, serving artifacts over HTTP as a remote registry does, set up to
    deliver webhooks to loopback.

    The settings are the ones the platform facts found necessary: http and private IPs allowed (local only),
    a fixed secret-encryption key (otherwise stored webhook secrets are unreadable after a restart), and a
    one-second webhook cache so a webhook created during a run is called at once.
    """
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name="mlflow-server",
        argv=[
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{workdir / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(workdir / "artifacts"),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        log_path=workdir / "mlflow-server.log",
        env={
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": fernet_key,
            "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES": "2",
            "MLFLOW_WEBHOOK_REQUEST_TIMEOUT": "5",
            "MLFLOW_WEBHOOK_CACHE_TTL": "1",
        },
        ready_url=f"http://{LOOPBACK}:{port}/health",
    )
