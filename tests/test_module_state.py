"""The project's packages hold no module-level mutable state: what a module binds at import stays as it was, however
many programs run in the process.

`python -m stacks diff --base` runs two trees' programs and several stacks in one process (offline.isolation says
why), and the tests run hundreds; a cache, a registry or a list a run appends to would carry one run into the next.
So: no `global` statement anywhere in the packages, no function that changes a container the module made at
import (read from the source, for what no run reaches), and after a `diff --base` of prod (the base tree's staging and
prod, then this tree's staging and prod, in one process of its own, whose baseline is taken straight after import),
every module-level value of every module is as it was at import, deep: containers item by item (the standard
library's too), the attributes of any object that keeps them in `__dict__` or `__slots__`, the caches of functions
(`functools.cache`, `lru_cache`), functions' default values, closure cells and attributes, partials' arguments, and
class attributes; a value whose state cannot be read fails. The only exception is the isolation module's own state,
listed below with its reason. After the run, no finder is cached for a folder of the base tree.
"""

from __future__ import annotations

import ast
import collections.abc
import contextlib
import datetime
import enum
import functools
import importlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

import pytest

from offline import cli
from offline.isolation import project_packages, run_module_in_tree

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


# Values compared by identity, as nothing changes them in place: classes and modules (a class defined in a module of
# the packages is read member by member, in `module_state`), compiled regexes, paths, dates and time zones, ranges,
# the descriptors of builtin types, and typing's annotation objects (`X | Y`, `list[X]`, `Literal[...]`, ...).
IMMUTABLE: tuple[type, ...] = (
    type,
    types.ModuleType,
    re.Pattern,
    PurePath,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.tzinfo,
    range,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.MemberDescriptorType,
    types.GetSetDescriptorType,
    types.ClassMethodDescriptorType,
    types.GenericAlias,
    types.UnionType,
)
# Py_TPFLAGS_IMMUTABLETYPE: "PyType_Ready() automatically applies this flag to static types" (the builtins, most C
# extensions' types) and the standard library's heap types set it; a class statement's type never has it
# (docs.python.org/3/c-api/typeobj.html#c.Py_TPFLAGS_IMMUTABLETYPE). A C heap type without it is read by its attributes.
IMMUTABLETYPE = 1 << 8


class Fingerprint:
    """A comparable picture of a value, deep wherever its state can be read: containers item by item (any mapping,
    sequence or set, the standard library's `deque`, `OrderedDict`, ... too), a function's defaults, closure cells and
    attributes, a partial's function, arguments and keywords, and the attributes of any object whose class keeps its
    state in `__dict__` and `__slots__` (the project's, dataclasses frozen or not, pydantic models and Pulumi's
    `*Args` and `ResourceOptions`, SimpleNamespace): read, not trusted to be immutable, so that no false alarm needs
    an exception and no change goes unseen. Enum members are their value (fixed when the class is made); a logger is
    its configuration (level, handlers, filters), not the logging module's registry or the level cache that each
    `debug()` call fills (`Logger._cache`). An object with state out of reach (a lock, a future, a C type's instance)
    is `opaque`: recorded, and a failure unless ALLOWED."""

    def __init__(self, where: str = "") -> None:
        self.seen: set[int] = set()
        self.where = where
        self.opaque: list[str] = []

    def of(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, complex, str, bytes, enum.Enum)):
            return value
        if isinstance(value, IMMUTABLE) or type(value).__module__ == "typing":
            return ("same", id(value))
        if isinstance(value, (types.BuiltinFunctionType, types.MethodWrapperType)):
            # `len` or `os.getcwd` is the same; `_SEEN.append` is its list.
            bound = value.__self__
            return ("builtin", id(value)) if bound is None or isinstance(bound, types.ModuleType) else self.of(bound)
        if id(value) in self.seen:
            return ("seen", id(value))
        self.seen.add(id(value))
        try:
            return self._deep(value)
        finally:
            self.seen.discard(id(value))

    def _deep(self, value: Any) -> Any:
        if hasattr(value, "cache_info"):  # functools.cache / lru_cache: its size, and what it wraps
            return ("cache", value.cache_info().currsize, self.of(getattr(value, "__dict__", {})))
        if isinstance(value, (list, tuple, collections.abc.Sequence)):
            return (type(value).__name__, [self.of(v) for v in value])
        if isinstance(value, collections.abc.Mapping):
            return (type(value).__name__, [(self.of(k), self.of(v)) for k, v in value.items()])
        if isinstance(value, collections.abc.Set):
            return (type(value).__name__, sorted(repr(self.of(v)) for v in value))
        if isinstance(value, (types.FunctionType, types.MethodType)):
            function = value if isinstance(value, types.FunctionType) else value.__func__
            bound = self.of(value.__self__) if isinstance(value, types.MethodType) else None
            defaults = self.of(function.__defaults__), self.of(function.__kwdefaults__)
            cells = [self._cell(cell) for cell in function.__closure__ or ()]
            return ("function", id(function), bound, defaults, cells, self.of(vars(function)))
        if isinstance(value, functools.partial):
            return ("partial", self.of(value.func), self.of(value.args), self.of(value.keywords), self.of(vars(value)))
        if isinstance(value, (staticmethod, classmethod)):
            return ("wrapper", self.of(value.__func__))
        if isinstance(value, property):
            return ("property", self.of(value.fget), self.of(value.fset), self.of(value.fdel))
        if isinstance(value, logging.Logger):
            config = (value.name, value.level, value.propagate, value.disabled, value.handlers, value.filters)
            return ("logger", self.of(config))
        if _ours(type(value)) or _plain(type(value)):
            return (type(value).__qualname__, self.of(_attributes(value)))
        self.opaque.append(f"{self.where}: {type(value).__module__}.{type(value).__qualname__}")
        return ("opaque", type(value).__qualname__, id(value))

    def _cell(self, cell: types.CellType) -> Any:
        try:
            return self.of(cell.cell_contents)
        except ValueError:  # a cell not yet filled: a name the enclosing function binds later
            return ("empty cell",)


def _ours(kind: type) -> bool:
    return kind.__module__.partition(".")[0] in {*PACKAGES, "model_server", "webhook_listener"}


def _plain(kind: type) -> bool:
    """Instances keep all their state in `__dict__` and `__slots__`: every class of `kind` but `object` is a class
    statement's, or it is SimpleNamespace (a `__dict__` and nothing else)."""
    return kind is types.SimpleNamespace or all(
        not base.__flags__ & IMMUTABLETYPE for base in kind.__mro__ if base is not object
    )


def _attributes(value: Any) -> dict[str, Any]:
    state = dict(getattr(value, "__dict__", {}))
    for kind in type(value).__mro__:
        slots = vars(kind).get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__"):
                state[slot] = getattr(value, slot, "(unset)")
    return state


def _abc_registry(kind: type) -> list[int]:
    """The classes registered with an ABC (`register`), not its subclass-check cache, which isinstance() fills."""
    registry, _cache, _negative_cache, _version = importlib.import_module("_abc")._get_dump(kind)
    return sorted(id(ref()) for ref in registry)


def module_state(module: types.ModuleType, opaque: list[str] | None = None) -> dict[str, Any]:
    """Every value `module` binds that is its own (not an imported module, class or function), fingerprinted; a
    class or function defined there by what it holds: class attributes, caches, default values, closures. What
    cannot be read is appended to `opaque`."""
    state: dict[str, Any] = {}
    for name, value in vars(module).items():
        if (module.__name__, name) in ALLOWED or name in ("__builtins__", "__loader__", "__spec__", "__cached__"):
            continue
        if isinstance(value, types.ModuleType):
            continue
        picture = Fingerprint(f"{module.__name__}.{name}")
        defined_here = getattr(value, "__module__", module.__name__) == module.__name__
        if isinstance(value, type):
            if defined_here:
                members = {k: v for k, v in vars(value).items() if not (k.startswith("__") and k.endswith("__"))}
                if "_abc_impl" in members:
                    members["_abc_impl"] = _abc_registry(value)
                state[name] = ("class", picture.of(members))
        elif isinstance(value, types.FunctionType) or hasattr(value, "cache_info"):
            if defined_here:
                state[name] = picture.of(value)
        else:
            state[name] = picture.of(value)
        if opaque is not None:
            opaque += picture.opaque
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


def importer_cache_under(*roots: Path) -> list[str]:
    """The keys of `sys.path_importer_cache` (a finder per folder imported from) in one of `roots`."""
    return [key for key in sys.path_importer_cache if any(Path(key).is_relative_to(root) for root in roots)]


def state_after_a_run(repo: Path) -> dict[str, Any]:
    """What a `diff --base` of prod in `repo` changed in this process, which must be a new one (`main`, below): the
    baseline is taken straight after importing every module, so a cache that any run fills, the same way each
    time, is found, whatever ran before in the test session."""
    modules = import_all()
    before = {name: module_state(module) for name, module in modules.items()}
    path = list(sys.path)
    output = run_diff_against_base(repo)
    after = {name: module_state(module) for name, module in modules.items()}
    temp = Path(tempfile.gettempdir())  # where the base tree was extracted
    return {
        "no changes": '"summary": "no changes"' in output,
        "changed": [
            f"{name}.{key}"
            for name in modules
            for key in sorted({*before[name], *after[name]})
            if before[name].get(key, "(absent)") != after[name].get(key, "(absent)")
        ],
        # The base tree's modules were set aside again, and this tree's are the very ones it imported.
        "replaced": [name for name, module in modules.items() if sys.modules.get(name) is not module],
        "path restored": sys.path == path,
        "finders left under the base tree": importer_cache_under(temp, temp.resolve()),
    }


@pytest.mark.slow
def test_running_the_programs_of_two_trees_changes_no_module_level_value(tmp_path: Path) -> None:
    # The base tree is extracted under a temporary folder reached through a symlink, as on macOS (/var -> /private/var).
    (tmp_path / "temp").mkdir()
    (tmp_path / "temp-link").symlink_to(tmp_path / "temp", target_is_directory=True)
    report = tmp_path / "report.json"
    with project_copy(tmp_path / "project") as repo:
        run = subprocess.run(
            [sys.executable, "-m", "tests.test_module_state", str(repo), str(report)],
            cwd=ROOT,
            env={**os.environ, "TMPDIR": str(tmp_path / "temp-link")},
            capture_output=True,
            text=True,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    assert json.loads(report.read_text(encoding="utf-8")) == {
        "no changes": True,
        "changed": [],
        "replaced": [],
        "path restored": True,
        "finders left under the base tree": [],
    }


def test_every_module_level_value_can_be_read() -> None:
    """Anything whose state the fingerprint cannot read (a lock, a C type's instance) would hide a change: none
    outside ALLOWED."""
    opaque: list[str] = []
    for module in import_all().values():
        module_state(module, opaque)
    assert opaque == []


# An older tree's components/contracts.py: its deployables' roots, resolved, first on the path.
OLDER_TREE_MAIN = """
import sys
from pathlib import Path

import base_tool.part

_PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_PROJECT / "model_image"))

import base_server
"""


def test_a_tree_run_in_this_process_leaves_no_finder_under_its_root(tmp_path: Path) -> None:
    """The finders cached for the folders a base tree imported from (its packages', and the roots an older tree
    resolved itself) go with it: the tree is about to be deleted, and a later tree may be extracted to the same path."""
    real = tmp_path / "real"
    for package in (real / "base_tool", real / "model_image" / "base_server"):
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("", encoding="utf-8")
    (real / "base_tool" / "part.py").write_text("", encoding="utf-8")
    (real / "base_tool" / "__main__.py").write_text(OLDER_TREE_MAIN, encoding="utf-8")
    root = tmp_path / "link"
    root.symlink_to(real, target_is_directory=True)
    path = list(sys.path)

    run = run_module_in_tree(root, project_packages(root), "base_tool", [])

    assert (run.code, run.stderr) == (0, "")
    assert importer_cache_under(root, root.resolve()) == []
    assert sys.path == path
    assert [name for name in sys.modules if name.partition(".")[0] in ("base_tool", "base_server")] == []


def main(argv: list[str]) -> int:
    """`python -m tests.test_module_state <repo> <report.json>`: `state_after_a_run`, in a process of its own."""
    repo, report = argv
    Path(report).write_text(json.dumps(state_after_a_run(Path(repo))), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
