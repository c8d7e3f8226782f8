"""A local OCI registry on 127.0.0.1: Debian's `docker-registry` (the CNCF distribution registry, 2.8), standing in
for the Azure Container Registry that the staging stack owns.

It speaks the same distribution API as ACR, so a push answers with the manifest digest a deployment then runs by
(`<registry>/<repository>@sha256:...`). Plain HTTP on loopback only; no auth (ACR's Entra login has no local
counterpart and is not what these runs test).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from localrun.processes import LOOPBACK, ManagedProcess, free_port

REGISTRY_BINARY = "docker-registry"


def registry_binary() -> str | None:
    """The path of Debian's registry binary, or None when the package is not installed."""
    return shutil.which(REGISTRY_BINARY)


def oci_registry(workdir: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """(the registry process, its host:port), storing blobs under `workdir`.

    The configuration is the package's own (/etc/docker/registry/config.yml) minus what does not apply here:
    it listens on loopback instead of :5000 and has no htpasswd auth.
    """
    binary = registry_binary()
    if binary is None:
        raise FileNotFoundError(f"{REGISTRY_BINARY} is not installed (Debian package docker-registry)")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  fields:\n    service: registry\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {LOOPBACK}:{port}\n"
    )
    host = f"{LOOPBACK}:{port}"
    process = ManagedProcess(
        name="oci-registry",
        argv=[binary, "serve", str(config)],
        log_path=workdir / "registry.log",
        # The distribution API's base endpoint answers 200 when the registry is up and needs no auth.
        ready_url=f"http://{host}/v2/",
    )
    return process, host
