"""What the release remembers and refuses across runs: day zero (nothing pinned yet), a rollback whose merge kept
no trailer, and a staging pin older than prod's (never proposed as a promotion)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release import promote, record_deployment, rollback
from release.deploy_plan import prod_only
from stacks.pin import pin
from tests.release.ghfake import FakeGitHub
from tests.release.gitrepo import IDENTITY, ProjectRepo

MODEL = "mlops.models.wine_quality"
DIGEST = "sha256:" + "5a" * 32
V3_DIGEST = "sha256:" + "33" * 32


def unpin(stack_file: Path) -> None:
    """The stack file as on day zero: no `mlops-serving:model` block (the first promotion adds it)."""
    lines = stack_file.read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("  mlops-serving:model:\n")
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    stack_file.write_text("".join(lines[:start] + lines[end:]), encoding="utf-8")


def commit(repo: ProjectRepo, message: str, *paths: str) -> str:
    repo.git("add", *(paths or ("--all",)))
    repo.git(*IDENTITY, "commit", "--quiet", "-m", message)
    repo.git("push", "--quiet", "origin", "main")
    return repo.git("rev-parse", "HEAD")


def to_prod(repo: ProjectRepo, *extra: str) -> list[str]:
    return ["--from-stack", "staging", "--to-stack", "prod", "--repo-dir", str(repo.work), "--base", "main", *extra]


def built(version: int, digest: str) -> str:
    return json.dumps({"model": MODEL, "version": version, "ref": f"acr.test/m@{digest}", "digest": digest})


def test_day_zero_records_nothing_and_says_so(
    project_repo: ProjectRepo, registry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    unpin(project_repo.file("staging"))
    argv = ["--stack", "staging", "--project-dir", str(project_repo.work), "--tracking-uri", registry]

    assert record_deployment.main([*argv, "--outputs-env", "UNSET_MODEL_IMAGE"]) == 0

    assert "pins no model yet (day zero)" in capsys.readouterr().out
    import mlflow

    assert mlflow.MlflowClient(tracking_uri=registry, registry_uri=registry).get_registered_model(MODEL).tags == {}


def test_day_zero_proposes_nothing_for_prod_and_says_so(
    project_repo: ProjectRepo, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    unpin(project_repo.file("staging"))
    commit(project_repo, "Day zero: staging pins nothing")

    assert promote.main(to_prod(project_repo, "--built-image", "")) == 0

    assert "staging pins no model yet (day zero): nothing to propose for prod" in capsys.readouterr().out
    assert github.requests == []


def test_a_staging_pin_older_than_prods_is_not_proposed_as_a_promotion(
    project_repo: ProjectRepo, github: FakeGitHub, quick_diff: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a staging rollback, the staging deploy's prod proposal would be a downgrade titled "Promote"."""
    pin(project_repo.work, "prod", MODEL, 3, V3_DIGEST)
    commit(project_repo, f"Promote {MODEL} v3 to prod", "Pulumi.prod.yaml")
    pin(project_repo.work, "staging", MODEL, 2)
    commit(project_repo, f"Roll back {MODEL} to v2 on staging", "Pulumi.staging.yaml")

    assert promote.main(to_prod(project_repo, "--built-image", built(2, DIGEST))) == 0

    out = capsys.readouterr().out
    assert "older than the v3 prod runs: a downgrade of prod is proposed only by a rollback" in out
    assert github.pulls == {}


def test_the_same_version_with_a_new_image_is_not_called_a_promotion(
    project_repo: ProjectRepo, github: FakeGitHub, quick_diff: object
) -> None:
    # Both stacks pin v1 as shipped; staging's deploy built v1 again, with a digest prod does not pin.
    assert promote.main(to_prod(project_repo, "--built-image", built(1, DIGEST))) == 0

    (pull,) = github.pulls.values()
    assert pull["title"] == f"Repin the image of {MODEL} v1 on prod"
    assert pull["body"].startswith(f"## Repin the image of {MODEL} v1 on prod")


@pytest.mark.parametrize("squash_message", ["title", "body"])
def test_a_rollback_merged_without_its_trailer_is_still_remembered(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    quick_diff: object,
    capsys: pytest.CaptureFixture[str],
    squash_message: str,
) -> None:
    """A squash merge whose message is the pull request's title (or body) drops `Rolled-Back-From:`; the version
    prod was rolled back from must still not be proposed to prod again."""
    pin(project_repo.work, "prod", MODEL, 3, V3_DIGEST)
    commit(project_repo, f"Promote {MODEL} v3 to prod", "Pulumi.prod.yaml")
    argv = ["--stack", "prod", "--to-version", "1", "--repo-dir", str(project_repo.work), "--base", "main"]
    assert rollback.main([*argv, "--no-push", "--no-registry", "--digest", DIGEST]) == 0
    branch = f"rollback/prod/{MODEL}-v1"
    squashed = {"title": f"Roll back {MODEL} to v1 on prod (#7)", "body": "Reverts prod to v1.\n\n(see #7)"}
    project_repo.git("merge", "--quiet", "--squash", branch)
    commit(project_repo, squashed[squash_message])
    assert "Rolled-Back-From" not in project_repo.git("log", "-1", "--format=%B")
    pin(project_repo.work, "staging", MODEL, 3)
    commit(project_repo, f"Promote {MODEL} v3 to staging", "Pulumi.staging.yaml")
    capsys.readouterr()

    assert promote.main(to_prod(project_repo, "--built-image", built(3, V3_DIGEST))) == 0

    assert "prod was rolled back from mlops.models.wine_quality v3 (release/rolled-back/prod.json)" in (
        capsys.readouterr().out
    )
    assert github.pulls == {}


def test_a_prod_rollback_with_its_record_is_still_a_prod_only_push() -> None:
    assert prod_only(["Pulumi.prod.yaml", "release/rolled-back/prod.json"])
    assert not prod_only(["Pulumi.staging.yaml", "release/rolled-back/staging.json"])
    assert not prod_only(["release/rolled-back/prod.json", "release/promote.py"])
