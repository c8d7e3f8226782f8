"""Benchmark the offline tools against the time it takes to import the four provider SDKs, in one run.

What it measures, each in a fresh process, round after round (interleaved, so a change in the machine's load hits
every figure alike), and prints as medians and as ratios to the import time:

1. `python -c "import pulumi_azure_native, pulumi_kubernetes, pulumi_databricks, pulumi_docker_build"`: the floor
   every offline tool stands on;
2. `python -m stacks preview staging prod --json`: both shipped stacks, in one process (target: at most 2x);
3. `python -m stacks diff --base HEAD~1 staging --json` in a throwaway clone of this repository whose last commit
   is a pin bump made with `python -m stacks pin` (the next model version): what a promotion's pull request runs
   (target: at most 3x).

The clone holds the committed tree (HEAD), not uncommitted changes. The host may be shared: the load average is
printed with the figures.

    .venv/bin/python benchmarks/offline_tools.py               # 3 rounds, a few minutes on a 2-core machine
    .venv/bin/python benchmarks/offline_tools.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from stacks.files import load_stack_config  # noqa: E402

SDKS = "import pulumi_azure_native, pulumi_kubernetes, pulumi_databricks, pulumi_docker_build"
PREVIEW_TARGET = 2.0
DIFF_TARGET = 3.0


def timed(argv: Sequence[str], cwd: Path) -> float:
    """Wall time of one command, which must succeed and print nothing on stderr."""
    env = {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true", "DO_NOT_TRACK": "true"}
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or proc.stderr.strip():
        raise SystemExit(f"{' '.join(argv)} (exit {proc.returncode}):\n{proc.stderr.strip()}")
    return elapsed


def git(repo: Path, *args: str) -> None:
    identity = ("-c", "user.name=Benchmark", "-c", "user.email=benchmark@example.test")
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


def pin_bump_clone(dest: Path) -> Path:
    """A clone of this repository's HEAD whose last commit pins staging to the next model version."""
    git(REPO_ROOT, "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(dest))
    model = load_stack_config(dest, "staging").settings().model
    if model is None:
        raise SystemExit("staging pins no model: nothing to bump")
    pin = [sys.executable, "-m", "stacks", "pin", "staging", "--model", model.name, "--version", str(model.version + 1)]
    subprocess.run(pin, cwd=dest, check=True, capture_output=True)
    git(dest, "commit", "--quiet", "-am", f"Pin staging to version {model.version + 1}")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each command (default 3)")
    args = parser.parse_args(argv)
    python = sys.executable
    figures: dict[str, list[float]] = {"import": [], "preview": [], "diff": []}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="offline-bench-") as tmp:
        clone = pin_bump_clone(Path(tmp) / "repo")
        for _ in range(args.rounds):
            figures["import"].append(timed([python, "-c", SDKS], REPO_ROOT))
            figures["preview"].append(
                timed([python, "-m", "stacks", "preview", "staging", "prod", "--json"], REPO_ROOT)
            )
            figures["diff"].append(
                timed([python, "-m", "stacks", "diff", "--base", "HEAD~1", "staging", "--json"], clone)
            )
    median = {name: statistics.median(values) for name, values in figures.items()}
    rows = [
        ("import the four provider SDKs", "import", None),
        ("`preview staging prod`", "preview", PREVIEW_TARGET),
        ("`diff --base` of a pin bump (staging)", "diff", DIFF_TARGET),
    ]
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, 1-minute load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after, "
        f"{args.rounds} rounds"
    )
    print()
    print("| what | median (s) | each round (s) | ratio to the import | target |")
    print("|---|---|---|---|---|")
    within = True
    for label, name, target in rows:
        ratio = median[name] / median["import"]
        ok = target is None or ratio <= target
        within = within and ok
        rounds = ", ".join(f"{v:.1f}" for v in figures[name])
        goal = "" if target is None else f"≤ {target:.0f}x ({'met' if ok else 'missed'})"
        print(f"| {label} | {median[name]:.1f} | {rounds} | {ratio:.2f}x | {goal} |")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
