"""A real MLflow model registry for the tests: mlops.models.wine_quality with a few versions."""

from __future__ import annotations

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
