"""What the demo's steps share with the loop that runs them, without importing it: the demo's names, its error, the
servers it started, and the loop as the steps see it (`Loop`, which `release_loop.ReleaseLoop` is)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from demo.local_ci import LocalCI
from localrun.processes import ManagedProcess
from webhook_listener import contract

# The name the stack files pin (a Unity Catalog catalog.schema.model); the local open-source MLflow server has no
# catalogs and registers it as one plain name, dots included.
MODEL = "mlops.models.wine_quality"
ALIAS = "champion"  # the alias that means "promote" (the listener's default)
REPOSITORY = "acme-ml/mlops-serving"
PROMOTED_EVENT = contract.Events.PROMOTED  # what the listener dispatches for a promotion


class LoopFailedError(RuntimeError):
    """A step of the loop did not do what it should; the message says which and why."""


@dataclass
class Step:
    name: str
    seconds: float
    detail: str


@dataclass
class Servers:
    """What the loop started, so that every exit path stops all of it."""

    processes: list[ManagedProcess] = field(default_factory=list)
    ci: LocalCI | None = None

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        if self.ci is not None:
            self.ci.stop()


class Images(Protocol):
    """The image rollout as the other steps use it (`image_steps.ImageSteps`)."""

    def digest(self, version: int) -> str: ...
    def deploy(self, version: int, env: dict[str, str] | None = None) -> str: ...


class Loop(Protocol):
    """The loop as its steps use it: where it works, what it serves, and its plumbing."""

    @property
    def out(self) -> Callable[[str], None]: ...
    @property
    def workdir(self) -> Path: ...
    @property
    def worktree(self) -> Path: ...
    @property
    def remote(self) -> Path: ...
    @property
    def base_branch(self) -> str: ...
    @property
    def tracking_uri(self) -> str: ...
    @property
    def listener_url(self) -> str: ...
    @property
    def ci_token(self) -> str: ...
    @property
    def alert_token(self) -> str: ...
    @property
    def last_ready_seconds(self) -> float: ...
    @property
    def serving(self) -> dict[int, tuple[ManagedProcess, str]]: ...
    @property
    def servers(self) -> Servers: ...
    @property
    def images(self) -> Images | None: ...

    def step(self, name: str) -> contextlib.AbstractContextManager[list[str]]: ...
    def start(self, proc: ManagedProcess, timeout: float = 120) -> ManagedProcess: ...
    def run_tool(self, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str: ...
    def retire(self, proc: ManagedProcess) -> None: ...
    def git(self, *args: str) -> str: ...
    def record_deployment(self, version: int) -> None: ...
    def promote(self, expected_version: int, *, bad: bool = False) -> dict[str, Any]: ...
    def pinned_version(self) -> int: ...
    def deploy(self, version: int, env: dict[str, str] | None = None) -> str: ...
    def deploy_virtualenv(self, version: int, env: dict[str, str] | None = None) -> str: ...
