"""Fixtures of the release tests: a project repository with an origin, and a recording GitHub API on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from localrun.processes import mlflow_server, running
from release import proposal
from release.proposal import OfflineDiff
from tests.release.ghfake import FakeGitHub, GitHubServer
from tests.release.gitrepo import ProjectRepo, clone_project, make_template
from tests.release.registry import enforce_unity_catalog_tag_keys, make_registry


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No tool phones home, no personal git config applies, no Actions variables leak in from a CI runner, and
    nothing a library writes to its working directory by default (MLflow's `mlflow.db`) lands in the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("PULUMI_SKIP_UPDATE_CHECK", "true")
    empty = tmp_path_factory.mktemp("gitconfig") / "config"
    empty.touch()
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "GITHUB_EVENT_PATH",
        "GITHUB_REF_NAME",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_OUTPUT",
        "GITHUB_TOKEN",
        "GITHUB_REPOSITORY",
        "GITHUB_API_URL",
        "GITHUB_RUN_ID",
        "GITHUB_RUN_ATTEMPT",
        "GITHUB_SERVER_URL",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("template") / "repo")


@pytest.fixture
def project_repo(project_template: Path, tmp_path: Path) -> ProjectRepo:
    return clone_project(project_template, tmp_path)


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    with GitHubServer() as fake:
        monkeypatch.setenv("GITHUB_API_URL", fake.url)
        monkeypatch.setenv("GITHUB_TOKEN", "test-token")
        monkeypatch.setenv("GITHUB_REPOSITORY", fake.repository)
        yield fake


@pytest.fixture(autouse=True)
def _unity_catalog_tag_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test registry's models are Unity Catalog names; the registry refuses what Unity Catalog refuses."""
    enforce_unity_catalog_tag_keys(monkeypatch)


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite registry with mlops.models.wine_quality v1..v3, made once; each test gets its own copy."""
    path = tmp_path_factory.mktemp("registry") / "mlflow.db"
    make_registry(f"sqlite:///{path}")
    return path


@pytest.fixture
def registry(registry_template: Path, tmp_path: Path) -> str:
    copy = tmp_path / "mlflow.db"
    shutil.copy2(registry_template, copy)
    return f"sqlite:///{copy}"


@pytest.fixture(scope="session")
def live_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on loopback with wine-quality v1..v4: the registry API the workflows call.

    Shared by the tests that set aliases, stages and tags; each sets what it asserts on before asserting."""
    from cryptography.fernet import Fernet

    server = mlflow_server(tmp_path_factory.mktemp("live-registry"), fernet_key=Fernet.generate_key().decode())
    # Starting takes ~50 s on an idle 2-core machine, several minutes when it is shared.
    with running(server, timeout=600):
        uri = str(server.ready_url).removesuffix("/health")
        make_registry(uri, versions=4)
        yield uri


@pytest.fixture
def quick_diff(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The offline diff (a minute per run) replaced by a marker naming the pinned version, for the tests of the git
    and pull-request mechanics; the tests of the diff itself run it for real."""
    calls: list[tuple[str, str]] = []

    def fake(repo_dir: Path, base: str, stack: str) -> OfflineDiff:
        calls.append((base, stack))
        pinned = (repo_dir / f"Pulumi.{stack}.yaml").read_text()
        version = next(line for line in pinned.splitlines() if line.strip().startswith("version:"))
        return OfflineDiff(True, f"### diff of {stack} against {base[:12]}: {version.strip()}")

    monkeypatch.setattr(proposal, "offline_diff", fake)
    return calls
