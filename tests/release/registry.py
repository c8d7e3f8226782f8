"""A real MLflow model registry for the tests: mlops.models.wine_quality with a few versions."""

from __future__ import annotations

from typing import Any

import pytest

MODEL = "mlops.models.wine_quality"


def make_registry(uri: str, versions: int = 3) -> None:
    """mlops.models.wine_quality v1..v<versions>, each from a training run, as the registry holds them."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    experiment = client.create_experiment("training")
    for _ in range(versions):
        run = client.create_run(experiment)
        client.create_model_version(MODEL, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)


# Unity Catalog refuses these in tag keys, on registered models and model versions alike
# (https://learn.microsoft.com/azure/databricks/database-objects/tags, "Constraints").
UC_FORBIDDEN_IN_TAG_KEYS = ".,-=/:"


def check_unity_catalog_tag_key(name: str, key: str | None) -> None:
    """Unity Catalog's refusal of a tag key, for a three-level (catalog.schema.model) model name."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    if name.count(".") == 2 and any(ch in str(key) for ch in UC_FORBIDDEN_IN_TAG_KEYS):
        raise MlflowException(
            f"Invalid tag key {key!r}: tag keys may not contain any of {' '.join(UC_FORBIDDEN_IN_TAG_KEYS)}",
            error_code=INVALID_PARAMETER_VALUE,
        )


def enforce_unity_catalog_tag_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real MLflow client, in this process, refuses the tag keys Unity Catalog refuses."""
    import mlflow

    client = mlflow.MlflowClient
    set_version_tag, set_model_tag = client.set_model_version_tag, client.set_registered_model_tag

    def version_tag(
        self: mlflow.MlflowClient, name: str, version: str | None = None, key: str | None = None, value: Any = None
    ) -> None:
        check_unity_catalog_tag_key(name, key)
        set_version_tag(self, name, version, key, value)

    def model_tag(self: mlflow.MlflowClient, name: str, key: str, value: Any) -> None:
        check_unity_catalog_tag_key(name, key)
        set_model_tag(self, name, key, value)

    monkeypatch.setattr(client, "set_model_version_tag", version_tag)
    monkeypatch.setattr(client, "set_registered_model_tag", model_tag)
