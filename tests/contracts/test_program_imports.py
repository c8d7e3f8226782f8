"""The program imports the deployables' contracts, and nothing else of theirs: it runs from its own
requirements.txt, without MLflow, the Azure SDKs or pydantic-settings, and without the dev venv's `.pth` roots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs `python -m stacks preview staging --json` in a child whose imports of the other deployables' dependencies
# fail, and whose path lacks model_image/ and listener/ (the dev venv's .pth adds them; a deploy venv made from
# requirements.txt alone has no such file).
CHILD = """
import importlib.abc, json, sys
BLOCKED = {"mlflow", "pydantic_settings", "azure", "starlette", "uvicorn", "sklearn", "pandas", "httpx"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {name}")
        return None
sys.meta_path.insert(0, Block())
roots = {sys.argv[1] + "/model_image", sys.argv[1] + "/listener"}
sys.path[:] = [p for p in sys.path if p.rstrip("/") not in roots]
from offline.cli import main
import contextlib, io
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["preview", "staging", "--json"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"model_server", "webhook_listener"})
print(json.dumps({"code": code, "loaded": loaded, "resources": len(json.loads(out.getvalue())["resources"])}))
"""


def test_the_program_runs_without_the_listener_and_server_dependencies() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT)], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert result["resources"] > 0
    contracts = ["model_server", "model_server.contract", "webhook_listener", "webhook_listener.contract"]
    assert result["loaded"] == contracts
