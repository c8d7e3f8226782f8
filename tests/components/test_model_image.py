"""The model image's SBOM build: the Dockerfile's SBOM stage, built beside the pushed image from the same inputs and
cache, written to a directory of the project and pushed nowhere."""

from __future__ import annotations

import re

import pytest

from components.model_image import SBOM_FILE, SBOM_TARGET, ModelImage, ModelImageArgs, RegisteredModel
from localrun.declared_release import declared_release
from offline.harness import ProgramRun, preview_program
from tests.components.test_first_run import run
from tests.conftest import PROJECT, ROOT, STAGING_REF

IMAGE = "docker-build:index:Image"


@pytest.fixture(scope="module")
def staging() -> ProgramRun:
    return run("staging")


def test_the_sbom_is_built_from_the_images_inputs_and_cache_and_exported_to_a_directory(staging: ProgramRun) -> None:
    image = staging.one(IMAGE, "model-image-image")
    sbom = staging.one(IMAGE, "model-image-sbom")
    assert sbom.inputs["target"] == SBOM_TARGET
    assert sbom.inputs["exports"] == [{"local": {"dest": "build/sbom/staging"}}]
    assert sbom.inputs["push"] is False
    assert sbom.inputs["buildOnPreview"] is False
    assert "tags" not in sbom.inputs
    for key in ("context", "dockerfile", "platforms", "buildArgs", "ignoreSecretsInDiffCalculation"):
        assert sbom.inputs[key] == image.inputs[key], key
    assert sbom.secret_inputs == ("secrets",)
    # It reads the image's cache and keeps its own: the image's target never builds the sbom stage, and a registry
    # cache export replaces what its ref held.
    [own_cache] = [c["registry"]["ref"] for c in sbom.inputs["cacheTo"]]
    assert own_cache.endswith(":sbomcache")
    assert [c["registry"]["ref"] for c in image.inputs["cacheTo"]] != [own_cache]
    assert sbom.inputs["cacheFrom"] == [*image.inputs["cacheFrom"], {"registry": {"ref": own_cache}}]
    assert sbom.parent == staging.one("mlops:release:ModelImage").urn
    assert image.urn in sbom.dependencies


def test_the_sbom_stage_holds_the_sbom_file_alone() -> None:
    # The local exporter writes the target stage's whole root filesystem: the stage must hold the one file.
    dockerfile = (ROOT / "model_image" / "Dockerfile").read_text()
    stage = dockerfile.split(f" AS {SBOM_TARGET}\n", 1)
    assert len(stage) == 2, f"no stage {SBOM_TARGET}"
    assert stage[0].rsplit("\n", 1)[-1] == "FROM scratch"
    body = [line for line in stage[1].split("\n\n", 1)[0].splitlines() if line and not line.startswith("#")]
    assert body == [f"COPY --from=sbom /sbom/{SBOM_FILE} /{SBOM_FILE}"]
    # The stage comes before the runtime one, which stays the default target (the last stage).
    assert re.findall(r"^FROM .* AS (\S+)$", dockerfile, flags=re.M)[-1] == "runtime"


def test_the_stack_says_where_the_sbom_is_and_a_pinned_digest_builds_none(staging: ProgramRun) -> None:
    assert staging.outputs["modelImageSbomDir"] == "build/sbom/staging"
    prod = run("prod", stack_outputs={STAGING_REF: staging.outputs})
    assert prod.all(IMAGE) == []
    assert "modelImageSbomDir" not in prod.outputs


@pytest.mark.parametrize("bad", ["/tmp/sbom", "../sbom", "build/../../sbom"])
def test_an_sbom_dir_outside_the_project_is_refused_by_name(bad: str) -> None:
    def program() -> None:
        ModelImage(
            "model-image",
            ModelImageArgs(
                model=RegisteredModel(name="models.m.m", version=1),
                login_server="r.azurecr.io",
                project_dir=ROOT,
                workspace_url="https://adb-1.azuredatabricks.net",
                registry_token="t",
                sbom_dir=bad,
            ),
        )

    with pytest.raises(Exception, match=r"sbom_dir: expected a path inside the project"):
        preview_program(program, {}, project=PROJECT, stack="staging")


def test_the_local_release_builds_the_pushed_image_not_the_sbom(staging: ProgramRun) -> None:
    build = declared_release(ROOT, "staging").build
    image = staging.one(IMAGE, "model-image-image")
    assert build.tag == image.inputs["tags"][0]
