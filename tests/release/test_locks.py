"""Every lock file carries hashes and every install checks them: the venv, CI, the images, the listener package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.webhook_listener import package_files
from tests.release.gitrepo import ROOT

LOCKS = [
    ROOT / "requirements.txt",
    ROOT / "requirements-dev.txt",
    ROOT / "requirements-comment.txt",
    ROOT / "listener" / "requirements.txt",
    ROOT / "model_image" / "requirements.txt",
    ROOT / "model_image" / "fetch-requirements.txt",
    ROOT / "model_image" / "sbom-requirements.txt",
    ROOT / "tools" / "checkov.txt",
]
REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\[\],-]*==\S+")


def requirements_with_hashes(path: Path) -> dict[str, int]:
    """Each pinned requirement of a lock file and how many `--hash=sha256:` options it carries."""
    found: dict[str, int] = {}
    current = None
    for line in path.read_text().splitlines():
        if REQUIREMENT.match(line):
            current = line.split(" ")[0]
            found[current] = 0
        elif current and line.strip().startswith("--hash=sha256:"):
            found[current] += 1
        elif not line.startswith("    "):
            current = None
    return found


@pytest.mark.parametrize("path", LOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_locked_requirement_has_hashes(path: Path) -> None:
    pins = requirements_with_hashes(path)
    assert pins, f"{path.name}: no pinned requirement"
    assert [name for name, hashes in pins.items() if hashes == 0] == []


def test_the_lock_script_generates_hashes() -> None:
    script = (ROOT / "scripts" / "lock.sh").read_text()
    assert "--generate-hashes" in script
    assert all(f in script for f in ("requirements-comment.in", "listener/requirements.in", "tools/checkov.in"))


def test_bootstrap_installs_with_hash_checking() -> None:
    syncs = [line for line in (ROOT / "scripts" / "bootstrap.sh").read_text().splitlines() if "uv pip sync" in line]
    assert len(syncs) == 2
    assert all("--require-hashes" in line for line in syncs)


def test_the_image_checks_the_server_dependencies_hashes_but_not_the_models_own() -> None:
    pip_installs = [
        line
        for line in (ROOT / "model_image" / "Dockerfile").read_text().splitlines()
        if "pip install" in line and not line.lstrip().startswith("#")
    ]
    fetch, server, model, sbom = pip_installs
    assert "--require-hashes -r /build/fetch-requirements.txt" in fetch
    assert "--require-hashes -r /build/sbom-requirements.txt" in sbom
    assert "--require-hashes -r /build/requirements.txt" in server
    # MLflow writes the model's requirements.txt without hashes; with --require-hashes pip would refuse it.
    assert "/build/model-requirements.serving.txt" in model
    assert "--require-hashes" not in model


def test_the_listener_package_ships_the_hashed_lock() -> None:
    # The remote build runs `pip install -r requirements.txt`; pip checks hashes as soon as one requirement has one
    # (pip docs, "Hash-checking mode": "enabled automatically when any requirement has a --hash").
    names = dict(package_files(ROOT / "listener"))
    assert "requirements.txt" in names
    assert requirements_with_hashes(names["requirements.txt"])
    assert all(requirements_with_hashes(names["requirements.txt"]).values())


def test_the_comment_job_installs_only_hash_checked_packages() -> None:
    text = (ROOT / ".github" / "workflows" / "offline-diff-comment.yml").read_text()
    assert "pip install --quiet --require-hashes --no-deps -r requirements-comment.txt" in text
