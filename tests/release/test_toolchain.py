"""The Pulumi language host can use the venv `scripts/bootstrap.sh` makes: the command it runs for the configured
toolchain succeeds there and lists the program's Pulumi packages."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.release.gitrepo import ROOT


def runtime_options() -> dict[str, Any]:
    project: dict[str, Any] = YAML(typ="safe", pure=True).load((ROOT / "Pulumi.yaml").read_text())
    runtime = project["runtime"]
    assert runtime["name"] == "python"
    options: dict[str, Any] = runtime.get("options", {})
    return options


def language_host_list_command(options: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """What pulumi-language-python runs to discover the plugins a program needs (GetRequiredPackages ->
    listPulumiPackageInfos -> toolchain.ListPackages(transitive=true)); a failure there is fatal to every
    `pulumi preview`/`up`.

    pip toolchain: `<virtualenv>/bin/python -m pip list --format json`, with the venv activated
    (pulumi/pulumi sdk/python/toolchain/pip.go `ListPackages`, `Command`, `ActivateVirtualEnv`).
    The uv toolchain reads uv.lock instead (sdk/python/toolchain/uv.go `ListPackages`), which this project does not
    have: its locks are requirements files, so it must not be configured here.
    """
    toolchain = options.get("toolchain", "pip")
    assert toolchain == "pip", f"Pulumi.yaml toolchain {toolchain!r}: this test knows the command of pip only"
    venv = ROOT / options["virtualenv"]
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONHOME", None)
    return [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"], env


def locked(name: str, lock: Path = ROOT / "requirements.txt") -> str:
    found = re.search(rf"^{re.escape(name)}==(\S+)", lock.read_text(), re.MULTILINE)
    assert found, f"{name} is not in {lock.name}"
    return found.group(1)


def test_the_language_host_lists_the_programs_packages_in_the_bootstrapped_venv() -> None:
    command, env = language_host_list_command(runtime_options())
    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"`{' '.join(command)}` failed: {proc.stderr.strip()}"
    # Names normalised as the language host does (toolchain.go normalizePythonPackageName, PEP 503).
    listed = {re.sub(r"[-_.]+", "-", row["name"]).lower(): row["version"] for row in json.loads(proc.stdout)}
    for package in ("pulumi", "pulumi-azure-native", "pulumi-databricks", "pulumi-kubernetes", "pulumi-docker-build"):
        assert listed.get(package) == locked(package), package


def test_pip_is_in_the_programs_lock_so_a_uv_made_venv_has_it() -> None:
    # `uv venv` seeds no pip (uv docs, `uv venv --seed`); `uv pip sync` installs exactly the lock.
    assert locked("pip")
    assert locked("pip", ROOT / "requirements-dev.txt") == locked("pip")
