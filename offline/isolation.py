"""Running another tree of the project (a git ref's, for `diff --base`) in this process, isolated from this one.

Why in this process: the provider SDKs make up most of a preview's time, and a second process would import them all
again; here they are imported once for both trees (figures: docs/decisions/0003-offline-tools-speed.md). The price
is this module: both trees' packages have the same names (`components`, `stacks`, `offline`, ..., and the
deployables' `model_server` and `webhook_listener`), so while the other tree runs, its packages replace this tree's
in `sys.modules`, its root and its deployables' roots come first on `sys.path` (so it reads its own contracts), the
working directory is its root, and `sys.argv` is its command; after, all of that is as it was, and the event loop
its harness left current is closed.

This is the one place in the project's packages that holds state of its own at module level, and the one that
edits `sys.path` and `sys.modules`; `tests/test_module_state.py` holds every other module to none.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import runpy
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEPLOYABLE_ROOTS", "ModuleRun", "idle_loop", "project_packages", "run_module_in_tree", "tree_imports"]

# Source roots of the other deployables, whose contract modules the program imports by their own package names;
# the dev venv's `.pth` (scripts/bootstrap.sh) names this checkout's, so another tree's are put first here.
DEPLOYABLE_ROOTS = ("model_image", "listener")

# The event loop a thread is left with between program runs: one for the process, open until it ends, so that no run
# leaves an open loop behind for the garbage collector to finalize (see `offline.harness._event_loops`). State of
# this module's own, listed in tests/test_module_state.py.
_IDLE_LOOP: asyncio.AbstractEventLoop | None = None


def idle_loop() -> asyncio.AbstractEventLoop:
    """The event loop a thread is left with between runs: one for the process, open until the process ends."""
    global _IDLE_LOOP  # noqa: PLW0603 - one idle loop per process, see above
    if _IDLE_LOOP is None or _IDLE_LOOP.is_closed():
        _IDLE_LOOP = asyncio.new_event_loop()
    return _IDLE_LOOP


def project_packages(root: Path) -> set[str]:
    """The modules and packages a project tree holds that its program and tools import by name: its top-level ones
    and the deployables' packages (`model_server`, `webhook_listener`), so each tree reads its own contracts."""
    names = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    names |= {p.parent.name for source in DEPLOYABLE_ROOTS for p in (root / source).glob("*/__init__.py")}
    return names | {p.stem for p in root.glob("*.py") if p.stem != "__main__"}


@contextlib.contextmanager
def tree_imports(root: Path, packages: set[str]) -> Iterator[None]:
    """Inside the block, `packages` import from `root` and its deployables' roots, and the working directory is
    `root`; after, `sys.modules`, `sys.path`, the working directory and the thread's event loop are as before, and
    `sys.path_importer_cache` holds no finder for a folder of `root`.

    The modules of this tree are set aside, not re-imported: the tools running now keep the very modules they hold.
    The Pulumi runtime's settings are reset by each program run.
    """

    def ours(name: str) -> bool:
        return name.partition(".")[0] in packages

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in saved:
        del sys.modules[name]
    path, cwd = list(sys.path), Path.cwd()
    roots = [str(root), *(str(root / source) for source in DEPLOYABLE_ROOTS)]
    sys.path[:0] = roots
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        # The finders cached for the folders of a tree that is about to be deleted (its roots, its packages'
        # folders, and the resolved roots an older tree's components/contracts.py put on the path itself).
        for entry in [entry for entry in sys.path_importer_cache if _under(entry, root, root.resolve())]:
            del sys.path_importer_cache[entry]
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
        # The other tree's harness leaves its own idle loop current (or, in older trees, whatever it made).
        left = asyncio.get_event_loop_policy().get_event_loop()
        if left is not idle_loop():
            left.close()
            asyncio.set_event_loop(idle_loop())


def _under(entry: str, *roots: Path) -> bool:
    return any(Path(entry).is_relative_to(root) for root in roots)


@dataclass(frozen=True)
class ModuleRun:
    """What `python -m <module>` printed and returned."""

    code: int
    stdout: str
    stderr: str


def run_module_in_tree(root: Path, packages: set[str], module: str, args: Sequence[str]) -> ModuleRun:
    """`python -m <module> <args>` as the tree at `root` has it, in `root`, in this process (see the module doc)."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    with tree_imports(root, packages), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sys.argv = [module, *args]
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
                code = 1
            else:
                code = exc.code or 0
        finally:
            sys.argv = argv
    return ModuleRun(code, out.getvalue(), err.getvalue())
