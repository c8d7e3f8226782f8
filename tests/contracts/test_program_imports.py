"""The program imports the deployables' contracts, and nothing else of theirs: it runs from its own
requirements.txt, without MLflow, the Azure SDKs or pydantic-settings. It imports them the installed way, from the
source roots scripts/bootstrap.sh's `.pth` puts on the venv's path; a venv without them gets an error that says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs `python -m stacks preview staging --json` in a child whose imports of the other deployables' dependencies
# fail; with "strip", its path also lacks model_image/ and listener/ (a venv not made by scripts/bootstrap.sh).
CHILD = """
import importlib.abc, json, sys
BLOCKED = {"mlflow", "pydantic_settings", "azure", "starlette", "uvicorn", "sklearn", "pandas", "httpx"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {name}")
        return None
sys.meta_path.insert(0, Block())
if sys.argv[2] == "strip":
    roots = {sys.argv[1] + "/model_image", sys.argv[1] + "/listener"}
    sys.path[:] = [p for p in sys.path if p.rstrip("/") not in roots]
from offline.cli import main
import contextlib, io
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["preview", "staging", "--json"])
loaded = {m: sys.modules[m].__file__ for m in sys.modules if m.split(".")[0] in {"model_server", "webhook_listener"}}
resources = len(json.loads(out.getvalue())["resources"]) if code == 0 else 0
print(json.dumps({"code": code, "loaded": loaded, "resources": resources}))
"""


def run_child(paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_the_program_runs_without_the_listener_and_server_dependencies() -> None:
    proc = run_child("installed")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert result["resources"] > 0
    assert result["loaded"] == {
        "model_server": str(ROOT / "model_image" / "model_server" / "__init__.py"),
        "model_server.contract": str(ROOT / "model_image" / "model_server" / "contract.py"),
        "webhook_listener": str(ROOT / "listener" / "webhook_listener" / "__init__.py"),
        "webhook_listener.contract": str(ROOT / "listener" / "webhook_listener" / "contract.py"),
    }


def test_a_venv_without_the_source_roots_is_told_to_run_bootstrap() -> None:
    proc = run_child("strip")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 1
    assert result["loaded"] == {}
    assert "model_server is not importable" in proc.stderr
    assert "./scripts/bootstrap.sh puts on .venv's path" in proc.stderr
