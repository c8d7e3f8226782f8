"""The demo's rollout from the real image: what staging does in Azure, on this machine.

For each promoted version: read what the program declares for staging in the demo's working copy (image build and
Deployment), build `model_image/Dockerfile` with podman against the demo's `mlflow server` (the token as a secret
mount), push to a local OCI registry, pull by digest and run `name@sha256:...` the way the Deployment runs it, then
run the post-deploy smoke Job's command from the same image. Without podman (or not root), the demo keeps serving
from a virtualenv, and says so.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from dataclasses import dataclass

from demo.context import MODEL, Loop, LoopFailedError
from localrun import podman as pm
from localrun.declared_release import DeclaredRelease
from localrun.oci_registry import oci_registry, registry_binary
from localrun.processes import REPO_ROOT, child_env


def unavailable() -> str | None:
    """Why the demo cannot build and run images here, or None when it can."""
    missing = pm.podman_missing() or (None if registry_binary() else "docker-registry not installed")
    if missing is None and subprocess.run(["id", "-u"], capture_output=True, text=True, check=False).stdout != "0\n":
        missing = "podman builds here need root (rootless podman needs subuid ranges this set-up does not make)"
    return missing


@dataclass
class Figures:
    version: int
    build_seconds: float
    size_bytes: int
    run_to_ready_seconds: float
    ref: str


class ImageSteps:
    """Owns the demo's image rollout: the stand-in base, the local registry, each version's image and container."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.registry_host = ""
        # The demo's MLflow server needs no token, but the build is given one, as in Azure, so the secret mount and
        # the fetch step's token handling run for real.
        self.token = secrets.token_urlsafe(24)
        self.figures: list[Figures] = []
        self.virtualenv_figures: tuple[float, float] | None = None  # (fetch + start seconds, start → ready seconds)
        self.base_seconds = 0.0

    def _start(self) -> None:
        if self.registry_host:
            return
        _, self.base_seconds = pm.ensure_base_image()
        registry, self.registry_host = oci_registry(self.loop.workdir / "registry")
        self.loop.start(registry, timeout=60)
        self.loop.out(f"  stand-in base ready ({self.base_seconds:.0f}s); local registry on {self.registry_host}")

    def declared(self) -> DeclaredRelease:
        """What the program in the demo's working copy declares for staging now (after the pin bump)."""
        proc = subprocess.run(
            [sys.executable, "-m", "localrun.declared_release", str(self.loop.worktree), "staging"],
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=REPO_ROOT,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"reading the program's declaration failed:\n{proc.stderr[-2000:]}")
        return DeclaredRelease.from_json(proc.stdout)

    def deploy(self, version: int, env: dict[str, str] | None = None) -> str:
        """Builds, pushes, pulls by digest and runs version `version` (with `env` added to the pod's environment);
        returns its /invocations URL."""

        self._start()
        release = self.declared()
        if release.build.build_args.get("MODEL_VERSION") != str(version):
            raise LoopFailedError(f"staging declares {release.build.build_args}, not version {version}")
        registry = pm.LocalRegistryBuild(self.loop.tracking_uri, self.token)
        log = self.loop.workdir / f"build-v{version}.log"
        try:
            image = pm.release_image(self.loop.worktree, release.build, registry, self.registry_host, log_path=log)
        except pm.PodmanError as exc:
            raise LoopFailedError(f"building the image of version {version} failed (log: {log}):\n{exc}") from None
        self.loop.out(f"  built and pushed {image.tag} in {image.build_seconds:.0f}s → {image.digest}")
        pm.pull(image.ref)
        self.loop.out(f"  pulled {image.ref}")
        container, url = pm.run_as_deployment(
            image.ref,
            release.container,
            self.loop.workdir,
            name=f"model-server-v{version}",
            env=env,
            container_name=f"mlops-demo-{secrets.token_hex(4)}-v{version}",
        )
        started = time.monotonic()
        self.loop.start(container, timeout=300)
        ready = time.monotonic() - started
        smoke = pm.run_smoke_job(image.ref, release.container, url)
        if smoke.returncode != 0:
            raise LoopFailedError(f"the smoke Job's command failed against version {version}: {smoke.stderr[-800:]}")
        self.loop.out(f"  smoke Job: {smoke.stdout.strip()[:160]}")
        if self.virtualenv_figures is None:
            # Before the example is written below: the virtualenv path fetches into that same directory.
            self._virtualenv_for_comparison(version)
        # The example the final headless check posts, taken from the image (the model the container serves).
        example_dir = self.loop.workdir / "images" / f"{MODEL}-v{version}" / "model"
        example_dir.mkdir(parents=True, exist_ok=True)
        example = pm.podman("run", "--rm", image.ref, "cat", "/opt/model/serving_input_example.json")
        (example_dir / "serving_input_example.json").write_text(example)
        self.figures.append(Figures(version, image.build_seconds, image.size_bytes, ready, image.ref))
        self.loop.out(
            f"  image: build {image.build_seconds:.0f}s, {image.size_bytes / 1e6:.0f} MB, run → ready {ready:.1f}s"
        )
        self.loop.serving[version] = (container, f"{url}/invocations")
        return f"{url}/invocations"

    def _virtualenv_for_comparison(self, version: int) -> None:
        """Once: the virtualenv path's figures for the same version, then that server is stopped again."""
        started = time.monotonic()
        self.loop.deploy_virtualenv(version)
        total = time.monotonic() - started
        process, _ = self.loop.serving.pop(version)
        self.loop.retire(process)
        self.virtualenv_figures = (total, self.loop.last_ready_seconds)
        ready = self.loop.last_ready_seconds
        self.loop.out(f"  virtualenv (for comparison): fetch + start {total:.0f}s, start → ready {ready:.1f}s")

    def digest(self, version: int) -> str:
        """The digest version `version` runs by (sha256:...)."""
        return next(f.ref for f in self.figures if f.version == version).rsplit("@", 1)[1]

    def summary(self) -> list[str]:
        lines = [f"image path (podman; stand-in base {self.base_seconds:.0f}s, cached after the first run):"]
        for f in self.figures:
            lines.append(
                f"  v{f.version}: build + push {f.build_seconds:5.0f}s   size {f.size_bytes / 1e6:5.0f} MB"
                f"   run → ready {f.run_to_ready_seconds:5.1f}s   {f.ref}"
            )
        if self.virtualenv_figures is not None:
            total, ready = self.virtualenv_figures
            lines.append(f"virtualenv path: fetch + start {total:5.0f}s   start → ready {ready:5.1f}s")
        return lines


def for_loop(loop: Loop) -> ImageSteps | None:
    """The image steps when this machine can build and run images; otherwise None, after saying why."""
    reason = unavailable()
    if reason is not None:
        loop.out(f"images: not built here ({reason}); serving from a virtualenv, as the image would")
        return None
    return ImageSteps(loop)
