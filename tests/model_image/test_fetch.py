"""`python -m model_server fetch` against a real `mlflow server` registry, and the model it fetches serving."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from demo.wine_model import RegisteredWineModel, load_data, log_wine_model
from model_server.drift_reference import REFERENCE_FILE, build_reference
from model_server.fetch import FetchError, fetch_model, parse_model_uri, resolve_uris
from model_server.loading import load_model
from model_server.scoring import ScoringPath
from model_server.settings import load_settings
from tests.model_image.serving_helpers import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL_NAME = "wine-classifier"


@pytest.fixture(scope="module")
def registry_uri(session_servers: Any) -> str:
    return str(session_servers.registry.base_url)


@pytest.fixture(scope="module")
def registered(registry_uri: str) -> RegisteredWineModel:
    return log_wine_model(registry_uri, MODEL_NAME)


@pytest.fixture
def isolated_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """fetch_model exports the token to this process's environment (for MLflow to read); restore it afterwards."""
    for name in ("MLFLOW_TRACKING_TOKEN", "DATABRICKS_TOKEN", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_fetch_writes_the_model_its_drift_reference_and_registry_facts_and_it_serves(
    registry_uri: str, registered: RegisteredWineModel, tmp_path: Path
) -> None:
    token_file = tmp_path / "mlflow_token"
    token_file.write_text("local-registry-token\n")
    dest = tmp_path / "model"
    result = run_cli(
        "fetch",
        "--model-uri",
        registered.model_uri,
        "--dest",
        str(dest),
        "--token-file",
        str(token_file),
        env={"MLFLOW_TRACKING_URI": registry_uri},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["fetched"] == registered.model_uri
    assert (dest / "MLmodel").is_file()
    assert "scikit-learn==" in (dest / "requirements.txt").read_text()
    metadata = json.loads((dest / "serving-metadata.json").read_text())
    assert metadata["model_name"] == MODEL_NAME
    assert metadata["model_version"] == registered.version
    assert metadata["run_id"] == registered.run_id
    assert metadata["model_uri"] == registered.model_uri
    assert "fetched" not in json.dumps(metadata).lower()  # registry facts only: no fetch time

    # The fetched directory is what the image serves: load, warm up and identify it from its metadata alone.
    loaded = load_model(load_settings({"MODEL_DIR": str(dest)}))
    identity = loaded.identity
    assert (identity.name, identity.version, identity.run_id) == (MODEL_NAME, registered.version, registered.run_id)
    assert loaded.scorer.path is ScoringPath.ARRAY
    # The drift reference the training logged into the model's files came with the version, intact.
    assert loaded.drift_reference == build_reference(load_data()[0])
    assert (dest / REFERENCE_FILE).read_text() == build_reference(load_data()[0]).model_dump_json(indent=1) + "\n"


@pytest.mark.usefixtures("isolated_mlflow")
def test_fetching_by_alias_gives_the_same_bytes(
    registry_uri: str, registered: RegisteredWineModel, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    MlflowClient(registry_uri).set_registered_model_alias(MODEL_NAME, "champion", registered.version)
    first = fetch_model(registered.model_uri, tmp_path / "a", tracking_uri=registry_uri)
    second = fetch_model(f"models:/{MODEL_NAME}@champion", tmp_path / "b", tracking_uri=registry_uri)
    assert first == second
    assert tree(tmp_path / "a") == tree(tmp_path / "b")  # reproducible: same version, same files, same metadata


@pytest.mark.usefixtures("isolated_mlflow")
def test_fetch_refusals_say_what_is_wrong(registry_uri: str, registered: RegisteredWineModel, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="expected models:/<name>/<version>"):
        fetch_model("runs:/abc/model", tmp_path / "x", tracking_uri=registry_uri)
    with pytest.raises(FetchError, match=f"has no models:/{MODEL_NAME}/999"):
        fetch_model(f"models:/{MODEL_NAME}/999", tmp_path / "x", tracking_uri=registry_uri)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "file").write_text("x")
    with pytest.raises(FetchError, match="is not empty"):
        fetch_model(registered.model_uri, occupied, tracking_uri=registry_uri)


@pytest.mark.usefixtures("isolated_mlflow")
def test_the_token_file_reaches_mlflow_as_its_token(
    registry_uri: str, registered: RegisteredWineModel, tmp_path: Path
) -> None:
    fetch_model(registered.model_uri, tmp_path / "m", tracking_uri=registry_uri, token="s3cret")
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "s3cret"
    assert "DATABRICKS_TOKEN" not in os.environ  # only for a Databricks tracking URI


@pytest.mark.parametrize(
    ("tracking", "name", "environ", "expected"),
    [
        ("https://mlflow.example", "wine", {}, ("https://mlflow.example", "https://mlflow.example")),
        ("databricks", "wine", {}, ("databricks", "databricks")),
        ("databricks", "main.ml.wine", {}, ("databricks", "databricks-uc")),
        ("databricks-uc", "main.ml.wine", {}, ("databricks", "databricks-uc")),  # what the Pulumi program passes
        ("databricks://prof", "main.ml.wine", {}, ("databricks://prof", "databricks-uc://prof")),
        ("databricks", "wine", {"MLFLOW_REGISTRY_URI": "https://r"}, ("databricks", "https://r")),
    ],
)
def test_registry_and_tracking_uris(
    tracking: str, name: str, environ: dict[str, str], expected: tuple[str, str]
) -> None:
    assert resolve_uris(tracking, name, environ) == expected


def test_model_uris() -> None:
    assert parse_model_uri("models:/wine/3") == ("wine", "3", None)
    assert parse_model_uri("models:/main.ml.wine@champion") == ("main.ml.wine", None, "champion")
    for bad in ("models:/wine", "models:/wine/latest", "runs:/abc/model", "models:/a/b/3"):
        with pytest.raises(FetchError):
            parse_model_uri(bad)
