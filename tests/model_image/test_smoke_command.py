"""`python -m model_server smoke`, the command of the post-deploy Job: passes against a serving model, fails loudly
against one that cannot answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from localrun.processes import child_env, free_port
from tests.model_image.serving_helpers import Served


def smoke(url: str, model_dir: Path, attempts: int = 1) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_server", "smoke", "--url", url, "--model-dir", str(model_dir),
         "--attempts", str(attempts)],
        capture_output=True, text=True, env=child_env(), timeout=120, check=False,
    )  # fmt: skip


def test_smoke_passes_against_the_served_model(wine: Served, wine_model: Path) -> None:
    proc = smoke(f"{wine.base_url}/invocations", wine_model)
    assert proc.returncode == 0, proc.stderr
    assert '"predictions"' in proc.stdout


def test_smoke_fails_when_nothing_answers(wine_model: Path) -> None:
    proc = smoke(f"http://127.0.0.1:{free_port()}/invocations", wine_model, attempts=2)
    assert proc.returncode == 1
    assert "no good answer after 2 attempts" in proc.stderr


def test_smoke_fails_at_once_when_the_server_refuses_the_example(wine: Served, typed_model: Path) -> None:
    # The typed model's example does not fit the wine model's signature: a 4xx, not worth retrying.
    proc = smoke(f"{wine.base_url}/invocations", typed_model, attempts=5)
    assert proc.returncode == 1
    assert "HTTP 400" in proc.stderr
