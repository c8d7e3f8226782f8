"""The project's packages import each other in one direction only, and no module imports itself back through others.

Layers, lowest first: the two deployables (model_server, webhook_listener: they ship alone and import nothing of
ours), the stack settings (stacks), what reads them (monitoring, offline), the Pulumi components, the translation
of a stack file into the components' Args (program), the tools that drive a release (release, localrun), and the
demo. A module may import its own package and lower layers only.
Every import counts, at module level, inside functions and under TYPE_CHECKING alike: each is a dependency a
reader has to hold in mind. Entry points (`__main__` modules) sit above every layer: `python -m stacks` runs the
offline tools.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# (package, its folder) in layer order, lowest first; packages on one line share a layer.
LAYERS: tuple[tuple[tuple[str, Path], ...], ...] = (
    (
        ("model_server", ROOT / "model_image" / "model_server"),
        ("webhook_listener", ROOT / "listener" / "webhook_listener"),
    ),
    (("stacks", ROOT / "stacks"),),
    (("monitoring", ROOT / "monitoring"), ("offline", ROOT / "offline")),
    (("components", ROOT / "components"), ("policies", ROOT / "policies")),
    (("program", ROOT / "program"),),
    (("release", ROOT / "release"), ("localrun", ROOT / "localrun")),
    (("demo", ROOT / "demo"),),
)
LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package, _ in packages}


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found: dict[str, Path] = {}
    for packages in LAYERS:
        for package, folder in packages:
            for path in folder.rglob("*.py"):
                parts = (package, *path.relative_to(folder).with_suffix("").parts)
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                found[name] = path
    return found


MODULES = modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> Iterator[str]:
    """The project modules `module` imports (relative imports resolved), wherever in the file the import is."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != module:
                yield resolved


GRAPH = {module: sorted(set(imports_of(module))) for module in MODULES}


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_every_package_and_their_imports() -> None:
    # A walk that found nothing would pass the tests below without looking.
    assert {name.split(".")[0] for name in MODULES} == set(LAYER_OF)
    assert "components.model_workload" in GRAPH["components.model_deployment"]
    assert "monitoring.rules" in GRAPH["components.model_canary"]
    assert "stacks.settings" in GRAPH["program.stack_args"]


def test_no_module_imports_itself_back() -> None:
    assert cycles(GRAPH) == []


def test_cycles_are_found_when_there_are_some() -> None:
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")))
def test_no_import_from_a_lower_layer_to_a_higher_one(module: str) -> None:
    level = LAYER_OF[module.partition(".")[0]]
    upward = [target for target in GRAPH[module] if LAYER_OF[target.partition(".")[0]] > level]
    assert upward == [], f"{module} (layer {level}) imports from a higher layer"


def test_components_take_no_stack_file_section() -> None:
    # Components speak their own value types; only the identifier rules (digest, model name, a model's Kubernetes
    # name) come from the stacks package. The stack file's sections reach them through program.stack_args.
    from_stacks = {
        module: [target for target in GRAPH[module] if target.partition(".")[0] == "stacks"]
        for module in MODULES
        if module.partition(".")[0] == "components"
    }
    assert {m: t for m, t in from_stacks.items() if set(t) - {"stacks.identifiers"}} == {}
