"""The listener's code package: which files of `listener/` it holds, and their content hash.

The deploy workflow's publish step builds and deploys the package (release/package_listener.py); the program only
exports the hash of the package this commit's `listener/` makes, from these same functions, so the two agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

# What never goes into the code package: tests, caches, local-only settings (local.settings.json holds local
# secrets), virtual environments and locally built dependencies (the platform builds them from requirements.txt).
_EXCLUDED_DIRS = frozenset(
    {"tests", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", "venv", ".python_packages"}
)
_EXCLUDED_FILES = frozenset({"local.settings.json"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")


def package_files(source_dir: Path) -> list[tuple[str, Path]]:
    """The files that make up the code package, as (name in the zip, path), sorted by name.

    Hidden files and directories, tests, caches, local settings and locally built dependencies are left out, so
    that only a change to the code itself changes the package.
    """

    def walk(directory: Path) -> Iterator[Path]:
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith(".") or entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name not in _EXCLUDED_DIRS:
                    yield from walk(entry)
            elif entry.name not in _EXCLUDED_FILES and not entry.name.endswith(_EXCLUDED_SUFFIXES):
                yield entry

    return [(path.relative_to(source_dir).as_posix(), path) for path in walk(source_dir)]


def package_sha256(files: Sequence[tuple[str, Path]]) -> str:
    """A content hash over the package's file names and bytes (what Pulumi's own archive hash also depends on)."""
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
