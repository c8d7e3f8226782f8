"""Offline preview: what a stack declares, as `pulumi preview` would show it, without a cloud account or the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline.harness import ProgramOptions, ProgramRun, RecordedResource, run_program
from stacks.files import load_stack_config
from stacks.settings import StackSettings

SECRET = "[secret]"


@dataclass(frozen=True)
class StackRun:
    """A stack's validated settings and what its program declared."""

    stack: str
    settings: dict[str, Any]
    run: ProgramRun


def registered_before(settings: StackSettings) -> dict[str, list[int]]:
    """What the registry holds when a stack file is applied: the version it pins, if it pins one.

    A version is pinned only by promoting it, and only a registered version can be promoted, so a stack file that
    pins a version describes a registry holding it. A stack that pins none is a day-zero stack: the registry is as
    empty as the new workspace it lives in.
    """
    model = settings.model
    return {model.name: [model.version]} if model is not None else {}


def run_stack(
    project_dir: Path, stack: str, _seen: tuple[str, ...] = (), *, runs: dict[str, StackRun] | None = None
) -> StackRun:
    """Validates the stack file, then runs the program for it under the mocks.

    A stack that reads another through a StackReference gets that stack's outputs by running it first, from
    its own stack file in the same project: prod's preview shows what prod would do once staging, as it is in
    this tree, has been deployed. `runs` holds the stacks already run in this tree, by name: a stack in it is not
    run again (`preview staging prod` runs staging once, for itself and for prod's StackReference).
    """
    if runs is not None and stack in runs:
        return runs[stack]
    if stack in _seen:
        raise RuntimeError(f"stack references form a cycle: {' -> '.join((*_seen, stack))}")
    config = load_stack_config(project_dir, stack)
    settings = config.settings()
    stack_outputs: dict[str, dict[str, Any]] = {}
    if settings.shared.stack is not None:
        owner = settings.shared.stack.split("/")[-1]
        owner_run = run_stack(project_dir, owner, (*_seen, stack), runs=runs)
        stack_outputs[settings.shared.stack] = owner_run.run.outputs
    run = run_program(
        project_dir / "__main__.py",
        config.values,
        project=config.project,
        stack=stack,
        options=ProgramOptions(stack_outputs=stack_outputs, registry_models=registered_before(settings)),
    )
    result = StackRun(stack=stack, settings=settings.model_dump(mode="json", by_alias=True), run=run)
    if runs is not None:
        runs[stack] = result
    return result


def run_stacks(project_dir: Path, stacks: Sequence[str]) -> dict[str, StackRun]:
    """Runs each of `stacks` once, in order, in this process; a stack another one references runs only once."""
    runs: dict[str, StackRun] = {}
    return {stack: run_stack(project_dir, stack, runs=runs) for stack in stacks}


def _short(urn: str) -> str:
    """`type::name` of a URN, the way a reader names a resource."""
    if not urn:
        return ""
    parts = urn.split("::")
    return f"{parts[2].split('$')[-1]}::{parts[3]}"


def _provider_name(ref: str) -> str | None:
    # "<provider urn>::<provider id>": the provider's own name is the URN's last segment.
    if not ref:
        return None
    return ref.split("::")[3] if ref.count("::") >= 3 else ref


def resource_view(r: RecordedResource, by_urn: dict[str, RecordedResource]) -> dict[str, Any]:
    """A resource in the stable JSON shape, secret inputs masked."""
    inputs = {k: (SECRET if k in r.secret_inputs else v) for k, v in sorted(r.inputs.items())}
    return {
        "type": r.type,
        "name": r.name,
        "parent": None if _short(r.parent).startswith("pulumi:pulumi:Stack::") else _short(r.parent) or None,
        "custom": r.custom,
        "read": r.read,
        "inputs": inputs,
        "secret_inputs": list(r.secret_inputs),
        "protect": r.protect,
        "provider": _provider_name(r.provider),
        "depends_on": sorted(_short(d) for d in r.dependencies),
        "ignore_changes": list(r.ignore_changes),
        "replace_on_changes": list(r.replace_on_changes),
        "delete_before_replace": r.delete_before_replace,
        "retain_on_delete": r.retain_on_delete,
        "additional_secret_outputs": list(r.additional_secret_outputs),
    }


def preview_document(result: StackRun) -> dict[str, Any]:
    """The `--json` shape: {"stack", "project", "config", "resources": [...], "outputs": {...}}; stable order."""
    run = result.run
    by_urn = {r.urn: r for r in run.resources}
    resources = sorted(run.resources, key=lambda r: r.urn)
    outputs = {k: (SECRET if k in run.secret_outputs else v) for k, v in sorted(run.outputs.items())}
    return {
        "stack": result.stack,
        "project": run.project,
        "config": result.settings,
        "resources": [resource_view(r, by_urn) for r in resources],
        "outputs": outputs,
    }


def _scalar(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 70 else text[:67] + "..."


def key_inputs(view: dict[str, Any], limit: int = 6) -> list[str]:
    """The few inputs worth a glance in the tree: top-level scalars, then the shape of nested ones."""
    lines = []
    for key, value in view["inputs"].items():
        if isinstance(value, dict | list):
            continue
        lines.append(f"{key}: {_scalar(value)}")
    return lines[:limit]


def render_tree(doc: dict[str, Any]) -> str:
    """The resource tree the way `pulumi preview` nests it, with key inputs under each resource."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for view in doc["resources"]:
        children.setdefault(view["parent"], []).append(view)
    lines = [f"Previewing {doc['project']}/{doc['stack']} (offline, mocked cloud)", ""]
    lines.append(f"pulumi:pulumi:Stack  {doc['project']}-{doc['stack']}")

    def walk(parent: str | None, indent: str) -> None:
        items = children.get(parent, [])
        for i, view in enumerate(items):
            last = i == len(items) - 1
            branch = "└─ " if last else "├─ "
            flags = [
                f
                for f, on in (
                    ("protect", view["protect"]),
                    ("retain-on-delete", view["retain_on_delete"]),
                    (f"ignore {','.join(view['ignore_changes'])}", bool(view["ignore_changes"])),
                )
                if on
            ]
            flag_text = f"  [{'; '.join(flags)}]" if flags else ""
            lines.append(f"{indent}{branch}{view['type']}  {view['name']}{flag_text}")
            sub = indent + ("   " if last else "│  ")
            for line in key_inputs(view):
                lines.append(f"{sub}    {line}")
            if view["secret_inputs"]:
                lines.append(f"{sub}    secret: {', '.join(view['secret_inputs'])} = {SECRET}")
            walk(f"{view['type']}::{view['name']}", sub)

    walk(None, "")
    lines += ["", "Outputs:"]
    for key, value in doc["outputs"].items():
        lines.append(f"    {key}: {_scalar(value)}")
    lines += ["", f"Resources: {len(doc['resources'])}"]
    return "\n".join(lines)
