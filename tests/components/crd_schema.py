"""Validation of a custom resource against the pinned Argo Rollouts CRDs' own `openAPIV3Schema`
(tests/reference/argo-rollouts/, copied from argoproj/argo-rollouts v1.9.0): types, required fields, enums, and
every field the schema does not declare."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # the dev lock carries no stubs for it
from ruamel.yaml import YAML

REFERENCE = Path(__file__).parents[1] / "reference" / "argo-rollouts"
CRD_FILES = {
    "Rollout": "rollout-crd.yaml",
    "AnalysisTemplate": "analysis-template-crd.yaml",
    "AnalysisRun": "analysis-run-crd.yaml",
}


@cache
def _crd_schema(file: str) -> dict[str, Any]:
    crd = YAML(typ="safe").load((REFERENCE / file).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["served"]]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the schema does not declare: the API server drops them silently (structural schema pruning), so a
    misspelt field would be lost without an error."""
    unknown: list[str] = []
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema:
            return []
        properties = schema.get("properties", {})
        for key, item in value.items():
            where = f"{path}.{key}"
            if where == ".metadata":
                continue  # the API server validates every object's metadata itself; CRDs do not describe it
            if key not in properties:
                unknown.append(where)
            else:
                unknown += _unknown_fields(item, properties[key], where)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            unknown += _unknown_fields(item, schema["items"], f"{path}[{index}]")
    return unknown


def crd_problems(document: dict[str, Any], crd_file: str) -> list[str]:
    schema = _crd_schema(crd_file)
    problems = [
        f"{'.'.join(map(str, e.path))}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(document)
    ]
    return problems + [f"unknown field {f}" for f in _unknown_fields(document, schema)]


def problems_of(document: dict[str, Any]) -> list[str]:
    """What the API server would refuse or silently drop in `document`, by its kind's CRD."""
    return crd_problems(document, CRD_FILES[document["kind"]])
