"""The image leaves pyarrow out unless the model's requirements bring it: parquet bodies then get a clear 415, and
JSON and CSV are unaffected. (With pyarrow, parquet is served: test_endpoints.py.)"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from localrun.processes import child_env
from tests.model_image.serving_helpers import Served, our_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def without_pyarrow(wine_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("no-pyarrow")
    # A pyarrow package first on the path that fails to import, as a missing one does.
    shadow = workdir / "shadow" / "pyarrow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'pyarrow'\", name='pyarrow')\n")
    pythonpath = f"{shadow.parent}:{child_env()['PYTHONPATH']}"
    served = our_server(wine_model, workdir, {"PYTHONPATH": pythonpath})
    served.process.start(timeout=240)
    try:
        yield served
    finally:
        served.process.stop()


def test_a_parquet_body_gets_415_saying_pyarrow_is_missing_and_json_and_csv_still_score(
    without_pyarrow: Served, wine_features: Any
) -> None:
    frame = wine_features.head(3)
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    parquet = httpx.post(
        without_pyarrow.url("/invocations"),
        content=buffer.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert parquet.status_code == 415
    assert parquet.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "Parquet bodies need pyarrow" in parquet.json()["message"]
    assert "add pyarrow to the model's requirements" in parquet.json()["message"]
    csv = httpx.post(
        without_pyarrow.url("/invocations"),
        content=frame.to_csv(index=False),
        headers={"content-type": "text/csv"},
    )
    assert csv.status_code == 200
    assert len(csv.json()["predictions"]) == 3
