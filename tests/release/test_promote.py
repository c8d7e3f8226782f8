"""`release.promote` against a local git repository (with a bare origin) and a recording GitHub API.

The end-to-end tests run the command as the workflow does, with the real offline diff in the pull request body.
The others replace only the offline diff (which takes a minute per run) by a marker text, to test the git and
pull-request mechanics on their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localrun.processes import child_env
from release.promote import main
from stacks.files import load_stack_config
from stacks.settings import pinned_model
from tests.release.ghfake import FakeGitHub
from tests.release.gitrepo import IDENTITY, ProjectRepo

BRANCH = "promote/staging/mlops.models.wine_quality-v4"
DELIVERY = "d3b0f2a1-0000-4c2e-9d5b-7e1f00000004"
DIGEST = "sha256:" + "4d" * 32
OLD_DIGEST = "sha256:" + "1d" * 32
# What a pin bump may do, in the offline diff's words (offline/diff.py): rebuild, release the new version as a
# canary. The image and, beside it, its SBOM (built, never pushed: components/model_image.py), the canary (its
# steps and checks: one impact, starting "canary "), and the smoke test and checks the release runs (their image).
PIN_BUMP_IMPACTS = {
    "image rebuilt and pushed",
    "rebuilt, nothing pushed",
    "updated, used by the next release",
}


def canary_impacts(body: str) -> set[str]:
    return {impact for impact in impacts(body) if impact.startswith("canary ")}


def event(tmp_path: Path, **overrides: object) -> Path:
    payload: dict[str, object] = {
        "model": "mlops.models.wine_quality",
        "version": "4",
        "stage": "Staging",
        "alias": None,
        "target_stack": "staging",
        "delivery_id": DELIVERY,
        "source": "databricks",
    }
    payload.update(overrides)
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"action": "model-promoted", "client_payload": payload}))
    return path


def run_promote(repo: ProjectRepo, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m release.promote` in the checkout, as the workflow step runs it."""
    return subprocess.run(
        [sys.executable, "-m", "release.promote", *args],
        cwd=repo.work,
        env=child_env({"GITHUB_REF_NAME": "main"}),
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )


def changed_lines(repo: ProjectRepo, ref: str) -> list[str]:
    """The +/- lines of `ref`'s own change, without context."""
    diff = repo.git("show", "--format=", "--unified=0", ref)
    return [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def impacts(body: str) -> set[str]:
    """The impact of every changed resource in the diff markdown (`- ✏️ `type` **name**: impact`)."""
    return {line.rsplit(": ", 1)[1] for line in body.splitlines() if line.startswith("- ") and "**" in line}


@pytest.mark.slow
def test_dispatch_opens_a_pull_request_with_the_offline_diff_and_redelivery_changes_nothing(
    project_repo: ProjectRepo, github: FakeGitHub, tmp_path: Path
) -> None:
    base = project_repo.git("rev-parse", "main")

    first = run_promote(project_repo, "--no-registry-check", "--event-path", str(event(tmp_path)))

    assert first.returncode == 0, first.stderr
    pushed = project_repo.origin_git("rev-parse", f"refs/heads/{BRANCH}")
    assert project_repo.git("rev-parse", f"{pushed}^") == base
    message = project_repo.git("log", "-1", "--format=%B", pushed)
    assert message.splitlines()[0] == "Promote mlops.models.wine_quality v4 to staging"
    assert project_repo.git("log", "-1", "--format=%(trailers:key=Delivery-Id,valueonly)", pushed) == DELIVERY
    assert project_repo.git("show", "--format=", "--name-only", pushed) == "Pulumi.staging.yaml"
    assert changed_lines(project_repo, pushed) == ["-    version: 1", "+    version: 4"]

    (pull,) = github.pulls.values()
    assert (pull["head"]["ref"], pull["base"]["ref"], pull["title"]) == (BRANCH, "main", message.splitlines()[0])
    body = pull["body"]
    assert f"delivery `{DELIVERY}`" in body
    assert "### Offline diff for `staging`" in body
    assert "`model.version` | `1` | `4`" in body
    assert "image rebuilt and pushed" in impacts(body)
    assert canary_impacts(body) == {
        "canary 10% -> 50% -> 100%, analysis ready, error-ratio, latency-p99, latency-vs-stable, drift, "
        "synthetic-traffic"
    }
    assert impacts(body) - canary_impacts(body) <= PIN_BUMP_IMPACTS, "a pin bump changes the image and its release"
    assert "0 to add, 0 to delete" in body
    assert f"pull request created: {pull['html_url']}" in first.stdout

    again = run_promote(project_repo, "--no-registry-check", "--event-path", str(event(tmp_path)))

    assert again.returncode == 0, again.stderr
    assert project_repo.origin_git("rev-parse", f"refs/heads/{BRANCH}") == pushed, "no new commit on redelivery"
    assert len(github.pulls) == 1
    assert "reused" in again.stdout
    assert "pull request unchanged" in again.stdout
    assert not github.calls("PATCH")
    assert project_repo.git("rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert project_repo.git("status", "--porcelain") == ""


@pytest.mark.slow
def test_staging_pin_is_proposed_for_prod_with_its_diff(project_repo: ProjectRepo, github: FakeGitHub) -> None:
    """The steady state: prod runs v1 by the digest staging built for it; staging has since deployed v4."""
    from stacks.pin import pin

    pin(project_repo.work, "prod", "mlops.models.wine_quality", 1, OLD_DIGEST)
    pin(project_repo.work, "staging", "mlops.models.wine_quality", 4)
    project_repo.git(*IDENTITY, "commit", "--quiet", "-am", "prod on v1 by digest; staging on v4")
    project_repo.git("push", "--quiet", "origin", "main")
    main_sha = project_repo.git("rev-parse", "main")

    done = run_promote(project_repo, "--from-stack", "staging", "--to-stack", "prod", "--built-image", built_image(4))

    assert done.returncode == 0, done.stderr
    branch = "promote/prod/mlops.models.wine_quality-v4"
    pushed = project_repo.origin_git("rev-parse", f"refs/heads/{branch}")
    assert changed_lines(project_repo, pushed) == [
        "-    version: 1",
        f"-    imageDigest: {OLD_DIGEST}",
        "+    version: 4",
        f"+    imageDigest: {DIGEST}",
    ]
    message = project_repo.git("log", "-1", "--format=%B", pushed)
    assert message.splitlines()[0] == "Promote mlops.models.wine_quality v4 to prod"
    assert f"Promoted-From: staging@{main_sha}" in message
    (pull,) = github.pulls.values()
    body = pull["body"]
    assert pull["head"]["ref"] == branch
    assert "### Offline diff for `prod`" in body
    assert "`model.version` | `1` | `4`" in body
    assert "image rebuilt and pushed" not in impacts(body), "prod builds nothing"
    assert canary_impacts(body) == {
        "canary 10% -> 25% -> 50% -> 100%, analysis ready, error-ratio, latency-p99, latency-vs-stable, drift"
    }
    assert impacts(body) - canary_impacts(body) <= PIN_BUMP_IMPACTS
    assert DIGEST[:20] in body, "the deployment's new image is the digest staging built"


# --- the mechanics, with the offline diff replaced ------------------------------------------------------------


def test_redelivery_after_main_moved_updates_the_same_branch_and_pull_request(
    project_repo: ProjectRepo, github: FakeGitHub, tmp_path: Path, quick_diff: list[tuple[str, str]]
) -> None:
    path = event(tmp_path)
    args = ["--no-registry-check", "--event-path", str(path), "--repo-dir", str(project_repo.work), "--base", "main"]
    assert main(args) == 0
    first = project_repo.origin_git("rev-parse", f"refs/heads/{BRANCH}")

    (project_repo.work / "NOTES.md").write_text("unrelated change on main\n")
    project_repo.git("add", "NOTES.md")
    project_repo.git(*IDENTITY, "commit", "--quiet", "-m", "Unrelated")
    project_repo.git("push", "--quiet", "origin", "main")
    new_main = project_repo.git("rev-parse", "main")

    assert main(args) == 0

    second = project_repo.origin_git("rev-parse", f"refs/heads/{BRANCH}")
    assert second != first
    assert project_repo.git("rev-parse", f"{second}^") == new_main, "rebased on the new main"
    assert len(github.pulls) == 1
    (patch,) = github.calls("PATCH")
    assert patch.path.endswith("/pulls/1")
    assert new_main[:12] in github.pulls[1]["body"]
    assert quick_diff == [(first_parent(project_repo, first), "staging"), (new_main, "staging")]


def first_parent(repo: ProjectRepo, ref: str) -> str:
    return repo.git("rev-parse", f"{ref}^")


def test_already_pinned_proposes_nothing(
    project_repo: ProjectRepo, github: FakeGitHub, tmp_path: Path, quick_diff: list[tuple[str, str]]
) -> None:
    path = event(tmp_path, version=1)
    assert (
        main(["--no-registry-check", "--event-path", str(path), "--repo-dir", str(project_repo.work), "--base", "main"])
        == 0
    )
    assert project_repo.origin_git("branch", "--list", "promote/*") == ""
    assert github.requests == []
    assert quick_diff == []


def test_no_push_commits_locally_only(
    project_repo: ProjectRepo, tmp_path: Path, quick_diff: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    payload = json.dumps(
        {"model": "mlops.models.wine_quality", "version": 7, "target_stack": "staging"}
        | {"delivery_id": "job-1-mlops.models.wine_quality-7-champion", "source": "databricks-job", "alias": "champion"}
    )
    args = ["--payload", payload, "--repo-dir", str(project_repo.work), "--base", "main", "--no-push"]
    args.append("--no-registry-check")

    assert main(args) == 0
    assert main(args) == 0

    local = project_repo.git("rev-parse", "refs/heads/promote/staging/mlops.models.wine_quality-v7")
    assert "alias champion set" in project_repo.git("log", "-1", "--format=%B", local)
    assert project_repo.origin_git("branch", "--list", "promote/*") == ""
    out = capsys.readouterr().out
    prefix = "promote mlops.models.wine_quality v7 -> staging: "
    reports = [line for line in out.splitlines() if line.startswith(prefix)]
    assert "committed (not pushed)" in reports[0]
    assert "reused" in reports[1]
    # With no pull request to carry it, the body (the offline diff) is printed for whoever ran this.
    assert out.count("<!-- mlops-serving:promote:staging -->") == 2


@pytest.mark.parametrize(
    "case",
    [
        ({"version": "abc"}, "client_payload.version: Value error, a positive integer, e.g. 3"),
        ({"version": "0"}, "client_payload.version: Value error, a positive integer, e.g. 3"),
        ({"delivery_id": None}, "client_payload.delivery_id: Input should be a valid string"),
        ({"model": "../../etc"}, "client_payload.model: String should match pattern"),
        ({"target_stack": "Prod; rm -rf"}, "client_payload.target_stack: String should match pattern"),
        ({"source": "email"}, "client_payload.source: Input should be 'mlflow', 'databricks'"),
    ],
)
def test_invalid_payload_exits_2_with_a_clear_message(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    tmp_path: Path,
    case: tuple[dict[str, object], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    overrides, expected = case
    path = event(tmp_path, **overrides)
    assert (
        main(["--no-registry-check", "--event-path", str(path), "--repo-dir", str(project_repo.work), "--base", "main"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("invalid model-promoted payload:")
    assert expected in err
    assert github.requests == []
    assert project_repo.git("branch", "--list", "promote/*") == ""


def test_wrong_event_and_a_stack_that_does_not_build_are_refused(
    project_repo: ProjectRepo, github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"action": "something-else", "client_payload": {}}))
    assert (
        main(
            ["--no-registry-check", "--event-path", str(wrong), "--repo-dir", str(project_repo.work), "--base", "main"]
        )
        == 2
    )
    assert "event type is 'something-else', expected 'model-promoted'" in capsys.readouterr().err

    to_prod = event(tmp_path, target_stack="prod")
    assert (
        main(
            [
                "--no-registry-check",
                "--event-path",
                str(to_prod),
                "--repo-dir",
                str(project_repo.work),
                "--base",
                "main",
            ]
        )
        == 2
    )
    assert "target_stack 'prod' does not build images" in capsys.readouterr().err

    to_nowhere = event(tmp_path, target_stack="qa")
    assert (
        main(
            [
                "--no-registry-check",
                "--event-path",
                str(to_nowhere),
                "--repo-dir",
                str(project_repo.work),
                "--base",
                "main",
            ]
        )
        == 2
    )
    assert "Pulumi.qa.yaml: no such stack file at main" in capsys.readouterr().err
    assert github.requests == []


def test_a_dirty_checkout_is_left_alone(
    project_repo: ProjectRepo, github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project_repo.file("prod").write_text(project_repo.file("prod").read_text() + "# local edit\n")
    assert (
        main(
            [
                "--no-registry-check",
                "--event-path",
                str(event(tmp_path)),
                "--repo-dir",
                str(project_repo.work),
                "--base",
                "main",
            ]
        )
        == 1
    )
    assert "uncommitted changes" in capsys.readouterr().err
    assert project_repo.file("prod").read_text().endswith("# local edit\n")
    assert github.requests == []


def test_github_failure_is_reported(
    project_repo: ProjectRepo,
    github: FakeGitHub,
    tmp_path: Path,
    quick_diff: list[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    github.fail_next(403, "Resource not accessible by integration")
    assert (
        main(
            [
                "--no-registry-check",
                "--event-path",
                str(event(tmp_path)),
                "--repo-dir",
                str(project_repo.work),
                "--base",
                "main",
            ]
        )
        == 1
    )
    assert "forbidden (403 Resource not accessible by integration)" in capsys.readouterr().err
    assert project_repo.git("rev-parse", "--abbrev-ref", "HEAD") == "main"


def built_image(version: int, digest: str = DIGEST, model: str = "mlops.models.wine_quality") -> str:
    """The staging deploy's `modelImage` output, as the deploy workflow passes it on."""
    return json.dumps(
        {"model": model, "version": version, "ref": f"acr.test/models/{model}@{digest}", "digest": digest}
    )


def promote_staging_on_main(repo: ProjectRepo, version: int) -> str:
    from stacks.pin import pin

    pin(repo.work, "staging", "mlops.models.wine_quality", version)
    repo.git(*IDENTITY, "commit", "--quiet", "-am", f"Promote mlops.models.wine_quality v{version} to staging")
    repo.git("push", "--quiet", "origin", "main")
    return repo.git("rev-parse", "main")


def test_prod_is_proposed_the_digest_staging_deployed(
    project_repo: ProjectRepo, github: FakeGitHub, quick_diff: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    main_sha = promote_staging_on_main(project_repo, 5)
    args = ["--from-stack", "staging", "--to-stack", "prod", "--repo-dir", str(project_repo.work), "--base", "main"]

    assert main([*args, "--built-image", built_image(5)]) == 0

    pushed = project_repo.origin_git("rev-parse", "refs/heads/promote/prod/mlops.models.wine_quality-v5")
    shipped = pinned_model(load_stack_config(project_repo.work, "prod").settings()).image_digest
    assert changed_lines(project_repo, pushed) == [
        "-    version: 1",
        f"-    imageDigest: {shipped}",
        "+    version: 5",
        f"+    imageDigest: {DIGEST}",
    ]
    message = project_repo.git("log", "-1", "--format=%B", pushed)
    assert (
        project_repo.git("log", "-1", "--format=%(trailers:key=Promoted-From,valueonly)", pushed)
        == f"staging@{main_sha}"
    )
    assert f"(imageDigest {DIGEST})" in message
    assert DIGEST in github.pulls[1]["body"]
    assert quick_diff == [(main_sha, "prod")]

    project_repo.git("merge", "--quiet", "--ff-only", pushed)
    project_repo.git("push", "--quiet", "origin", "main")
    capsys.readouterr()
    assert main([*args, "--built-image", built_image(5)]) == 0, "merged: nothing left to propose"
    assert "nothing to do" in capsys.readouterr().out
    assert len(github.pulls) == 1


def test_a_built_image_that_is_not_the_pinned_version_is_refused(
    project_repo: ProjectRepo, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    promote_staging_on_main(project_repo, 5)
    args = ["--from-stack", "staging", "--to-stack", "prod", "--repo-dir", str(project_repo.work), "--base", "main"]

    assert main([*args, "--built-image", built_image(4)]) == 2
    expected = "--built-image is mlops.models.wine_quality v4, but staging pins mlops.models.wine_quality v5"
    assert expected in capsys.readouterr().err
    assert main([*args, "--built-image", "{not json"]) == 2
    assert "--built-image: not staging's modelImage output" in capsys.readouterr().err
    assert github.requests == []
    assert project_repo.origin_git("branch", "--list", "promote/*") == ""


def test_without_a_built_image_prod_is_not_proposed_a_pin_without_a_digest(
    project_repo: ProjectRepo, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prod runs only digests staging built: carrying over staging's undigested pin would write a prod stack file the
    # settings refuse, so nothing is pushed and the error names the key.
    promote_staging_on_main(project_repo, 6)
    args = ["--from-stack", "staging", "--to-stack", "prod", "--repo-dir", str(project_repo.work), "--base", "main"]
    assert main([*args, "--built-image", ""]) == 2
    assert "model.imageDigest" in capsys.readouterr().err
    assert project_repo.origin_git("branch", "--list", "promote/prod/*") == ""
    assert github.pulls == {}
