"""`python -m stacks ...` called in the test's own process: the exit code and what it printed, as a user sees them.

Starting a Python process per command would import the provider SDKs again each time (seconds per call); the
command line is the same function either way (`offline.cli.main`). The end-to-end tests that run it as a real
command are in tests/test_offline_tools.py.
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from offline.cli import main

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def stacks_cli(*args: str, cwd: Path = ROOT) -> CliResult:
    """Runs `python -m stacks <args>` in `cwd`, in this process; leaves the working directory and sys.path as found."""
    out, err = io.StringIO(), io.StringIO()
    path = list(sys.path)
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse and usage errors end the command as they would the process
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.path[:] = path
    return CliResult(code, out.getvalue(), err.getvalue())
