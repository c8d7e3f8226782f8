"""What the Pulumi program declares for a stack's model release, read from a real (mocked-cloud) run of the program:
the image build (context, build args, labels, tag) and how the cluster runs it (the Rollout's server container and
the smoke test the release runs on each new version: the Job of its smoke AnalysisTemplate).

Local image builds and runs take their settings from here, so they build and run what the program would, not a
copy of it that could drift. `python -m localrun.declared_release PROJECT STACK` prints it as JSON (one program run,
~20 s here), for callers that keep Pulumi's runtime out of their own process.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

IMAGE_TYPE = "docker-build:index:Image"
ROLLOUT_TYPE = "kubernetes:argoproj.io/v1alpha1:Rollout"
ANALYSIS_TEMPLATE_TYPE = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"


class DeclaredReleaseError(ValueError):
    """The program's declarations lack something a local build or run needs; the message names it."""


@dataclass(frozen=True)
class DeclaredBuild:
    """The `pulumi_docker_build.Image` the program declares: paths relative to the project."""

    context: str
    dockerfile: str
    build_args: dict[str, str]
    labels: dict[str, str]
    tag: str
    secret_ids: list[str]

    @property
    def repository(self) -> str:
        """The repository part of the tag, without the registry host (`models/wine-quality`)."""
        name = self.tag.rsplit(":", 1)[0]
        return name.split("/", 1)[1]

    @property
    def tag_suffix(self) -> str:
        """`<version>-<code hash>`: what changes exactly when the image must be rebuilt."""
        return self.tag.rsplit(":", 1)[1]


@dataclass(frozen=True)
class DeclaredContainer:
    """The server container as the Rollout runs it, and the smoke test Job's command."""

    env: dict[str, str]
    cpu_limit: str
    memory_limit: str
    read_only_root: bool
    drop_capabilities: list[str]
    allow_privilege_escalation: bool
    run_as_user: int
    run_as_group: int
    writable_mounts: dict[str, str]  # mount path -> size limit ("" when unbounded)
    container_port: int
    ready_path: str
    termination_grace_seconds: int
    smoke_command: list[str]
    smoke_env: dict[str, str]
    smoke_cpu_limit: str
    smoke_memory_limit: str


@dataclass(frozen=True)
class DeclaredRelease:
    stack: str
    build: DeclaredBuild
    container: DeclaredContainer

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeclaredRelease:
        data = json.loads(text)
        return cls(data["stack"], DeclaredBuild(**data["build"]), DeclaredContainer(**data["container"]))


def _need(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise DeclaredReleaseError(f"{where}: no {key!r} declared")
    return mapping[key]


def _env(container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" not in item:
            # A valueFrom (secret/field reference) has no local counterpart; refuse rather than drop it silently.
            raise DeclaredReleaseError(f"env {item.get('name')!r}: only literal values can be run locally")
        env[item["name"]] = str(item["value"])
    return env


def _writable_mounts(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "emptyDir" not in volume:
            raise DeclaredReleaseError(f"volume {mount['name']!r}: only emptyDir volumes can be run locally")
        mounts[mount["mountPath"]] = str((volume["emptyDir"] or {}).get("sizeLimit", ""))
    return mounts


def _container(rollout: dict[str, Any], job: dict[str, Any]) -> DeclaredContainer:
    pod = rollout["spec"]["template"]["spec"]
    server = pod["containers"][0]
    security = server.get("securityContext", {})
    pod_security = pod.get("securityContext", {})
    limits = _need(server.get("resources", {}), "limits", "Rollout container resources")
    ready = _need(server, "readinessProbe", "Rollout container")["httpGet"]
    job_pod = job["spec"]["template"]["spec"]
    smoke = job_pod["containers"][0]
    smoke_limits = _need(smoke.get("resources", {}), "limits", "smoke test Job container resources")
    return DeclaredContainer(
        env=_env(server),
        cpu_limit=str(_need(limits, "cpu", "Rollout limits")),
        memory_limit=str(_need(limits, "memory", "Rollout limits")),
        read_only_root=bool(security.get("readOnlyRootFilesystem", False)),
        drop_capabilities=list(security.get("capabilities", {}).get("drop", [])),
        allow_privilege_escalation=bool(security.get("allowPrivilegeEscalation", True)),
        run_as_user=int(security.get("runAsUser", pod_security.get("runAsUser", 0))),
        run_as_group=int(security.get("runAsGroup", pod_security.get("runAsGroup", 0))),
        writable_mounts=_writable_mounts(pod, server),
        container_port=int(server["ports"][0]["containerPort"]),
        ready_path=str(ready["path"]),
        termination_grace_seconds=int(pod.get("terminationGracePeriodSeconds", 30)),
        smoke_command=[str(part) for part in _need(smoke, "command", "smoke test Job container")],
        smoke_env=_env(smoke),
        smoke_cpu_limit=str(_need(smoke_limits, "cpu", "smoke test Job limits")),
        smoke_memory_limit=str(_need(smoke_limits, "memory", "smoke test Job limits")),
    )


def declared_release(project_dir: Path, stack: str) -> DeclaredRelease:
    """Runs the program for `stack` (as `python -m stacks preview/render` do) and reads its model release."""
    from offline.render import manifest, run_stack_program

    run = run_stack_program(project_dir, stack)
    # The image the deployments run: the pushed one (the SBOM's build beside it pushes nothing).
    pushed = [r for r in run.all(IMAGE_TYPE) if r.inputs.get("push")]
    if len(pushed) != 1:
        raise DeclaredReleaseError(f"{stack}: expected one pushed model image, found {[r.name for r in pushed]}")
    image = pushed[0].inputs
    rollout = manifest(run.one(ROLLOUT_TYPE))
    templates = [manifest(template) for template in run.all(ANALYSIS_TEMPLATE_TYPE)]
    smoke_jobs = [
        metric["provider"]["job"]
        for template in templates
        if template and template["metadata"]["name"].endswith("-smoke")
        for metric in template["spec"]["metrics"]
    ]
    if rollout is None or len(smoke_jobs) != 1:
        raise DeclaredReleaseError(f"{stack}: expected one model Rollout and one smoke test Job")
    build = DeclaredBuild(
        context=str(image["context"]["location"]),
        dockerfile=str(image["dockerfile"]["location"]),
        build_args={k: str(v) for k, v in image.get("buildArgs", {}).items()},
        labels={k: str(v) for k, v in image.get("labels", {}).items()},
        tag=str(_need(image, "tags", "model image")[0]),
        secret_ids=sorted(image.get("ignoreSecretsInDiffCalculation", [])),
    )
    return DeclaredRelease(stack, build, _container(rollout, smoke_jobs[0]))


def main(argv: list[str] | None = None) -> int:
    import contextlib
    import io

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m localrun.declared_release PROJECT_DIR STACK", file=sys.stderr)
        return 2
    # The program's own log lines would otherwise mix with the JSON.
    with contextlib.redirect_stdout(io.StringIO()):
        release = declared_release(Path(args[0]), args[1])
    print(release.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
