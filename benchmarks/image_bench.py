"""This model image against the one MLflow generates, side by side in one run, with podman, on the same stand-in base.

What it does (all on 127.0.0.1; every server and container it starts is stopped at the end):
1. starts a real `mlflow server` and the local OCI registry, registers the demo model twice (versions 1 and 2: a pin
   bump), and makes the stand-in base (scripts/make-base-image.sh, cached);
2. builds, pushes and attaches the SBOM of this image for each version, as the program declares it
   (localrun/podman.py `release_image`);
3. writes MLflow's image with `mlflow models generate-dockerfile -m models:/<name>/<version>` and builds it as
   generated, only its `FROM python:<x>-slim` line pointed at the same stand-in base, then pushes it;
4. measures, for each image: uncompressed size (`podman image inspect .Size`), layers, the compressed bytes the
   version-2 push adds to the registry (its layers the version-1 image does not have: what a pin bump pushes and
   every node pulls), container start to the first 200 on the scoring route (`podman run` to `POST /invocations`
   answering the input example; median of --starts, with the pod's CPU and memory limits), and req/s and p99 at
   1 row and 16 connections (wrk if installed, else the bounded httpx client of serving_bench.py);
5. prints a Markdown table with the ratios and the targets, and the machine's load average before and after.

    .venv/bin/python benchmarks/image_bench.py               # cold: 20-30 minutes here (MLflow's image installs
                                                             # nginx from apt and the full mlflow from PyPI)
    .venv/bin/python benchmarks/image_bench.py --starts 3 --seconds 5
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "model_image")]


# The load drivers of serving_bench.py (beside this file; the benchmarks folder is not a package).
_serving_bench = importlib.import_module("serving_bench")

from localrun import podman as pm  # noqa: E402
from localrun.declared_release import DeclaredRelease  # noqa: E402
from localrun.oci_registry import oci_registry  # noqa: E402
from localrun.processes import LOOPBACK, ManagedProcess, child_env, free_port, mlflow_server  # noqa: E402

MODEL = "mlops.models.wine_quality"
BENCH_DIR = ROOT / ".bench" / "image"
_FROM = re.compile(r"^FROM python:[0-9.]+-slim\s*$", re.M)


@dataclass
class ImageFigures:
    name: str
    tag_v1: str = ""
    digest_v1: str = ""
    digest_v2: str = ""
    size_bytes: int = 0
    layers: int = 0
    pin_bump_push_bytes: int = 0
    build_seconds: float = 0.0
    starts: list[float] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def declared() -> DeclaredRelease:
    proc = subprocess.run(
        [sys.executable, "-m", "localrun.declared_release", str(ROOT), "staging"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        timeout=600,
        check=True,
    )
    return DeclaredRelease.from_json(proc.stdout)


def layer_sizes(registry_host: str, repository: str, digest: str) -> dict[str, int]:
    """{layer digest: compressed size} of a pushed image manifest."""
    manifest = pm.registry_manifest(registry_host, repository, digest)
    layers: list[dict[str, Any]] = manifest["layers"]  # type: ignore[assignment]
    return {str(layer["digest"]): int(layer["size"]) for layer in layers}


def pin_bump(figures: ImageFigures, registry_host: str, repository: str) -> None:
    """Layers of version 1, and the compressed bytes of version 2's layers that version 1 does not have."""
    old = layer_sizes(registry_host, repository, figures.digest_v1)
    new = layer_sizes(registry_host, repository, figures.digest_v2)
    figures.layers = len(old)
    figures.pin_bump_push_bytes = sum(size for digest, size in new.items() if digest not in old)


def mlflow_generated_image(
    tracking_uri: str, version: str, registry_host: str, workdir: Path, base: str
) -> tuple[str, str, float]:
    """(local tag, pushed digest, build seconds) of MLflow's generated Dockerfile for `version`, built as written
    but for its base image."""
    out = workdir / f"mlflow-v{version}"
    env = child_env({"MLFLOW_TRACKING_URI": tracking_uri})
    generate = ["generate-dockerfile", "-m", f"models:/{MODEL}/{version}", "-d", str(out)]
    subprocess.run(
        [sys.executable, "-m", "mlflow", "models", *generate],
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=600,
    )
    dockerfile = out / "Dockerfile"
    text = dockerfile.read_text()
    if not _FROM.search(text):
        raise RuntimeError(f"MLflow's Dockerfile has no `FROM python:<x>-slim` line to point at the base:\n{text}")
    dockerfile.write_text(_FROM.sub(f"FROM {base}", text, count=1))
    tag = f"{registry_host}/mlflow-generated/{MODEL}:{version}"
    started = time.monotonic()
    pm.podman("build", "--network", "host", "--layers", "--tag", tag, str(out), timeout=3600)
    seconds = time.monotonic() - started
    return tag, pm.push(tag, tag), seconds


def first_200_seconds(argv: list[str], url: str, body: bytes, name: str, timeout: float = 600) -> float:
    """Seconds from `podman run` to the first 200 on `url` for `body`; the container is removed after."""
    started = time.monotonic()
    with (BENCH_DIR / f"{name}.log").open("w") as log:
        proc = subprocess.Popen(argv, env=pm.podman_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(timeout=5) as client:
            while time.monotonic() - started < timeout:
                with contextlib.suppress(httpx.HTTPError):
                    answer = client.post(url, content=body, headers={"Content-Type": "application/json"})
                    if answer.status_code == 200:
                        return time.monotonic() - started
                if proc.poll() is not None:
                    tail = (BENCH_DIR / f"{name}.log").read_text()[-2000:]
                    raise RuntimeError(f"{name} exited with {proc.returncode} before answering:\n{tail}")
                time.sleep(0.05)
        raise RuntimeError(f"{name} did not answer 200 within {timeout:.0f}s")
    finally:
        pm.podman("rm", "--force", "--ignore", "--time", "0", name, check=False, timeout=120)
        proc.wait(timeout=60)


def our_run_argv(ref: str, release: DeclaredRelease, name: str, port: int) -> list[str]:
    process, _ = pm.run_as_deployment(ref, release.container, BENCH_DIR, name=name, port=port)
    return list(process.argv)


def mlflow_run_argv(ref: str, release: DeclaredRelease, name: str, port: int) -> list[str]:
    # As MLflow documents it (`docker run -p 5001:8080 <image>`), with the same CPU and memory limits as the pod.
    container = release.container
    argv = ["podman", "run", "--rm", "--name", name, "--cpus", pm._cpus(container.cpu_limit)]
    argv += ["--memory", pm._memory(container.memory_limit), "--publish", f"{LOOPBACK}:{port}:8080", ref]
    return argv


def load_test(argv: list[str], name: str, url: str, body: bytes, seconds: float) -> dict[str, Any]:
    """req/s, p50, p99 at 1 row and 16 connections against a started container."""
    body_path = BENCH_DIR / "one-row.json"
    body_path.write_bytes(body)
    proc = subprocess.Popen(argv, env=pm.podman_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first_200_seconds_wait(url, body)
        result: dict[str, Any] = (
            _serving_bench.run_wrk(url, body_path, 16, seconds, None)
            if shutil.which("wrk")
            else _serving_bench.run_httpx(url, body_path, 16, seconds, 200_000)
        )
        return result
    finally:
        pm.podman("rm", "--force", "--ignore", "--time", "0", name, check=False, timeout=120)
        proc.wait(timeout=60)


def first_200_seconds_wait(url: str, body: bytes, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(url, content=body, headers={"Content-Type": "application/json"}).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s")


def one_row_body(model_dir_example: str) -> bytes:
    example = json.loads(model_dir_example)
    split = example["dataframe_split"]
    return json.dumps({"dataframe_split": {"columns": split["columns"], "data": split["data"][:1]}}).encode()


def render(ours: ImageFigures, theirs: ImageFigures, before: str, after: str, starts: int) -> str:
    def mb(n: int) -> str:
        return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    rows = [
        ("uncompressed size", mb(ours.size_bytes), mb(theirs.size_bytes), ours.size_bytes / theirs.size_bytes),
        ("layers", str(ours.layers), str(theirs.layers), ours.layers / theirs.layers),
        (
            "bytes a pin bump pushes (compressed)",
            mb(ours.pin_bump_push_bytes),
            mb(theirs.pin_bump_push_bytes),
            ours.pin_bump_push_bytes / max(1, theirs.pin_bump_push_bytes),
        ),
        (
            f"start -> first 200 on /invocations (median of {starts})",
            f"{med(ours.starts):.1f} s",
            f"{med(theirs.starts):.1f} s",
            med(ours.starts) / med(theirs.starts),
        ),
        (
            "1 row, 16 connections: req/s",
            f"{ours.load['rps']:.0f}",
            f"{theirs.load['rps']:.0f}",
            ours.load["rps"] / theirs.load["rps"],
        ),
        (
            "1 row, 16 connections: p99",
            f"{ours.load['p99_ms']:.1f} ms",
            f"{theirs.load['p99_ms']:.1f} ms",
            ours.load["p99_ms"] / theirs.load["p99_ms"],
        ),
    ]
    lines = [
        f"Load average (1, 5, 15 min) before: {before}; after: {after}. Builds: ours {ours.build_seconds:.0f} s, "
        f"MLflow's {theirs.build_seconds:.0f} s (version 1, layer cache as found).",
        "",
        "| | this image | `mlflow models generate-dockerfile` | ratio |",
        "|---|---|---|---|",
        *(f"| {what} | {a} | {b} | {ratio:.2f}x |" for what, a, b, ratio in rows),
        "",
        f"starts, this image: {', '.join(f'{s:.1f}' for s in ours.starts)} s; "
        f"MLflow's: {', '.join(f'{s:.1f}' for s in theirs.starts)} s",
    ]
    targets = [
        ("image <= 1/2 of MLflow's", ours.size_bytes <= theirs.size_bytes / 2),
        ("image <= 450 MB", ours.size_bytes <= 450e6),
        ("start -> ready <= 1/4 of MLflow's", med(ours.starts) <= med(theirs.starts) / 4),
    ]
    lines += ["", *(f"- {what}: {'met' if ok else 'missed'}" for what, ok in targets)]
    return "\n".join(lines)


@contextlib.contextmanager
def servers(workdir: Path) -> Iterator[tuple[str, str]]:
    from cryptography.fernet import Fernet

    started: list[ManagedProcess] = []
    try:
        mlflow = mlflow_server(workdir / "mlflow", fernet_key=Fernet.generate_key().decode())
        started.append(mlflow.start(300))
        registry, registry_host = oci_registry(workdir / "registry")
        started.append(registry.start(60))
        assert mlflow.ready_url is not None
        yield mlflow.ready_url.removesuffix("/health"), registry_host
    finally:
        for server in reversed(started):
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=5, help="container starts per image (median reported)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the 1 row / 16 connections run")
    args = parser.parse_args()
    missing = pm.podman_missing()
    if missing:
        print(f"image_bench: {missing}", file=sys.stderr)
        return 2
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    before = load_average()
    from demo.wine_model import log_wine_model

    base, _ = pm.ensure_base_image()
    release = declared()
    workdir = Path(tempfile.mkdtemp(prefix="image-bench-", dir=BENCH_DIR))
    ours, theirs = ImageFigures("this image"), ImageFigures("MLflow's generated image")
    with servers(workdir) as (tracking_uri, registry_host):
        log_wine_model(tracking_uri, MODEL, max_iter=50)
        log_wine_model(tracking_uri, MODEL, max_iter=60)
        registry = pm.LocalRegistryBuild(tracking_uri, f"tok-{secrets.token_hex(8)}")
        # This image, version 1 then version 2 (the program's own build args but the version).
        v1 = pm.release_image(ROOT, release.build, registry, registry_host)
        code_hash = release.build.tag_suffix.split("-", 1)[1]
        bumped = dataclasses.replace(
            release.build,
            build_args={**release.build.build_args, "MODEL_VERSION": "2"},
            tag=f"{release.build.tag.rsplit(':', 1)[0]}:2-{code_hash}",
        )
        v2 = pm.release_image(ROOT, bumped, registry, registry_host)
        ours.tag_v1, ours.digest_v1, ours.digest_v2 = v1.tag, v1.digest, v2.digest
        ours.size_bytes, ours.build_seconds = v1.size_bytes, v1.build_seconds
        # MLflow's generated image, version 1 then version 2.
        tag1, digest1, seconds1 = mlflow_generated_image(tracking_uri, "1", registry_host, workdir, base)
        _, digest2, _ = mlflow_generated_image(tracking_uri, "2", registry_host, workdir, base)
        theirs.tag_v1, theirs.digest_v1, theirs.digest_v2 = tag1, digest1, digest2
        theirs.size_bytes, theirs.build_seconds = pm.image_size(tag1), seconds1
        pin_bump(ours, registry_host, release.build.repository)
        pin_bump(theirs, registry_host, f"mlflow-generated/{MODEL}")
        # Run by digest, as the Deployment does: pulled from the local registry (plain HTTP) first.
        mlflow_ref = f"{tag1.rsplit(':', 1)[0]}@{digest1}"
        pm.pull(v1.ref)
        pm.pull(mlflow_ref)
        example = pm.podman("run", "--rm", v1.tag, "cat", "/opt/model/serving_input_example.json")
        body = one_row_body(example)
        runners = ((ours, v1.ref, our_run_argv), (theirs, mlflow_ref, mlflow_run_argv))
        for _ in range(args.starts):  # interleaved, so a load change on the machine hits both alike
            for figures, ref, make_argv in runners:
                port = free_port()
                name = f"bench-{secrets.token_hex(4)}"
                url = f"http://{LOOPBACK}:{port}/invocations"
                figures.starts.append(first_200_seconds(make_argv(ref, release, name, port), url, body, name))
        for figures, ref, make_argv in runners:
            port = free_port()
            name = f"bench-{secrets.token_hex(4)}"
            url = f"http://{LOOPBACK}:{port}/invocations"
            figures.load = load_test(make_argv(ref, release, name, port), name, url, body, args.seconds)
    after = load_average()
    report = render(ours, theirs, before, after, args.starts)
    (BENCH_DIR / "last.md").write_text(report + "\n")
    print(report)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
