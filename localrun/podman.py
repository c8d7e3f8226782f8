"""Building, pushing and running the model image with podman on this machine, the way the release does it in Azure.

* build: `model_image/Dockerfile` unchanged, with the build args and labels the program declares, the registry token
  as a BuildKit-style secret mount, against a local MLflow registry (`--network host` so the fetch step reaches
  it on 127.0.0.1) and on the stand-in base (`scripts/make-base-image.sh`);
* push and pull by digest through the local OCI registry (`localrun/oci_registry.py`), with the image's CycloneDX
  SBOM (the Dockerfile's `sbom` stage) attached to the pushed digest as an OCI referrer;
* run as the Deployment runs it: read-only root, the emptyDir as a sized tmpfs, all capabilities dropped, no new
  privileges, the uid/gid, CPU and memory limits and environment of the pod (`localrun/declared_release.py`).

podman runs with the project's containers.conf (runc + cgroupfs; see that file for why).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from localrun.declared_release import DeclaredBuild, DeclaredContainer
from localrun.processes import LOOPBACK, REPO_ROOT, ManagedProcess, free_port
from stacks.identifiers import DIGEST

CONTAINERS_CONF = REPO_ROOT / "localrun" / "containers.conf"
BASE_IMAGE = "localhost/pybase:3.11-bookworm"
BASE_SCRIPT = REPO_ROOT / "scripts" / "make-base-image.sh"
# What the build and run need from Debian (bootstrap.sh installs them where it can).
REQUIRED_TOOLS = ("podman", "runc", "debootstrap")
# Where the Dockerfile's `sbom` stage writes the bill of materials, and how registries label one.
SBOM_FILE = "/sbom/model-image.cdx.json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"  # an artifact's config: the two bytes `{}`
_MANIFEST_TYPES = f"{OCI_MANIFEST}, {OCI_INDEX}, application/vnd.docker.distribution.manifest.v2+json"


class PodmanError(RuntimeError):
    """A podman command failed; the message carries the command and the tail of its output."""


def podman_missing() -> str | None:
    """Why images cannot be built and run here (a missing tool), or None when they can."""
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install podman buildah runc debootstrap)"
    return None


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


def podman(*args: str, timeout: float = 600, check: bool = True, input_text: str | None = None) -> str:
    """Runs `podman ARGS`; returns stdout. Raises PodmanError with the output's tail when it fails."""
    proc = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        env=podman_env(),
        timeout=timeout,
        check=False,
        input=input_text,
    )
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise PodmanError(f"podman {' '.join(args[:2])} failed ({proc.returncode}):\n{tail}")
    return proc.stdout


def ensure_base_image() -> tuple[str, float]:
    """(the stand-in base's tag, seconds spent); the script returns at once when the base is already there."""
    start = time.monotonic()
    proc = subprocess.run(
        [str(BASE_SCRIPT)], capture_output=True, text=True, env=podman_env(), timeout=1200, check=False
    )
    if proc.returncode != 0:
        raise PodmanError(f"{BASE_SCRIPT.name} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return BASE_IMAGE, time.monotonic() - start


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    image_id: str
    seconds: float


@dataclass(frozen=True)
class LocalRegistryBuild:
    """Where the build fetches the model from, instead of the Databricks workspace the program names."""

    tracking_uri: str
    token: str


def build_args_for(build: DeclaredBuild, registry: LocalRegistryBuild, base: str) -> dict[str, str]:
    """The program's build args, with the registry pointed at the local MLflow server and the stand-in base.

    Every other arg (model, version, code hash) is the program's own: that is what decides whether the image
    changes.
    """
    args = dict(build.build_args)
    args["MLFLOW_TRACKING_URI"] = registry.tracking_uri
    args["DATABRICKS_HOST"] = ""  # not a Databricks workspace (an empty arg is "not set" to the fetch step)
    args["PYTHON_IMAGE"] = base
    return args


@contextlib.contextmanager
def secret_file(value: str) -> Iterator[Path]:
    """The token in a file only this user can read, removed afterwards (what `--secret src=` mounts)."""
    directory = Path(tempfile.mkdtemp(prefix="build-secret-"))
    path = directory / "token"
    try:
        path.touch(mode=0o600)
        path.write_text(value)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def build_image(
    project_dir: Path,
    build: DeclaredBuild,
    registry: LocalRegistryBuild,
    tag: str,
    *,
    base: str = BASE_IMAGE,
    extra: Sequence[str] = (),
    log_path: Path | None = None,
) -> BuiltImage:
    """`podman build` of the declared context and Dockerfile, tagged `tag`; the token is the declared secret."""
    if build.secret_ids != ["mlflow_token"]:
        raise PodmanError(f"the program declares build secrets {build.secret_ids}, this builder knows mlflow_token")
    argv = ["build", "--network", "host", "--layers", "--tag", tag, "--file", str(project_dir / build.dockerfile)]
    for key, value in sorted(build_args_for(build, registry, base).items()):
        argv += ["--build-arg", f"{key}={value}"]
    for key, value in sorted(build.labels.items()):
        argv += ["--label", f"{key}={value}"]
    start = time.monotonic()
    with secret_file(registry.token) as token_file:
        argv += ["--secret", f"id=mlflow_token,src={token_file}", *extra, str(project_dir / build.context)]
        proc = subprocess.run(
            ["podman", *argv], capture_output=True, text=True, env=podman_env(), timeout=1800, check=False
        )
    seconds = time.monotonic() - start
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise PodmanError(f"podman build of {tag} failed ({proc.returncode}):\n{tail}")
    return BuiltImage(tag=tag, image_id=image_id(tag), seconds=seconds)


def image_id(ref: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", ref).strip()


def image_inspect(ref: str) -> dict[str, object]:
    found = json.loads(podman("image", "inspect", ref))
    if not isinstance(found, list) or len(found) != 1:
        raise PodmanError(f"podman image inspect {ref}: expected one image")
    result: dict[str, object] = found[0]
    return result


def image_size(ref: str) -> int:
    """The image's size in bytes as stored here (uncompressed layers), as `podman images` shows it."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", ref).strip())


def push(local_ref: str, remote: str) -> str:
    """Pushes to `remote` (`host:port/repository:tag`) over plain HTTP on loopback; returns the manifest digest."""
    with tempfile.TemporaryDirectory(prefix="push-") as tmp:
        digest_file = Path(tmp) / "digest"
        podman("push", "--tls-verify=false", "--digestfile", str(digest_file), local_ref, f"docker://{remote}")
        digest = digest_file.read_text().strip()
    if not DIGEST.match(digest):
        raise PodmanError(f"podman push of {remote} wrote no digest: {digest!r}")
    return digest


def pull(ref: str) -> str:
    """Pulls `ref` (a `name@sha256:...` reference) from the local registry; returns the local image id."""
    return podman("pull", "--quiet", "--tls-verify=false", ref).strip()


def registry_digest(remote: str) -> str:
    """The digest the registry holds for `host:port/repository:tag` now (skopeo, as a deploy tool would ask)."""
    proc = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{remote}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise PodmanError(f"skopeo inspect {remote} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()


def _memory(limit: str) -> str:
    """A Kubernetes quantity (2Gi, 512Mi) as podman's --memory value (2g, 512m): binary units in both."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", limit)
    if match is None:
        raise ValueError(f"memory limit {limit!r}: expected a number with Ki, Mi or Gi")
    unit = {"Ki": "k", "Mi": "m", "Gi": "g", None: "b"}[match[2]]
    return f"{match[1]}{unit}"


def _cpus(limit: str) -> str:
    """A Kubernetes CPU quantity (1, 500m) as podman's --cpus value (1, 0.5)."""
    if limit.endswith("m"):
        return str(int(limit[:-1]) / 1000)
    return str(float(limit))


def run_options(container: DeclaredContainer, *, cpu_limit: str, memory_limit: str) -> list[str]:
    """The `podman run` flags that reproduce the pod's container: what the securityContext, the emptyDir and the
    resource limits say. A pod field that cannot be reproduced raises instead of being dropped."""
    options = [
        "--user",
        f"{container.run_as_user}:{container.run_as_group}",
        "--cpus",
        _cpus(cpu_limit),
        "--memory",
        _memory(memory_limit),
        # The pod gives the container no swap (the kubelet's default; NodeSwap is off on AKS).
        "--memory-swap",
        _memory(memory_limit),
    ]
    if container.read_only_root:
        # --read-only alone adds tmpfs mounts on /tmp, /run and /var/tmp; a pod has only the volumes it declares.
        options += ["--read-only", "--read-only-tmpfs=false"]
    for path, size in sorted(container.writable_mounts.items()):
        size_option = f",size={_memory(size)}" if size else ""
        options += ["--tmpfs", f"{path}:rw,nosuid,nodev,mode=1777{size_option}"]
    for capability in container.drop_capabilities:
        options += ["--cap-drop", capability]
    if not container.allow_privilege_escalation:
        options += ["--security-opt", "no-new-privileges"]
    return options


@dataclass
class ContainerProcess(ManagedProcess):
    """A container run in the foreground by `podman run`: stopping the podman process forwards SIGTERM to the
    container (podman's --sig-proxy), as the kubelet's SIGTERM on pod deletion; the container is removed after."""

    container_name: str = ""

    def stop(self, grace: float = 30.0) -> None:
        super().stop(grace)
        podman("rm", "--force", "--ignore", "--time", "0", self.container_name, check=False, timeout=60)


def run_as_deployment(
    ref: str,
    container: DeclaredContainer,
    workdir: Path,
    *,
    name: str,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    container_name: str | None = None,
) -> tuple[ContainerProcess, str]:
    """(the container, its base URL on 127.0.0.1): `ref` run with the Deployment's settings, its port published on
    loopback only. Not started; `.start(timeout)` starts it and waits for the readiness path."""
    port = port or free_port()
    container_name = container_name or name
    argv = ["podman", "run", "--rm", "--name", container_name, "--sig-proxy=true"]
    argv += run_options(container, cpu_limit=container.cpu_limit, memory_limit=container.memory_limit)
    argv += ["--publish", f"{LOOPBACK}:{port}:{container.container_port}"]
    for key, value in sorted({**container.env, **(env or {})}.items()):
        argv += ["--env", f"{key}={value}"]
    argv.append(ref)
    base_url = f"http://{LOOPBACK}:{port}"
    process = ContainerProcess(
        name=name,
        argv=argv,
        log_path=workdir / f"{name}.log",
        env={"CONTAINERS_CONF": str(CONTAINERS_CONF)},
        ready_url=f"{base_url}{container.ready_path}",
        container_name=container_name,
    )
    return process, base_url


def smoke_job_argv(ref: str, container: DeclaredContainer, service_url: str) -> list[str]:
    """The post-deploy Job's command, run from the same image with the Job's limits and securityContext, its
    Service URL replaced by the local container's address (the Job reaches the Service; here the published port)."""
    command = [re.sub(r"^https?://[^/]+", service_url, part) for part in container.smoke_command]
    argv = ["podman", "run", "--rm", "--network", "host"]
    argv += run_options(container, cpu_limit=container.smoke_cpu_limit, memory_limit=container.smoke_memory_limit)
    for key, value in sorted(container.smoke_env.items()):
        argv += ["--env", f"{key}={value}"]
    return [*argv, ref, *command]


def run_smoke_job(ref: str, container: DeclaredContainer, service_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        smoke_job_argv(ref, container, service_url),
        capture_output=True,
        text=True,
        env=podman_env(),
        timeout=300,
        check=False,
    )


def build_sbom(project_dir: Path, build: DeclaredBuild, registry: LocalRegistryBuild, tag: str) -> bytes:
    """The image's SBOM: the Dockerfile's `sbom` stage, built with the same args (its stages come from the cache)."""
    sbom_tag = f"localhost/model-image-sbom:{build.tag_suffix}"
    build_image(project_dir, build, registry, sbom_tag, extra=("--target", "sbom"))
    return podman("run", "--rm", sbom_tag, "cat", SBOM_FILE).encode()


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _put_blob(client: httpx.Client, base: str, data: bytes) -> str:
    digest = _digest(data)
    if client.head(f"{base}/blobs/{digest}").status_code != 200:
        started = client.post(f"{base}/blobs/uploads/")
        started.raise_for_status()
        location = str(httpx.URL(base).join(started.headers["Location"]))
        separator = "&" if "?" in location else "?"
        client.put(f"{location}{separator}digest={digest}", content=data).raise_for_status()
    return digest


def attach_sbom(registry_host: str, repository: str, subject_digest: str, sbom: bytes) -> str:
    """Pushes `sbom` as an OCI artifact whose `subject` is the image `subject_digest`; returns the artifact's digest.

    A registry with the referrers API answers the push with an `OCI-Subject` header and lists it by itself; one
    without (CNCF distribution 2.x, as here) gets the index the spec's fallback names, tagged `sha256-<hex>`
    (github.com/opencontainers/distribution-spec, spec.md v1.1.0, "Pushing Manifests with Subject" and "Referrers
    Tag Schema"). `oras attach --artifact-type application/vnd.cyclonedx+json` does the same against ACR.
    """
    base = f"http://{registry_host}/v2/{repository}"
    with httpx.Client(timeout=60) as client:
        subject = client.get(f"{base}/manifests/{subject_digest}", headers={"Accept": _MANIFEST_TYPES})
        subject.raise_for_status()
        config = b"{}"
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": CYCLONEDX_JSON,
            "config": {"mediaType": OCI_EMPTY, "digest": _put_blob(client, base, config), "size": len(config)},
            "layers": [
                {
                    "mediaType": CYCLONEDX_JSON,
                    "digest": _put_blob(client, base, sbom),
                    "size": len(sbom),
                    "annotations": {"org.opencontainers.image.title": Path(SBOM_FILE).name},
                }
            ],
            "subject": {
                "mediaType": subject.headers["Content-Type"].split(";")[0],
                "digest": subject_digest,
                "size": len(subject.content),
            },
        }
        body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        digest = _digest(body)
        pushed = client.put(f"{base}/manifests/{digest}", content=body, headers={"Content-Type": OCI_MANIFEST})
        pushed.raise_for_status()
        if "OCI-Subject" not in pushed.headers:
            add_to_referrers_tag(
                client,
                base,
                subject_digest,
                {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body), "artifactType": CYCLONEDX_JSON},
            )
    return digest


def add_to_referrers_tag(client: httpx.Client, base: str, subject_digest: str, descriptor: dict[str, object]) -> None:
    """Adds `descriptor` to the referrers index under the tag schema `<alg>-<hex>` of `subject_digest`."""
    tag = subject_digest.replace(":", "-")
    # Only a 404 means "begin with an empty image index"; anything else that is not an index is reported, never
    # overwritten (OCI distribution spec v1.1.0, "Pushing Manifests with Subject").
    existing = client.get(f"{base}/manifests/{tag}", headers={"Accept": OCI_INDEX})
    if existing.status_code == 404:
        manifests: list[dict[str, object]] = []
    else:
        existing.raise_for_status()
        current = existing.json()
        if current.get("mediaType") != OCI_INDEX:
            raise RuntimeError(f"{base}/manifests/{tag} is a {current.get('mediaType')}, not a referrers index")
        manifests = list(current.get("manifests", []))
    if descriptor["digest"] not in [m.get("digest") for m in manifests]:
        manifests.append(descriptor)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    client.put(f"{base}/manifests/{tag}", content=index, headers={"Content-Type": OCI_INDEX}).raise_for_status()


def referrers(registry_host: str, repository: str, subject_digest: str) -> list[dict[str, object]]:
    """The descriptors of the artifacts attached to `subject_digest`: the referrers API, else the tag schema."""
    base = f"http://{registry_host}/v2/{repository}"
    with httpx.Client(timeout=60) as client:
        answer = client.get(f"{base}/referrers/{subject_digest}")
        if answer.status_code != 200:
            answer = client.get(f"{base}/manifests/{subject_digest.replace(':', '-')}", headers={"Accept": OCI_INDEX})
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        found: list[dict[str, object]] = answer.json().get("manifests", [])
        return found


def registry_blob(registry_host: str, repository: str, digest: str) -> bytes:
    answer = httpx.get(f"http://{registry_host}/v2/{repository}/blobs/{digest}", timeout=60, follow_redirects=True)
    answer.raise_for_status()
    return answer.content


def registry_manifest(registry_host: str, repository: str, reference: str) -> dict[str, object]:
    answer = httpx.get(
        f"http://{registry_host}/v2/{repository}/manifests/{reference}", headers={"Accept": _MANIFEST_TYPES}, timeout=60
    )
    answer.raise_for_status()
    manifest: dict[str, object] = answer.json()
    return manifest


@dataclass(frozen=True)
class ReleasedImage:
    """An image built from the program's declaration and pushed: `ref` is what a Deployment runs."""

    tag: str  # host:port/repository:<version>-<code hash>, the program's tag on the local registry
    digest: str
    image_id: str
    build_seconds: float
    size_bytes: int
    sbom: bytes = b""  # the CycloneDX JSON attached to the digest
    sbom_digest: str = ""  # the attached artifact's manifest digest

    @property
    def ref(self) -> str:
        """`host:port/repository@sha256:...`: the digest alone names the image, as in the Deployment."""
        return f"{self.tag.rsplit(':', 1)[0]}@{self.digest}"


def release_image(
    project_dir: Path,
    build: DeclaredBuild,
    registry: LocalRegistryBuild,
    registry_host: str,
    *,
    log_path: Path | None = None,
) -> ReleasedImage:
    """Builds the declared image (the program's tag, on the local registry instead of ACR), pushes it and attaches
    its SBOM to the pushed digest."""
    tag = f"{registry_host}/{build.repository}:{build.tag_suffix}"
    built = build_image(project_dir, build, registry, tag, log_path=log_path)
    digest = push(tag, tag)
    sbom = build_sbom(project_dir, build, registry, tag)
    sbom_digest = attach_sbom(registry_host, build.repository, digest, sbom)
    return ReleasedImage(
        tag=tag,
        digest=digest,
        image_id=built.image_id,
        build_seconds=built.seconds,
        size_bytes=image_size(tag),
        sbom=sbom,
        sbom_digest=sbom_digest,
    )
