"""The shape every component follows (components/__init__.py): Args with a docstring per field and no catch-all
`settings` field, and registered outputs that are exactly the ones the component's docstring names."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from offline.harness import ProgramRun
from tests.conftest import STAGING_REF, run_variant

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
_REGISTERED = re.compile(r"Registered outputs:(?P<names>.*?)(?:;|\.\s|\.$|$)", re.S)


def args_classes() -> Iterator[tuple[str, ast.ClassDef]]:
    for path in sorted(COMPONENTS.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Args"):
                yield path.stem, node


def undocumented_fields(node: ast.ClassDef) -> list[str]:
    missing = []
    for i, statement in enumerate(node.body):
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            following = node.body[i + 1] if i + 1 < len(node.body) else None
            documented = (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            )
            if not documented:
                missing.append(statement.target.id)
    return missing


def test_every_args_field_has_a_docstring() -> None:
    missing = {f"{module}.{node.name}": undocumented_fields(node) for module, node in args_classes()}
    assert {name: fields for name, fields in missing.items() if fields} == {}


def test_no_args_class_takes_a_catch_all_settings_field() -> None:
    catch_all = [
        f"{module}.{node.name}.{statement.target.id}"
        for module, node in args_classes()
        for statement in node.body
        if isinstance(statement, ast.AnnAssign)
        and isinstance(statement.target, ast.Name)
        and statement.target.id in {"settings", "config", "options", "data"}
    ]
    assert catch_all == []


def documented_outputs(component: type[pulumi.ComponentResource]) -> set[str]:
    """The names after `Registered outputs:` in the component's class or module docstring (`none`: no names)."""
    module = importlib.import_module(component.__module__)
    text = f"{component.__doc__ or ''}\n{module.__doc__ or ''}"
    found = _REGISTERED.search(text)
    assert found is not None, f"{component.__name__}: no 'Registered outputs:' in its docstrings"
    return set(re.findall(r"`([A-Za-z0-9]+)`", found["names"]))


@pytest.fixture(scope="module")
def registered(monkeypatch_module: pytest.MonkeyPatch) -> dict[type[pulumi.ComponentResource], set[str]]:
    seen: dict[type[pulumi.ComponentResource], set[str]] = {}
    original = pulumi.ComponentResource.register_outputs

    def record(self: pulumi.ComponentResource, outputs: Any) -> None:
        if type(self).__module__.startswith("components."):
            seen[type(self)] = set(outputs or {})
        original(self, outputs)

    monkeypatch_module.setattr(pulumi.ComponentResource, "register_outputs", record)

    def with_grafana(values: dict[str, Any]) -> None:
        values["mlops-serving:monitoring"]["grafana"] = True

    staging: ProgramRun = run_variant("staging", with_grafana)
    run_variant("prod", stack_outputs={STAGING_REF: staging.outputs})
    return seen


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_every_component_registers_exactly_the_outputs_its_docstring_names(
    registered: dict[type[pulumi.ComponentResource], set[str]],
) -> None:
    components = {path.stem for path in COMPONENTS.glob("*.py")}
    assert {c.__module__.rsplit(".", 1)[-1] for c in registered} == {
        module
        for module in components
        if any(
            isinstance(n, ast.ClassDef)
            and any(isinstance(b, ast.Attribute) and b.attr == "ComponentResource" for b in n.bases)
            for n in ast.parse((COMPONENTS / f"{module}.py").read_text()).body
        )
    }, "a component the shipped stacks never declare escapes this check"
    mismatched = {
        c.__name__: {"registered": sorted(keys), "documented": sorted(documented_outputs(c))}
        for c, keys in registered.items()
        if keys != documented_outputs(c)
    }
    assert mismatched == {}
