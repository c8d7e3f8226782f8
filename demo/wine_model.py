"""The demo model: a gradient-boosted classifier of scikit-learn's wine dataset (178 wines x 13 measurements).

The data ships inside scikit-learn, so training needs no download. The model is saved the way a Databricks-trained
model arrives: cloudpickle serialization, a signature inferred from the training data, an input example, and pinned
requirements (the versions it was trained with, which the serving image installs). Next to it goes the drift
reference (`model_server.drift_reference`: a per-feature summary of the training data the server compares its
traffic with).

    save_wine_model(Path("model"))                                   # a model directory, for `serve --model-dir`
    log_wine_model("http://127.0.0.1:5000", "wine-classifier")       # a registered version, for `fetch`

The deliberately bad version a canary must stop (`demo/canary_models/failing.py`, an MLflow "models from code"
file: the file itself is the model's artifact, so the image's mlflow-skinny loads it like any pyfunc) takes the same
columns, input example, requirements and drift reference, so that its error ratio is the only thing wrong with it:

    save_failing_model(Path("bad-model"))                             # a model directory
    log_failing_model("http://127.0.0.1:5000", "wine-classifier")    # a registered version
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAILING_MODEL = Path(__file__).parent / "canary_models" / "failing.py"
# Set in the bad version's environment: it fails only once this file exists, and then this share of predictions.
FAILING_ARMED_FILE = "FAILING_ARMED_FILE"
FAILING_SHARE = "FAILING_SHARE"
# Pinned from the training environment; inferring them instead runs the model in a subprocess (about 10 s).
REQUIREMENT_PACKAGES = ("mlflow", "cloudpickle", "numpy", "pandas", "scikit-learn", "scipy")


@dataclass(frozen=True)
class RegisteredWineModel:
    name: str
    version: str
    run_id: str
    model_uri: str


def load_data() -> tuple[Any, Any]:
    """(features DataFrame with the 13 named columns, target Series of class 0/1/2)."""
    from sklearn.datasets import load_wine

    features, target = load_wine(return_X_y=True, as_frame=True)
    return features, target


def train(max_iter: int = 50, random_state: int = 0) -> tuple[Any, Any]:
    """(fitted HistGradientBoostingClassifier, training features)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    features, target = load_data()
    model = HistGradientBoostingClassifier(max_iter=max_iter, random_state=random_state)
    model.fit(features, target)
    return model, features


def pip_requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENT_PACKAGES]


def _model_kwargs(model: Any, features: Any) -> dict[str, Any]:
    from mlflow.models import infer_signature

    return {
        "signature": infer_signature(features, model.predict(features)),
        "input_example": features.head(2),
        "serialization_format": "cloudpickle",
        "pip_requirements": pip_requirements(),
    }


def save_wine_model(path: Path, *, max_iter: int = 50) -> Path:
    """Train and save the demo model to `path` (which must not exist); returns `path`."""
    import mlflow.sklearn

    from model_server.drift_reference import build_reference, save_reference

    model, features = train(max_iter=max_iter)
    mlflow.sklearn.save_model(model, str(path), **_model_kwargs(model, features))
    save_reference(build_reference(features), path)
    return path


def log_wine_model(
    tracking_uri: str, registered_model_name: str, *, experiment: str = "wine-demo", max_iter: int = 50
) -> RegisteredWineModel:
    """Train the demo model, log it in a run on `tracking_uri` and register a new version of it."""
    import mlflow.sklearn

    model, features = train(max_iter=max_iter)
    return _log_and_register(
        tracking_uri,
        registered_model_name,
        experiment=experiment,
        params={"model": "HistGradientBoostingClassifier", "max_iter": max_iter},
        log_model=lambda: mlflow.sklearn.log_model(model, name="model", **_model_kwargs(model, features)),
        features=features,
    )


def _log_and_register(
    tracking_uri: str,
    registered_model_name: str,
    *,
    experiment: str,
    params: dict[str, Any],
    log_model: Callable[[], Any],
    features: Any,
) -> RegisteredWineModel:
    """Log a model in a run on `tracking_uri` (`log_model` inside the run), add its drift reference, register it."""
    import mlflow

    from model_server.drift_reference import build_reference, log_reference

    # set_tracking_uri is process-wide and exported to MLFLOW_TRACKING_URI (which it also reads): restore that.
    previous: Any = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment(experiment)
        with mlflow.start_run() as run:
            mlflow.log_params(params)
            info = log_model()
            # Into the logged model's files before registering: a Unity Catalog version copies them when created.
            log_reference(build_reference(features), info.model_id)
            registered = mlflow.register_model(info.model_uri, registered_model_name)
    finally:
        mlflow.set_tracking_uri(previous)  # None: back to unset
    version = str(registered.version)
    return RegisteredWineModel(
        name=registered_model_name,
        version=version,
        run_id=run.info.run_id,
        model_uri=f"models:/{registered_model_name}/{version}",
    )


def _failing_model_kwargs() -> dict[str, Any]:
    from mlflow.models import infer_signature

    features = load_data()[0]
    return {
        "python_model": str(FAILING_MODEL),
        "signature": infer_signature(features),
        "input_example": features.head(2),
        "pip_requirements": pip_requirements(),
    }


def save_failing_model(path: Path) -> Path:
    """The bad version, saved to `path` (which must not exist) with its drift reference; returns `path`."""
    import mlflow.pyfunc

    from model_server.drift_reference import build_reference, save_reference

    mlflow.pyfunc.save_model(str(path), **_failing_model_kwargs())
    save_reference(build_reference(load_data()[0]), path)
    return path


def log_failing_model(
    tracking_uri: str, registered_model_name: str, *, experiment: str = "wine-demo"
) -> RegisteredWineModel:
    """Log the bad version in a run on `tracking_uri` and register it as a new version of the model."""
    import mlflow.pyfunc

    return _log_and_register(
        tracking_uri,
        registered_model_name,
        experiment=experiment,
        params={"model": "failing (models from code)"},
        log_model=lambda: mlflow.pyfunc.log_model(name="model", **_failing_model_kwargs()),
        features=load_data()[0],
    )
