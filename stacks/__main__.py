"""`python -m stacks`: offline preview, diff, pin and render of the project's stacks.

    python -m stacks preview <stack> [--json]
    python -m stacks diff <stackA> <stackB> [--json | --markdown]
    python -m stacks diff --base <git-ref> <stack> [--json | --markdown]
    python -m stacks pin <stack> --model <name> --version <v> [--digest sha256:...]
    python -m stacks render <stack> <dir>

Exit codes: 0 success; 1 the program failed (its message is printed); 2 the stack file is invalid (one line per
problem) or the command line is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from stacks.settings import SettingsError

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


def _preview_document(project_dir: Path, stack: str) -> dict[str, Any]:
    from stacks.preview import preview_document, run_stack

    with _quiet():
        return preview_document(run_stack(project_dir, stack))


def cmd_preview(args: argparse.Namespace) -> int:
    from stacks.preview import render_tree

    doc = _preview_document(args.project_dir, args.stack)
    print(json.dumps(doc, indent=2, sort_keys=False) if args.json else render_tree(doc))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from stacks.diff import diff_documents, preview_at_ref, render_markdown, render_text

    if args.base:
        if len(args.stacks) != 1:
            raise SystemExit("usage: python -m stacks diff --base <git-ref> <stack>")
        stack = args.stacks[0]
        before = preview_at_ref(args.project_dir, args.base, stack)
        after = _preview_document(args.project_dir, stack)
        diff = diff_documents(before, after, f"{stack}@{args.base}", f"{stack}@working-tree")
        label: str | None = stack
    else:
        if len(args.stacks) != 2:
            raise SystemExit("usage: python -m stacks diff <stackA> <stackB>")
        a, b = args.stacks
        diff = diff_documents(_preview_document(args.project_dir, a), _preview_document(args.project_dir, b), a, b)
        label = None
    if args.json:
        print(json.dumps(diff.as_json(), indent=2, default=str))
    elif args.markdown:
        print(render_markdown(diff, label))
    else:
        print(render_text(diff))
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    from stacks.pin import run_pin

    return run_pin(args)


def cmd_render(args: argparse.Namespace) -> int:
    from stacks.render import render_stack

    with _quiet():
        written = render_stack(args.project_dir, args.stack, Path(args.dir))
    for path in written:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stacks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-dir", type=_project_dir, default=Path.cwd(), help="default: current directory")
    sub = parser.add_subparsers(dest="command", required=True)

    preview = sub.add_parser("preview", help="the resources a stack declares, offline")
    preview.add_argument("stack")
    preview.add_argument("--json", action="store_true", help="stable machine-readable document")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The program under preview imports its components from its own project, not from wherever this tool lives.
    sys.path.insert(0, str(args.project_dir))
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
