"""Day zero: an empty subscription and a new Databricks account. The stack files pin no model yet, the new workspace's
registry is empty, and the first `pulumi up` must still bring up the whole platform; the first promotion then adds
the image and the deployment, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from offline.harness import ProgramRun
from offline.preview import preview_document, run_stack
from stacks.pin import pin
from stacks.settings_errors import SettingsError
from tests.conftest import ROOT, STAGING_REF, copy_project, run_variant
from tests.offline_cli import stacks_cli
from tests.release.gitrepo import commit_all, make_template

MODEL = "mlops.models.wine_quality"
IMAGE = "docker-build:index:Image"
DEPLOYMENT = "kubernetes:argoproj.io/v1alpha1:Rollout"  # the model's pods: an Argo Rollout
JOB = "databricks:index/job:Job"
WEBHOOK = "databricks:index/mlflowWebhook:MlflowWebhook"
STAGING_MODEL_BLOCK = (
    "  # The model this stack serves. Changed only by `python -m stacks pin` (the promote workflow).\n"
)


def without_model(values: dict[str, Any]) -> None:
    del values["mlops-serving:model"]


def day_zero_file(project: Path, stack: str) -> None:
    """The stack file as a platform team writes it before any model exists: no `model` mapping at all."""
    path = project / f"Pulumi.{stack}.yaml"
    text = path.read_text()
    start = text.index(STAGING_MODEL_BLOCK)
    path.write_text(text[:start] + text[text.index("  mlops-serving:serving:") :])


@pytest.fixture(scope="module")
def day_zero_staging() -> ProgramRun:
    # registry_models={}: the workspace is created in this run, so nothing is registered in it.
    return run_variant("staging", without_model, registry_models={})


def test_a_stack_file_may_leave_the_model_out(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    day_zero_file(project, "staging")
    day_zero_file(project, "prod")
    from stacks.files import load_stack_config

    assert load_stack_config(project, "staging").settings().model is None
    assert load_stack_config(project, "prod").settings().model is None


def test_day_zero_staging_comes_up_complete_without_image_or_deployment(day_zero_staging: ProgramRun) -> None:
    run = day_zero_staging
    assert run.all(IMAGE) == []
    assert run.all(DEPLOYMENT) == []
    for platform in (
        "azure-native:databricks:Workspace",
        "azure-native:containerregistry:Registry",
        "azure-native:keyvault:Vault",
        "azure-native:web:WebApp",
        "azure-native:containerservice:ManagedCluster",
        "azure-native:operationalinsights:Workspace",
        "databricks:index/schema:Schema",
        JOB,
    ):
        assert run.all(platform), f"day zero lacks {platform}"
    assert "modelImage" not in run.outputs
    assert "servingUrl" not in run.outputs
    assert "modelRollout" not in run.outputs  # the deploy workflow's wait is skipped: nothing to wait for


def test_day_zero_job_reads_the_schema_so_the_first_version_fires_it(day_zero_staging: ProgramRun) -> None:
    job = day_zero_staging.one(JOB).inputs
    assert {"name": "securable", "default": "mlops.models"} in job["parameters"]
    assert {"name": "alias", "default": "champion"} in job["parameters"]
    assert job["schedule"]["pauseStatus"] == "UNPAUSED"
    schema = day_zero_staging.one("databricks:index/schema:Schema")
    assert schema.urn in day_zero_staging.one(JOB).dependencies or any(
        schema.parent == d for d in day_zero_staging.one(JOB).dependencies
    )


def test_day_zero_outputs_say_what_comes_next(day_zero_staging: ProgramRun) -> None:
    step = day_zero_staging.outputs["nextStep"]
    assert "register a model version in mlops.models" in step
    assert "set its alias 'champion'" in step
    assert "python -m stacks pin staging --model mlops.models.<model> --version <v>" in step


def test_day_zero_prod_comes_up_with_its_cluster_and_no_deployment(day_zero_staging: ProgramRun) -> None:
    run = run_variant("prod", without_model, stack_outputs={STAGING_REF: day_zero_staging.outputs})
    assert run.all("azure-native:containerservice:ManagedCluster")
    assert run.all(DEPLOYMENT) == []
    assert "with the digest acme-ml/mlops-serving/staging built" in run.outputs["nextStep"]


def test_a_new_workspace_cannot_build_a_pinned_version() -> None:
    # Today's first `pulumi up` of the shipped staging: the image build fetches models:/<name>/1 from the workspace
    # the same run creates, whose registry is empty.
    with pytest.raises(
        Exception, match=r"RESOURCE_DOES_NOT_EXIST: Registered Model with name=mlops\.models\.wine_quality"
    ):
        run_variant("staging", registry_models={})


def test_a_registered_version_builds_and_an_unregistered_one_does_not() -> None:
    run = run_variant("staging", registry_models={MODEL: [1]})
    assert run.one(IMAGE, "model-image-image").inputs["buildArgs"]["MODEL_NAME"] == MODEL
    with pytest.raises(Exception, match=r"Model Version \(name=mlops\.models\.wine_quality, version=2\) not found"):
        run_variant("staging", lambda v: v["mlops-serving:model"].update(version=2), registry_models={MODEL: [1]})


# A pinned digest: nothing is built, so the only registry call is the webhook's or the trigger's.
PREBUILT = "sha256:" + "0f" * 32


def workspace_registry(values: dict[str, Any]) -> None:
    values["mlops-serving:modelRegistry"] = {"type": "workspace"}
    values["mlops-serving:model"].update(name="wine-quality", catalog="workspace", imageDigest=PREBUILT)
    values["mlops-serving:release"]["webhookScope"] = "model"


def test_a_model_scoped_webhook_for_a_model_not_yet_registered_is_refused() -> None:
    with pytest.raises(Exception, match="RESOURCE_DOES_NOT_EXIST: Registered Model with name=wine-quality not found"):
        run_variant("staging", workspace_registry, registry_models={})
    run = run_variant("staging", workspace_registry, registry_models={"wine-quality": [1]})
    assert run.one(WEBHOOK).inputs["modelName"] == "wine-quality"


def test_the_declared_model_exists_from_day_zero_owned_by_the_registerers_group(
    day_zero_staging: ProgramRun,
) -> None:
    # Declared by the stack (not by whoever registers first), so every registerer in the owner group can set its
    # alias, and it exists before any version is registered.
    [model] = day_zero_staging.all("databricks:index/registeredModel:RegisteredModel")
    assert (model.inputs["catalogName"], model.inputs["schemaName"], model.inputs["name"]) == (
        "mlops",
        "models",
        "wine_quality",
    )
    assert model.inputs["owner"] == "ml-engineers"
    assert model.retain_on_delete


def test_a_model_scoped_job_reads_the_declared_model() -> None:
    def model_scope(values: dict[str, Any]) -> None:
        values["mlops-serving:release"]["webhookScope"] = "model"
        values["mlops-serving:model"]["imageDigest"] = PREBUILT

    run = run_variant("staging", model_scope, registry_models={})
    assert {"name": "securable", "default": MODEL} in run.one(JOB).inputs["parameters"]


def test_day_zero_with_a_model_scoped_trigger_is_refused_naming_the_key(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    day_zero_file(project, "staging")
    path = project / "Pulumi.staging.yaml"
    path.write_text(path.read_text().replace("    webhookScope: registry\n", "    webhookScope: model\n"))
    from stacks.files import load_stack_config

    with pytest.raises(SettingsError) as caught:
        load_stack_config(project, "staging").settings()
    [problem] = caught.value.problems
    assert problem.startswith("Pulumi.staging.yaml: mlops-serving:release.webhookScope: model needs a pinned model")


def test_the_first_pin_adds_the_model_mapping_and_keeps_every_comment(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    day_zero_file(project, "staging")
    before = (project / "Pulumi.staging.yaml").read_text()

    result = pin(project, "staging", MODEL, 1)

    after = (project / "Pulumi.staging.yaml").read_text()
    assert result.changed
    assert result.describe() == f"Pulumi.staging.yaml: {MODEL} pinned at version 1 (first pin)"
    added = f"  mlops-serving:model:\n    name: {MODEL}\n    version: 1\n"
    assert after == before.replace("  mlops-serving:serving:\n", added + "  mlops-serving:serving:\n")
    assert not pin(project, "staging", MODEL, 1).changed


def test_the_first_pin_of_prod_carries_the_digest(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    day_zero_file(project, "prod")
    digest = "sha256:" + "ef" * 32
    with pytest.raises(SettingsError) as caught:
        pin(project, "prod", MODEL, 1)
    assert caught.value.problems[0].startswith("Pulumi.prod.yaml: mlops-serving:model.imageDigest: is required")
    pin(project, "prod", MODEL, 1, digest)
    assert f"    imageDigest: {digest}\n" in (project / "Pulumi.prod.yaml").read_text()


def test_first_promotion_diff_adds_the_image_and_the_deployment_and_nothing_else(tmp_path: Path) -> None:
    repo = make_template(tmp_path / "repo")
    day_zero_file(repo, "staging")
    commit_all(repo, "Day zero: no model pinned")
    pin(repo, "staging", MODEL, 1)

    proc = stacks_cli("diff", "--base", "HEAD", "staging", "--json", cwd=repo)

    assert proc.returncode == 0, proc.stderr
    diff = json.loads(proc.stdout)
    assert {c["path"] for c in diff["config"]} == {"model.name", "model.version", "model.catalog"}
    kinds = {r["kind"] for r in diff["resources"]}
    assert kinds == {"add"}, diff["summary"]
    added_types = {r["type"] for r in diff["resources"]}
    assert IMAGE in added_types
    assert DEPLOYMENT in added_types
    assert "mlops:release:ModelImage" in added_types
    after = preview_document(run_stack(repo, "staging"))
    by_name = {r["name"]: r for r in after["resources"]}
    for change in diff["resources"]:
        assert _under(by_name, change["name"], {"model-image", "model"}), f"{change['type']} {change['name']} added"
    assert {o["path"].split(".")[0] for o in diff["outputs"]} == {
        "modelImage",
        "modelImageSbomDir",
        "modelRollout",
        "servingUrl",
        "nextStep",
    }


def _under(by_name: dict[str, dict[str, Any]], name: str, roots: set[str]) -> bool:
    """Whether resource `name` is one of the component roots or declared inside one of them."""
    while name not in roots:
        parent = by_name[name]["parent"]
        if parent is None:
            return False
        name = parent.split("::", 1)[1]
    return True


def test_shipped_stacks_still_preview() -> None:
    proc = stacks_cli("preview", "staging", "prod", "--json", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
