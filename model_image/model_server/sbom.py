"""The image's software bill of materials (CycloneDX JSON), completed at build time (the Dockerfile's `sbom` stage).

`cyclonedx-py environment /opt/venv/bin/python` (CycloneDX's own tool) describes the serving venv: every installed
distribution with its version, purl, licenses and the dependency graph. It cannot know which archive was installed,
so this adds each one's SHA-256 from pip's installation reports (`pip install --report`: the hash of the archive pip
checked and installed) and fails when a venv package has none. It adds the operating system's packages from dpkg's
status file (purl `pkg:deb/debian/<name>@<version>?arch=<arch>`), which a Python tool does not see.

    python sbom.py --environment env.cdx.json --pip-report a.json --pip-report b.json \
        --dpkg-status /var/lib/dpkg/status --name model-server --out model-image.cdx.json

Standard library only; run by any Python 3.11.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


class SbomError(RuntimeError):
    """The bill of materials would be incomplete; the message names what is missing."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def archive_hashes(reports: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, str]]:
    """{(canonical name, version): {"sha256": hex, "url": where pip got it}} from pip installation reports."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for report in reports:
        for item in report.get("install", []):
            metadata, download = item.get("metadata", {}), item.get("download_info", {})
            hashes = download.get("archive_info", {}).get("hashes", {})
            if "sha256" not in hashes:
                legacy = download.get("archive_info", {}).get("hash", "")
                if legacy.startswith("sha256="):
                    hashes = {"sha256": legacy.removeprefix("sha256=")}
            if "sha256" in hashes:
                key = (canonical(metadata["name"]), str(metadata["version"]))
                found[key] = {"sha256": hashes["sha256"], "url": str(download.get("url", ""))}
    return found


def dpkg_packages(status: str) -> list[dict[str, str]]:
    """The installed packages of a dpkg status file: name, version, architecture."""
    packages = []
    for stanza in status.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Package") and "installed" in fields.get("Status", "").split():
            packages.append(
                {"name": fields["Package"], "version": fields["Version"], "arch": fields.get("Architecture", "all")}
            )
    return sorted(packages, key=lambda p: p["name"])


def complete(
    bom: dict[str, Any], hashes: Mapping[tuple[str, str], Mapping[str, str]], os_packages: Sequence[Mapping[str, str]]
) -> dict[str, Any]:
    """`bom` (cyclonedx-py's) with every Python component's archive hash and the OS packages added."""
    missing = []
    for component in bom.get("components", []):
        if not str(component.get("purl", "")).startswith("pkg:pypi/"):
            continue
        found = hashes.get((canonical(component["name"]), str(component["version"])))
        if found is None:
            missing.append(f"{component['name']}=={component['version']}")
            continue
        component["hashes"] = [{"alg": "SHA-256", "content": found["sha256"]}]
        if found["url"]:
            references = component.setdefault("externalReferences", [])
            references.append({"type": "distribution", "url": found["url"], "hashes": component["hashes"]})
    if missing:
        raise SbomError(f"no archive hash in pip's reports for {', '.join(sorted(missing))}")
    for package in os_packages:
        purl = f"pkg:deb/debian/{package['name']}@{package['version']}?arch={package['arch']}"
        bom.setdefault("components", []).append(
            {"type": "library", "bom-ref": purl, "name": package["name"], "version": package["version"], "purl": purl}
        )
    return bom


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sbom.py", description="Complete the image's CycloneDX SBOM.")
    parser.add_argument("--environment", type=Path, required=True, help="cyclonedx-py environment's JSON output")
    parser.add_argument("--pip-report", type=Path, action="append", default=[], help="pip install --report output")
    parser.add_argument("--dpkg-status", type=Path, default=Path("/var/lib/dpkg/status"))
    parser.add_argument("--name", required=True, help="the image's name, for the BOM's main component")
    parser.add_argument("--out", type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    bom = json.loads(args.environment.read_text())
    # CycloneDX requires `type` and `name` of every component, the main one included (bom-1.6.schema.json); the
    # environment reader leaves the main component out without a pyproject, so it is written here.
    component = bom.setdefault("metadata", {}).setdefault("component", {})
    component.update({"type": "container", "name": args.name})
    component.setdefault("bom-ref", args.name)
    reports = [json.loads(path.read_text()) for path in args.pip_report]
    try:
        completed = complete(bom, archive_hashes(reports), dpkg_packages(args.dpkg_status.read_text()))
    except SbomError as exc:
        print(f"sbom: {exc}", file=sys.stderr)
        return 1
    args.out.write_text(json.dumps(completed, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
