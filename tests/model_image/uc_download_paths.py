"""Run with a venv's Python: can MLflow, in this venv, open every storage path a Unity Catalog model download may take?

The paths come from MLflow's own code at the installed version, not from a list written here:
`UnityCatalogModelsArtifactRepository._get_artifact_repo` (mlflow/store/artifact/unity_catalog_models_artifact_repo.py)
uses the Databricks SDK's Files API when the workspace says so, a presigned URL for default storage, and otherwise
`get_artifact_repo_from_storage_info` (mlflow/utils/_unity_catalog_utils.py), which picks a client by the member of
the temporary credential's `credentials` oneof the registry returned. Each member of that oneof (read from the proto
descriptor) is handed to MLflow's function with a made-up credential; the repository it builds must come back (an
ImportError there is what a missing client looks like). Nothing is sent anywhere: S3's and R2's bucket-region lookup
at construction is stubbed, and the Databricks SDK path, whose constructor asks the workspace for its metadata, is
imported, not built.

Prints one JSON object: {"<path>": "ok" | "<error>"}.
"""

# A script for another venv, patching MLflow classes: typed loosely.
# mypy: disable-error-code="no-untyped-def, method-assign, attr-defined, misc, no-untyped-call"
from __future__ import annotations

import json
import os
import sys
import warnings

warnings.simplefilter("ignore")
os.environ.setdefault("DATABRICKS_HOST", "https://adb-1.1.azuredatabricks.net")

# Where each kind of credential points (the URI schemes MLflow's repositories parse).
LOCATIONS = {
    "aws_temp_credentials": "s3://bucket/models/m/1",
    "azure_user_delegation_sas": "abfss://container@account.dfs.core.windows.net/models/m/1",
    "gcp_oauth_token": "gs://bucket/models/m/1",
    "r2_temp_credentials": "r2://bucket@account.r2.cloudflarestorage.com/models/m/1",
}


def _filled(token, member: str):
    """`token` with `member` of its credentials oneof set, every string field in it non-empty."""
    part = getattr(token, member)
    part.SetInParent()
    for field in part.DESCRIPTOR.fields:
        if field.type == field.TYPE_STRING:
            setattr(part, field.name, "x")
    return token


def main() -> int:
    results: dict[str, str] = {}
    try:
        from mlflow.store.artifact import optimized_s3_artifact_repo, r2_artifact_repo
        from mlflow.utils import _unity_catalog_utils as uc
    except ImportError as exc:
        print(json.dumps({"import mlflow's unity catalog code": repr(exc)}))
        return 0
    # The S3 and R2 repositories ask their bucket's region at construction (a network call); all else is real.
    optimized_s3_artifact_repo.OptimizedS3ArtifactRepository._get_region_name = lambda self: "us-east-1"
    r2_artifact_repo.R2ArtifactRepository._get_region_name = lambda self: "auto"
    for member in [f.name for f in uc.TemporaryCredentials.DESCRIPTOR.oneofs_by_name["credentials"].fields]:
        name = f"databricks:{member}"
        if member not in LOCATIONS:
            results[name] = f"a credential type this check has no storage location for: {member}"
            continue
        token = _filled(uc.TemporaryCredentials(), member)
        try:
            uc.get_artifact_repo_from_storage_info(LOCATIONS[member], token, lambda t=token: t)
            results[name] = "ok"
        except Exception as exc:
            results[name] = f"{exc!r} (caused by {exc.__cause__!r})"
    try:
        from mlflow.store.artifact.presigned_url_artifact_repo import PresignedUrlArtifactRepository
        from mlflow.utils.rest_utils import MlflowHostCreds

        PresignedUrlArtifactRepository(MlflowHostCreds(os.environ["DATABRICKS_HOST"], token="x"), "c.s.m", "1")
        results["databricks:presigned_url"] = "ok"
    except Exception as exc:
        results["databricks:presigned_url"] = repr(exc)
    try:
        # Its constructor builds a WorkspaceClient, which asks the workspace for its metadata: import only.
        from databricks.sdk import WorkspaceClient  # noqa: F401
        from mlflow.store.artifact.databricks_sdk_models_artifact_repo import (  # noqa: F401
            DatabricksSDKModelsArtifactRepository,
        )

        results["databricks:sdk_files_api"] = "ok"
    except Exception as exc:
        results["databricks:sdk_files_api"] = repr(exc)
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
