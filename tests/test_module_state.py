"""The project's packages hold no module-level mutable state: what a module binds at import stays as it was, however
many programs run in the process.

`python -m stacks diff --base` runs two trees' programs and several stacks in one process (offline.isolation says
why), and the tests run hundreds; a cache, a registry or a list a run appends to would carry one run into the next.
So: no `global` statement anywhere in the packages, no function that changes a container the module made at
import (read from the source, for what no run reaches), and after a `diff --base` of prod (the base tree's staging and
prod, then this tree's staging and prod, in this process), every module-level value of every module is as it was
at import, deep: containers item by item, the attributes of the project's own objects, the caches of functions
(`functools.cache`, `lru_cache`), functions' default values, and class attributes. The only exception is the
isolation module's own state, listed below with its reason.
"""

from __future__ import annotations

import ast
import contextlib
import enum
import functools
import importlib
import io
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offline import cli

ROOT = Path(__file__).resolve().parent.parent
# The program's packages and the tools in this process with it; of the deployables, only the contract modules the
# program imports (the rest of them runs in their own processes: the server, the Function App).
PACKAGES = ("components", "program", "stacks", "offline", "monitoring", "policies", "release", "localrun")
CONTRACTS = {
    "model_server.contract": ROOT / "model_image" / "model_server" / "contract.py",
    "webhook_listener.contract": ROOT / "listener" / "webhook_listener" / "contract.py",
}
# Python files that are not modules of this process: the notebook the program uploads runs on Databricks.
NOT_MODULES = (ROOT / "components" / "notebooks",)
# (module, name) -> why it may change. Nothing else may.
ALLOWED: dict[tuple[str, str], str] = {
    ("offline.isolation", "_IDLE_LOOP"): (
        "the one event loop a thread is left with between program runs, made on first use and kept open for the "
        "process, so that no run leaves an open loop for the garbage collector to finalize"
    ),
}


def module_files() -> dict[str, Path]:
    """Every module of PACKAGES, by dotted name, and the contract modules."""
    found = dict(CONTRACTS)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if any(path.is_relative_to(folder) for folder in NOT_MODULES):
                continue
            parts = (package, *path.relative_to(ROOT / package).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = module_files()


def test_no_module_of_the_packages_has_a_global_statement() -> None:
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Global):
                found += [(name, each) for each in node.names if (name, each) not in ALLOWED]
    assert found == []


# Methods that change a container in place, and calls that make one.
MUTATORS = frozenset(
    {"append", "extend", "insert", "remove", "pop", "popitem", "clear", "sort", "reverse", "add", "discard", "update"}
    | {"setdefault", "appendleft", "extendleft", "popleft", "intersection_update", "difference_update"}
)
CONTAINERS = frozenset({"list", "dict", "set", "defaultdict", "deque", "OrderedDict", "Counter", "bytearray"})


def module_containers(tree: ast.Module) -> set[str]:
    """The names a module binds at its top level to a mutable container (a literal, a comprehension, a call)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        literal = isinstance(value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp))
        called = isinstance(value, ast.Call) and (
            (isinstance(value.func, ast.Name) and value.func.id in CONTAINERS)
            or (isinstance(value.func, ast.Attribute) and value.func.attr in CONTAINERS)
        )
        if literal or called:
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def changed_in_functions(tree: ast.Module, containers: set[str]) -> Iterator[tuple[str, str, int]]:
    """(function, container, line) for each place a function changes a module-level container in place: a mutating
    method, an item assigned or deleted. A function's own variable of the same name is not the module's."""
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        local = {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
        local |= {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        watched = containers - local
        for node in ast.walk(function):
            changed: list[ast.expr] = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
                changed = [node.func.value]
            elif isinstance(node, (ast.Assign, ast.Delete)):
                changed = [t.value for t in node.targets if isinstance(t, ast.Subscript)]
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Subscript):
                changed = [node.target.value]
            for target in changed:
                if isinstance(target, ast.Name) and target.id in watched:
                    yield getattr(function, "name", "<lambda>"), target.id, getattr(node, "lineno", 0)


def test_no_function_changes_a_module_level_container() -> None:
    """What a run does not reach (the release tools, the local servers) is read rather than run: no function changes
    a list, dict or set the module made at import."""
    found = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        changes = changed_in_functions(tree, module_containers(tree))
        found += [f"{name}.{function}: {container} (line {line})" for function, container, line in changes]
    assert found == []


class Fingerprint:
    """A comparable picture of a value, deep where the value belongs to the project, by identity where it does not."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def of(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, complex, str, bytes, enum.Enum)):
            return value
        if isinstance(value, (type, types.ModuleType, types.BuiltinFunctionType, re.Pattern, Path)):
            return ("same", id(value))
        if hasattr(value, "cache_info"):  # functools.cache / lru_cache
            return ("cache", value.cache_info().currsize)
        if id(value) in self.seen:
            return ("seen", id(value))
        self.seen.add(id(value))
        try:
            return self._deep(value)
        finally:
            self.seen.discard(id(value))

    def _deep(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return (type(value).__name__, [self.of(v) for v in value])
        if isinstance(value, (dict, types.MappingProxyType)):
            return (type(value).__name__, [(self.of(k), self.of(v)) for k, v in value.items()])
        if isinstance(value, (set, frozenset)):
            return (type(value).__name__, sorted(repr(self.of(v)) for v in value))
        if isinstance(value, (types.FunctionType, types.MethodType)):
            function = value if isinstance(value, types.FunctionType) else value.__func__
            return ("function", id(function), self.of(function.__defaults__), self.of(function.__kwdefaults__))
        if isinstance(value, (staticmethod, classmethod, property, functools.partial)):
            return ("wrapper", id(value), self.of(getattr(value, "__func__", getattr(value, "fget", None))))
        if _ours(type(value)):
            state = dict(getattr(value, "__dict__", {}))
            for slot in getattr(type(value), "__slots__", ()):
                state[slot] = getattr(value, slot, None)
            return (type(value).__qualname__, self.of(state))
        return ("foreign", type(value).__qualname__, id(value))


def _ours(kind: type) -> bool:
    return kind.__module__.partition(".")[0] in {*PACKAGES, "model_server", "webhook_listener"}


def module_state(module: types.ModuleType) -> dict[str, Any]:
    """Every value `module` binds that is its own (not an imported module, class or function), fingerprinted; a
    class or function defined there by what it holds: class attributes, caches, default values."""
    picture = Fingerprint()
    state: dict[str, Any] = {}
    for name, value in vars(module).items():
        if (module.__name__, name) in ALLOWED or name in ("__builtins__", "__loader__", "__spec__", "__cached__"):
            continue
        if isinstance(value, types.ModuleType):
            continue
        defined_here = getattr(value, "__module__", module.__name__) == module.__name__
        if isinstance(value, type):
            if defined_here:
                members = {k: v for k, v in vars(value).items() if not (k.startswith("__") and k.endswith("__"))}
                state[name] = ("class", picture.of(members))
        elif isinstance(value, types.FunctionType) or hasattr(value, "cache_info"):
            if defined_here:
                state[name] = picture.of(value)
        else:
            state[name] = picture.of(value)
    return state


def import_all() -> dict[str, types.ModuleType]:
    """Every module but the entry points (`__main__`), which run their command when imported (the policy pack's
    starts the analyzer server and blocks); the scan for `global` reads them too."""
    return {name: importlib.import_module(name) for name in MODULES if not name.endswith(".__main__")}


@contextlib.contextmanager
def project_copy(dest: Path) -> Iterator[Path]:
    """This tree's files (tracked or new, not ignored; not its tests, demo, docs or benchmarks) as a git repository
    of its own, with one commit: a base for `diff --base`."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    for name in listed.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file() and not name.startswith(("tests/", "demo/", "docs/", "benchmarks/")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *cmd], cwd=dest, check=True)
    yield dest


def run_diff_against_base(repo: Path) -> str:
    """`python -m stacks diff --base HEAD prod --json` in `repo`, in this process, as a user runs it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(repo), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["diff", "--base", "HEAD", "prod", "--json"])
    assert code == 0, err.getvalue()
    return out.getvalue()


@pytest.mark.slow
def test_running_the_programs_of_two_trees_changes_no_module_level_value(tmp_path: Path) -> None:
    modules = import_all()
    before = {name: module_state(module) for name, module in modules.items()}
    path = list(sys.path)

    with project_copy(tmp_path / "project") as repo:
        assert '"summary": "no changes"' in run_diff_against_base(repo)

    after = {name: module_state(module) for name, module in modules.items()}
    changed = [
        f"{name}.{key}"
        for name in modules
        for key in sorted({*before[name], *after[name]})
        if before[name].get(key, "(absent)") != after[name].get(key, "(absent)")
    ]
    assert changed == []
    # The base tree's modules were set aside again, and this tree's are the very ones it imported.
    assert [name for name, module in modules.items() if sys.modules.get(name) is not module] == []
    assert sys.path == path
