"""Fixtures for the model server tests: real MLflow models trained here, real servers on 127.0.0.1.

Session servers start together (in threads) because each spends seconds importing MLflow:
* `wine`: our server on the demo model (identity env set, small body/row limits, payload logging on, a small drift
  window; the demo's training writes its drift reference);
* `regression`, `typed`: our server on a float regressor and on a pyfunc over every simple column type;
* `mlflow_wine`, `mlflow_regression`, `mlflow_typed`: `mlflow models serve` on the same models, for side-by-side
  byte comparisons.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from demo.wine_model import load_data, save_wine_model
from tests.model_image.serving_helpers import (
    TYPED_COLUMNS,
    WINE_DRIFT,
    WINE_IDENTITY,
    WINE_LIMITS,
    Pool,
    Served,
    mlflow_scoring_server,
    our_server,
    registry_server,
    save_code_model,
)

with warnings.catch_warnings():
    # Importing mlflow.pyfunc warns about MLflow's own type hints (mlflow/types/responses.py); with the suite's
    # filterwarnings=error that import would fail wherever it first happens. Import it once here, quietly.
    warnings.simplefilter("ignore", UserWarning)
    import mlflow.pyfunc  # noqa: F401


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def wine_model(models_dir: Path) -> Path:
    return save_wine_model(models_dir / "wine")


@pytest.fixture(scope="session")
def typed_model(models_dir: Path) -> Path:
    import pandas as pd

    example = pd.DataFrame({"n": [1, 2], "i": [3, 4], "b": [True, False], "s": ["a", "b"], "x": [0.5, 1.5]})
    example["i"] = example["i"].astype("int32")
    return save_code_model(models_dir / "typed", "typed_echo.py", TYPED_COLUMNS, example)


@pytest.fixture(scope="session")
def slow_model(models_dir: Path) -> Path:
    import pandas as pd

    return save_code_model(models_dir / "slow", "slow.py", [("double", "x")], pd.DataFrame({"x": [1.0]}))


@pytest.fixture(scope="session")
def wine_features() -> Any:
    return load_data()[0]


@pytest.fixture(scope="session")
def wine_expected(wine_model: Path, wine_features: Any) -> Callable[[Any], list[int]]:
    """The demo model's own predictions, computed in the test process, for checking answers."""
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(str(wine_model))

    def expected(frame: Any) -> list[int]:
        return [int(v) for v in model.predict(frame)]

    return expected


# ------------------------------------------------------------------------------------------------ servers


@dataclass
class SessionServers:
    wine: Served
    typed: Served
    mlflow_wine: Served
    mlflow_typed: Served
    registry: Served  # a real `mlflow server` (SQLite, artifacts over HTTP) for the fetch tests
    workers: Served  # WORKERS=2, for the multi-process test (which stops it)
    slow: Served  # a model whose load waits for the file `slow_gate`, for the lifecycle test (which stops it)
    slow_gate: Path


@pytest.fixture(scope="session")
def session_servers(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[SessionServers]:
    """Every long-lived server, each started the moment its model exists (startup is mostly MLflow imports)."""
    root = tmp_path_factory.mktemp("servers")
    gate = root / "slow-load-gate"
    slow_env = {
        "SLOW_LOAD_GATE": str(gate),
        "SLOW_PREDICT_SECONDS": "0.8",
        "BATCH_MAX_ROWS": "1",  # queued requests wait their turn: several stay in flight for seconds
        "PREDICT_IN_THREAD": "true",  # the event loop answers probes while predict runs
        "SHUTDOWN_DRAIN_SECONDS": "1",
    }
    pool = Pool()
    try:
        registry = pool.start(registry_server(root / "registry"))
        wine_model: Path = request.getfixturevalue("wine_model")
        wine_env = {**WINE_IDENTITY, **WINE_LIMITS, **WINE_DRIFT, "PAYLOAD_LOG_SAMPLE_RATE": "1"}
        wine = pool.start(our_server(wine_model, root / "wine", wine_env))
        mlflow_wine = pool.start(mlflow_scoring_server(wine_model, root / "mlflow-wine"))
        workers = pool.start(our_server(wine_model, root / "workers", {"WORKERS": "2", **WINE_IDENTITY}))
        slow_model: Path = request.getfixturevalue("slow_model")
        slow = pool.start(our_server(slow_model, root / "slow", slow_env, ready_path="/health/live"))
        typed_model: Path = request.getfixturevalue("typed_model")
        typed = pool.start(our_server(typed_model, root / "typed"))
        mlflow_typed = pool.start(mlflow_scoring_server(typed_model, root / "mlflow-typed"))
        pool.wait()
        yield SessionServers(wine, typed, mlflow_wine, mlflow_typed, registry, workers, slow, gate)
    finally:
        pool.stop()


@pytest.fixture(scope="session")
def wine(session_servers: SessionServers) -> Served:
    return session_servers.wine
