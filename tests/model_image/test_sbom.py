"""The image's SBOM completion (model_server/sbom.py): cyclonedx-py's environment BOM gains each package's archive
SHA-256 from pip's reports and the OS packages from dpkg; a package without a hash fails the build by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from model_server import sbom

SCRIPT = Path(sbom.__file__)
SHA = "ab" * 32


def environment_bom() -> dict[str, Any]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [
            {"name": "mlflow-skinny", "version": "3.17.2", "purl": "pkg:pypi/mlflow-skinny@3.17.2", "type": "library"},
            {"name": "scikit_learn", "version": "1.9.1", "purl": "pkg:pypi/scikit-learn@1.9.1", "type": "library"},
        ],
    }


def pip_report(name: str, version: str, sha256: str, *, legacy: bool = False) -> dict[str, Any]:
    archive = {"hash": f"sha256={sha256}"} if legacy else {"hashes": {"sha256": sha256}}
    return {
        "install": [
            {
                "metadata": {"name": name, "version": version},
                "download_info": {"url": f"https://files.example/{name}-{version}.whl", "archive_info": archive},
            }
        ]
    }


DPKG_STATUS = """Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u10

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: python3.11
Status: install ok installed
Architecture: amd64
Version: 3.11.2-6+deb12u6
Description: Interactive high-level object-oriented language
 a continuation line: with a colon
"""


def test_every_python_component_gets_its_archive_hash_and_the_os_packages_are_listed() -> None:
    reports = [pip_report("mlflow_skinny", "3.17.2", SHA), pip_report("scikit-learn", "1.9.1", "cd" * 32, legacy=True)]
    done = sbom.complete(environment_bom(), sbom.archive_hashes(reports), sbom.dpkg_packages(DPKG_STATUS))
    by_name = {c["name"]: c for c in done["components"]}
    assert by_name["mlflow-skinny"]["hashes"] == [{"alg": "SHA-256", "content": SHA}]
    assert by_name["scikit_learn"]["hashes"] == [{"alg": "SHA-256", "content": "cd" * 32}]
    assert by_name["mlflow-skinny"]["externalReferences"][-1]["url"].endswith("mlflow_skinny-3.17.2.whl")
    assert by_name["libc6"]["purl"] == "pkg:deb/debian/libc6@2.36-9+deb12u10?arch=amd64"
    assert by_name["python3.11"]["version"] == "3.11.2-6+deb12u6"
    assert "removed-thing" not in by_name


def test_a_package_without_an_archive_hash_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(sbom.SbomError, match=r"scikit_learn==1\.9\.1"):
        sbom.complete(environment_bom(), sbom.archive_hashes([pip_report("mlflow-skinny", "3.17.2", SHA)]), [])
    (tmp_path / "env.json").write_text(json.dumps(environment_bom()))
    (tmp_path / "report.json").write_text(json.dumps(pip_report("mlflow-skinny", "3.17.2", SHA)))
    (tmp_path / "status").write_text(DPKG_STATUS)
    argv = ["--environment", str(tmp_path / "env.json"), "--pip-report", str(tmp_path / "report.json")]
    argv += ["--dpkg-status", str(tmp_path / "status"), "--name", "m", "--out", str(tmp_path / "out.json")]
    proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "no archive hash in pip's reports for scikit_learn==1.9.1" in proc.stderr
    assert not (tmp_path / "out.json").exists()


def test_the_written_bom_names_its_main_component_with_the_type_cyclonedx_requires(tmp_path: Path) -> None:
    # CycloneDX 1.6 requires `type` and `name` on every component, metadata.component included
    # (CycloneDX/specification schema/bom-1.6.schema.json); cyclonedx-py's environment BOM has none to start from.
    (tmp_path / "env.json").write_text(json.dumps(environment_bom()))
    reports = [pip_report("mlflow-skinny", "3.17.2", SHA), pip_report("scikit-learn", "1.9.1", SHA)]
    argv = ["--environment", str(tmp_path / "env.json"), "--dpkg-status", str(tmp_path / "status")]
    for i, report in enumerate(reports):
        (tmp_path / f"report{i}.json").write_text(json.dumps(report))
        argv += ["--pip-report", str(tmp_path / f"report{i}.json")]
    (tmp_path / "status").write_text(DPKG_STATUS)
    argv += ["--name", "models/wine", "--out", str(tmp_path / "out.json")]
    proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    main = json.loads((tmp_path / "out.json").read_text())["metadata"]["component"]
    assert (main["type"], main["name"]) == ("container", "models/wine")
