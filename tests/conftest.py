"""Fixtures shared by the whole-program tests: runs of the real `__main__.py` under the mocks."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from offline.harness import ProgramOptions, ProgramRun, run_program
from offline.preview import StackRun, registered_before, run_stack
from stacks.files import load_stack_config
from stacks.settings import parse_settings
from stacks.settings_errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "mlops-serving"
STAGING_REF = "acme-ml/mlops-serving/staging"


@pytest.fixture(scope="session")
def staging() -> StackRun:
    return run_stack(ROOT, "staging")


@pytest.fixture(scope="session")
def prod() -> StackRun:
    return run_stack(ROOT, "prod")


def stack_values(stack: str, project_dir: Path = ROOT) -> dict[str, Any]:
    """A deep copy of a stack's effective config, to edit for a variant."""
    return copy.deepcopy(load_stack_config(project_dir, stack).values)


def run_variant(
    stack: str,
    edit: Callable[[dict[str, Any]], None] | None = None,
    *,
    project_dir: Path = ROOT,
    stack_outputs: dict[str, dict[str, Any]] | None = None,
    secret_marker: str = "mocksecret",
    registry_models: dict[str, list[int]] | None = None,
) -> ProgramRun:
    """Runs the real program for `stack` with its config edited by `edit`.

    The registry holds what the edited stack file pins (steady state, as `python -m stacks preview` assumes) unless
    `registry_models` says otherwise (`{}`: a new workspace's empty registry).
    """
    values = stack_values(stack, project_dir)
    if edit is not None:
        edit(values)
    if registry_models is None:
        try:
            registry_models = registered_before(parse_settings(values, f"Pulumi.{stack}.yaml"))
        except SettingsError:
            registry_models = {}  # the program reports the bad config itself
    return run_program(
        project_dir / "__main__.py",
        values,
        project=PROJECT,
        stack=stack,
        options=ProgramOptions(
            stack_outputs=stack_outputs or {}, secret_marker=secret_marker, registry_models=registry_models
        ),
    )


def copy_project(dest: Path) -> Path:
    """A copy of the files the program reads from its own directory (not the Python packages it imports)."""
    for name in ("__main__.py", "Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
        shutil.copy(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", "node_modules")
    for folder in ("model_image", "listener"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)
    return dest
