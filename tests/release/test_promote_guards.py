"""What a promotion checks before it proposes anything: the registry confirms it, a reviewer's "no" and a rollback
are remembered, and a newer proposal closes the older one."""

from __future__ import annotations

import json

import pytest

from release.promote import main
from stacks.pin import pin
from tests.release.ghfake import FakeGitHub
from tests.release.gitrepo import IDENTITY, ProjectRepo

MODEL = "mlops.models.wine_quality"
DIGEST = "sha256:" + "3c" * 32


def client(uri: str):  # type: ignore[no-untyped-def]
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def dispatch(repo: ProjectRepo, version: int, *extra: str, **payload: object) -> int:
    body: dict[str, object] = {"model": MODEL, "version": str(version), "alias": "champion", "target_stack": "staging"}
    body |= {"delivery_id": f"d-{version}", "source": "mlflow"} | payload
    return main(["--payload", json.dumps(body), "--repo-dir", str(repo.work), "--base", "main", *extra])


@pytest.mark.integration
def test_a_dispatch_the_registry_does_not_confirm_is_logged_and_ignored(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    live_registry: str,
    quick_diff: list[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client(live_registry).set_registered_model_alias(MODEL, "champion", "2")

    assert dispatch(project_repo, 3, "--tracking-uri", live_registry) == 0, "a forged dispatch is not a failure"
    out = capsys.readouterr().out
    assert "dispatch d-3 ignored" in out
    assert "alias 'champion' of mlops.models.wine_quality is on v2, not v3" in out
    assert project_repo.origin_git("branch", "--list", "promote/*") == ""
    assert github.requests == [], "nothing opened, nothing asked of GitHub"

    assert dispatch(project_repo, 2, "--tracking-uri", live_registry) == 0
    assert [p["head"]["ref"] for p in github.open_pulls()] == ["promote/staging/mlops.models.wine_quality-v2"]


@pytest.mark.integration
def test_a_stage_promotion_is_confirmed_by_the_versions_stage(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    live_registry: str,
    quick_diff: list[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client(live_registry).transition_model_version_stage(MODEL, "4", "Staging")

    assert dispatch(project_repo, 3, "--tracking-uri", live_registry, alias=None, stage="Staging") == 0
    assert "is in stage 'None', not 'Staging'" in capsys.readouterr().out
    assert dispatch(project_repo, 99, "--tracking-uri", live_registry, alias=None, stage="Staging") == 0
    assert "the registry has no mlops.models.wine_quality v99" in capsys.readouterr().out
    assert not github.pulls

    assert dispatch(project_repo, 4, "--tracking-uri", live_registry, alias=None, stage="Staging") == 0
    assert [p["head"]["ref"] for p in github.open_pulls()] == ["promote/staging/mlops.models.wine_quality-v4"]


def test_without_a_registry_a_dispatch_is_refused(
    project_repo: ProjectRepo, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dispatch(project_repo, 3) == 2
    assert "no registry to confirm the promotion with" in capsys.readouterr().err
    assert not github.pulls


def test_a_newer_promotion_closes_the_older_one_with_a_comment(
    project_repo: ProjectRepo, github: FakeGitHub, quick_diff: list[tuple[str, str]]
) -> None:
    assert dispatch(project_repo, 2, "--no-registry-check") == 0
    assert dispatch(project_repo, 3, "--no-registry-check") == 0

    older, newer = github.pulls[1], github.pulls[2]
    assert (older["state"], newer["state"]) == ("closed", "open")
    (comment,) = [c for c in github.comments.values() if c["pr"] == 1]
    assert comment["body"].startswith("Superseded by #2 (v3)")

    # The late run of the older one (queued, never cancelled) closes its own pull request again: newest wins.
    assert dispatch(project_repo, 2, "--no-registry-check") == 0
    assert [p["number"] for p in github.open_pulls()] == [2]


def test_a_proposal_a_reviewer_closed_is_not_reopened(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    quick_diff: list[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert dispatch(project_repo, 3, "--no-registry-check") == 0
    github.close(1)

    assert dispatch(project_repo, 3, "--no-registry-check") == 0, "a redelivered webhook"
    closed = "pull request #1 from promote/staging/mlops.models.wine_quality-v3 was closed without merging"
    assert closed in capsys.readouterr().out
    assert len(github.pulls) == 1
    assert github.pulls[1]["state"] == "closed"


def rollback_prod_from(repo: ProjectRepo, version: int) -> None:
    """What a merged prod rollback leaves on main: prod back on v1, the commit naming the version rolled back."""
    pin(repo.work, "prod", MODEL, version, DIGEST)
    repo.git("add", "Pulumi.prod.yaml")
    repo.git(*IDENTITY, "commit", "--quiet", "-m", f"Promote {MODEL} v{version} to prod")
    pin(repo.work, "prod", MODEL, 1, DIGEST)
    repo.git("add", "Pulumi.prod.yaml")
    message = f"Roll back {MODEL} to v1 on prod\n\nThis reverts commit x.\n\nRolled-Back-From: v{version}\n"
    repo.git(*IDENTITY, "commit", "--quiet", "-m", message)
    repo.git("push", "--quiet", "origin", "main")


def test_prod_is_not_proposed_the_version_it_was_rolled_back_from(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    quick_diff: list[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pin(project_repo.work, "staging", MODEL, 3)
    project_repo.git("add", "Pulumi.staging.yaml")
    project_repo.git(*IDENTITY, "commit", "--quiet", "-m", "Promote mlops.models.wine_quality v3 to staging")
    rollback_prod_from(project_repo, 3)
    built = json.dumps({"model": MODEL, "version": 3, "digest": "sha256:" + "33" * 32})
    args = ["--from-stack", "staging", "--to-stack", "prod", "--repo-dir", str(project_repo.work), "--base", "main"]

    assert main([*args, "--built-image", built]) == 0

    assert "prod was rolled back from mlops.models.wine_quality v3" in capsys.readouterr().out
    assert not github.pulls
    assert main([*args, "--built-image", built, "--allow-rolled-back"]) == 0
    assert [p["head"]["ref"] for p in github.open_pulls()] == ["promote/prod/mlops.models.wine_quality-v3"]
