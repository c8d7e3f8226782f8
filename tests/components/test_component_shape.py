"""The shape every component follows (components/__init__.py): Args with a docstring per field, whose types are the
components' own (no stack-file section, no other pydantic model), and registered outputs that are exactly the ones
the component's docstring names."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pydantic
import pytest

from offline.harness import ProgramRun
from stacks.settings import NodePool as NodePoolSettings
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


def field_types(hint: Any) -> Iterator[Any]:
    """Every type a field's annotation names: through unions, Optional, sequences, mappings, Input and Output."""
    yield hint
    for argument in typing.get_args(hint):
        yield from field_types(argument)


def section_models(args_class: type[Any]) -> list[str]:
    """The fields of an Args class (and of the value types it holds) whose type is a stack-file section or any
    other pydantic model: what the stack file says must reach a component as the component's own types."""
    found: list[str] = []
    seen: set[type[Any]] = set()

    def walk(owner: type[Any], path: str) -> None:
        if owner in seen or not dataclasses.is_dataclass(owner):
            return
        seen.add(owner)
        # `pulumi.Input[T]` names `Output[T]` by a forward reference that only pulumi.output resolves.
        for name, hint in typing.get_type_hints(owner, localns=vars(pulumi.output)).items():
            for named in field_types(hint):
                if isinstance(named, type) and issubclass(named, pydantic.BaseModel):
                    found.append(f"{path}.{name}: {named.__module__}.{named.__qualname__}")
                elif isinstance(named, type):
                    walk(named, f"{path}.{name}")

    walk(args_class, args_class.__name__)
    return found


def component_args_classes() -> list[type[Any]]:
    classes = []
    for module, node in args_classes():
        loaded = importlib.import_module(f"components.{module}")
        classes.append(getattr(loaded, node.name))
    return classes


def test_no_args_class_takes_a_stack_file_section() -> None:
    classes = component_args_classes()
    assert len(classes) >= 15
    assert {c.__name__: section_models(c) for c in classes if section_models(c)} == {}


def signatures(module_name: str) -> Iterator[tuple[str, Any]]:
    """Every function of a components module, and every method and property of its classes, with its qualified name."""
    module = importlib.import_module(module_name)
    for name, value in vars(module).items():
        if getattr(value, "__module__", None) != module_name:
            continue
        if inspect.isfunction(value):
            yield name, value
        elif inspect.isclass(value):
            for attribute, member in vars(value).items():
                function = member.fget if isinstance(member, property) else member
                if inspect.isfunction(function):
                    yield f"{name}.{attribute}", function


def test_no_component_function_takes_or_gives_a_stack_file_section() -> None:
    # Builders and Protocols take the same own types as the Args (an input Protocol's properties included).
    found, looked_at = [], 0
    for path in sorted(COMPONENTS.glob("*.py")):
        for name, function in signatures(f"components.{path.stem}"):
            looked_at += 1
            for hint in typing.get_type_hints(function, localns=vars(pulumi.output)).values():
                for named in field_types(hint):
                    if isinstance(named, type) and issubclass(named, pydantic.BaseModel):
                        found.append(f"{path.stem}.{name}: {named.__qualname__}")
    assert looked_at > 300  # a walk that found no function would pass without looking
    assert found == []


@dataclasses.dataclass(frozen=True)
class Inner:
    pools: Sequence[NodePoolSettings] | None


@dataclasses.dataclass(frozen=True)
class SomeArgs:
    inner: Inner
    size: int


def test_a_section_model_in_an_args_field_is_found() -> None:
    # The check above looks through unions, sequences and nested value types; an Args class holding a section
    # somewhere inside is caught.
    assert section_models(SomeArgs) == ["SomeArgs.inner.pools: stacks.settings.NodePool"]


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
