"""The release path through the whole program: the image is rebuilt when, and only when, the pinned version or the
image's code changes; prod runs, by digest, exactly what its stack file pins, from staging's registry, whatever
staging runs now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from offline.diff import flatten
from offline.harness import ProgramRun
from offline.preview import StackRun
from stacks.pin import pin
from tests.conftest import STAGING_REF, copy_project, run_variant
from tests.offline_cli import stacks_cli

MODEL = "mlops.models.wine_quality"

IMAGE = "docker-build:index:Image"
DEPLOYMENT = "kubernetes:argoproj.io/v1alpha1:Rollout"  # the model's pods: an Argo Rollout


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    a, b = flatten(before), flatten(after)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def image_of(run: ProgramRun) -> dict[str, Any]:
    return run.one(IMAGE, "model-image-image").inputs


def deployment_of(run: ProgramRun) -> dict[str, Any]:
    return run.one(DEPLOYMENT).inputs


def container_image(run: ProgramRun) -> str:
    image: str = deployment_of(run)["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def bump(version: int) -> Any:
    def edit(values: dict[str, Any]) -> None:
        values["mlops-serving:model"]["version"] = version

    return edit


def test_same_config_twice_declares_identical_image_and_deployment() -> None:
    first, second = run_variant("staging"), run_variant("staging")
    assert image_of(first) == image_of(second)
    assert deployment_of(first) == deployment_of(second)


def test_version_bump_changes_only_the_version_bearing_image_fields() -> None:
    before, after = run_variant("staging"), run_variant("staging", bump(2))
    assert changed_fields(image_of(before), image_of(after)) == [
        "buildArgs.MODEL_VERSION",
        "labels.ai.mlflow.model.version",
        "labels.org.opencontainers.image.version",
        "tags[0]",
    ]
    tag = image_of(after)["tags"][0]
    assert tag.endswith(f":2-{tag.rsplit('-', 1)[1]}")


def test_version_bump_rolls_out_only_the_pod_template() -> None:
    before, after = run_variant("staging"), run_variant("staging", bump(2))
    changed = changed_fields(deployment_of(before), deployment_of(after))
    assert changed, "a new version must roll out"
    assert all(path.startswith(("spec.template.", "metadata.labels", "metadata.annotations")) for path in changed), (
        changed
    )
    assert container_image(after) == after.outputs["modelImage"]["ref"]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda v: v["mlops-serving:serving"].update(minReplicas=2, maxReplicas=5), id="replica-count"),
        pytest.param(lambda v: v["mlops-serving:tags"].update(owner="someone-else"), id="new-tag-everywhere"),
        pytest.param(lambda v: v["mlops-serving:cluster"]["userPool"].update(maxCount=5), id="node-pool-size"),
    ],
)
def test_unrelated_change_does_not_rebuild_the_image(edit: Any) -> None:
    before, after = run_variant("staging"), run_variant("staging", edit)
    assert image_of(before) == image_of(after)
    assert container_image(before) == container_image(after)


def test_token_rotation_changes_only_the_secret_the_provider_ignores() -> None:
    before = run_variant("staging", secret_marker="rotation-a")
    after = run_variant("staging", secret_marker="rotation-b")
    image_before, image_after = image_of(before), image_of(after)
    assert changed_fields(image_before, image_after) == ["secrets.mlflow_token"]
    assert image_after["ignoreSecretsInDiffCalculation"] == ["mlflow_token"]
    assert deployment_of(before) == deployment_of(after)


def test_image_code_change_gives_a_new_tag(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    before = run_variant("staging", project_dir=project)
    server = project / "model_image" / "model_server" / "__init__.py"
    server.write_text(server.read_text() + "\n# a change to the server's code\n")
    after = run_variant("staging", project_dir=project)
    assert changed_fields(image_of(before), image_of(after)) == [
        "buildArgs.IMAGE_CODE_HASH",
        "labels.org.opencontainers.image.version",
        "tags[0]",
    ]


def test_files_the_dockerignore_excludes_do_not_rebuild(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    before = run_variant("staging", project_dir=project)
    (project / "model_image" / "__pycache__").mkdir(exist_ok=True)
    (project / "model_image" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    after = run_variant("staging", project_dir=project)
    assert image_of(before) == image_of(after)


def test_image_is_retained_on_delete_and_never_built_in_preview(staging: StackRun) -> None:
    image = staging.run.one(IMAGE, "model-image-image")
    assert image.retain_on_delete is True
    assert image.inputs["buildOnPreview"] is False
    assert image.inputs["push"] is True
    assert image.secret_inputs == ("secrets",)
    assert len(image.inputs["tags"]) == 1


def test_prod_declares_no_image_build(prod: StackRun) -> None:
    assert prod.run.all(IMAGE) == []


def test_prod_deploys_the_digest_its_stack_file_pins_from_staging_registry(staging: StackRun, prod: StackRun) -> None:
    pinned = prod.settings["model"]
    login = staging.run.outputs["registryLoginServer"]
    assert container_image(prod.run) == f"{login}/models/{MODEL}:{pinned['version']}@{pinned['imageDigest']}"
    assert prod.run.outputs["modelImage"]["digest"] == pinned["imageDigest"]


def test_prod_reads_only_the_registry_from_staging(prod: StackRun) -> None:
    # What staging runs now (its modelImage output) never decides what prod runs.
    asked = [(r.name, r.inputs) for r in prod.run.all("pulumi:pulumi:StackReference")]
    assert asked == [("shared-services", {"name": STAGING_REF})]
    staging_outputs = {
        STAGING_REF: {
            "registryId": "/subscriptions/x/registries/r",
            "registryLoginServer": "r.io",
            "listenerAlertUrl": "https://listener/api/alerts/azure-monitor?token=t",  # the action group's receiver
        }
    }
    run = run_variant("prod", stack_outputs=staging_outputs)  # no modelImage output at all
    assert container_image(run).startswith(f"r.io/models/{MODEL}:1@sha256:")


def test_prod_previews_while_staging_is_pinned_one_version_ahead(tmp_path: Path) -> None:
    # The first promotion of v2 moves staging; prod still runs v1 by digest until its own proposal is merged.
    project = copy_project(tmp_path)
    assert pin(project, "staging", MODEL, 2).changed
    proc = stacks_cli("--project-dir", str(project), "preview", "prod", "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"version": 1' in proc.stdout


def test_prod_rollback_runs_a_pinned_digest_without_staging(staging: StackRun) -> None:
    digest = "sha256:" + "ab" * 32

    def rollback(values: dict[str, Any]) -> None:
        values["mlops-serving:model"].update(version=7, imageDigest=digest)

    run = run_variant("prod", rollback, stack_outputs={STAGING_REF: staging.run.outputs})
    login = staging.run.outputs["registryLoginServer"]
    assert container_image(run) == f"{login}/models/{MODEL}:7@{digest}"


def test_staging_with_a_pinned_digest_does_not_build() -> None:
    digest = "sha256:" + "cd" * 32
    run = run_variant("staging", lambda v: v["mlops-serving:model"].update(imageDigest=digest))
    assert run.all(IMAGE) == []
    assert container_image(run).endswith(f"/models/{MODEL}:1@{digest}")
