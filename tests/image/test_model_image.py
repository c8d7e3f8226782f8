"""The model image, built from the real Dockerfile and run as the cluster runs it (one build for all the checks;
see conftest.py). Every check looks at the image itself: its layers, its config, a container run from it."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest

from localrun import podman as pm
from tests.image.conftest import MODEL, ImageRun, declared, project_copy

# The first test builds the image (on a fresh machine also the base and the server's dependencies: ~10 min here).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]

# What a compiler toolchain leaves on PATH; none of it may reach the image that runs.
COMPILERS = re.compile(r"(^|/)(gcc|g\+\+|cc|c\+\+|cpp|clang|ld|as|make)(-\d+)?$|(^|/)x86_64-linux-gnu-(gcc|g\+\+|ld)")
PIP = re.compile(r"(^|/)bin/pip(3(\.\d+)?)?$|(^|/)(site|dist)-packages/pip/__init__\.py$")


@dataclass
class Scan:
    """What searching every byte of the saved image found."""

    layers: int = 0
    files: int = 0
    hits: list[str] = field(default_factory=list)  # "<where>: <member>" for every occurrence of the token
    control_hits: list[str] = field(default_factory=list)  # the same search for a string that must be there


def _search(data: bytes, where: str, token: bytes, control: bytes, scan: Scan) -> None:
    if token in data:
        scan.hits.append(where)
    if control in data:
        scan.control_hits.append(where)


@pytest.fixture(scope="module")
def saved_image_scan(image_run: ImageRun, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """Every file of every layer (files later deleted included: a whiteout hides them, the layer still holds them),
    the image config and manifest, and every blob the registry received, searched for the token."""
    archive = tmp_path_factory.mktemp("save") / "image.tar"
    pm.podman("save", "--format", "docker-archive", "--output", str(archive), image_run.image.tag)
    token, control = image_run.token.encode(), image_run.run_id.encode()
    scan = Scan()
    with tarfile.open(archive) as outer:
        for member in outer:
            stream = outer.extractfile(member) if member.isfile() else None
            if stream is None:
                continue
            if member.name.endswith(".tar"):
                scan.layers += 1
                with tarfile.open(fileobj=stream, mode="r|") as layer:
                    for entry in layer:
                        content = layer.extractfile(entry) if entry.isfile() else None
                        if content is not None:
                            scan.files += 1
                            _search(content.read(), f"{member.name}:{entry.name}", token, control, scan)
                        # A name or a link target could carry it too.
                        _search(f"{entry.name} {entry.linkname}".encode(), f"{member.name}:name", token, b"-", scan)
            else:
                _search(stream.read(), member.name, token, control, scan)
    for blob in (image_run.workdir / "registry" / "data").rglob("data"):
        raw = blob.read_bytes()
        with contextlib.suppress(OSError, EOFError):
            raw = gzip.decompress(raw)
        _search(raw, f"registry:{blob.parent.name}", token, control, scan)
    return scan


@pytest.fixture(scope="module")
def final_filesystem(image_run: ImageRun) -> Iterator[Path]:
    """The image's root filesystem as a container starts from it (every layer applied, whiteouts included)."""
    root = Path(pm.podman("image", "mount", image_run.image.tag).strip())
    try:
        yield root
    finally:
        pm.podman("image", "unmount", image_run.image.tag, check=False)


@pytest.fixture(scope="module")
def served(image_run: ImageRun) -> Iterator[pm.ContainerProcess]:
    """The image pulled by digest from the local registry and run with the Deployment's settings."""
    image = image_run.image
    pm.pull(image.ref)
    process, _ = pm.run_as_deployment(
        image.ref, image_run.release.container, image_run.workdir, name=f"image-test-{image.digest[7:19]}"
    )
    process.start(timeout=240)
    try:
        yield process
    finally:
        process.stop()


def base_url(process: pm.ContainerProcess) -> str:
    assert process.ready_url is not None
    return process.ready_url.rsplit("/health", 1)[0]


def exec_in(process: pm.ContainerProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "exec", process.container_name, *argv],
        capture_output=True,
        text=True,
        env=pm.podman_env(),
        timeout=60,
        check=False,
    )


def test_the_real_dockerfile_builds_an_image_the_registry_holds_by_digest(image_run: ImageRun) -> None:
    image = image_run.image
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image.digest)
    # The program's tag, on the local registry: <version>-<code hash>.
    assert image.tag.endswith(f"/models/{MODEL}:{image_run.release.build.tag_suffix}")
    assert pm.registry_digest(image.tag) == image.digest
    # The model's artifacts are the registry's version 1; the build ran the check as uid 10001.
    build_log = (image_run.workdir / "build-v1.log").read_text()
    assert '"model_version": "1"' in build_log
    assert "USER 10001:10001" in build_log


def test_the_token_is_in_no_layer_no_history_entry_and_no_pushed_blob(
    image_run: ImageRun, saved_image_scan: Scan
) -> None:
    scan = saved_image_scan
    assert scan.layers >= 5
    assert scan.files > 1000
    # The search does find what is in the image: the run id the fetch step wrote into /opt/model.
    assert any("opt/model/serving-metadata.json" in where for where in scan.control_hits)
    assert any(where.startswith("registry:") for where in scan.control_hits)
    assert scan.hits == []
    history = pm.podman("history", "--no-trunc", "--format", "json", image_run.image.tag)
    inspect = pm.podman("image", "inspect", image_run.image.tag)
    assert "model_server check" in history  # the final stage's steps are what the history holds
    assert image_run.token not in history
    assert image_run.token not in inspect


def test_the_final_image_has_no_pip_and_no_compilers(final_filesystem: Path, image_run: ImageRun) -> None:
    paths = [p.relative_to(final_filesystem).as_posix() for p in final_filesystem.rglob("*")]
    assert "opt/venv/bin/python" in paths
    assert "opt/model/MLmodel" in paths
    assert [p for p in paths if PIP.search(p)] == []
    assert [p for p in paths if COMPILERS.search(p) and (final_filesystem / p).is_file()] == []
    no_pip = pm.podman("run", "--rm", image_run.image.tag, "python", "-m", "pip", "--version", check=False)
    assert no_pip == ""


def test_the_process_runs_as_uid_10001_and_the_labels_name_model_version_and_code_hash(
    image_run: ImageRun, served: pm.ContainerProcess
) -> None:
    config = pm.image_inspect(image_run.image.ref)["Config"]
    assert isinstance(config, dict)
    assert config["User"] == "10001:10001"
    labels = config["Labels"]
    code_hash = image_run.release.build.build_args["IMAGE_CODE_HASH"]
    assert labels["ai.mlflow.model.name"] == MODEL
    assert labels["ai.mlflow.model.version"] == "1"
    assert labels["org.opencontainers.image.revision"] == code_hash
    assert labels["org.opencontainers.image.version"] == f"1-{code_hash}"
    status = exec_in(served, "cat", "/proc/1/status").stdout
    assert re.search(r"^Uid:\s+10001\s+10001\s+10001\s+10001$", status, re.M)
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^CapEff:\s+0+$", status, re.M)
    assert re.search(r"^CapBnd:\s+0+$", status, re.M)


def test_run_as_the_deployment_it_turns_ready_scores_the_input_example_and_the_smoke_job_passes(
    image_run: ImageRun, served: pm.ContainerProcess
) -> None:
    url = base_url(served)
    assert httpx.get(f"{url}/health/ready").status_code == 200
    example = exec_in(served, "cat", "/opt/model/serving_input_example.json").stdout
    scored = httpx.post(f"{url}/invocations", content=example, headers={"Content-Type": "application/json"})
    assert scored.status_code == 200
    assert len(scored.json()["predictions"]) >= 1
    version = httpx.get(f"{url}/version").json()
    assert (str(version["model_version"]), version["image_code_hash"]) == (
        "1",
        image_run.release.build.build_args["IMAGE_CODE_HASH"],
    )
    # The pod's limits and filesystem: read-only root, a writable, sized /tmp.
    host = json.loads(pm.podman("container", "inspect", served.container_name))[0]["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["ReadonlyRootfs"]) == (2 * 1024**3, 10**9, True)
    assert exec_in(served, "touch", "/opt/app/x").returncode != 0
    assert exec_in(served, "touch", "/tmp/x").returncode == 0
    # The post-deploy Job's own command, from the same image, with the Job's limits.
    smoke = pm.run_smoke_job(image_run.image.ref, image_run.release.container, url)
    assert smoke.returncode == 0, smoke.stderr
    assert "answered" in smoke.stdout


def test_the_sbom_lists_the_venvs_packages_with_hashes_and_the_os_packages_and_is_attached_to_the_digest(
    image_run: ImageRun, served: pm.ContainerProcess
) -> None:
    image, repository = image_run.image, image_run.release.build.repository
    bom = json.loads(image.sbom)
    assert bom["bomFormat"] == "CycloneDX"

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    python = {(canonical(c["name"]), c["version"]): c for c in bom["components"] if c["purl"].startswith("pkg:pypi/")}
    listing = "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'], d.version)"
    lines = exec_in(served, "python", "-c", listing).stdout.splitlines()
    installed = {(canonical(name), version) for name, version in (line.split() for line in lines)}
    assert ("mlflow-skinny", "3.17.2") in installed
    assert "mlflow" not in {name for name, _ in installed}  # the model's `mlflow==` line did not bring it back
    assert set(python) == installed
    assert all(re.fullmatch(r"[0-9a-f]{64}", c["hashes"][0]["content"]) for c in python.values())
    debs = {(c["name"], c["version"]) for c in bom["components"] if c["purl"].startswith("pkg:deb/debian/")}
    dpkg = exec_in(served, "dpkg-query", "-W", "-f", "${Package} ${Version}\\n").stdout.split("\n")
    assert debs == {tuple(line.split(" ", 1)) for line in dpkg if line}
    # The registry holds it as an artifact whose subject is the image's digest, found from that digest alone.
    attached = pm.referrers(image_run.registry_host, repository, image.digest)
    assert [(d["artifactType"], d["digest"]) for d in attached] == [(pm.CYCLONEDX_JSON, image.sbom_digest)]
    manifest = pm.registry_manifest(image_run.registry_host, repository, image.sbom_digest)
    assert manifest["subject"]["digest"] == image.digest  # type: ignore[index]
    layer = manifest["layers"][0]  # type: ignore[index]
    assert pm.registry_blob(image_run.registry_host, repository, layer["digest"]) == image.sbom


def test_sigterm_lets_an_in_flight_request_finish_then_the_container_exits_0(
    image_run: ImageRun, served: pm.ContainerProcess
) -> None:
    url = base_url(served)
    example = exec_in(served, "cat", "/opt/model/serving_input_example.json").stdout.encode()
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        # The request is in flight: headers and half the body sent, the server waiting for the rest.
        head = f"POST /invocations HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        conn.sendall(f"{head}Content-Length: {len(example)}\r\n\r\n".encode() + example[: len(example) // 2])
        time.sleep(0.5)
        pm.podman("kill", "--signal", "TERM", served.container_name)
        time.sleep(2)
        assert served.running  # still there: draining, not killed
        conn.sendall(example[len(example) // 2 :])
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b'"predictions"' in answer
    assert served.proc is not None
    assert served.proc.wait(timeout=60) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health/live", timeout=2)


def test_a_pin_bump_gives_a_new_digest_and_a_replica_change_none(
    image_run: ImageRun, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from demo.wine_model import log_wine_model

    project = project_copy(tmp_path_factory.mktemp("project") / "p")
    stack_file = project / "Pulumi.staging.yaml"
    text = stack_file.read_text()
    assert "    minReplicas: 1\n" in text
    stack_file.write_text(text.replace("    minReplicas: 1\n", "    minReplicas: 2\n"))
    scaled = declared(project)
    # A replica change declares the same build (args, labels, tag): pulumi-docker-build sees no diff, so nothing is
    # built or pushed, and the Deployment keeps the digest it runs.
    assert scaled.build == image_run.release.build
    assert scaled.container.env == image_run.release.container.env
    # Building those same inputs again here gives the same image and the same digest in the registry: podman's
    # layer cache, as the program's registry build cache (cache_from/cache_to, mode max) would. (Without any cache,
    # a rebuild is not byte-identical: file times and .pyc files differ. The image is never rebuilt for it.)
    again = pm.release_image(project, scaled.build, image_run.registry(), image_run.registry_host)
    assert (again.image_id, again.digest) == (image_run.image.image_id, image_run.image.digest)

    subprocess.run(
        [
            sys.executable,
            "-m",
            "stacks",
            "--project-dir",
            str(project),
            "pin",
            "staging",
            "--model",
            MODEL,
            "--version",
            "2",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    bumped = declared(project)
    assert bumped.build.build_args["MODEL_VERSION"] == "2"
    assert bumped.build.tag_suffix == image_run.release.build.tag_suffix.replace("1-", "2-", 1)
    assert replace(bumped.build, build_args=scaled.build.build_args, labels=scaled.build.labels, tag="") == replace(
        scaled.build, tag=""
    )
    assert log_wine_model(image_run.tracking_uri, MODEL, max_iter=60).version == "2"
    v2 = pm.release_image(project, bumped.build, image_run.registry(), image_run.registry_host)
    assert v2.digest != image_run.image.digest
    assert pm.registry_digest(v2.tag) == v2.digest
    assert pm.registry_digest(image_run.image.tag) == image_run.image.digest  # version 1 stays for rollback
    # The runtime stage declares the model's build args only after the layers every version shares, so the new
    # version reuses the base, the user, the ~800 MB venv, the server's code and its bytecode (5 layers, pushed once)
    # and only the model's files and its check are new.
    rootfs_v1 = pm.image_inspect(image_run.image.tag)["RootFS"]
    rootfs_v2 = pm.image_inspect(v2.tag)["RootFS"]
    assert isinstance(rootfs_v1, dict)
    assert isinstance(rootfs_v2, dict)
    layers_v1, layers_v2 = rootfs_v1["Layers"], rootfs_v2["Layers"]
    shared = next((i for i, (a, b) in enumerate(zip(layers_v1, layers_v2, strict=False)) if a != b), len(layers_v1))
    assert shared == 5, (shared, layers_v1, layers_v2)
    assert layers_v1[shared:] != layers_v2[shared:]
    print(  # shown with -s: the figures the README quotes
        f"\nbase {image_run.base_seconds:.0f}s; build v1 {image_run.image.build_seconds:.0f}s, "
        f"v2 {v2.build_seconds:.0f}s, unchanged {again.build_seconds:.0f}s; shared layers {shared}; "
        f"size {image_run.image.size_bytes / 1e6:.0f} MB"
    )
