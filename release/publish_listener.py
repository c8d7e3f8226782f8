"""Publish the listener's code to its Function App (Flex Consumption): build the zip, then one deploy with the
remote build.

    python -m release.publish_listener --resource-group <rg> --app <function app>

The command is `az functionapp deployment source config-zip --build-remote true`: on a Flex Consumption app the
az CLI sends it to the "one deploy" endpoint, `POST <scm>/api/publish?RemoteBuild=True` (Azure/azure-cli
src/azure-cli/azure/cli/command_modules/appservice/custom.py, `enable_zip_deploy_functionapp` ->
`enable_zip_deploy_flex`), which is the only way Flex runs a package and builds requirements.txt. `az functionapp
deploy` has no `--build-remote` (its arguments in the same module's `_params.py`).

On a brand-new app the first publish can fail while the app's new role on its deployment storage propagates
(the SCM site answers 400 with a storage 403): it is retried a few times before the step fails.

Each attempt is bounded: after a deployment the CLI polls the app's host status in a loop whose trial counter is
never incremented (Azure/azure-cli appservice/custom.py, `total_trials = 15` / `num_trials = 0`, no `+= 1`), so
an unhealthy app keeps it polling forever. An attempt that outlives ATTEMPT_TIMEOUT_SECONDS is killed (its whole
process group) and counts as failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from release.package_listener import build

ATTEMPTS = 4
BACKOFF_SECONDS = 30.0
# A remote build of the listener's requirements takes minutes; four attempts stay within the deploy job's timeout.
ATTEMPT_TIMEOUT_SECONDS = 600.0
TIMED_OUT = 124  # what coreutils' timeout(1) exits with

Runner = Callable[[Sequence[str]], int]


def publish_command(resource_group: str, app: str, package: Path) -> list[str]:
    return [
        "az", "functionapp", "deployment", "source", "config-zip",
        "--resource-group", resource_group,
        "--name", app,
        "--src", str(package),
        "--build-remote", "true",
    ]  # fmt: skip


def _run(argv: Sequence[str], timeout: float = ATTEMPT_TIMEOUT_SECONDS) -> int:
    """Runs `argv`; kills its process group and returns TIMED_OUT when it outlives `timeout` seconds."""
    with subprocess.Popen(list(argv), start_new_session=True) as proc:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            print(f"{argv[0]} did not finish in {timeout:.0f} s; killed", flush=True)
            return TIMED_OUT


def publish(
    resource_group: str,
    app: str,
    package: Path,
    *,
    run: Runner | None = None,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Runs the publish command until it succeeds, `attempts` times at most; returns the last exit code."""
    command = publish_command(resource_group, app, package)
    run = run or _run
    code = 1
    for attempt in range(1, attempts + 1):
        code = run(command)
        if code == 0:
            return 0
        if attempt < attempts:
            print(f"publish attempt {attempt} failed (exit {code}); retrying in {backoff * attempt:.0f} s", flush=True)
            sleep(backoff * attempt)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.publish_listener", description=__doc__.splitlines()[0])
    parser.add_argument("--resource-group", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--source", type=Path, default=Path("listener"))
    parser.add_argument("--out", type=Path, default=Path("listener.zip"))
    args = parser.parse_args(argv)
    if not args.resource_group or not args.app:
        print("error: --resource-group and --app must not be empty (are the stack outputs exported?)", file=sys.stderr)
        return 2
    digest = build(args.source, args.out)
    print(f"{args.out}: {digest}")
    return publish(args.resource_group, args.app, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
