"""The real preview runs only where GitHub issues the OIDC token it needs, and only where a read-only Pulumi team
token can exist; every other pull request gets the offline diff and a clear reason."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from release.preview_gate import decide
from tests.release.ghfake import FakeGitHub
from tests.release.gitrepo import ROOT
from tests.release.test_workflows import WORKFLOWS, jobs

REPO = "acme-ml/mlops-serving"
CONFIGURED = {"REPOSITORY": REPO, "HEAD_REPO": REPO, "ACTOR": "octocat", "PREVIEW_CLIENT_ID": "c", "PREVIEW_TEAM": "t"}


@pytest.mark.parametrize(("actor", "from_fork"), list(itertools.product(["octocat", "dependabot[bot]"], [False, True])))
def test_the_preview_runs_only_where_github_issues_an_oidc_token(actor: str, from_fork: bool) -> None:
    env = CONFIGURED | {"ACTOR": actor, "HEAD_REPO": "someone/fork" if from_fork else REPO}
    run, why = decide(env)
    token = FakeGitHub.issues_oidc_token(actor=actor, event="pull_request", from_fork=from_fork, id_token_write=True)
    assert run == token, why


def test_a_dependabot_pull_request_gets_a_clear_skip() -> None:
    run, why = decide(CONFIGURED | {"ACTOR": "dependabot[bot]"})
    assert not run
    assert "Dependabot" in why
    assert "offline diff" in why


def test_without_a_previewers_team_the_edition_is_named() -> None:
    run, why = decide(CONFIGURED | {"PREVIEW_TEAM": ""})
    assert not run
    assert "Enterprise and Business Critical" in why


def test_every_job_that_asks_for_an_oidc_token_on_a_pull_request_waits_for_the_gate() -> None:
    workflow = jobs(WORKFLOWS / "pull-request.yml")
    for name, job in workflow.items():
        if job.get("permissions", {}).get("id-token") == "write":
            assert job["needs"] == "preview-gate", name
            assert job["if"] == "needs.preview-gate.outputs.run == 'true'", name
    (gate,) = [s for s in workflow["preview-gate"]["steps"] if "run" in s]
    assert gate["run"] == "python3 -m release.preview_gate"
    assert gate["env"]["ACTOR"] == "${{ github.actor }}", (
        "the run's initiator: a re-run by someone else stays Dependabot's"
    )


def test_runs_before_bootstrap_with_the_standard_library(tmp_path: Path) -> None:
    out, summary = tmp_path / "out", tmp_path / "summary"
    env = CONFIGURED | {"ACTOR": "dependabot[bot]", "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    proc = subprocess.run(
        [sys.executable, "-I", "-m", "release.preview_gate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "run=false\n"
    assert "skipped: Dependabot" in summary.read_text()
