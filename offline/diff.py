"""Offline diff: between two stacks, or between a stack at a git ref and the working tree.

A diff compares two preview documents (see `offline.preview`): config key by key, then resources by (type, name),
input by input and option by option. Each change is labelled with what it does in the cloud, so a pin bump reads
as "the image is rebuilt, the deployment rolls out, nothing else".
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

IMAGE_TYPE = "docker-build:index:Image"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
_OPTION_KEYS = (
    "protect",
    "provider",
    "depends_on",
    "ignore_changes",
    "replace_on_changes",
    "delete_before_replace",
    "retain_on_delete",
    "secret_inputs",
    "parent",
)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested inputs as dotted paths (`spec.template.spec.containers[0].image`) to leaf values."""
    if isinstance(value, dict):
        if not value and prefix:
            return {prefix: {}}
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        if not value and prefix:
            return {prefix: []}
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass
class ResourceChange:
    type: str
    name: str
    kind: str  # "add" | "delete" | "update"
    fields: list[FieldChange] = field(default_factory=list)

    @property
    def impact(self) -> str:
        """What the change does when applied, in a reviewer's words."""
        if self.kind != "update":
            return {"add": "created", "delete": "deleted"}[self.kind]
        paths = [f.path for f in self.fields]
        if self.type == IMAGE_TYPE:
            return "image rebuilt and pushed"
        if self.type == DEPLOYMENT_TYPE and any(p.startswith("inputs.spec.template") for p in paths):
            return "deployment rolls out"
        if self.type.startswith("kubernetes:batch/v1:Job"):
            return "smoke-test job runs again"
        if all(p.startswith("options.") for p in paths):
            return "options only (no cloud change)"
        return "updated in place"


@dataclass
class StackDiff:
    before_label: str
    after_label: str
    config: list[FieldChange]
    resources: list[ResourceChange]
    outputs: list[FieldChange]
    unchanged: int

    def as_json(self) -> dict[str, Any]:
        return {
            "before": self.before_label,
            "after": self.after_label,
            "config": [vars(c) for c in self.config],
            "resources": [
                {
                    "type": r.type,
                    "name": r.name,
                    "kind": r.kind,
                    "impact": r.impact,
                    "fields": [vars(f) for f in r.fields],
                }
                for r in self.resources
            ],
            "outputs": [vars(c) for c in self.outputs],
            "unchanged": self.unchanged,
            "summary": self.summary(),
        }

    def summary(self) -> str:
        if not self.resources and not self.config:
            return "no changes"
        counts = {k: sum(1 for r in self.resources if r.kind == k) for k in ("add", "update", "delete")}
        impacts = sorted({r.impact for r in self.resources if r.kind == "update"})
        text = f"{counts['update']} to change, {counts['add']} to add, {counts['delete']} to delete"
        if impacts:
            text += f" ({'; '.join(impacts)})"
        return f"{text}; {self.unchanged} unchanged"


def _changes(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[FieldChange]:
    # An input set to null and an input left out mean the same to the engine: neither is a change.
    a, b = flatten(before, prefix), flatten(after, prefix)
    return [
        FieldChange(path, a.get(path), b.get(path)) for path in sorted(set(a) | set(b)) if a.get(path) != b.get(path)
    ]


def diff_documents(before: dict[str, Any], after: dict[str, Any], before_label: str, after_label: str) -> StackDiff:
    """Field-by-field differences between two preview documents."""
    config = _changes(before["config"], after["config"])
    old = {(r["type"], r["name"]): r for r in before["resources"]}
    new = {(r["type"], r["name"]): r for r in after["resources"]}
    changes: list[ResourceChange] = []
    unchanged = 0
    for key in sorted(set(old) | set(new)):
        if key not in old:
            changes.append(ResourceChange(key[0], key[1], "add"))
            continue
        if key not in new:
            changes.append(ResourceChange(key[0], key[1], "delete"))
            continue
        fields = _changes(old[key]["inputs"], new[key]["inputs"], "inputs")
        fields += _changes({k: old[key][k] for k in _OPTION_KEYS}, {k: new[key][k] for k in _OPTION_KEYS}, "options")
        if fields:
            changes.append(ResourceChange(key[0], key[1], "update", fields))
        else:
            unchanged += 1
    outputs = _changes(before["outputs"], after["outputs"])
    return StackDiff(before_label, after_label, config, changes, outputs, unchanged)


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 100 else text[:97] + "..."


def render_text(diff: StackDiff) -> str:
    lines = [f"Diff {diff.before_label} → {diff.after_label}: {diff.summary()}"]
    if diff.config:
        lines += ["", "Config:"]
        lines += [f"  ~ {c.path}: {_show(c.before)} → {_show(c.after)}" for c in diff.config]
    if diff.resources:
        lines += ["", "Resources:"]
        marks = {"add": "+", "delete": "-", "update": "~"}
        for r in diff.resources:
            lines.append(f"  {marks[r.kind]} {r.type}  {r.name}  ({r.impact})")
            lines += [f"      {f.path}: {_show(f.before)} → {_show(f.after)}" for f in r.fields]
    if diff.outputs:
        lines += ["", "Outputs:"]
        lines += [f"  ~ {c.path}: {_show(c.before)} → {_show(c.after)}" for c in diff.outputs]
    return "\n".join(lines)


def render_markdown(diff: StackDiff, stack: str | None = None) -> str:
    """A PR-comment-ready summary: headline, config table, then one collapsible block per changed resource."""
    title = f"Offline diff for `{stack}`" if stack else f"Offline diff `{diff.before_label}` → `{diff.after_label}`"
    lines = [f"### {title}", "", f"**{diff.summary()}**", ""]
    if diff.config:
        lines += ["| config key | before | after |", "|---|---|---|"]
        lines += [f"| `{c.path}` | `{_show(c.before)}` | `{_show(c.after)}` |" for c in diff.config]
        lines.append("")
    marks = {"add": "create", "delete": "delete", "update": "update"}
    for r in diff.resources:
        lines.append(f"- **{marks[r.kind]}** `{r.type}` `{r.name}`: {r.impact}")
        if r.fields:
            lines += ["  <details><summary>fields</summary>", "", "  ```"]
            lines += [f"  {f.path}: {_show(f.before)} → {_show(f.after)}" for f in r.fields]
            lines += ["  ```", "  </details>"]
    lines += ["", "_Computed offline under Pulumi mocks (no cloud calls); `pulumi preview` is authoritative._"]
    return "\n".join(lines)


def preview_at_ref(project_dir: Path, ref: str, stack: str) -> dict[str, Any]:
    """The preview document of `stack` as the project was at git `ref`: that ref's program, components and files.

    The ref's tree previews with its own tools (`python -m stacks preview <stack> --json` as that tree has it), in
    this process: the provider SDKs, which make up most of a preview's time, are imported once for both trees. The
    two trees' own packages have the same names (`components`, `stacks`, ...), so while the ref's tree runs, its
    packages replace this tree's in `sys.modules`, and this tree's come back after (`_project_modules_from`).
    """
    archive = subprocess.run(
        ["git", "-C", str(project_dir), "archive", "--format=tar", ref],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {ref}: {archive.stderr.decode().strip()}")
    with tempfile.TemporaryDirectory(prefix="stacks-base-") as tmp:
        base = Path(tmp)
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(base, filter="data")
        out, err = io.StringIO(), io.StringIO()
        packages = _packages(project_dir) | _packages(base)
        with _project_modules_from(base, packages), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _run_module("stacks", ["preview", stack, "--json"])
        if code != 0:
            raise RuntimeError(
                f"preview of {stack} at {ref} failed:\n{err.getvalue().strip() or out.getvalue().strip()}"
            )
        doc: dict[str, Any] = json.loads(out.getvalue())
        return doc


# Source roots of the other deployables, whose contract modules the program imports by their own package names
# (components/contracts.py puts them on the path).
_DEPLOYABLE_ROOTS = ("model_image", "listener")


def _packages(root: Path) -> set[str]:
    """The modules and packages a project tree holds that its program and tools import by name: its top-level ones
    and the deployables' packages (`model_server`, `webhook_listener`), so each tree reads its own contracts."""
    names = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    names |= {p.parent.name for source in _DEPLOYABLE_ROOTS for p in (root / source).glob("*/__init__.py")}
    return names | {p.stem for p in root.glob("*.py") if p.stem != "__main__"}


@contextlib.contextmanager
def _project_modules_from(root: Path, packages: set[str]) -> Iterator[None]:
    """Inside the block, `packages` import from `root` (and the working directory is `root`); after, as before.

    The modules of this tree are set aside, not re-imported: the tools running now keep the very modules they
    hold. The Pulumi runtime's settings are reset by each program run; the event loop the ref's harness leaves
    current is closed here, so the garbage collector never finalizes an open loop (see `offline.harness`).
    """

    from offline.harness import idle_loop

    def ours(name: str) -> bool:
        return name.partition(".")[0] in packages

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in saved:
        del sys.modules[name]
    path, cwd = list(sys.path), Path.cwd()
    sys.path.insert(0, str(root))
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
        # The ref's harness leaves its own idle loop current (or, before it closed its loops, whatever it made).
        left = asyncio.get_event_loop_policy().get_event_loop()
        if left is not idle_loop():
            left.close()
            asyncio.set_event_loop(idle_loop())


def _run_module(module: str, args: list[str]) -> int:
    """`python -m <module> <args>` in this process; its exit code."""
    argv = sys.argv
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        return exc.code or 0
    finally:
        sys.argv = argv
    return 0
