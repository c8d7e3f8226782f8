"""The pull-request `checks` job runs on GitHub's Ubuntu runner as user `runner`, with passwordless sudo, not as
root: the bootstrap installs the Debian packages the tests need through `sudo -n` there.

The bootstrap runs for real in this checkout, with stand-ins on PATH for what would touch the machine: `id`
(a non-root user), `sudo` (records what it is asked to run, runs nothing), `dpkg-query` (nothing installed),
`apt-get`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.release.gitrepo import ROOT

IMAGE_PACKAGES = ["podman", "buildah", "runc", "debootstrap", "docker-registry", "skopeo"]


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def run_bootstrap(
    tmp_path: Path, *, sudo_works: bool, asked_for: bool = True
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sudo.log"
    stub(bin_dir, "id", 'if [ "$1" = -u ]; then echo 1001; else echo "uid=1001(runner)"; fi')
    stub(bin_dir, "sudo", f'echo "$*" >> {log}\nexit {0 if sudo_works else 1}')
    stub(bin_dir, "dpkg-query", "exit 1")
    stub(bin_dir, "apt-get", f"echo unexpected apt-get without sudo >> {log}; exit 1")
    stub(bin_dir, "uv", "exit 0")  # the venvs exist already; the lock sync is not what is tested here
    stub(bin_dir, "npm", "exit 0")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env.pop("BOOTSTRAP_OS_PACKAGES", None)
    if asked_for:
        env["BOOTSTRAP_OS_PACKAGES"] = "1"
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bootstrap.sh")], env=env, capture_output=True, text=True, check=False
    )
    return proc, log.read_text(encoding="utf-8").splitlines() if log.exists() else []


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs the bootstrapped .venv")
def test_a_user_with_passwordless_sudo_installs_the_packages_through_sudo(tmp_path: Path) -> None:
    proc, asked = run_bootstrap(tmp_path, sudo_works=True)

    assert proc.returncode == 0, proc.stderr
    assert asked[0] == "-n true", "checks first that sudo never prompts"
    assert "-n apt-get update -qq" in asked
    installs = [line for line in asked if " apt-get install " in line]
    # A command the machine already has (a runner's own podman, Docker's runc) is never asked for.
    wanted = [pkg for pkg in IMAGE_PACKAGES if pkg not in ("podman", "runc") or shutil.which(pkg) is None]
    assert installs == [
        "-n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove --no-install-recommends "
        "prometheus prometheus-alertmanager nginx",
        *(
            ["-n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove " + " ".join(wanted)]
            if wanted
            else []
        ),
    ]
    assert not any(line.startswith("unexpected") for line in asked)


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs the bootstrapped .venv")
def test_nginx_installed_by_the_bootstrap_does_not_start_at_boot(tmp_path: Path) -> None:
    # Debian's nginx enables its service, whose default site listens on :80 on every interface; the project runs
    # its own nginx on 127.0.0.1 (localrun/weighted_proxy.py).
    proc, asked = run_bootstrap(tmp_path, sudo_works=True)

    assert proc.returncode == 0, proc.stderr
    install = next(i for i, line in enumerate(asked) if " apt-get install " in line and " nginx" in line)
    assert asked[install + 1] == "-n update-rc.d nginx disable"


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs the bootstrapped .venv")
def test_a_user_with_sudo_who_did_not_ask_has_nothing_installed(tmp_path: Path) -> None:
    # Every workflow job bootstraps; only `checks` needs the Debian packages, and a laptop's are its owner's.
    proc, asked = run_bootstrap(tmp_path, sudo_works=True, asked_for=False)

    assert proc.returncode == 0, proc.stderr
    assert asked == []
    assert "BOOTSTRAP_OS_PACKAGES=1" in proc.stderr


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs the bootstrapped .venv")
def test_without_sudo_it_says_what_is_missing_and_goes_on(tmp_path: Path) -> None:
    proc, asked = run_bootstrap(tmp_path, sudo_works=False)

    assert proc.returncode == 0, proc.stderr
    assert "not installed (root installs them" in proc.stderr
    assert asked == ["-n true"]


def test_the_checks_job_runs_the_bootstrap_on_githubs_ubuntu_runner() -> None:
    from tests.release.test_workflows import WORKFLOWS, jobs

    checks = jobs(WORKFLOWS / "pull-request.yml")["checks"]
    assert checks["runs-on"].startswith("ubuntu-")
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_sh = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert "scripts/test.sh" in ci_run
    assert "./scripts/bootstrap.sh" in test_sh
