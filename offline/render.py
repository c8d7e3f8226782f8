"""Offline rendering: the Kubernetes objects a program run declares, written as YAML manifests.

`render(run, out_dir)` takes what the mock harness recorded and writes one manifest per Kubernetes object, so that
schema validation (kubernetes-validate) and policy scanners (checkov) can read exactly what `pulumi up` would
send, without a cluster. `render_stack(project_dir, stack, out_dir)` runs a stack's program first; it backs
`python -m stacks render <stack> <dir>`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from offline.harness import ProgramRun, RecordedResource

# Pulumi's marker for a value not known during a preview; a manifest holding it is not what would be applied.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
REDACTED = "[secret]"
# The list of files the last render wrote into a directory, so the next render can remove the ones it no longer
# writes; not YAML, so schema validators and scanners pass over it.
INDEX_FILE = ".rendered"

# Kubernetes-package types that are not API objects (Helm releases, YAML and Kustomize groups).
_NOT_OBJECTS = ("helm.sh/", "yaml/", "kustomize/")

# Kinds without a namespace; their files say `cluster` where the namespace would be.
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "APIService",
        "RuntimeClass",
        "CSIDriver",
        "VolumeAttachment",
    }
)

_TOKEN = re.compile(r"^kubernetes:(?P<group>[A-Za-z0-9.-]+)/(?P<version>v[0-9a-z]+):(?P<kind>[A-Za-z0-9]+)$")


class RenderError(Exception):
    """A declared Kubernetes object cannot be written as a manifest; the message says which and why."""


def api_version_and_kind(type_token: str) -> tuple[str, str] | None:
    """`kubernetes:apps/v1:Deployment` -> (`apps/v1`, `Deployment`); `kubernetes:core/v1:Service` -> (`v1`, ...).

    None for Kubernetes-package types that are not API objects (Helm releases, YAML groups, providers).
    """
    if not type_token.startswith("kubernetes:") or type_token.startswith(
        tuple(f"kubernetes:{p}" for p in _NOT_OBJECTS)
    ):
        return None
    match = _TOKEN.match(type_token)
    if match is None:
        return None
    group, version, kind = match["group"], match["version"], match["kind"]
    return (version if group == "core" else f"{group}/{version}"), kind


def _plain(value: Any, path: str, resource: RecordedResource) -> Any:
    # The engine sends numbers as floats (8080.0); Kubernetes wants integers where they are integral.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and UNKNOWN in value:
        raise RenderError(f"{resource.type} {resource.name}: {path} is not known until deployment")
    if isinstance(value, dict):
        return {k: _plain(v, f"{path}.{k}", resource) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]", resource) for i, v in enumerate(value)]
    return value


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return REDACTED if isinstance(value, str) else value


def manifest(resource: RecordedResource) -> dict[str, Any] | None:
    """The manifest of one recorded resource, or None if it is not a Kubernetes object.

    Secret inputs are written as `[secret]`: rendered files end up in CI artifacts and pull-request comments.
    """
    if not resource.custom:
        return None
    found = api_version_and_kind(resource.type)
    if found is None:
        return None
    api_version, kind = found
    inputs = {
        k: (_redact(v) if k in resource.secret_inputs else v)
        for k, v in resource.inputs.items()
        if k not in ("apiVersion", "kind")
    }
    declared = (resource.inputs.get("apiVersion"), resource.inputs.get("kind"))
    if declared not in ((None, None), (api_version, kind)):
        raise RenderError(f"{resource.type} {resource.name}: inputs say {declared}, the type says {found}")
    metadata = dict(inputs.pop("metadata", None) or {})
    # An object the program lets Pulumi auto-name is written under its logical name.
    metadata.setdefault("name", resource.name)
    if kind not in CLUSTER_SCOPED:
        metadata.setdefault("namespace", "default")
    body = {"apiVersion": api_version, "kind": kind, "metadata": metadata, **inputs}
    result: dict[str, Any] = _plain(body, "", resource)
    return result


def manifest_file_name(document: dict[str, Any]) -> str:
    """`<kind>-<namespace>-<name>.yaml`, kind lowercased; `cluster` stands for the namespace of cluster-scoped kinds."""
    metadata = document["metadata"]
    namespace = metadata.get("namespace") or "cluster"
    for part in (namespace, metadata["name"]):
        if not isinstance(part, str) or "/" in part or part.startswith("."):
            raise RenderError(f"{document['kind']} {part!r}: not a Kubernetes name, cannot name a file after it")
    return f"{document['kind'].lower()}-{namespace}-{metadata['name']}.yaml"


def render(run: ProgramRun, out_dir: Path) -> list[Path]:
    """Writes every Kubernetes object `run` declared to `out_dir` (created if missing); returns the files written.

    Two objects with the same kind, namespace and name are an error (the cluster would hold only one). Manifests
    an earlier render wrote into `out_dir` that this run no longer declares are removed; other files are left alone.
    """
    documents: dict[str, tuple[RecordedResource, dict[str, Any]]] = {}
    for resource in run.resources:
        document = manifest(resource)
        if document is None:
            continue
        file_name = manifest_file_name(document)
        if file_name in documents:
            other = documents[file_name][0]
            raise RenderError(
                f"{resource.type} {resource.name} and {other.name} are the same object ({file_name[:-5]})"
            )
        documents[file_name] = (resource, document)

    out_dir.mkdir(parents=True, exist_ok=True)
    # Files an earlier render wrote and this one does not (a Job named for the previous version) would otherwise
    # stay behind and be validated and scanned as if the stack still declared them.
    index = out_dir / INDEX_FILE
    if index.exists():
        for stale in set(index.read_text().split()) - set(documents):
            if re.fullmatch(r"[a-z0-9]+-[a-z0-9.-]+\.yaml", stale):
                (out_dir / stale).unlink(missing_ok=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # one value per line: no folding of long annotations or image refs
    written: list[Path] = []
    for file_name, (_, document) in sorted(documents.items()):
        path = out_dir / file_name
        with path.open("w") as stream:
            yaml.dump(document, stream)
        written.append(path)
    index.write_text("".join(f"{p.name}\n" for p in written))
    return written


ProgramRunner = Callable[[Path, str], ProgramRun]


def run_stack_program(project_dir: Path, stack: str) -> ProgramRun:
    """The whole program run for `stack`, the way `python -m stacks preview` runs it (stack references included)."""
    from offline.preview import run_stack

    return run_stack(project_dir, stack).run


def render_stack(
    project_dir: Path,
    stack: str,
    out_dir: Path,
    *,
    runner: ProgramRunner | None = None,
) -> list[Path]:
    """Renders the Kubernetes objects `stack` declares into `out_dir`; returns the files written.

    `runner` runs the program for a stack and returns its ProgramRun; by default it is the preview's runner.
    """
    run = (runner or run_stack_program)(project_dir, stack)
    return render(run, out_dir)
