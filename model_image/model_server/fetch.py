"""Fetch one registered model version's artifacts from an MLflow registry into a directory.

Used by the Dockerfile (with the registry token mounted as a BuildKit secret file) and by the local demo. Writes the
model directory as MLflow stores it plus `serving-metadata.json` with registry facts only (name, version, run id,
source), never the time of the fetch, so fetching the same version twice gives identical bytes and a cached layer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Standard library only at module level: the fetch step runs in its own venv (mlflow-skinny and the storage clients,
# no numpy or pandas), and the server imports this name from here.
METADATA_FILE = "serving-metadata.json"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$")


class FetchError(RuntimeError):
    """The model version could not be fetched; the message says which step failed."""


@dataclass(frozen=True)
class FetchedModel:
    model_name: str
    model_version: str
    run_id: str | None
    model_uri: str
    source: str | None
    model_id: str | None
    registered_at_ms: int | None


def _find_version(client: Any, model_uri: str, registry_uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    name, version, alias = parse_model_uri(model_uri)
    try:
        if version is not None:
            return client.get_model_version(name, version)
        return client.get_model_version_by_alias(name, str(alias))
    except MlflowException as exc:
        raise FetchError(f"the registry at {registry_uri} has no {model_uri}: {exc.message}") from exc


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/<name>/<version>` or `models:/<name>@<alias>` -> (name, version, alias)."""
    match = _MODELS_URI.match(uri)
    if match is None:
        raise FetchError(f"expected models:/<name>/<version> or models:/<name>@<alias>, got {uri!r}")
    return match["name"], match["version"], match["alias"]


def resolve_uris(tracking_uri: str, model_name: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """(tracking URI, registry URI) for a fetch.

    `MLFLOW_REGISTRY_URI` wins if set. A `databricks-uc` tracking URI (as the Pulumi program passes for Unity Catalog
    models) means the workspace (`databricks`) for tracking and Unity Catalog for the registry; a `databricks`
    tracking URI with a three-part model name (catalog.schema.model) also means Unity Catalog. Otherwise the registry
    is the tracking server.
    """
    registry = environ.get("MLFLOW_REGISTRY_URI") or None
    if tracking_uri.startswith("databricks-uc"):
        return "databricks" + tracking_uri[len("databricks-uc") :], registry or tracking_uri
    if tracking_uri.startswith("databricks") and model_name.count(".") == 2:
        return tracking_uri, registry or "databricks-uc" + tracking_uri[len("databricks") :]
    return tracking_uri, registry or tracking_uri


def apply_token(token: str | None, tracking_uri: str) -> None:
    """Expose the registry token to MLflow the way it reads one (bearer token / Databricks PAT) in this process only."""
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "MLFLOW_TRACKING_TOKEN"):
        if os.environ.get(name, None) == "":
            del os.environ[name]  # an empty build arg is "not set", not an empty credential
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
        if tracking_uri.startswith("databricks"):
            os.environ["DATABRICKS_TOKEN"] = token


@contextlib.contextmanager
def _mlflow_uris(tracking_uri: str, registry_uri: str) -> Iterator[None]:
    """Point MLflow's process-wide URIs at the registry for the duration (some of its artifact code ignores the URIs
    passed to it and would fall back to a default `sqlite:///mlflow.db` in the working directory), then restore."""
    import mlflow

    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    try:
        yield
    finally:
        previous_tracking: Any = saved["MLFLOW_TRACKING_URI"]
        previous_registry: Any = saved["MLFLOW_REGISTRY_URI"]
        mlflow.set_tracking_uri(previous_tracking)  # None: unset
        mlflow.set_registry_uri(previous_registry)
        if previous_registry is None:
            os.environ.pop("MLFLOW_REGISTRY_URI", None)


def fetch_model(
    model_uri: str, dest: Path, *, tracking_uri: str, token: str | None = None, expect_run_id: str | None = None
) -> FetchedModel:
    """Download `model_uri` into `dest` (which must be empty or absent) and write serving-metadata.json.

    With `expect_run_id`, refuse a version whose run id differs (the image labels it with that run id).
    """
    name = parse_model_uri(model_uri)[0]
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    apply_token(token, tracking_uri)
    tracking_uri, registry_uri = resolve_uris(tracking_uri, name, os.environ)
    with _mlflow_uris(tracking_uri, registry_uri):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        found = _find_version(client, model_uri, registry_uri)
        if expect_run_id and found.run_id != expect_run_id:
            raise FetchError(f"{model_uri} comes from run {found.run_id}, not {expect_run_id} (MODEL_RUN_ID)")
        if dest.exists() and any(dest.iterdir()):
            raise FetchError(f"{dest} is not empty; fetch into a new directory")
        dest.mkdir(parents=True, exist_ok=True)
        pinned_uri = f"models:/{name}/{found.version}"
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=pinned_uri, dst_path=str(dest), tracking_uri=tracking_uri, registry_uri=registry_uri
            )
        except MlflowException as exc:
            raise FetchError(f"downloading the artifacts of {pinned_uri} failed: {exc.message}") from exc
    if not (dest / "MLmodel").is_file():
        raise FetchError(f"{pinned_uri} was downloaded to {dest} but holds no MLmodel file")
    fetched = FetchedModel(
        model_name=name,
        model_version=str(found.version),
        run_id=found.run_id or None,
        model_uri=pinned_uri,
        source=found.source or None,
        model_id=getattr(found, "model_id", None) or None,
        registered_at_ms=int(found.creation_timestamp) if found.creation_timestamp else None,
    )
    (dest / METADATA_FILE).write_text(json.dumps(asdict(fetched), indent=2, sort_keys=True) + "\n")
    return fetched
