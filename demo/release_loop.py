"""The whole release loop on one machine, with the product's real parts and no cloud.

A real `mlflow server` (SQLite) stands in for the Databricks registry and Azurite for Azure Storage; a small local
endpoint stands in for GitHub's API. Everything else is the product's own code: the listener verifies the webhook
and hands it to its queue, its worker dispatches, `release.promote` pins the version on a working copy and renders
the offline diff, and the image is built from `model_image/Dockerfile` with podman, pushed to a local registry and
run by digest as the Rollout's pods run it (demo/image_steps.py). Without podman, `model_server` fetches the model
from the registry (as the Dockerfile does at build time) and serves it from the virtualenv. Versions 1 and 2 switch
at once; versions 3 (bad: aborted, reverted) and 4 (good: promoted) are released as canaries (demo/canary_steps.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from demo import image_steps
from demo.context import ALIAS, MODEL, PROMOTED_EVENT, REPOSITORY, LoopFailedError, Servers, Step
from demo.local_ci import Dispatch, LocalCI
from localrun.processes import REPO_ROOT, ManagedProcess, azurite, child_env, free_port, mlflow_server


class ReleaseLoop:
    """Runs the loop step by step, printing as it goes and keeping each step's time."""

    def __init__(self, workdir: Path, *, out: Callable[[str], None] = print) -> None:
        self.workdir = workdir
        self.out = out
        self.steps: list[Step] = []
        self.servers = Servers()
        self.webhook_secret = secrets.token_urlsafe(32)
        self.ci_token = secrets.token_urlsafe(32)
        self.alert_token = secrets.token_urlsafe(32)  # Alertmanager -> the listener's alert route
        self.worktree = workdir / "worktree"
        self.remote = workdir / "github.git"
        self.serving: dict[int, tuple[ManagedProcess, str]] = {}
        self.images: image_steps.ImageSteps | None = None
        self.last_ready_seconds = 0.0
        self.canaries: list[str] = []  # the canary releases' summary lines

    # Plumbing ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        self.out(f"\n▶ {name}")
        detail: list[str] = []
        start = time.monotonic()
        yield detail
        seconds = time.monotonic() - start
        self.steps.append(Step(name, seconds, "; ".join(detail)))
        self.out(f"  ✓ {name} ({seconds:.1f}s){': ' + '; '.join(detail) if detail else ''}")

    def start(self, proc: ManagedProcess, timeout: float = 120) -> ManagedProcess:
        self.servers.processes.append(proc)
        proc.start(timeout)
        return proc

    def run_tool(self, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            [sys.executable, *argv],
            capture_output=True,
            text=True,
            env=child_env(env),
            cwd=cwd or REPO_ROOT,
            check=False,
            timeout=600,
        )
        if proc.returncode != 0:
            raise LoopFailedError(f"`{' '.join(argv[:3])}` failed ({proc.returncode}):\n{proc.stderr or proc.stdout}")
        return proc.stdout

    def retire(self, proc: ManagedProcess) -> None:
        """Stops a process the loop no longer needs (a replaced version, a finished step's Prometheus)."""
        proc.stop()
        if proc in self.servers.processes:
            self.servers.processes.remove(proc)

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", "-C", str(self.worktree), *args], capture_output=True, text=True, check=True, timeout=60
        )
        return proc.stdout.strip()

    # The loop ----------------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._prepare()
            self._start_services()
            self.images = image_steps.for_loop(self)
            self._register_webhook()
            self._release(1)
            self._forged_webhook_is_rejected()
            self._release(2)
            from demo.monitoring_steps import drift_alert_reaches_ci

            drift_alert_reaches_ci(self)
            from demo.canary_steps import canary_releases

            self.canaries = canary_releases(self)
            self._summary()
        except BaseException:
            self.servers.stop()
            raise

    def _prepare(self) -> None:
        with self.step("prepare a fresh working copy of the project") as detail:
            if self.workdir.exists():
                shutil.rmtree(self.workdir)
            self.workdir.mkdir(parents=True)
            # The committed project, as CI would check it out: the promote workflow commits pin bumps here.
            subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(self.worktree)], check=True, timeout=120)
            self.git("config", "user.name", "local CI")
            self.git("config", "user.email", "ci@localhost")
            # The branch the clone checked out (main in CI; a feature branch when run from one) is the base.
            self.base_branch = self.git("rev-parse", "--abbrev-ref", "HEAD")
            # The "GitHub" repository the release pushes its branches to: a bare repository of its own, so that
            # nothing the demo does ever reaches the project's repository the clone came from.
            subprocess.run(["git", "init", "-q", "--bare", str(self.remote)], check=True, timeout=60)
            self.git("remote", "set-url", "origin", str(self.remote))
            self.git("push", "-q", "origin", f"HEAD:refs/heads/{self.base_branch}")
            detail.append(f"{self.worktree} at {self.git('rev-parse', '--short', 'HEAD')}, remote {self.remote}")

    def _start_services(self) -> None:
        with self.step("start mlflow server (SQLite), Azurite, the local GitHub stand-in and the listener") as detail:
            from cryptography.fernet import Fernet

            # ~50 s on an idle 2-core machine; allow for a loaded one (a shared CI runner).
            self.mlflow = self.start(
                mlflow_server(self.workdir / "mlflow", fernet_key=Fernet.generate_key().decode()), timeout=300
            )
            assert self.mlflow.ready_url is not None
            self.tracking_uri = self.mlflow.ready_url.removesuffix("/health")
            storage, ports = azurite(self.workdir / "azurite")
            self.start(storage)
            self.servers.ci = LocalCI(token=self.ci_token, repository=REPOSITORY)
            ci_url = self.servers.ci.start()
            port = free_port()
            self.listener_url = f"http://127.0.0.1:{port}"
            self.start(
                ManagedProcess(
                    name="listener",
                    argv=[
                        sys.executable,
                        "-m",
                        "webhook_listener",
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        f"{port}",
                    ],
                    log_path=self.workdir / "listener.log",
                    env={
                        "LISTENER_WEBHOOK_SECRET": self.webhook_secret,
                        "LISTENER_STORAGE_CONNECTION_STRING": ports.connection_string,
                        "LISTENER_MODELS": MODEL,
                        "LISTENER_PROMOTE_ALIAS": ALIAS,
                        "LISTENER_TARGET_STACK": "staging",
                        "LISTENER_DISPATCH_TARGET": "github",
                        "LISTENER_GITHUB_API_URL": ci_url,
                        "LISTENER_GITHUB_REPOSITORY": REPOSITORY,
                        "LISTENER_GITHUB_TOKEN": self.ci_token,
                        "LISTENER_WORKER_POLL_SECONDS": "0.2",
                        "LISTENER_RETRY_BASE_SECONDS": "1",
                        "LISTENER_ALERTMANAGER_TOKEN": self.alert_token,
                    },
                    ready_url=f"{self.listener_url}/api/health",
                )
            )
            detail.append(f"mlflow {self.tracking_uri}, listener {self.listener_url}, GitHub stand-in {ci_url}")

    def _register_webhook(self) -> None:
        with self.step("register the registry webhook (alias set → listener), with a generated secret") as detail:
            from mlflow import MlflowClient

            client = MlflowClient(self.tracking_uri)
            hook = client.create_webhook(
                name="release-listener",
                url=f"{self.listener_url}/api/webhooks/mlflow",
                events=["model_version_alias.created"],
                secret=self.webhook_secret,
            )
            detail.append(f"webhook {hook.webhook_id} → /api/webhooks/mlflow")

    def _release(self, expected_version: int) -> None:
        self.promote(expected_version)
        with self.step(f"build what the image holds for version {expected_version}, roll it out, smoke-test") as detail:
            url = self.deploy(expected_version)
            detail.append(f"serving {url}")
            previous = [v for v in self.serving if v != expected_version]
            for version in previous:
                proc, _ = self.serving.pop(version)
                self.retire(proc)
                detail.append(f"version {version} stopped")
            self.record_deployment(expected_version)

    def record_deployment(self, version: int) -> None:
        """The deploy's last step once a release is promoted: `release.record_deployment` tags the version with the
        digest it runs by, and the model with the version staging runs (what an aborted canary's revert returns
        to). From the virtualenv there is no image, so nothing is recorded."""
        if self.images is None:
            self.out("  registry: nothing recorded (no image: served from the virtualenv)")
            return
        out = self.run_tool(
            "-m", "release.record_deployment", "--stack", "staging", "--digest", self.images.digest(version),
            "--project-dir", str(self.worktree), "--tracking-uri", self.tracking_uri,
        )  # fmt: skip
        self.out("\n".join("  │ " + line for line in out.rstrip().splitlines()))

    def promote(self, expected_version: int, *, bad: bool = False) -> dict[str, Any]:
        """Register version `expected_version` (the failing model when `bad`), promote it through the loop and
        merge its pin bump; returns the dispatch's payload."""
        from mlflow import MlflowClient

        from demo.wine_model import log_failing_model, log_wine_model

        what = "register the deliberately bad" if bad else "train and register"
        with self.step(f"{what} {MODEL} version {expected_version}") as detail:
            if bad:
                registered = log_failing_model(self.tracking_uri, MODEL)
            else:
                registered = log_wine_model(self.tracking_uri, MODEL, max_iter=40 + 10 * expected_version)
            if registered.version != str(expected_version):
                raise LoopFailedError(f"expected version {expected_version}, the registry made {registered.version}")
            detail.append(f"{registered.model_uri} (run {registered.run_id[:8]})")

        with self.step(f"promote version {expected_version}: set alias {ALIAS!r} → webhook → listener → dispatch"):
            MlflowClient(self.tracking_uri).set_registered_model_alias(MODEL, ALIAS, registered.version)
            dispatch = self._next_dispatch(timeout=60)
            payload = dispatch.client_payload
            self.out(f"  dispatch received: {json.dumps(payload)}")
            if (payload.get("model"), str(payload.get("version"))) != (MODEL, registered.version):
                raise LoopFailedError(f"the dispatch names the wrong release: {payload}")

        with self.step(f"the promote workflow pins version {expected_version} on staging and shows the diff") as detail:
            report = self.run_tool(
                "-m", "release.promote", "--payload", json.dumps(payload), "--repo-dir", str(self.worktree),
                "--no-push", "--tracking-uri", self.tracking_uri,
            )  # fmt: skip
            self.out("\n".join("  │ " + line for line in report.rstrip().splitlines()))
            branch = f"promote/staging/{MODEL}-v{expected_version}"
            if branch in self.git("branch", "--list", branch):
                # The reviewer approves; the merge is what the deploy workflow runs on.
                self.git("checkout", "-q", self.base_branch)
                self.git("merge", "-q", "--ff-only", branch)
                detail.append(f"merged {branch} into {self.base_branch}")
            pinned = self.pinned_version()
            if pinned != expected_version:
                raise LoopFailedError(f"staging pins version {pinned} after the promotion, not {expected_version}")
        return payload

    def _next_dispatch(self, timeout: float, event_type: str = PROMOTED_EVENT) -> Dispatch:
        """The next dispatch of `event_type`; others (a drift alert repeated by Alertmanager) are shown and passed."""
        assert self.servers.ci is not None
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                dispatch = self.servers.ci.dispatches.get(timeout=remaining)
            except queue.Empty:
                break
            if dispatch.event_type == event_type:
                return dispatch
            self.out(f"  (also received: a {dispatch.event_type} dispatch)")
        listener = next(p for p in self.servers.processes if p.name == "listener")
        raise LoopFailedError(
            f"no {event_type} dispatch reached the GitHub stand-in within {timeout:.0f}s; listener log:\n"
            + listener.log_tail()
        )

    def pinned_version(self) -> int:
        from stacks.files import load_stack_config
        from stacks.settings import pinned_model

        return pinned_model(load_stack_config(self.worktree, "staging").settings()).version

    def deploy(self, version: int, env: dict[str, str] | None = None) -> str:
        """Starts version `version` beside what serves already (from its image, else the virtualenv) and
        smoke-tests it; returns its /invocations URL. `env` is added to the server's environment."""
        if self.images is not None:
            return self.images.deploy(version, env=env)
        return self.deploy_virtualenv(version, env=env)

    def deploy_virtualenv(self, version: int, env: dict[str, str] | None = None) -> str:
        from components.model_image import image_code_hash

        model_dir = self.workdir / "images" / f"{MODEL}-v{version}" / "model"
        # The Dockerfile's fetch step, run here: the artifacts come from the registry, not from the training run.
        self.run_tool(
            "-m", "model_server", "fetch", "--model-uri", f"models:/{MODEL}/{version}", "--dest", str(model_dir),
            env={"MLFLOW_TRACKING_URI": self.tracking_uri},
        )  # fmt: skip
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        proc = self.start(
            ManagedProcess(
                name=f"model-server-v{version}",
                argv=[
                    sys.executable,
                    "-m",
                    "model_server",
                    "serve",
                    "--model-dir",
                    f"{model_dir}",
                    "--port",
                    f"{port}",
                ],
                log_path=self.workdir / f"model-server-v{version}.log",
                env={
                    "MODEL_NAME": MODEL,
                    "MODEL_VERSION": str(version),
                    "IMAGE_CODE_HASH": image_code_hash(REPO_ROOT / "model_image"),
                    "OMP_NUM_THREADS": "1",
                    **(env or {}),
                },
                ready_url=f"{base}/health/ready",
            ),
            timeout=180,
        )
        self.last_ready_seconds = time.monotonic() - started
        example = model_dir / "serving_input_example.json"
        body = example.read_bytes() if example.exists() else b""
        if not body:
            raise LoopFailedError(f"{example} is missing: the model was registered without an input example")
        answer = httpx.post(f"{base}/invocations", content=body, headers={"Content-Type": "application/json"})
        if answer.status_code != 200 or "predictions" not in answer.json():
            raise LoopFailedError(f"smoke test of version {version} failed: {answer.status_code} {answer.text[:300]}")
        served = httpx.get(f"{base}/version").json()
        if str(served.get("model_version", served.get("version"))) != str(version):
            raise LoopFailedError(f"/version says {served}, expected version {version}")
        self.out(f"  smoke test: POST {base}/invocations → {answer.status_code} {answer.text[:120]}")
        self.serving[version] = (proc, f"{base}/invocations")
        return f"{base}/invocations"

    def _forged_webhook_is_rejected(self) -> None:
        with self.step("a forged webhook is rejected and changes nothing") as detail:
            assert self.servers.ci is not None
            pin_before, head_before = self.pinned_version(), self.git("rev-parse", "HEAD")
            dispatches_before = self.servers.ci.received
            body = json.dumps(
                {
                    "entity": "model_version_alias",
                    "action": "created",
                    "timestamp": "2026-11-22T00:00:00+00:00",
                    "data": {"name": MODEL, "alias": ALIAS, "version": "99"},
                }
            )
            forged = httpx.post(
                f"{self.listener_url}/api/webhooks/mlflow",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-MLflow-Delivery-Id": "forged-0001",
                    "X-MLflow-Timestamp": str(int(time.time())),
                    "X-MLflow-Signature": "v1,bm90LXRoZS1yZWFsLXNpZ25hdHVyZQ==",
                },
            )
            if forged.status_code != 401:
                raise LoopFailedError(f"a forged webhook got {forged.status_code}, expected 401")
            time.sleep(2)  # give a (wrongly) accepted event time to reach CI
            if self.servers.ci.received != dispatches_before:
                raise LoopFailedError("a forged webhook reached CI")
            if (self.pinned_version(), self.git("rev-parse", "HEAD")) != (pin_before, head_before):
                raise LoopFailedError("a forged webhook changed the working copy")
            detail.append(f"401 {forged.json().get('reason', forged.text)[:80]}; no dispatch, pin still {pin_before}")

    def _summary(self) -> None:
        self.out("\nSummary")
        for step in self.steps:
            self.out(f"  {step.seconds:6.1f}s  {step.name}")
        self.out(f"  {sum(s.seconds for s in self.steps):6.1f}s  in all")
        if self.canaries:
            self.out("\ncanary releases (staging's steps, 20 s pauses, a measurement every 5 s):")
            self.out("\n".join(f"  {line}" for line in self.canaries))
        if self.images is not None:
            self.out("\n" + "\n".join(self.images.summary()))
        for version, (_, url) in self.serving.items():
            self.out(f"\n{MODEL} version {version} is serving at {url}")

    def serving_url(self) -> str:
        version = max(self.serving)
        return self.serving[version][1]


def hold(loop: ReleaseLoop) -> None:
    """Keeps the servers up until Ctrl-C, then stops every one of them."""
    loop.out("Press Ctrl-C to stop every process the demo started.")
    try:
        while all(p.running for p in loop.servers.processes):
            time.sleep(1)
        loop.out("a server exited; stopping the rest")
    except KeyboardInterrupt:
        loop.out("\nstopping...")
    finally:
        loop.servers.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / ".demo")
    parser.add_argument("--headless", action="store_true", help="run the loop, stop everything, exit (for CI)")
    parser.add_argument("--timeout", type=int, default=1800, help="headless: fail if the loop takes longer (s)")
    args = parser.parse_args(argv)
    os.environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})

    def on_timeout(signum: int, frame: Any) -> None:
        raise LoopFailedError(f"the loop took longer than {args.timeout}s")

    if args.headless:
        signal.signal(signal.SIGALRM, on_timeout)
        signal.alarm(args.timeout)

    def on_terminate(signum: int, frame: Any) -> None:
        # CI cancelling the job stops the servers the same way Ctrl-C does.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_terminate)
    loop = ReleaseLoop(args.workdir)
    try:
        loop.run()
    except LoopFailedError as exc:
        print(f"\nrelease loop failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; every process the demo started is stopped", file=sys.stderr)
        return 130
    if args.headless:
        signal.alarm(0)
        version = max(loop.serving)
        answer = httpx.post(
            loop.serving_url(),
            content=(
                loop.workdir / "images" / f"{MODEL}-v{version}" / "model" / "serving_input_example.json"
            ).read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        served = sorted(loop.serving)
        print(f"\nfinal check: version {version} answers /invocations with {answer.status_code}; serving: {served}")
        loop.servers.stop()
        return 0 if answer.status_code == 200 else 1
    hold(loop)
    return 0
