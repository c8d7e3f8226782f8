"""The image's fetch step runs in its own venv (model_image/fetch-requirements.txt), and that venv can take every
storage path a Unity Catalog model download may take: which one is the registry's choice, made per download by the
temporary credential it returns (mlflow/utils/_unity_catalog_utils.py, _get_artifact_repo_from_storage_info), so
the build cannot know it in advance. The paths are read from MLflow's own code in that venv (uc_download_paths.py).

The venv is built here from the lock with uv (hash-checked, as the Dockerfile's pip does); the image tests build the
same stage with podman and fetch through it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FETCH_LOCK = ROOT / "model_image" / "fetch-requirements.txt"
CHECK = Path(__file__).with_name("uc_download_paths.py")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def venv_from_lock(lock: Path, where: Path) -> Path:
    """A Python 3.11 venv holding exactly `lock` (hashes required); returns its python."""
    env = {**os.environ, "VIRTUAL_ENV": str(where)}
    subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(where)], check=True, timeout=300, env=env)
    subprocess.run(["uv", "pip", "sync", "-q", "--require-hashes", str(lock)], check=True, timeout=900, env=env)
    return where / "bin" / "python"


@pytest.fixture(scope="module")
def fetch_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return venv_from_lock(FETCH_LOCK, tmp_path_factory.mktemp("fetch-venv") / "venv")


def run_in(python: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_"))}
    env["PYTHONPATH"] = str(ROOT / "model_image")
    return subprocess.run([str(python), *argv], capture_output=True, text=True, timeout=300, env=env, check=False)


def test_the_fetch_venv_holds_the_mlflow_skinny_version_the_server_runs() -> None:
    def pin(lock: Path, name: str) -> str:
        match = re.search(rf"^{re.escape(name)}==(\S+)", lock.read_text(), re.M)
        assert match, f"{lock.name} pins no {name}"
        return match[1]

    assert pin(FETCH_LOCK, "mlflow-skinny") == pin(ROOT / "model_image" / "requirements.txt", "mlflow-skinny")
    assert not re.search(r"^mlflow==", FETCH_LOCK.read_text(), re.M)


def test_every_unity_catalog_download_path_mlflow_can_take_opens_in_the_fetch_venv(fetch_python: Path) -> None:
    proc = run_in(fetch_python, str(CHECK))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    # Every member of the credential oneof at this MLflow version, plus the presigned-URL and Files API paths.
    assert set(results) >= {
        "databricks:azure_user_delegation_sas",
        "databricks:aws_temp_credentials",
        "databricks:gcp_oauth_token",
        "databricks:presigned_url",
        "databricks:sdk_files_api",
    }
    assert {path: outcome for path, outcome in results.items() if outcome != "ok"} == {}


def test_the_fetch_command_imports_in_the_fetch_venv(fetch_python: Path) -> None:
    # The fetch step runs `python -m model_server fetch` there: no numpy, pandas or uvicorn in that venv.
    proc = run_in(fetch_python, "-m", "model_server", "fetch", "--help")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--model-uri" in proc.stdout
    proc = run_in(fetch_python, "-c", "import model_server.fetch, model_server.logs, mlflow.artifacts")
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_dockerfile_fetches_with_the_fetch_venv_and_ships_none_of_it() -> None:
    text = (ROOT / "model_image" / "Dockerfile").read_text()
    assert "/opt/fetch/bin/pip install --no-cache-dir --require-hashes -r /build/fetch-requirements.txt" in text
    assert "PYTHONPATH=/opt/app /opt/fetch/bin/python -m model_server fetch" in text
    runtime = text[text.index("AS runtime\n") :]
    assert "/opt/fetch" not in runtime
    assert "COPY --from=fetch-deps" not in runtime
    assert sys.version_info[:2] == (3, 11)  # the lock is solved for 3.11, as the image's Python
