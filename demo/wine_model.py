"""The demo model: a gradient-boosted classifier of scikit-learn's wine dataset (178 wines x 13 measurements).

The data ships inside scikit-learn, so training needs no download. The model is saved the way a Databricks-trained
model arrives: cloudpickle serialization, a signature inferred from the training data, an input example, and pinned
requirements (the versions it was trained with, which the serving image installs). Next to it goes the drift
reference (`model_server.drift_reference`: a per-feature summary of the training data the server compares its
traffic with).

    save_wine_model(Path("model"))                                   # a model directory, for `serve --model-dir`
    log_wine_model("http://127.0.0.1:5000", "wine-classifier")       # a registered version, for `fetch`
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    import mlflow
    import mlflow.sklearn

    from model_server.drift_reference import build_reference, log_reference

    model, features = train(max_iter=max_iter)
    # set_tracking_uri is process-wide and exported to MLFLOW_TRACKING_URI (which it also reads): restore that.
    previous: Any = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment(experiment)
        with mlflow.start_run() as run:
            mlflow.log_params({"model": "HistGradientBoostingClassifier", "max_iter": max_iter})
            info = mlflow.sklearn.log_model(model, name="model", **_model_kwargs(model, features))
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
