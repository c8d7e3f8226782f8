"""Which pushes skip staging: only those that change nothing but prod's stack file (a prod promotion or rollback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from release.deploy_plan import ZERO, main
from tests.release.gitrepo import IDENTITY, ProjectRepo


def commit(repo: ProjectRepo, path: str, text: str) -> str:
    (repo.work / path).write_text(text)
    repo.git("add", path)
    repo.git(*IDENTITY, "commit", "--quiet", "-m", f"change {path}")
    return repo.git("rev-parse", "HEAD")


def plan(repo: ProjectRepo, before: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(repo.work)
    outputs = tmp_path / "out"
    outputs.write_text("")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert main(["--before", before, "--after", "HEAD"]) == 0
    return outputs.read_text().strip()


def test_a_prod_only_push_skips_staging(
    project_repo: ProjectRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = project_repo.git("rev-parse", "HEAD")
    commit(project_repo, "Pulumi.prod.yaml", project_repo.file("prod").read_text() + "# rollback\n")
    assert plan(project_repo, before, tmp_path, monkeypatch) == "prod-only=true"


@pytest.mark.parametrize("path", ["Pulumi.staging.yaml", "__main__.py", "components/new.py"])
def test_anything_else_deploys_staging_first(
    project_repo: ProjectRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    before = project_repo.git("rev-parse", "HEAD")
    commit(project_repo, "Pulumi.prod.yaml", project_repo.file("prod").read_text() + "# also prod\n")
    commit(project_repo, path, "# changed\n")
    assert plan(project_repo, before, tmp_path, monkeypatch) == "prod-only=false"


def test_an_unknown_before_deploys_everything(
    project_repo: ProjectRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert plan(project_repo, ZERO, tmp_path, monkeypatch) == "prod-only=false"
    assert plan(project_repo, "", tmp_path, monkeypatch) == "prod-only=false"
