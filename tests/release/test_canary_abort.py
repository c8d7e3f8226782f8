"""After the analysis aborts a canary: the registry records the abort on that version, a pull request reverts the pin
with the failed check and value, and the aborted version is not proposed to the stack again."""

from __future__ import annotations

import json
from pathlib import Path
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


def revert(repo: ProjectRepo, to: int, *extra: str) -> int:
    args = ["--stack", "staging", "--to-version", str(to), "--repo-dir", str(repo.work), "--base", "main"]
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

    assert revert(project_repo, 2, "--from-version", "3", "--reason", REASON) == 0

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

    assert revert(project_repo, 2, "--from-version", "3", "--reason", REASON) == 0

    assert "not v3: the rollback from v3 is out of date" in capsys.readouterr().out
    assert project_repo.origin_git("branch", "--list", "rollback/*") == ""
    assert github.requests == []


def test_an_empty_reason_is_bad_input(project_repo: ProjectRepo) -> None:
    with pytest.raises(SystemExit) as raised:
        revert(project_repo, 2, "--reason", "  \n ")
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
    assert revert(project_repo, 2, "--from-version", "3", "--reason", REASON) == 0
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


def test_the_trailer_the_rollback_writes_is_the_one_the_promotion_reads() -> None:
    from release import rolled_back

    message = f"Roll back {MODEL} to v2 on staging\n\nReason: x\n\n{rolled_back.trailer(3)}\n"
    assert rolled_back.version_in_trailer(message) == 3
    assert rolled_back.version_in_trailer("Roll back without a trailer\n") is None


def aborted(repo: ProjectRepo, registry: str, outputs: Path, *extra: str) -> int:
    args = ["--stack", "staging", "--reason", REASON, "--canary-hash", "7f9c4d8b6", "--project-dir", str(repo.work)]
    return canary_aborted.main([*args, "--tracking-uri", registry, "--outputs", str(outputs), *extra])


def outputs_of(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines()) if path.exists() else {}


def test_an_aborted_new_version_is_tagged_and_reverted_to_the_version_the_stack_ran(
    project_repo: ProjectRepo, registry: str, tmp_path: Path
) -> None:
    client(registry).set_registered_model_tag(MODEL, "deployed_staging_version", "2")  # what the last deploy wrote
    promote_commit(project_repo, 3)

    assert aborted(project_repo, registry, tmp_path / "out") == 0

    assert outputs_of(tmp_path / "out") == {"revert-to": "2", "revert-from": "3", "revert-reason": REASON}
    tags = client(registry).get_model_version(MODEL, "3").tags
    assert tags["aborted_staging_reason"] == REASON
    assert tags["aborted_staging_hash"] == "7f9c4d8b6"


def test_the_same_aborted_canary_found_again_by_a_later_deploy_changes_nothing(
    project_repo: ProjectRepo, registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client(registry).set_registered_model_tag(MODEL, "deployed_staging_version", "2")
    promote_commit(project_repo, 3)
    assert aborted(project_repo, registry, tmp_path / "first") == 0
    at = client(registry).get_model_version(MODEL, "3").tags["aborted_staging_at"]
    capsys.readouterr()

    assert aborted(project_repo, registry, tmp_path / "again") == 0

    assert "was recorded as aborted" in capsys.readouterr().out
    assert outputs_of(tmp_path / "again") == {}, "no second revert"
    assert client(registry).get_model_version(MODEL, "3").tags["aborted_staging_at"] == at


def test_a_canary_of_the_version_the_stack_already_ran_blames_no_model(
    project_repo: ProjectRepo, registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The pin did not change (the image's code or the serving settings did): the version is not the cause.
    client(registry).set_registered_model_tag(MODEL, "deployed_staging_version", "3")
    promote_commit(project_repo, 3)

    assert aborted(project_repo, registry, tmp_path / "out") == 0

    assert "not of a new model version; nothing is tagged or reverted" in capsys.readouterr().out
    assert outputs_of(tmp_path / "out") == {}
    assert "aborted_staging_at" not in client(registry).get_model_version(MODEL, "3").tags


def test_without_a_version_the_stack_ran_the_abort_is_recorded_and_no_revert_is_chosen(
    project_repo: ProjectRepo, registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    promote_commit(project_repo, 3)

    assert aborted(project_repo, registry, tmp_path / "out") == 0

    assert "roll back by hand" in capsys.readouterr().out
    assert outputs_of(tmp_path / "out") == {}
    assert client(registry).get_model_version(MODEL, "3").tags["aborted_staging_reason"] == REASON


def test_the_revert_job_proposes_what_the_abort_step_chose(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    registry: str,
    quick_diff: list[tuple[str, str]],
    tmp_path: Path,
) -> None:
    client(registry).set_registered_model_tag(MODEL, "deployed_staging_version", "2")
    promote_commit(project_repo, 2)
    promote_commit(project_repo, 3)
    assert aborted(project_repo, registry, tmp_path / "out") == 0
    chosen = outputs_of(tmp_path / "out")

    # rollback.yml's step, with the inputs deploy.yml's revert-staging job passes on.
    code = rollback.main(
        [
            *("--stack", "staging", "--to-version", chosen["revert-to"], "--from-version", chosen["revert-from"]),
            *(f"--reason={chosen['revert-reason']}", "--repo-dir", str(project_repo.work), "--no-registry"),
        ]
    )

    assert code == 0
    (pull,) = github.pulls.values()
    assert pull["title"] == f"Roll back {MODEL} to v2 on staging"
    assert REASON in pull["body"]


def test_a_registry_that_cannot_be_read_chooses_nothing_and_says_so(
    project_repo: ProjectRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    promote_commit(project_repo, 3)
    missing = f"sqlite:///{tmp_path / 'no-such-dir' / 'mlflow.db'}"
    assert aborted(project_repo, missing, tmp_path / "out") == 1
    assert "error:" in capsys.readouterr().err
    assert outputs_of(tmp_path / "out") == {}


def test_a_rollback_never_returns_to_a_version_the_stack_was_rolled_back_from(
    project_repo: ProjectRepo, github: FakeGitHub, quick_diff: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    promote_commit(project_repo, 2)
    promote_commit(project_repo, 3)
    assert revert(project_repo, 2, "--from-version", "3", "--reason", REASON) == 0
    project_repo.git("fetch", "--quiet", "origin")
    project_repo.git("merge", "--quiet", "--ff-only", f"origin/rollback/staging/{MODEL}-v2")
    project_repo.git("push", "--quiet", "origin", "main")

    # v2's own canary is aborted later (after an image change): going "back" to v3 is refused.
    assert revert(project_repo, 3, "--reason", "latency-p99") == 1
    assert f"staging was rolled back from {MODEL} v3" in capsys.readouterr().err


def test_reverting_an_earlier_rollback_keeps_its_entry_in_the_rolled_back_list(
    project_repo: ProjectRepo, github: FakeGitHub, quick_diff: list[tuple[str, str]]
) -> None:
    promote_commit(project_repo, 2)
    promote_commit(project_repo, 3)
    assert revert(project_repo, 2, "--from-version", "3", "--reason", REASON) == 0
    project_repo.git("fetch", "--quiet", "origin")
    project_repo.git("merge", "--quiet", "--ff-only", f"origin/rollback/staging/{MODEL}-v2")
    project_repo.git("push", "--quiet", "origin", "main")

    # Someone returns to v3 on purpose; the rollback commit being reverted must not take v3 off the list.
    assert revert(project_repo, 3, "--allow-rolled-back", "--reason", "on purpose") == 0

    pushed = project_repo.origin_git("rev-parse", f"refs/heads/rollback/staging/{MODEL}-v3")
    assert json.loads(project_repo.git("show", f"{pushed}:release/rolled-back/staging.json")) == {MODEL: [2, 3]}
