"""`python -m stacks`: offline preview, diff, pin and render of the project's stacks.

    python -m stacks preview <stack> [<stack> ...] [--json]
    python -m stacks diff <stackA> <stackB> [--json | --markdown]
    python -m stacks diff --base <git-ref> <stack> [--json | --markdown]
    python -m stacks pin <stack> --model <name> --version <v> [--digest sha256:...]
    python -m stacks render <stack> <dir>

Several stacks previewed at once run in one process, and a stack another reads through a StackReference (staging,
for prod) runs once. With `--json`, one stack prints its document; several print one object keyed by stack name,
in the order given: `{"staging": {...}, "prod": {...}}`.

This module is the command line; `stacks/__main__.py` hands `python -m stacks` to `main`, which tests call
in-process with an argv.

Exit codes: 0 success; 1 the program failed (its message is printed); 2 the stack file is invalid (one line per
problem) or the command line is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from stacks.settings_errors import SettingsError

os.environ.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")


def _project_dir(value: str | None) -> Path:
    return Path(value).resolve() if value else Path.cwd()


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Keeps the Pulumi SDK's own chatter (mock engine logs) off stdout, where JSON goes."""
    buffer = io.StringIO()
    logging.getLogger("pulumi").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(buffer):
        yield buffer


def _preview_documents(project_dir: Path, stacks: Sequence[str]) -> dict[str, dict[str, Any]]:
    from offline.preview import preview_document, run_stacks

    with _quiet():
        return {stack: preview_document(run) for stack, run in run_stacks(project_dir, stacks).items()}


def _preview_document(project_dir: Path, stack: str) -> dict[str, Any]:
    return _preview_documents(project_dir, [stack])[stack]


def cmd_preview(args: argparse.Namespace) -> int:
    from offline.preview import render_tree

    docs = _preview_documents(args.project_dir, args.stacks)
    if args.json:
        shape = docs[args.stacks[0]] if len(docs) == 1 else docs
        print(json.dumps(shape, indent=2, sort_keys=False))
    else:
        print("\n\n".join(render_tree(doc) for doc in docs.values()))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from offline import diff as offline_diff

    if args.base:
        if len(args.stacks) != 1:
            raise SystemExit("usage: python -m stacks diff --base <git-ref> <stack>")
        stack = args.stacks[0]
        before = offline_diff.preview_at_ref(args.project_dir, args.base, stack)
        after = _preview_document(args.project_dir, stack)
        diff = offline_diff.diff_documents(before, after, f"{stack}@{args.base}", f"{stack}@working-tree")
        label: str | None = stack
    else:
        if len(args.stacks) != 2:
            raise SystemExit("usage: python -m stacks diff <stackA> <stackB>")
        a, b = args.stacks
        docs = _preview_documents(args.project_dir, [a, b])
        diff = offline_diff.diff_documents(docs[a], docs[b], a, b, comparison=True)
        label = None
    if args.json:
        print(json.dumps(diff.as_json(), indent=2, default=str))
    elif args.markdown:
        print(offline_diff.render_markdown(diff, label))
    else:
        print(offline_diff.render_text(diff))
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    from stacks.pin import run_pin

    return run_pin(args)


def cmd_render(args: argparse.Namespace) -> int:
    from offline.render import render_stack

    with _quiet():
        written = render_stack(args.project_dir, args.stack, Path(args.dir))
    for path in written:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stacks", description=__doc__.split("\n\n")[0])
    # The project's stack files and program; its packages are this environment's, as every other import is (a git
    # ref's tree, for `diff --base`, runs with its own: offline.isolation).
    project = "the project whose stack files and __main__.py to run (default: current directory)"
    parser.add_argument("--project-dir", type=_project_dir, default=Path.cwd(), help=project)
    sub = parser.add_subparsers(dest="command", required=True)

    preview = sub.add_parser("preview", help="the resources stacks declare, offline")
    preview.add_argument("stacks", nargs="+", metavar="stack")
    preview.add_argument("--json", action="store_true", help="stable machine-readable document (by stack if several)")
    preview.set_defaults(func=cmd_preview)

    diff = sub.add_parser("diff", help="differences between two stacks, or a stack at a git ref and now")
    diff.add_argument("stacks", nargs="+")
    diff.add_argument("--base", help="git ref to compare the working tree against (one stack)")
    fmt = diff.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--markdown", action="store_true", help="a pull-request comment")
    diff.set_defaults(func=cmd_diff)

    pin = sub.add_parser("pin", help="pin a stack to a model version (changes only that value)")
    try:
        from stacks.pin import add_pin_arguments

        add_pin_arguments(pin)
    except ImportError:  # pragma: no cover - only while stacks/pin.py is being written
        pass
    pin.set_defaults(func=cmd_pin)

    render = sub.add_parser("render", help="write the Kubernetes objects a stack declares as YAML")
    render.add_argument("stack")
    render.add_argument("dir")
    render.set_defaults(func=cmd_render)
    return parser


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Turns off CPython's cyclic garbage collector while a command runs, and back on after.

    Importing the provider SDKs makes hundreds of thousands of long-lived objects, and every full collection walks
    all of them again; a command frees almost nothing by collecting cycles, and reference counting still frees
    everything else (docs.python.org/3/library/gc.html#gc.disable). Figures: docs/decisions/0003-offline-tools-speed.md.
    The event loops a run makes are closed by the harness, not left to the collector.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    with _no_cycle_collection():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    except Exception as exc:
        message = str(exc).strip() or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
