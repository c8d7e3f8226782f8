"""The listener's deployment zip holds exactly what the Pulumi component uploads, byte-stable across builds."""

from __future__ import annotations

import zipfile
from pathlib import Path

from components.webhook_listener import package_files, package_sha256
from release.package_listener import build

ROOT = Path(__file__).resolve().parents[2]


def test_zip_members_are_the_components_package_files(tmp_path: Path) -> None:
    out = tmp_path / "listener.zip"
    digest = build(ROOT / "listener", out)
    files = package_files(ROOT / "listener")
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted(name for name, _ in files)
        for name, path in files:
            assert archive.read(name) == path.read_bytes()
    assert digest == package_sha256(files)
    assert "function_app.py" in dict(files)
    assert not any(name.startswith("tests/") or name.endswith(".pyc") for name, _ in files)


def test_the_same_source_gives_the_same_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build(ROOT / "listener", first)
    build(ROOT / "listener", second)
    assert first.read_bytes() == second.read_bytes()
