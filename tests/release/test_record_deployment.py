"""`release.record_deployment`: tags the deployed model version in a real MLflow registry (SQLite store, and once
through a real `mlflow server`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localrun.processes import child_env, mlflow_server, running
from release.record_deployment import (
    DeployedImage,
    RecordError,
    image_from_outputs,
    main,
    registry_uris,
    run_url,
)
from tests.release.gitrepo import ROOT
from tests.release.registry import MODEL, make_registry

DIGEST = "sha256:" + "1f" * 32
OTHER = "sha256:" + "2e" * 32


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    dest.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def client(uri: str) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def model_image_output(version: int = 1, digest: str = DIGEST) -> str:
    """`steps.up.outputs.modelImage` as the Pulumi action gives it: the object as JSON text."""
    ref = f"mlopsservingstaging.azurecr.io/models/{MODEL}@{digest}"
    return json.dumps({"model": MODEL, "version": version, "ref": ref, "digest": digest})


def test_tags_the_deployed_version_and_the_model(registry: str, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_IMAGE", model_image_output())
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme-ml/mlops-serving")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "2")

    code = main(
        [
            "--stack",
            "staging",
            "--outputs-env",
            "MODEL_IMAGE",
            "--project-dir",
            str(project),
            "--tracking-uri",
            registry,
            "--at",
            "2026-11-22T10:00:00Z",
        ]
    )

    assert code == 0
    version = client(registry).get_model_version(MODEL, "1")
    assert version.tags == {
        "deployed_staging_digest": DIGEST,
        "deployed_staging_at": "2026-11-22T10:00:00Z",
        "deployed_staging_run": "https://github.com/acme-ml/mlops-serving/actions/runs/4242/attempts/2",
    }
    model = client(registry).get_registered_model(MODEL)
    assert model.tags == {
        "deployed_staging_version": "1",
        "deployed_staging_digest": DIGEST,
        "deployed_staging_at": "2026-11-22T10:00:00Z",
    }
    assert client(registry).get_model_version(MODEL, "2").tags == {}


def test_a_later_deploy_moves_the_model_tag_and_keeps_the_old_versions_digest(
    registry: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--stack", "prod", "--project-dir", str(project), "--tracking-uri", registry, "--run-url", "u"]
    assert main([*base, "--version", "1", "--digest", DIGEST]) == 0
    assert main([*base, "--version", "2", "--digest", OTHER]) == 0

    registry_client = client(registry)
    assert registry_client.get_model_version(MODEL, "1").tags["deployed_prod_digest"] == DIGEST
    assert registry_client.get_model_version(MODEL, "2").tags["deployed_prod_digest"] == OTHER
    assert registry_client.get_registered_model(MODEL).tags["deployed_prod_version"] == "2"
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"{MODEL} v2: deployed_prod_digest={OTHER}, ")


def test_outputs_that_contradict_the_stack_file_are_not_recorded(
    registry: str, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_IMAGE", model_image_output(version=2))

    code = main(
        [
            "--stack",
            "staging",
            "--outputs-env",
            "MODEL_IMAGE",
            "--project-dir",
            str(project),
            "--tracking-uri",
            registry,
        ]
    )

    assert code == 2
    assert "the stack outputs say version 2, but 1 was expected" in capsys.readouterr().err
    assert client(registry).get_model_version(MODEL, "1").tags == {}
    assert client(registry).get_model_version(MODEL, "2").tags == {}


def test_a_version_missing_from_the_registry_fails_with_the_registrys_message(
    registry: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--stack",
            "staging",
            "--version",
            "9",
            "--digest",
            DIGEST,
            "--project-dir",
            str(project),
            "--tracking-uri",
            registry,
        ]
    )

    assert code == 1
    err = capsys.readouterr().err
    assert "the model registry refused" in err
    assert "version=9" in err


def test_no_tracking_uri_is_a_clear_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "staging", "--digest", DIGEST, "--project-dir", str(project)]) == 2
    assert "no tracking URI: set MLFLOW_TRACKING_URI" in capsys.readouterr().err


def test_runs_as_a_command_and_the_rollback_reads_what_it_wrote(registry: str, project: Path) -> None:
    from release.rollback import registry_digest

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "release.record_deployment",
            "--stack",
            "staging",
            "--digest",
            DIGEST,
            "--project-dir",
            str(project),
        ],
        cwd=ROOT,
        env=child_env({"MLFLOW_TRACKING_URI": registry}),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{MODEL} v1: deployed_staging_digest={DIGEST}, deployed_staging_at=")
    assert registry_digest(MODEL, 1, "staging", client(registry)) == (
        DIGEST,
        f"registry tag `deployed_staging_digest` on {MODEL} v1",
    )
    assert registry_digest(MODEL, 1, "prod", client(registry))[0] == DIGEST, "prod runs the image staging built"
    assert registry_digest(MODEL, 2, "staging", client(registry))[0] is None


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        (
            {"modelImage": {"model": MODEL, "version": 3, "digest": DIGEST}, "servingUrl": "http://x"},
            DeployedImage(DIGEST, MODEL, "3"),
        ),
        ({"modelImage": json.dumps({"digest": DIGEST, "ref": f"r@{DIGEST}"})}, DeployedImage(DIGEST)),
        (model_image_output(), DeployedImage(DIGEST, MODEL, "1")),
        ({"image": f"acr.io/m@{OTHER}", "kubeconfig": "[secret]"}, DeployedImage(OTHER)),
    ],
)
def test_image_from_outputs(outputs: Any, expected: DeployedImage) -> None:
    assert image_from_outputs(outputs) == expected


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"servingUrl": "http://x"}, "no image digest (sha256:...) in the stack outputs (servingUrl)"),
        ({"a": f"x@{DIGEST}", "b": f"y@{OTHER}"}, "several image digests"),
    ],
)
def test_image_from_outputs_errors(outputs: Any, message: str) -> None:
    with pytest.raises(RecordError) as raised:
        image_from_outputs(outputs)
    assert message in str(raised.value)


def test_registry_uris() -> None:
    assert registry_uris("databricks", None, "unity-catalog") == ("databricks", "databricks-uc")
    assert registry_uris("databricks", None, "workspace") == ("databricks", None)
    assert registry_uris("sqlite:///x.db", None, "unity-catalog") == ("sqlite:///x.db", None)
    assert registry_uris("databricks", "databricks", "unity-catalog") == ("databricks", "databricks")


def test_run_url() -> None:
    env = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "7"}
    assert run_url(env) == "https://github.com/o/r/actions/runs/7"
    assert run_url({}) == ""


@pytest.fixture(scope="session")
def mlflow_server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()  # the server's webhook-secret key; this test stores no secret
    server = mlflow_server(tmp_path_factory.mktemp("mlflow-server"), fernet_key=key)
    with running(server, timeout=180):
        uri = str(server.ready_url).removesuffix("/health")
        make_registry(uri, versions=2)
        yield uri


@pytest.mark.integration
@pytest.mark.slow
def test_records_through_a_real_mlflow_server(mlflow_server_uri: str, project: Path) -> None:
    """The REST path CI uses against the Databricks registry: `mlflow server` on loopback."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "release.record_deployment",
            "--stack",
            "prod",
            "--version",
            "2",
            "--digest",
            OTHER,
            "--project-dir",
            str(project),
            "--run-url",
            "https://ci.test/run/1",
        ],
        cwd=ROOT,
        env=child_env({"MLFLOW_TRACKING_URI": mlflow_server_uri}),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    assert proc.returncode == 0, proc.stderr
    tags = client(mlflow_server_uri).get_model_version(MODEL, "2").tags
    assert tags["deployed_prod_digest"] == OTHER
    assert tags["deployed_prod_run"] == "https://ci.test/run/1"
    assert client(mlflow_server_uri).get_registered_model(MODEL).tags["deployed_prod_version"] == "2"


def test_the_registry_refuses_tag_keys_unity_catalog_refuses(registry: str) -> None:
    """The stand-in's rule: Unity Catalog tag keys may not contain . , - = / : (so the old `deployed.<stack>.digest`
    could never be written)."""
    from mlflow.exceptions import MlflowException

    for key in ("deployed.staging.digest", "deployed-staging", "a:b", "a=b", "a/b", "a,b"):
        with pytest.raises(MlflowException, match="tag keys may not contain"):
            client(registry).set_model_version_tag(MODEL, "1", key, DIGEST)
        with pytest.raises(MlflowException, match="tag keys may not contain"):
            client(registry).set_registered_model_tag(MODEL, key, DIGEST)
    client(registry).set_model_version_tag(MODEL, "1", "deployed_staging_digest", DIGEST)


def test_every_key_written_is_one_unity_catalog_accepts() -> None:
    from release.record_deployment import Deployment, tag_key

    for stack in ("staging", "prod", "eu-west-prod"):
        deployment = Deployment(stack, MODEL, 1, DIGEST, "2026-01-01T00:00:00Z", "u")
        for key in [*deployment.version_tags(), *deployment.model_tags()]:
            assert not set(key) & set(".,-=/:"), key
    assert tag_key("eu-west-prod", "digest") == "deployed_eu_west_prod_digest"
