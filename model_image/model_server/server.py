"""Run the app on uvicorn: one process (the default), or a small supervisor over N worker processes.

Traps measured on this machine kind, and what this module does about them:
* `uvicorn --workers N` listens on a socket created with protocol 0, so asyncio never sets TCP_NODELAY on accepted
  connections and every keep-alive request waits for a delayed ACK (~40 ms). Here every listening socket is created
  with IPPROTO_TCP and TCP_NODELAY, in both modes.
* N workers sharing one listening socket let keep-alive connections pile onto one worker. Here each worker gets its
  own SO_REUSEPORT socket, so the kernel spreads new connections across workers.
* OpenMP/BLAS thread pools sized to the node oversubscribe a small pod: the image sets OMP_NUM_THREADS=1 and friends;
  the server logs the pod's CPU limit (from cgroups, not the node's core count) and warns when WORKERS exceeds it.

SIGTERM: uvicorn stops accepting, finishes in-flight requests (the batcher keeps predicting until the last one is
answered), then the process exits 0. With SHUTDOWN_DRAIN_SECONDS > 0 readiness turns 503 first and the server keeps
serving for that long, so the endpoint is removed from the Service before the listener closes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from model_server.app import ModelServer
from model_server.logs import configure_logging
from model_server.metrics import MULTIPROC_ENV, Metrics
from model_server.settings import Settings

EXIT_MODEL_FAILED = 3
log = logging.getLogger("model_server.server")


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The container's CPU limit in cores (cgroup v2 `cpu.max` or v1 CFS quota), or None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_v1 = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_v1 = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_v1 <= 0 else quota_v1 / period_v1


def bind_socket(host: str, port: int, *, reuse_port: bool = False, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket whose accepted connections get TCP_NODELAY (proto IPPROTO_TCP, unlike uvicorn's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server with a drain delay on SIGTERM and a clean exit status after a graceful shutdown."""

    def __init__(self, config: uvicorn.Config, app: ModelServer, drain_seconds: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_seconds = drain_seconds
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain_seconds > 0 and not self._draining and not self.should_exit:
            self._draining = True
            self._app.lifecycle.draining = True  # readiness answers 503 from now on; requests are still served
            timer = threading.Timer(self._drain_seconds, uvicorn.Server.handle_exit, (self, sig, frame))
            timer.daemon = True
            timer.start()
            return
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Unlike uvicorn's, does not re-raise the signal afterwards: a drained shutdown exits with status 0.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def run_worker(settings: Settings, sock: socket.socket) -> int:
    """Serve on `sock` until SIGTERM/SIGINT (exit 0) or until the model fails to load (EXIT_MODEL_FAILED)."""
    configure_logging(settings.log_level)
    exit_code = 0
    server: _Server | None = None

    def model_failed(reason: str) -> None:
        nonlocal exit_code
        exit_code = EXIT_MODEL_FAILED
        if server is not None:
            server.should_exit = True

    app = ModelServer(settings, Metrics(), on_fatal=model_failed)
    config = uvicorn.Config(
        app,
        loop="auto",  # uvloop when installed
        http="auto",  # httptools when installed
        ws="none",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_keep_alive=int(settings.keepalive_timeout_seconds),
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
        limit_concurrency=settings.max_concurrency or None,
    )
    server = _Server(config, app, settings.shutdown_drain_seconds)
    server.run(sockets=[sock])
    log.info("stopped", extra={"fields": {"exit_code": exit_code}})
    return exit_code


def _worker_entry(settings: Settings, sock: socket.socket) -> None:
    sys.exit(run_worker(settings, sock))


def _log_start(settings: Settings) -> None:
    limit = cgroup_cpu_limit()
    fields: dict[str, Any] = {
        "settings": settings.model_dump(mode="json", by_alias=True),
        "cpu_limit": limit,
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    log.info("starting", extra={"fields": fields})
    if limit is not None and settings.workers > max(1.0, limit):
        log.warning(
            "WORKERS exceeds the pod's CPU limit; processes will compete for CPU",
            extra={"fields": {"workers": settings.workers, "cpu_limit": limit}},
        )
    if os.environ.get("OMP_NUM_THREADS") is None:
        log.warning("OMP_NUM_THREADS is not set; OpenMP models may start one thread per node core")


def serve(settings: Settings) -> int:
    """Serve until stopped; the process exit status."""
    configure_logging(settings.log_level)
    _log_start(settings)
    if settings.workers == 1:
        return run_worker(settings, bind_socket(settings.host, settings.port))
    return Supervisor(settings).run()


class Supervisor:
    """N worker processes, each with its own SO_REUSEPORT socket; restarts a worker that dies, stops all on SIGTERM.

    A worker that exits with EXIT_MODEL_FAILED stops everything (a model that does not load will not load on retry).
    """

    max_restarts_per_minute = 5

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._context = multiprocessing.get_context("spawn")

    def _start(self, sock: socket.socket) -> Any:
        process = self._context.Process(target=_worker_entry, args=(self.settings, sock), daemon=False)
        process.start()
        return process

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._stop.set()

    def run(self) -> int:
        from prometheus_client import multiprocess

        metrics_dir = Path(tempfile.mkdtemp(prefix="model-server-metrics-"))
        os.environ[MULTIPROC_ENV] = str(metrics_dir)  # inherited by the workers, read when they import the client
        sockets = [
            bind_socket(self.settings.host, self.settings.port, reuse_port=True) for _ in range(self.settings.workers)
        ]
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        processes = [self._start(sock) for sock in sockets]
        restarts: list[float] = []
        exit_code = 0
        while not self._stop.wait(0.2):
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
                if process.exitcode == EXIT_MODEL_FAILED:
                    log.error("the model failed to load in a worker; stopping")
                    exit_code = EXIT_MODEL_FAILED
                    self._stop.set()
                    break
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 60] + [now]
                if len(restarts) > self.max_restarts_per_minute:
                    log.error("workers keep dying; stopping", extra={"fields": {"exitcode": process.exitcode}})
                    exit_code = 1
                    self._stop.set()
                    break
                log.warning(
                    "worker died; restarting it", extra={"fields": {"pid": process.pid, "exit": process.exitcode}}
                )
                processes[index] = self._start(sockets[index])
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_drain_seconds + self.settings.graceful_shutdown_seconds + 5
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
            if process.exitcode not in (0, None) and exit_code == 0 and process.exitcode != -signal.SIGTERM:
                exit_code = process.exitcode if process.exitcode > 0 else 1
        for sock in sockets:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        return exit_code
