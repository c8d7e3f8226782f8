"""After the analysis aborts a canary: the registry records the abort on that version, a pull request reverts the pin
with the failed check and value, and the aborted version is not proposed to the stack again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from release import canary_aborted, promote, record_deployment, rollback
from stacks.pin import pin
from tests.release.ghfake import FakeGitHub
from tests.release.gitrepo import IDENTITY, ProjectRepo
from tests.release.registry import MODEL

# What `release.await_rollout` writes as `reason` when error-ratio failed its measurements.
REASON = "canary aborted: error-ratio failed 2 of 2 measurements, last value 0.62 (bound 0.01)"


def client(uri: str) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def promote_commit(repo: ProjectRepo, version: int) -> str:
    pin(repo.work, "staging", MODEL, version)
    repo.git("add", "Pulumi.staging.yaml")
    repo.git(*IDENTITY, "commit", "--quiet", "-m", f"Promote {MODEL} v{version} to staging")
    repo.git("push", "--quiet", "origin", "main")
    return repo.git("rev-parse", "HEAD")


def record_abort(repo: ProjectRepo, registry: str, *extra: str) -> int:
    return record_deployment.main(
        ["--stack", "staging", "--aborted", "--project-dir", str(repo.work), "--tracking-uri", registry, *extra]
    )


def revert(repo: ProjectRepo, *extra: str) -> int:
    args = ["--stack", "staging", "--to-version", "previous", "--repo-dir", str(repo.work), "--base", "main"]
    return rollback.main([*args, "--no-registry", *extra])


def dispatch(repo: ProjectRepo, version: int, registry: str, *extra: str) -> int:
    body = {"model": MODEL, "version": str(version), "alias": "champion", "target_stack": "staging"}
    body |= {"delivery_id": f"d-{version}", "source": "mlflow"}
    args = ["--payload", json.dumps(body), "--repo-dir", str(repo.work), "--base", "main"]
    return promote.main([*args, "--tracking-uri", registry, *extra])


def test_the_abort_is_recorded_on_the_version_and_the_stack_still_names_the_one_it_runs(
    project_repo: ProjectRepo, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered = client(registry)
    registered.set_registered_model_tag(MODEL, "deployed_staging_version", "2")
    promote_commit(project_repo, 3)
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme-ml/mlops-serving")
    monkeypatch.setenv("GITHUB_RUN_ID", "77")

    assert record_abort(project_repo, registry, "--reason", REASON, "--at", "2026-12-07T20:00:00Z") == 0

    tags = registered.get_model_version(MODEL, "3").tags
    assert tags["aborted_staging_at"] == "2026-12-07T20:00:00Z"
    assert tags["aborted_staging_reason"] == REASON
    assert tags["aborted_staging_run"] == "https://github.com/acme-ml/mlops-serving/actions/runs/77"
    assert "deployed_staging_digest" not in tags, "an aborted version never ran on the stack"
    assert registered.get_registered_model(MODEL).tags["deployed_staging_version"] == "2", "the stack runs v2"


def test_a_long_reason_is_cut_to_what_unity_catalog_keeps_and_put_on_one_line(
    project_repo: ProjectRepo, registry: str
) -> None:
    promote_commit(project_repo, 3)
    long = "latency-p99 failed:\n" + "x" * 2000

    assert record_abort(project_repo, registry, "--reason", long) == 0

    kept = client(registry).get_model_version(MODEL, "3").tags["aborted_staging_reason"]
    assert len(kept) == record_deployment.MAX_TAG_VALUE
    assert kept.startswith("latency-p99 failed: xxx")
    assert kept.endswith("…")


def test_an_abort_without_a_reason_or_with_an_image_is_refused(
    project_repo: ProjectRepo, registry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert record_abort(project_repo, registry) == 2
    assert "--aborted needs --reason" in capsys.readouterr().err
    assert record_abort(project_repo, registry, "--reason", REASON, "--digest", "sha256:" + "1f" * 32) == 2
    assert "--aborted records no image" in capsys.readouterr().err
    assert "aborted_staging_at" not in client(registry).get_model_version(MODEL, "1").tags


def test_the_revert_returns_to_the_previous_version_and_names_the_failed_check(
    project_repo: ProjectRepo, github: FakeGitHub, quick_diff: list[tuple[str, str]]
) -> None:
    promote_commit(project_repo, 2)
    v3 = promote_commit(project_repo, 3)

    assert revert(project_repo, "--from-version", "3", "--reason", REASON) == 0

    pushed = project_repo.origin_git("rev-parse", f"refs/heads/rollback/staging/{MODEL}-v2")
    message = project_repo.git("log", "-1", "--format=%B", pushed)
    assert message.splitlines()[0] == f"Roll back {MODEL} to v2 on staging"
    assert f"Reason: {REASON}" in message
    assert f"This reverts commit {v3}" in message
    assert "Rolled-Back-From: v3" in message
    assert "version: 2" in project_repo.show(pushed, "staging")
    assert json.loads(project_repo.git("show", f"{pushed}:release/rolled-back/staging.json")) == {MODEL: [3]}
    (pull,) = github.pulls.values()
    assert f"- **Reason**: {REASON}" in pull["body"]
    assert "it is not proposed to `staging` again" in pull["body"]


def test_a_revert_for_a_version_the_stack_no_longer_pins_does_nothing(
    project_repo: ProjectRepo, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    promote_commit(project_repo, 3)
    promote_commit(project_repo, 4)  # a newer promotion merged before the revert ran

    assert revert(project_repo, "--from-version", "3", "--reason", REASON) == 0

    assert "not v3: the rollback from v3 is out of date" in capsys.readouterr().out
    assert project_repo.origin_git("branch", "--list", "rollback/*") == ""
    assert github.requests == []


def test_previous_needs_an_earlier_version_in_the_history(
    project_repo: ProjectRepo, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    # The template's first commit pins v1: there is no version before it to return to.
    assert revert(project_repo, "--reason", REASON) == 1
    assert "no earlier version of mlops.models.wine_quality on staging before v1" in capsys.readouterr().err
    assert github.requests == []


def test_an_empty_reason_is_bad_input(project_repo: ProjectRepo) -> None:
    with pytest.raises(SystemExit) as raised:
        revert(project_repo, "--reason", "  \n ")
    assert raised.value.code == 2


def test_the_aborted_version_is_not_proposed_again_once_the_revert_is_merged(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    registry: str,
    quick_diff: list[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    promote_commit(project_repo, 2)
    promote_commit(project_repo, 3)
    assert revert(project_repo, "--from-version", "3", "--reason", REASON) == 0
    project_repo.git("fetch", "--quiet", "origin")
    project_repo.git("merge", "--quiet", "--ff-only", f"origin/rollback/staging/{MODEL}-v2")
    project_repo.git("push", "--quiet", "origin", "main")
    client(registry).set_registered_model_alias(MODEL, "champion", "3")  # someone promotes v3 again
    capsys.readouterr()

    assert dispatch(project_repo, 3, registry) == 0

    out = capsys.readouterr().out
    assert f"staging was rolled back from {MODEL} v3 (release/rolled-back/staging.json)" in out
    assert [p["head"]["ref"] for p in github.open_pulls()] == [f"rollback/staging/{MODEL}-v2"], "no new proposal"


def test_the_registry_remembers_the_abort_when_the_revert_was_never_merged(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    registry: str,
    quick_diff: list[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    promote_commit(project_repo, 2)
    registered = client(registry)
    registered.set_model_version_tag(MODEL, "3", "aborted_staging_at", "2026-12-07T20:00:00Z")
    registered.set_model_version_tag(MODEL, "3", "aborted_staging_reason", REASON)
    registered.set_registered_model_alias(MODEL, "champion", "3")

    assert dispatch(project_repo, 3, registry) == 0

    out = capsys.readouterr().out
    assert f"its canary on staging was aborted at 2026-12-07T20:00:00Z ({REASON})" in out
    assert github.requests == []
    assert dispatch(project_repo, 3, registry, "--allow-rolled-back") == 0
    assert [p["head"]["ref"] for p in github.open_pulls()] == [f"promote/staging/{MODEL}-v3"]


def aborted(repo: ProjectRepo, registry: str, *extra: str) -> int:
    return canary_aborted.main(
        ["--stack", "staging", "--reason", REASON, "--project-dir", str(repo.work), "--tracking-uri", registry, *extra]
    )


def test_the_deploy_records_the_abort_and_starts_the_rollback_workflow_with_the_reason(
    project_repo: ProjectRepo, github: FakeGitHub, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    promote_commit(project_repo, 2)
    promote_commit(project_repo, 3)
    monkeypatch.setenv("GITHUB_REF_NAME", "main")

    assert aborted(project_repo, registry) == 0

    assert client(registry).get_model_version(MODEL, "3").tags["aborted_staging_reason"] == REASON
    # The stand-in reads .github/workflows/rollback.yml as GitHub does: an input it does not declare is refused.
    (run,) = github.workflow_runs
    assert run == {
        "workflow": "rollback.yml",
        "ref": "main",
        "inputs": {"stack": "staging", "version": "previous", "from-version": "3", "reason": REASON},
    }


def test_the_rollback_workflow_run_the_deploy_starts_opens_the_revert(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    registry: str,
    quick_diff: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    promote_commit(project_repo, 2)
    promote_commit(project_repo, 3)
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    assert aborted(project_repo, registry) == 0
    (run,) = github.workflow_runs
    inputs = run["inputs"]

    # rollback.yml's step, with the inputs the dispatch carried.
    code = rollback.main(
        [
            *("--stack", inputs["stack"], "--to-version", inputs["version"], "--from-version", inputs["from-version"]),
            *("--reason", inputs["reason"], "--repo-dir", str(project_repo.work), "--no-registry"),
        ]
    )

    assert code == 0
    (pull,) = github.pulls.values()
    assert pull["title"] == f"Roll back {MODEL} to v2 on staging"
    assert REASON in pull["body"]


def test_without_a_branch_or_a_token_nothing_is_half_done_silently(
    project_repo: ProjectRepo, registry: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    promote_commit(project_repo, 3)
    assert aborted(project_repo, registry) == 2
    assert "no branch for the rollback workflow" in capsys.readouterr().err
    assert "aborted_staging_at" not in client(registry).get_model_version(MODEL, "3").tags, "checked before recording"

    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    assert aborted(project_repo, registry) == 1, "no GITHUB_TOKEN: the dispatch fails, and says so"
    assert "no GitHub token" in capsys.readouterr().err
