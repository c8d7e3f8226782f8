"""What a push to main deploys: `prod-only=true` when it changes nothing but prod's files.

    python3 -m release.deploy_plan --before <sha> --after HEAD      # standard library only: runs before bootstrap

A prod promotion or a prod rollback changes only `Pulumi.prod.yaml` (a rollback also
`release/rolled-back/prod.json`): the deploy workflow then skips staging and
deploys prod at once, so a prod rollback never waits on (or fails with) staging's deploy. Anything else, an unknown
`before` (a new branch, a manual run) included, deploys staging first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ZERO = "0" * 40


def changed_files(before: str, after: str, repo_dir: Path | None = None) -> list[str] | None:
    """Paths changed between the commits (in the checkout `repo_dir`, default the current directory), or None when
    `before` is unknown."""
    if not before or before == ZERO:
        return None
    argv = ["git", "diff", "--name-only", before, after]
    proc = subprocess.run(argv, cwd=repo_dir, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return [line for line in proc.stdout.splitlines() if line.strip()]


# A prod rollback also records, beside the stack file, the version prod was rolled back from (release/rolled_back.py).
PROD_FILES = ("Pulumi.prod.yaml", "release/rolled-back/prod.json")


def prod_only(files: list[str] | None, only: tuple[str, ...] = PROD_FILES) -> bool:
    return bool(files) and all(path in only for path in files or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.deploy_plan", description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="")
    parser.add_argument("--after", default="HEAD")
    args = parser.parse_args(argv)
    files = changed_files(args.before, args.after)
    result = prod_only(files)
    shown = "unknown (deploy everything)" if files is None else ", ".join(files) or "nothing"
    print(f"changed: {shown}\nprod-only={'true' if result else 'false'}")
    outputs = os.environ.get("GITHUB_OUTPUT")
    if outputs:
        with open(outputs, "a", encoding="utf-8") as handle:
            handle.write(f"prod-only={'true' if result else 'false'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
