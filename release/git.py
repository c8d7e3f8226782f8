"""Git, as the release commands use it: argv lists (never a shell), no prompts, one error type with git's message."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# The identity GitHub Actions' own commits use, for when the checkout has none configured.
BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"


class GitError(RuntimeError):
    """A git command failed; the message holds the command and git's own words."""


class Git:
    def __init__(self, repo_dir: Path | str) -> None:
        self.repo_dir = Path(repo_dir)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["GIT_TERMINAL_PROMPT"] = "0"
        env.setdefault("GIT_EDITOR", "true")
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.repo_dir,
            capture_output=True,
            text=True,
            env=self._env(),
            check=False,
        )
        if check and proc.returncode != 0:
            words = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:]
            raise GitError(f"git {' '.join(args)} failed ({proc.returncode}): {' / '.join(words)}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def rev(self, ref: str) -> str | None:
        """The commit `ref` names, or None."""
        proc = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.strip() or None

    def tree(self, ref: str) -> str:
        return self.out("rev-parse", f"{ref}^{{tree}}")

    def parents(self, ref: str) -> list[str]:
        return self.out("rev-list", "--parents", "-n", "1", ref).split()[1:]

    def show(self, ref: str, path: str) -> str | None:
        """The text of `path` at `ref`, or None when it does not exist there."""
        proc = self.run("show", f"{ref}:{path}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def current_branch(self) -> str | None:
        proc = self.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.strip() or None

    def is_clean(self) -> bool:
        """No change to tracked files, staged or not (untracked files do not matter)."""
        return not self.out("status", "--porcelain", "--untracked-files=no")

    def check_branch_name(self, name: str) -> str:
        proc = self.run("check-ref-format", "--branch", name, check=False)
        if proc.returncode != 0:
            raise GitError(f"{name!r} is not a valid branch name")
        return proc.stdout.strip()

    def identity_args(self) -> list[str]:
        """`-c user.name=... -c user.email=...` when the repository has no identity of its own."""
        configured = self.run("config", "user.email", check=False).stdout.strip()
        if configured:
            return []
        return ["-c", f"user.name={BOT_NAME}", "-c", f"user.email={BOT_EMAIL}"]

    def commit(self, message: str) -> str:
        self.run(*self.identity_args(), "commit", "--no-verify", "--quiet", "-m", message)
        return self.out("rev-parse", "HEAD")

    def remote_branch(self, remote: str, branch: str) -> str | None:
        """The commit `branch` points to on `remote`, or None when the remote has no such branch."""
        out = self.out("ls-remote", "--heads", remote, f"refs/heads/{branch}")
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}":
                return sha
        return None
