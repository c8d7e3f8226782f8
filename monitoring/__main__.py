"""`python -m monitoring [<stack> ...] [--out FILE | --check]`: writes the Prometheus rules file of each stack.

Without a stack, every stack of the project; each goes to `monitoring/rules/<stack>.rules.yml` (checked in, and kept
in sync by the tests), with the stack's Grafana dashboard beside it (`<stack>.dashboard.json`). `--out FILE` writes
one stack's rules file elsewhere; `--check` writes nothing and fails (exit 1)
when a checked-in file differs from what the stack's settings give.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from monitoring.dashboard import dashboard_document
from monitoring.rules import render_rules_file, rule_groups
from stacks.files import load_stack_config, stack_names
from stacks.identifiers import kubernetes_name
from stacks.settings import pinned_model
from stacks.settings_errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "monitoring" / "rules"


def rules_path(stack: str) -> Path:
    """Where the checked-in rules file of `stack` lives."""
    return RULES_DIR / f"{stack}.rules.yml"


def dashboard_path(stack: str) -> Path:
    """Where the checked-in Grafana dashboard of `stack` lives."""
    return RULES_DIR / f"{stack}.dashboard.json"


def stack_dashboard(project_dir: Path, stack: str) -> str:
    """The serving and drift dashboard of `stack`, as Grafana JSON, with the stack's thresholds drawn in."""
    config = load_stack_config(project_dir, stack)
    settings = config.settings()
    document = dashboard_document(
        settings.monitoring,
        kubernetes_name(pinned_model(settings, config.source).name),
        f"{config.project} {stack} model",
    )
    return json.dumps(document, indent=2) + "\n"


def stack_rules_file(project_dir: Path, stack: str) -> str:
    """The Prometheus rules file for `stack`, from its stack file's settings: the same rules Azure evaluates."""
    config = load_stack_config(project_dir, stack)
    settings = config.settings()
    # The rules watch one model's pods: a stack that pins none yet (day zero) has none to render.
    app = kubernetes_name(pinned_model(settings, config.source).name)
    groups = rule_groups(settings.monitoring, app, f"{config.project}-{stack}")
    header = (
        f"The alert rules of stack {stack!r} ({config.source}), rendered by `python -m monitoring {stack}`.\n"
        "Generated from monitoring/rules.py: edit that or the stack's `monitoring` settings, not this file."
    )
    return render_rules_file(groups, header)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring", description=__doc__.splitlines()[0])
    parser.add_argument("stacks", nargs="*", help="stacks to render (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--out", type=Path, help="write the one stack's rules file here")
    parser.add_argument("--check", action="store_true", help="fail if a checked-in rules file is out of date")
    parser.add_argument("--project-dir", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    stacks = args.stacks or stack_names(args.project_dir)
    if args.out is not None and len(stacks) != 1:
        parser.error("--out takes exactly one stack")
    stale = []
    for stack in stacks:
        try:
            outputs = [(args.out or rules_path(stack), stack_rules_file(args.project_dir, stack))]
            if args.out is None:
                outputs.append((dashboard_path(stack), stack_dashboard(args.project_dir, stack)))
        except SettingsError as exc:
            print("\n".join(exc.problems), file=sys.stderr)
            return 2
        for target, text in outputs:
            if args.check:
                if not target.exists() or target.read_text() != text:
                    stale.append(str(target))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(target)
    if stale:
        print(f"out of date (run `python -m monitoring`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
