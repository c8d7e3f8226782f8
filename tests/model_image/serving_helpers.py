"""Helpers for the model server tests: real servers (ours and `mlflow models serve`) and real models."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo.wine_model import pip_requirements
from localrun.processes import LOOPBACK, ManagedProcess, free_port, mlflow_server

HERE = Path(__file__).parent
PYFUNC_MODELS = HERE / "pyfunc_models"
WINE_IDENTITY = {"MODEL_NAME": "wine", "MODEL_VERSION": "3", "MODEL_RUN_ID": "run-abc", "IMAGE_CODE_HASH": "c0ffee1"}
WINE_LIMITS = {"MAX_BODY_BYTES": "65536", "MAX_REQUEST_ROWS": "500"}
WINE_DRIFT = {"DRIFT_WINDOW_ROWS": "1000", "DRIFT_MIN_ROWS": "200"}
THREADS_ONE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class Served:
    """A running server: its base URL, its process and its log."""

    process: ManagedProcess
    port: int
    workdir: Path
    base_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.base_url = f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's JSON log lines (non-JSON lines skipped)."""
        lines = []
        for line in self.process.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def post_json(
        self, path: str, document: Any, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return httpx.post(
            self.url(path),
            content=json.dumps(document),
            headers={"content-type": "application/json", **(headers or {})},
            **kwargs,
        )


def our_server(
    model_dir: Path, workdir: Path, env: Mapping[str, str] | None = None, *, ready_path: str = "/health/ready"
) -> Served:
    """Our server on `model_dir` (not started); cwd, HOME and TMPDIR are fresh directories under `workdir`."""
    port = free_port()
    for sub in ("cwd", "home", "tmp"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    process = ManagedProcess(
        name=f"model-server-{workdir.name}",
        argv=[sys.executable, "-m", "model_server", "serve", "--model-dir", str(model_dir), "--port", str(port)],
        log_path=workdir / "server.log",
        env={
            **THREADS_ONE,
            "HOME": str(workdir / "home"),
            "TMPDIR": str(workdir / "tmp"),
            **(env or {}),
        },
        cwd=workdir / "cwd",
        ready_url=f"http://{LOOPBACK}:{port}{ready_path}",
    )
    return Served(process, port, workdir)


def mlflow_scoring_server(model_dir: Path, workdir: Path) -> Served:
    """`mlflow models serve -m model_dir -w 1`, as the exact command it execs (not started).

    `mlflow models serve` builds this command with `scoring_server.get_cmd` and execs it through bash; running it
    directly is the same server process without a second MLflow import for the CLI wrapper.
    """
    from mlflow.pyfunc.scoring_server import get_cmd

    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    command, command_env = get_cmd(str(model_dir), port=port, host=LOOPBACK, nworkers=1)  # type: ignore[arg-type]
    argv = shlex.split(command)
    process = ManagedProcess(
        name=f"mlflow-serve-{workdir.name}",
        argv=[sys.executable, "-m", *argv],
        log_path=workdir / "server.log",
        env={**THREADS_ONE, **{k: v for k, v in command_env.items() if k not in os.environ or os.environ[k] != v}},
        ready_url=f"http://{LOOPBACK}:{port}/ping",
    )
    return Served(process, port, workdir)


def registry_server(workdir: Path) -> Served:
    """A real `mlflow server` (SQLite store, artifacts served over HTTP) as a model registry (not started)."""
    import base64

    port = free_port()
    process = mlflow_server(workdir, port, fernet_key=base64.urlsafe_b64encode(os.urandom(32)).decode())
    # Registry use only: no job runner or queue consumers to start.
    process = dataclasses.replace(process, env={**(process.env or {}), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    return Served(process, port, workdir)


class Pool:
    """Servers started in background threads as soon as each is defined, stopped together."""

    def __init__(self, timeout: float = 240) -> None:
        self.timeout = timeout
        self.servers: list[Served] = []
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def start(self, served: Served) -> Served:
        def run() -> None:
            try:
                served.process.start(self.timeout)
            except BaseException as exc:
                self._errors.append(exc)

        thread = threading.Thread(target=run, name=served.process.name)
        thread.start()
        self.servers.append(served)
        self._threads.append(thread)
        return served

    def wait(self) -> None:
        """Block until every server is ready; on any failure stop them all and raise the first error."""
        for thread in self._threads:
            thread.join()
        if self._errors:
            self.stop()
            raise self._errors[0]

    def stop(self) -> None:
        threads = [threading.Thread(target=served.process.stop) for served in self.servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def save_code_model(path: Path, code_file: str, signature_columns: list[tuple[str, str]], example: Any) -> Path:
    """A pyfunc "model from code" (a file under pyfunc_models/) with an explicit column signature."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec(type_, name) for type_, name in signature_columns]))
    with warnings.catch_warnings():
        # MLflow advises type hints on predict; these models keep an explicit signature on purpose.
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(
            str(path),
            python_model=str(PYFUNC_MODELS / code_file),
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
        )
    return path


TYPED_COLUMNS = [("long", "n"), ("integer", "i"), ("boolean", "b"), ("string", "s"), ("double", "x")]


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m model_server ...` with the project's child environment."""
    from localrun.processes import child_env

    return subprocess.run(
        [sys.executable, "-m", "model_server", *args],
        env=child_env({**THREADS_ONE, **(env or {})}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The value of one sample in Prometheus text (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = dict(labels or {})
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items()):
                total += sample.value
    return total
