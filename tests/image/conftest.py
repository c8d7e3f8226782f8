"""The real model image, built once for this folder: `model_image/Dockerfile` unchanged, with podman, from the
program's own declaration for staging, against a real `mlflow server` holding the demo model, pushed to a local
OCI registry and run by digest as the Deployment runs it.

The stand-in base (scripts/make-base-image.sh) is kept between runs on the same machine; podman's layer cache
keeps the server's dependencies layer too, so a second run rebuilds only what the model changes.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localrun.declared_release import DeclaredRelease
from localrun.oci_registry import oci_registry, registry_binary
from localrun.podman import LocalRegistryBuild, ReleasedImage, ensure_base_image, podman_missing, release_image
from localrun.processes import REPO_ROOT, ManagedProcess, child_env, mlflow_server

with warnings.catch_warnings():
    # Importing mlflow.pyfunc warns about MLflow's own type hints; with the suite's filterwarnings=error the import
    # inside the fixture would fail (as tests/model_image/conftest.py does, import it once here, quietly).
    warnings.simplefilter("ignore", UserWarning)
    import mlflow.pyfunc  # noqa: F401

# The shipped staging stack's Unity Catalog name; open-source MLflow registers it as one plain name.
MODEL = "mlops.models.wine_quality"
# Nothing the program reads lives in these; copying them would take minutes.
_NOT_PROJECT = shutil.ignore_patterns(".git", ".venv", ".tools", "node_modules", ".demo", ".bench", "__pycache__")


def declared(project_dir: Path, stack: str = "staging") -> DeclaredRelease:
    """What the program declares for `stack` in `project_dir` (one real run of it, in its own process)."""
    proc = subprocess.run(
        [sys.executable, "-m", "localrun.declared_release", str(project_dir), stack],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return DeclaredRelease.from_json(proc.stdout)


def project_copy(destination: Path) -> Path:
    """A copy of the project to change a stack file in (the working tree stays as it is)."""
    shutil.copytree(REPO_ROOT, destination, ignore=_NOT_PROJECT)
    return destination


@dataclass
class ImageRun:
    """Everything the build made, for the checks to look at."""

    workdir: Path
    tracking_uri: str
    token: str
    registry_host: str
    release: DeclaredRelease
    image: ReleasedImage
    run_id: str
    base_seconds: float

    def registry(self) -> LocalRegistryBuild:
        return LocalRegistryBuild(self.tracking_uri, self.token)


@pytest.fixture(scope="session")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageRun]:
    missing = podman_missing() or (None if registry_binary() else "docker-registry not installed")
    if missing:
        pytest.fail(f"the image tests need Debian's container tools: {missing} (./scripts/bootstrap.sh installs them)")
    from cryptography.fernet import Fernet

    from demo.wine_model import log_wine_model

    workdir = tmp_path_factory.mktemp("image")
    _, base_seconds = ensure_base_image()
    release = declared(REPO_ROOT)
    servers: list[ManagedProcess] = []
    try:
        mlflow = mlflow_server(workdir / "mlflow", fernet_key=Fernet.generate_key().decode())
        servers.append(mlflow.start(180))
        registry, registry_host = oci_registry(workdir / "registry")
        servers.append(registry.start(60))
        assert mlflow.ready_url is not None
        tracking_uri = mlflow.ready_url.removesuffix("/health")
        registered = log_wine_model(tracking_uri, MODEL, max_iter=50)
        assert registered.version == "1"
        # A token no file, arg or label holds: if it turns up anywhere in the image, the build leaked it.
        token = f"tok-{secrets.token_hex(20)}"
        image = release_image(
            REPO_ROOT,
            release.build,
            LocalRegistryBuild(tracking_uri, token),
            registry_host,
            log_path=workdir / "build-v1.log",
        )
        yield ImageRun(workdir, tracking_uri, token, registry_host, release, image, registered.run_id, base_seconds)
    finally:
        for server in reversed(servers):
            server.stop()
