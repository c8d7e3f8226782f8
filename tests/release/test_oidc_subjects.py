"""`release.oidc_subjects`: the federated credentials' subjects are the ones the repository's tokens carry.

Entra and Pulumi Cloud compare `sub` exactly, so a subject written `repo:<org>/<repo>:...` fails every login of a
repository whose tokens carry immutable ids. The GitHub stand-in answers the customization endpoint and mints
subjects as GitHub does; the command must produce those subjects, byte for byte, for both kinds of repository.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import httpx
import pytest

from release.oidc_subjects import IDENTITIES, SubjectError, commands, subjects
from tests.release.ghfake import FakeGitHub, GitHubServer
from tests.release.gitrepo import ROOT
from tests.release.test_workflows import WORKFLOWS, jobs


def customization(fake: FakeGitHub) -> object:
    """What `gh api repos/O/R/actions/oidc/customization/sub` prints, asked of the stand-in over HTTP."""
    with GitHubServer(fake) as server:
        answer = httpx.get(
            f"{server.url}/repos/{fake.repository}/actions/oidc/customization/sub",
            headers={"authorization": "Bearer test-token"},
        )
    answer.raise_for_status()
    return answer.json()


def workflow_contexts() -> set[str]:
    """The subject context of every job that asks for an OIDC token: its environment, or `pull_request`."""
    found = set()
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in jobs(path).values():
            if job.get("permissions", {}).get("id-token") == "write" and "uses" not in job:
                env = job.get("environment")
                found.add(f"environment:{env}" if env else "pull_request")
    return found


@pytest.mark.parametrize("immutable", [True, False], ids=["immutable", "name-only"])
def test_the_subjects_are_exactly_those_the_tokens_carry(immutable: bool) -> None:
    fake = FakeGitHub(immutable_subjects=immutable)

    derived = subjects(fake.repository, customization(fake))

    assert {identity.context for identity in IDENTITIES} == workflow_contexts(), "one identity per job context"
    for identity in IDENTITIES:
        assert derived[identity.name] == fake.oidc_subject(identity.context)


def test_the_documented_name_only_subject_does_not_match_an_immutable_repository() -> None:
    fake = FakeGitHub(immutable_subjects=True)
    assert fake.oidc_subject("environment:staging") != f"repo:{fake.repository}:environment:staging"
    assert (
        fake.oidc_subject("environment:staging") == "repo:acme-ml@1234567/mlops-serving@890123456:environment:staging"
    )


def test_the_commands_create_one_credential_per_identity_with_its_subject() -> None:
    fake = FakeGitHub()
    lines = commands(fake.repository, customization(fake))
    assert len(lines) == len(IDENTITIES)
    for line, identity in zip(lines, IDENTITIES, strict=True):
        argv = shlex.split(line)
        assert argv[:6] == ["az", "ad", "app", "federated-credential", "create", "--id"]
        assert argv[6] == f"${identity.app_variable}"
        parameters = json.loads(argv[argv.index("--parameters") + 1])
        assert parameters == {
            "name": identity.name,
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": fake.oidc_subject(identity.context),
            "audiences": ["api://AzureADTokenExchange"],
        }


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"use_default": False, "include_claim_keys": ["repo", "context"]}, "custom subject template"),
        ({"use_default": True, "sub_claim_prefix": "repo:other@1/thing@2"}, "is not the prefix of"),
        ([], "expected a JSON object"),
    ],
)
def test_answers_it_cannot_turn_into_exact_subjects_are_refused(answer: object, message: str) -> None:
    with pytest.raises(SubjectError, match=message):
        subjects("acme-ml/mlops-serving", answer)


def test_runs_as_the_docs_run_it() -> None:
    fake = FakeGitHub()
    proc = subprocess.run(
        [sys.executable, "-m", "release.oidc_subjects", "--repo", fake.repository],
        input=json.dumps(customization(fake)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"# github-env-production: {fake.oidc_subject('environment:production')}" in proc.stdout
