"""The README's first command, headless: the whole release loop with real servers on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from demo import image_steps
from localrun.processes import REPO_ROOT, child_env


@pytest.mark.integration
@pytest.mark.slow
# With podman the loop builds two images; on a fresh machine the first also makes the base and the venv layer.
@pytest.mark.timeout(2600)
def test_the_release_loop_ends_with_version_2_serving_a_forged_webhook_refused_and_drift_dispatched(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "demo", "--headless", "--timeout", "2400", "--workdir", str(tmp_path / "demo")],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=2500,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"{out[-4000:]}\n{proc.stderr[-4000:]}"
    # Each promotion travelled registry → webhook → listener → queue → dispatch → pin.
    assert out.count("dispatch received:") == 2
    assert '"version": "2"' in out
    # Version 2's pin bump reads as a rebuild and a canary release.
    assert "image rebuilt and pushed" in out
    assert "canary 10% -> 50% -> 100%" in out
    assert "✓ a forged webhook is rejected and changes nothing" in out
    assert "version 1 stopped" in out
    assert "final check: version 2 answers /invocations with 200" in out
    # Shifted traffic fired the staging drift rule in a real Prometheus; Alertmanager → listener → CI as model-drift.
    assert "✓ traffic like the training data" in out
    assert "Prometheus: ModelDataDrift firing" in out
    drift = r'dispatch received \(model-drift\): \{"alert": "ModelDataDrift", "model": "mlops\.models\.wine_quality"'
    assert re.search(drift, out)
    if image_steps.unavailable() is None:
        # Each version ran from its own image, pulled by digest from the local registry, and passed the smoke Job.
        pulled = re.findall(r"pulled (127\.0\.0\.1:\d+/models/mlops\.models\.wine_quality@sha256:[0-9a-f]{64})", out)
        assert len(pulled) == 2
        assert pulled[0] != pulled[1]
        assert out.count("smoke Job: smoke:") == 2
        assert "virtualenv path: fetch + start" in out
    else:
        assert "serving from a virtualenv, as the image would" in out
    # Every process it started is gone: nothing answers on the addresses it printed any more.
    urls = set(re.findall(r"http://127\.0\.0\.1:\d+", out))
    assert len(urls) >= 4  # mlflow, listener, GitHub stand-in, model servers
    for url in urls:
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2)
