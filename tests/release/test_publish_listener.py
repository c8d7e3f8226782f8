"""The listener's publish step: one deploy with the remote build, retried while a new app's roles propagate."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from release import publish_listener
from release.publish_listener import main, publish, publish_command
from tests.release.gitrepo import ROOT


def test_the_command_is_config_zip_with_the_remote_build() -> None:
    # az CLI (Azure/azure-cli appservice/custom.py): `deployment source config-zip` -> enable_zip_deploy_functionapp
    # -> on Flex Consumption enable_zip_deploy_flex, POST {scm}/api/publish?RemoteBuild=True (one deploy).
    # `az functionapp deploy` has no --build-remote.
    assert publish_command("rg-stg", "func-stg", Path("listener.zip")) == [
        "az", "functionapp", "deployment", "source", "config-zip",
        "--resource-group", "rg-stg", "--name", "func-stg", "--src", "listener.zip", "--build-remote", "true",
    ]  # fmt: skip


def test_a_failed_first_publish_is_retried_then_reported() -> None:
    calls: list[list[str]] = []
    codes = iter([1, 1, 0])

    def run(argv: Sequence[str]) -> int:
        calls.append(list(argv))
        return next(codes)

    assert publish("rg", "app", Path("p.zip"), run=run, sleep=lambda _: None) == 0
    assert len(calls) == 3

    assert publish("rg", "app", Path("p.zip"), run=lambda _: 3, attempts=2, sleep=lambda _: None) == 3


def test_main_builds_the_package_and_publishes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []

    def run(argv: Sequence[str]) -> int:
        ran.append(list(argv))
        return 0

    monkeypatch.setattr(publish_listener, "_run", run)
    out = tmp_path / "listener.zip"

    assert main(["--resource-group", "rg", "--app", "app", "--source", str(ROOT / "listener"), "--out", str(out)]) == 0

    (argv,) = ran
    assert argv[argv.index("--src") + 1] == str(out)
    assert "requirements.txt" in zipfile.ZipFile(out).namelist()
    assert main(["--resource-group", "", "--app", "app", "--out", str(out)]) == 2


def test_an_attempt_that_never_ends_is_killed_and_counts_as_failed(tmp_path: Path) -> None:
    """The CLI can poll an unhealthy app's host status forever (its trial counter never grows): the attempt is
    bounded, its process group killed, so the step fails instead of hanging the job."""
    marker = tmp_path / "grandchild-alive"
    # A child that never ends and has a child of its own (as `az`, a shell script, runs python).
    forever = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])\n"
        f"open({str(marker)!r}, 'w').close()\n"
        "time.sleep(3600)\n"
    )
    import sys

    code = publish_listener._run([sys.executable, "-c", forever], timeout=5)

    assert code == publish_listener.TIMED_OUT
    assert marker.exists(), "the command had started"


def test_the_workflow_step_is_bounded_too() -> None:
    from tests.release.test_workflows import WORKFLOWS, jobs

    steps = jobs(WORKFLOWS / "deploy.yml")["staging"]["steps"]
    (step,) = [s for s in steps if "release.publish_listener" in s.get("run", "")]
    assert 0 < step["timeout-minutes"] <= 45
