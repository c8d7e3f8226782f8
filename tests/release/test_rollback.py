"""`release.rollback`: the revert of the pin commit, with the digest of the image already built, as a pull request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localrun.processes import child_env
from release import proposal
from release.git import Git
from release.proposal import OfflineDiff
from release.rollback import find_pin_commit, main
from stacks.pin import Pinned, pin
from tests.release.ghfake import FakeGitHub
from tests.release.gitrepo import IDENTITY, ProjectRepo
from tests.release.registry import MODEL

DIGEST_V2 = "sha256:" + "2a" * 32
DIGEST_V1 = "sha256:" + "1b" * 32


def commit_pin(repo: ProjectRepo, stack: str, version: int, digest: str | None = None) -> str:
    pin(repo.work, stack, MODEL, version, digest)
    repo.git(*IDENTITY, "commit", "--quiet", "-am", f"Promote {MODEL} v{version} to {stack}")
    return repo.git("rev-parse", "HEAD")


def history(repo: ProjectRepo) -> dict[str, str]:
    """main: v1 (initial) -> pin v2 -> pin v3 -> an unrelated commit; pushed to origin."""
    shas = {"v2": commit_pin(repo, "staging", 2), "v3": commit_pin(repo, "staging", 3)}
    (repo.work / "NOTES.md").write_text("unrelated\n")
    repo.git("add", "NOTES.md")
    repo.git(*IDENTITY, "commit", "--quiet", "-m", "Unrelated change")
    repo.git("push", "--quiet", "origin", "main")
    return shas


def tag_deployed(registry: str, version: int, stack: str, digest: str) -> None:
    import mlflow

    client: Any = mlflow.MlflowClient(tracking_uri=registry, registry_uri=registry)
    client.set_model_version_tag(MODEL, str(version), f"deployed_{stack}_digest", digest)


@pytest.fixture
def quick_diff(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(repo_dir: Path, base: str, stack: str) -> OfflineDiff:
        return OfflineDiff(True, f"### diff of {stack} against {base[:12]}")

    monkeypatch.setattr(proposal, "offline_diff", fake)


def test_finds_the_commit_that_pinned_the_current_version(project_repo: ProjectRepo) -> None:
    shas = history(project_repo)
    found = find_pin_commit(Git(project_repo.work), "main", "staging", Pinned(MODEL, 3, None))
    assert found is not None
    assert found.sha == shas["v3"]
    assert found.before == Pinned(MODEL, 2, None)
    assert found.subject == f"Promote {MODEL} v3 to staging"
    first = find_pin_commit(Git(project_repo.work), "main", "staging", Pinned(MODEL, 1, None))
    assert first is not None
    assert (first.sha, first.before) == (project_repo.git("rev-list", "--max-parents=0", "main"), None)
    assert find_pin_commit(Git(project_repo.work), "main", "staging", Pinned(MODEL, 9, None)) is None


def test_rollback_reverts_the_pin_commit_and_pins_the_digest_from_the_registry(
    project_repo: ProjectRepo, github: FakeGitHub, registry: str, quick_diff: None, capsys: pytest.CaptureFixture[str]
) -> None:
    shas = history(project_repo)
    tag_deployed(registry, 2, "staging", DIGEST_V2)
    args = ["--stack", "staging", "--to-version", "2", "--repo-dir", str(project_repo.work), "--base", "main"]

    assert main([*args, "--tracking-uri", registry]) == 0

    branch = "rollback/staging/mlops.models.wine_quality-v2"
    pushed = project_repo.origin_git("rev-parse", f"refs/heads/{branch}")
    assert project_repo.git("rev-parse", f"{pushed}^") == project_repo.git("rev-parse", "main")
    message = project_repo.git("log", "-1", "--format=%B", pushed)
    assert message.splitlines()[0] == f"Roll back {MODEL} to v2 on staging"
    assert f"This reverts commit {shas['v3']}" in message
    assert DIGEST_V2 in message
    expected = project_repo.show(shas["v2"], "staging").replace(
        "    version: 2\n", f"    version: 2\n    imageDigest: {DIGEST_V2}\n"
    )
    assert project_repo.show(pushed, "staging") == expected
    changed = project_repo.git("show", "--format=", "--name-only", pushed).splitlines()
    assert changed == ["Pulumi.staging.yaml", "release/rolled-back/staging.json"], "the pin, and what was rolled back"
    recorded = project_repo.git("show", f"{pushed}:release/rolled-back/staging.json")
    assert json.loads(recorded) == {MODEL: [3]}
    (pull,) = github.pulls.values()
    assert pull["head"]["ref"] == branch
    assert "nothing is rebuilt" in pull["body"]
    assert "### diff of staging against" in pull["body"]
    assert "pull request created" in capsys.readouterr().out

    assert main([*args, "--tracking-uri", registry]) == 0, "a second run changes nothing"
    assert project_repo.origin_git("rev-parse", f"refs/heads/{branch}") == pushed
    assert len(github.pulls) == 1


def test_prod_uses_the_digest_staging_built(
    project_repo: ProjectRepo, github: FakeGitHub, registry: str, quick_diff: None
) -> None:
    # Prod pins digests (it never builds): v2 ran staging's image, then v3 another one.
    commit_pin(project_repo, "prod", 2, DIGEST_V2)
    commit_pin(project_repo, "prod", 3, "sha256:" + "3c" * 32)
    project_repo.git("push", "--quiet", "origin", "main")
    tag_deployed(registry, 2, "staging", DIGEST_V2)  # prod ran v2 from staging's image; no prod tag recorded

    code = main(
        [
            *("--stack", "prod", "--to-version", "2", "--repo-dir", str(project_repo.work), "--base", "main"),
            *("--tracking-uri", registry, "--no-pr"),
        ]
    )

    assert code == 0
    pushed = project_repo.origin_git("rev-parse", "refs/heads/rollback/prod/mlops.models.wine_quality-v2")
    assert f"    imageDigest: {DIGEST_V2}\n" in project_repo.show(pushed, "prod")
    assert "registry tag `deployed_staging_digest`" in project_repo.git("log", "-1", "--format=%B", pushed)
    assert github.requests == []


def test_without_a_known_digest_the_image_is_rebuilt_and_the_pr_says_so(
    project_repo: ProjectRepo, github: FakeGitHub, quick_diff: None
) -> None:
    shas = history(project_repo)
    assert (
        main(["--stack", "staging", "--to-version", "2", "--repo-dir", str(project_repo.work), "--base", "main"]) == 0
    )
    pushed = project_repo.origin_git("rev-parse", "refs/heads/rollback/staging/mlops.models.wine_quality-v2")
    assert project_repo.show(pushed, "staging") == project_repo.show(shas["v2"], "staging"), "exactly the revert"
    assert "the deploy builds the image again" in github.pulls[1]["body"]
    assert "the registry was not asked" in github.pulls[1]["body"]


def test_a_revert_brings_back_the_digest_the_earlier_pin_had(
    project_repo: ProjectRepo, github: FakeGitHub, quick_diff: None
) -> None:
    rolled = commit_pin(project_repo, "staging", 2, DIGEST_V2)
    commit_pin(project_repo, "staging", 3)
    project_repo.git("push", "--quiet", "origin", "main")

    assert main(["--stack", "staging", "--to-version", "2", "--repo-dir", str(project_repo.work), "--no-pr"]) == 0

    pushed = project_repo.origin_git("rev-parse", "refs/heads/rollback/staging/mlops.models.wine_quality-v2")
    assert project_repo.show(pushed, "staging") == project_repo.show(rolled, "staging")
    assert "the pin before" in project_repo.git("log", "-1", "--format=%B", pushed)


def test_rolling_back_over_several_versions_pins_directly(
    project_repo: ProjectRepo, github: FakeGitHub, quick_diff: None
) -> None:
    shas = history(project_repo)
    code = main(
        [
            *("--stack", "staging", "--to-version", "1", "--digest", DIGEST_V1),
            *("--repo-dir", str(project_repo.work), "--base", "main", "--no-pr"),
        ]
    )
    assert code == 0
    pushed = project_repo.origin_git("rev-parse", "refs/heads/rollback/staging/mlops.models.wine_quality-v1")
    message = project_repo.git("log", "-1", "--format=%B", pushed)
    assert f"Pins v1 directly: the commit that pinned v3, {shas['v3']}" in message
    assert "replaced v2, not v1" in message
    original = project_repo.show(f"{shas['v2']}^", "staging")
    assert project_repo.show(pushed, "staging") == original.replace(
        "    version: 1\n", f"    version: 1\n    imageDigest: {DIGEST_V1}\n"
    )


def test_nothing_to_do_and_bad_input(
    project_repo: ProjectRepo, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--stack", "staging", "--to-version", "1", "--repo-dir", str(project_repo.work)]) == 0
    assert "already runs mlops.models.wine_quality v1" in capsys.readouterr().out
    assert (
        main(["--stack", "staging", "--to-version", "2", "--digest", "sha256:x", "--repo-dir", str(project_repo.work)])
        == 2
    )
    assert "--digest: expected sha256: and 64 hex digits" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        main(["--stack", "staging", "--to-version", "two"])
    assert raised.value.code == 2
    assert github.requests == []
    assert project_repo.origin_git("branch", "--list", "rollback/*") == ""


@pytest.mark.slow
def test_rollback_command_end_to_end_with_the_offline_diff(project_repo: ProjectRepo, github: FakeGitHub) -> None:
    history(project_repo)
    proc = subprocess.run(
        [sys.executable, "-m", "release.rollback", "--stack", "staging", "--to-version", "2", "--digest", DIGEST_V2],
        cwd=project_repo.work,
        env=child_env({"GITHUB_REF_NAME": "main"}),
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr
    (pull,) = github.pulls.values()
    body = pull["body"]
    assert "### Offline diff for `staging`" in body
    assert "`model.version` | `3` | `2`" in body
    assert "`model.imageDigest`" in body
