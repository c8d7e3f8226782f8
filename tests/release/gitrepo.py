"""Throwaway git repositories holding a copy of the project: a bare `origin` and a working clone, as CI has them."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the program and the offline tools read: the stack files, the program, the packages it imports and the
# folders it packages (the model image context, the listener app).
PROJECT_FILES = ("__main__.py", "Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml")
# Every package the program imports from its own tree: a package left out would be imported from this checkout.
PROJECT_DIRS = ("stacks", "offline", "monitoring", "components", "program", "model_image", "listener")
IDENTITY = ("-c", "user.name=Test Author", "-c", "user.email=author@example.test")


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "--all")
    git(repo, *IDENTITY, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_template(dest: Path) -> Path:
    """A repository with one commit holding the project as it is in the working tree now."""
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", "node_modules", ".pytest_cache", ".mypy_cache")
    for folder in PROJECT_DIRS:
        shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)
    (dest / ".gitignore").write_text("__pycache__/\n*.pyc\n", encoding="utf-8")
    git(dest, "init", "--quiet", "-b", "main")
    commit_all(dest, "Project as in the working tree")
    return dest


@dataclass(frozen=True)
class ProjectRepo:
    work: Path
    origin: Path

    def git(self, *args: str) -> str:
        return git(self.work, *args)

    def origin_git(self, *args: str) -> str:
        return git(self.origin, *args)

    def file(self, stack: str) -> Path:
        return self.work / f"Pulumi.{stack}.yaml"

    def show(self, ref: str, stack: str) -> str:
        return git(self.work, "show", f"{ref}:Pulumi.{stack}.yaml")


def clone_project(template: Path, dest: Path) -> ProjectRepo:
    """A bare `origin` cloned from the template, and a working clone of it on `main`."""
    origin = dest / "origin.git"
    work = dest / "work"
    git(dest, "clone", "--quiet", "--bare", str(template), str(origin))
    git(dest, "clone", "--quiet", str(origin), str(work))
    return ProjectRepo(work, origin)
