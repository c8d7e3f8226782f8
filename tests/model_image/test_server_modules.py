"""The server's app is split by job: app.py composes the parts, each part says what it owns, none reaches into
another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "model_image" / "model_server"
JOBS = ("transport", "lifecycle", "protocol_mlflow", "protocol_v2", "status", "predicting")


def tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))


def test_app_only_composes_the_parts() -> None:
    module = tree("app")
    functions = [node.name for node in ast.walk(module) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    assert functions == ["__init__"], "app.py builds ModelServer from the parts and defines no handler of its own"
    imported = {node.module for node in module.body if isinstance(node, ast.ImportFrom)}
    assert {f"model_server.{job}" for job in JOBS} - {"model_server.predicting"} <= imported


@pytest.mark.parametrize("module", JOBS)
def test_each_public_class_says_what_it_owns(module: str) -> None:
    classes = [node for node in tree(module).body if isinstance(node, ast.ClassDef) and not node.name.startswith("_")]
    undocumented = [node.name for node in classes if not ast.get_docstring(node)]
    assert not undocumented, f"{module}.py: classes without a docstring: {undocumented}"


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("model_server"):
                found += [f"{path.name}: {alias.name}" for alias in node.names if alias.name.startswith("_")]
    assert not found
