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
# With podman the loop builds four images; on a fresh machine the first also makes the base and the venv layer.
@pytest.mark.timeout(2600)
def test_the_release_loop_aborts_and_reverts_a_bad_canary_then_promotes_a_good_one(tmp_path: Path) -> None:
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
    assert len(re.findall(r"^  dispatch received: ", out, re.MULTILINE)) == 4
    for version in (2, 3, 4):
        assert f'"version": "{version}"' in out
    # Version 2's pin bump reads as a rebuild and a canary release.
    assert "image rebuilt and pushed" in out
    assert "canary 10% -> 50% -> 100%" in out
    assert "✓ a forged webhook is rejected and changes nothing" in out
    assert "version 1 stopped" in out
    # Version 3's canary: aborted by a named check with its measured value, traffic back to version 2.
    aborted = re.search(r"version 3 ABORTED [0-9.]+s after its canary started: check (\S+) measured (\S+) \(bound", out)
    assert aborted is not None, out[-4000:]
    assert aborted[1] == "error-ratio"
    assert float(aborted[2]) > 0.02  # staging's error-ratio SLO
    assert "traffic back to version 2: 100 of 100 requests after the abort answered by the stable side" in out
    # What CI does on the abort: the registry tags, the revert rollback.yml proposes, its pull request on the stand-in.
    assert re.search(
        r"registry: mlops\.models\.wine_quality v3 tagged aborted_staging_at, .*aborted_staging_reason", out
    )
    pull = r"pull request #\d+ on the GitHub stand-in: 'Roll back mlops\.models\.wine_quality to v2 on staging'"
    assert re.search(pull, out)
    assert "its body carries the reason: 'canary of v3 aborted by the analysis: error-ratio measured" in out
    # Merged: staging pins v2 again, v3 is listed as rolled back, and promoting v3 again proposes nothing.
    assert 'release/rolled-back/staging.json: {"mlops.models.wine_quality": [3]}' in out
    assert "✓ a reviewer merges the revert: staging pins version 2 again" in out
    assert re.search(r"│ nothing proposed: .*v3.*not proposing it again", out)
    # Version 4's canary went through every step and took all traffic; version 2 was stopped.
    assert re.search(
        r"version 4 PROMOTED \(weight 100\) [0-9.]+s after its canary started \(10% at [0-9.]+s; 50% at", out
    )
    measured = re.findall(r"measurements: (\d+) of (\d+) passed", out)
    assert len(measured) == 2
    assert measured[1][0] == measured[1][1] != "0"  # version 4: every measurement passed
    assert "final check: version 4 answers /invocations with 200; serving: [4]" in out
    # Shifted traffic fired the staging drift rule in a real Prometheus; Alertmanager → listener → CI as model-drift.
    assert "✓ traffic like the training data" in out
    assert "Prometheus: ModelDataDrift firing" in out
    drift = r'dispatch received \(model-drift\): \{"alert": "ModelDataDrift", "model": "mlops\.models\.wine_quality"'
    assert re.search(drift, out)
    if image_steps.unavailable() is None:
        # Each version ran from its own image, pulled by digest from the local registry, and passed the smoke Job.
        pulled = re.findall(r"pulled (127\.0\.0\.1:\d+/models/mlops\.models\.wine_quality@sha256:[0-9a-f]{64})", out)
        assert len(pulled) == 4
        assert len(set(pulled)) == 4
        assert out.count("smoke Job: smoke:") == 4
        # After each promoted release the deploy records its digest; the abort's revert returns to what it recorded.
        for version in (1, 2, 4):
            assert re.search(rf"│ mlops\.models\.wine_quality v{version}: deployed_staging_digest=sha256:", out)
        assert "virtualenv path: fetch + start" in out
    else:
        assert "serving from a virtualenv, as the image would" in out
    # What the stable and canary sides served decides the revert, as the wait's ReplicaSet reading does in CI.
    assert 'step outputs: {"revert-to": "2", "revert-from": "3", "revert-reason": "canary of v3 aborted' in out
    # Every process it started is gone: nothing answers on the addresses it printed any more.
    urls = set(re.findall(r"http://127\.0\.0\.1:\d+", out))
    assert len(urls) >= 4  # mlflow, listener, GitHub stand-in, model servers
    for url in urls:
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2)
