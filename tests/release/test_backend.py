"""Stack names that the configured Pulumi backend accepts, and prod's StackReference naming the same stack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from release.backend import BackendError, main, stack_name
from tests.release.gitrepo import ProjectRepo


def set_reference(repo: ProjectRepo, reference: str) -> None:
    path = repo.file("prod")
    text = path.read_text()
    old = next(line for line in text.splitlines() if line.strip().startswith("stack: "))
    path.write_text(text.replace(old, f"    stack: {reference}"))


def test_pulumi_cloud_uses_the_organisation(project_repo: ProjectRepo) -> None:
    assert stack_name(project_repo.work, "staging", "acme-ml", "") == "acme-ml/mlops-serving/staging"
    assert stack_name(project_repo.work, "prod", "acme-ml", "https://api.pulumi.com") == "acme-ml/mlops-serving/prod"


@pytest.mark.parametrize("url", ["azblob://state", "file:///tmp/state", "s3://bucket", "gs://bucket"])
def test_a_self_managed_backend_needs_the_literal_organization(project_repo: ProjectRepo, url: str) -> None:
    # pulumi/pulumi pkg/backend/diy/store.go ParseReference: "organization name must be 'organization'".
    with pytest.raises(BackendError, match="set the PULUMI_ORG variable to 'organization'"):
        stack_name(project_repo.work, "staging", "acme-ml", url)


def test_a_self_managed_backend_works_once_the_reference_says_organization(project_repo: ProjectRepo) -> None:
    with pytest.raises(BackendError, match=re.escape("set shared.stack to 'organization/mlops-serving/staging'")):
        stack_name(project_repo.work, "prod", "organization", "azblob://state")

    set_reference(project_repo, "organization/mlops-serving/staging")

    assert stack_name(project_repo.work, "staging", "organization", "azblob://state") == (
        "organization/mlops-serving/staging"
    )
    assert stack_name(project_repo.work, "prod", "organization", "azblob://state") == "organization/mlops-serving/prod"
    with pytest.raises(BackendError, match=re.escape("set shared.stack to 'acme-ml/mlops-serving/staging'")):
        stack_name(project_repo.work, "prod", "acme-ml", "")


def test_the_command_writes_the_step_output(
    project_repo: ProjectRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = tmp_path / "output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("PULUMI_ORG", "acme-ml")
    monkeypatch.setenv("PULUMI_BACKEND_URL", "")

    assert main(["--stack", "prod", "--project-dir", str(project_repo.work)]) == 0
    assert outputs.read_text() == "name=acme-ml/mlops-serving/prod\n"

    monkeypatch.setenv("PULUMI_BACKEND_URL", "azblob://state")
    assert main(["--stack", "prod", "--project-dir", str(project_repo.work)]) == 2
    assert "accepts only the organisation 'organization'" in capsys.readouterr().err


def test_the_workflows_refuse_a_self_managed_backend_at_the_start(
    project_repo: ProjectRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DIY backend needs AZURE_STORAGE_ACCOUNT, a secrets provider and a lasting Azure credential, which the jobs
    do not carry: the stack-name step, before any `pulumi` command, fails saying so."""
    argv = ["--stack", "staging", "--org", "organization", "--backend-url", "azblob://state"]
    argv += ["--project-dir", str(project_repo.work)]

    assert main([*argv, "--workflow"]) == 2
    assert "a self-managed backend, which these workflows do not support" in capsys.readouterr().err
    assert main(argv) == 0, "by hand, the name is still computed"


def test_every_workflow_names_its_stack_through_the_refusing_check() -> None:
    from tests.release.test_workflows import WORKFLOWS, jobs

    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in jobs(path).items():
            for step in job.get("steps", []):
                if "release.backend" in step.get("run", ""):
                    assert "--workflow" in step["run"], f"{path.name} {name}"
