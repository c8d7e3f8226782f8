"""Content, not paths: the same tree, checked out in two different directories, declares the same inputs for every
resource of every shipped stack and catalog mode. A path in an input would show as a change on every deploy from
another checkout (a CI runner, a laptop) that changes nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "mlops-serving"
# Staging and prod in Unity Catalog (as shipped), and staging on the legacy workspace registry (an opt-in).
LEGACY = "staging-legacy"
STACKS = ("staging", "prod", LEGACY)


def checkout(dest: Path) -> Path:
    """The tracked files of this tree, as they are now, under `dest`."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    yaml = YAML()
    staging = yaml.load((dest / "Pulumi.staging.yaml").read_text())
    config = staging["config"]
    config[f"{PROJECT}:modelRegistry"] = {"type": "workspace"}
    config[f"{PROJECT}:model"].update({"name": "wine-quality", "catalog": "workspace"})
    with (dest / f"Pulumi.{LEGACY}.yaml").open("w") as out:
        yaml.dump(staging, out)
    return dest


def preview(project: Path, stack: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "stacks", "preview", stack, "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, f"{stack} in {project}: {proc.stderr}"
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """Resource by resource, the inputs that differ; then the outputs."""
    left = {(r["parent"], r["type"], r["name"]): r for r in first["resources"]}
    right = {(r["parent"], r["type"], r["name"]): r for r in second["resources"]}
    found = [f"only in one checkout: {urn}" for urn in sorted(set(left) ^ set(right), key=str)]
    for urn in sorted(set(left) & set(right), key=str):
        if left[urn] != right[urn]:
            keys = {*left[urn].get("inputs", {}), *right[urn].get("inputs", {})}
            changed = sorted(
                k for k in keys if left[urn].get("inputs", {}).get(k) != right[urn].get("inputs", {}).get(k)
            )
            found.append(f"{urn}: {changed or 'options'}")
    if first.get("outputs") != second.get("outputs"):
        found.append("stack outputs differ")
    return found


@pytest.mark.slow
def test_the_same_tree_in_two_directories_previews_identically(tmp_path: Path) -> None:
    # Different names and depths, so that no path could coincide between the two.
    first = checkout(tmp_path / "a")
    second = checkout(tmp_path / "elsewhere" / "deeper" / "checkout-b")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {stack: (pool.submit(preview, first, stack), pool.submit(preview, second, stack)) for stack in STACKS}
        documents = {stack: (a.result(), b.result()) for stack, (a, b) in runs.items()}
    legacy_image = [r for r in documents[LEGACY][0]["resources"] if r["type"] == "docker-build:index:Image"]
    assert legacy_image
    assert legacy_image[0]["inputs"]["buildArgs"]["MLFLOW_TRACKING_URI"] == "databricks"
    for stack, (a, b) in documents.items():
        assert a["resources"], stack
        assert differences(a, b) == [], stack
        assert a == b, stack
