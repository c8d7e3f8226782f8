"""Every endpoint of the real server on the real demo model, over HTTP."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.model_image.serving_helpers import WINE_IDENTITY, Served

pytestmark = pytest.mark.integration


def split_body(frame: Any) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}


def test_liveness_and_readiness_answer_once_the_model_is_warm(wine: Served) -> None:
    live = httpx.get(wine.url("/health/live"))
    ready = httpx.get(wine.url("/health/ready"))
    assert (live.status_code, live.json()) == (200, {"status": "alive"})
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert httpx.get(wine.url("/v2/health/live")).json() == {"live": True}
    assert httpx.get(wine.url("/v2/health/ready")).json() == {"ready": True}


def test_ping_answers_like_mlflow(wine: Served) -> None:
    for path in ("/ping", "/health"):
        response = httpx.get(wine.url(path))
        assert (response.status_code, response.content) == (200, b"\n")
        assert response.headers["content-type"] == "application/json"


def test_version_names_the_model_run_and_image(wine: Served) -> None:
    version = httpx.get(wine.url("/version")).json()
    assert version["model_name"] == WINE_IDENTITY["MODEL_NAME"]
    assert version["model_version"] == WINE_IDENTITY["MODEL_VERSION"]
    assert version["model_run_id"] == WINE_IDENTITY["MODEL_RUN_ID"]
    assert version["image_code_hash"] == WINE_IDENTITY["IMAGE_CODE_HASH"]
    assert version["model_flavor"] == "mlflow.sklearn"
    assert version["scoring_path"] == "array"  # scikit-learn on its exact columns; answers proven identical at load
    assert version["batching"].startswith("greedy")
    assert version["ready"] is True


def test_version_and_the_ready_log_line_time_the_startup_from_the_process_start(wine: Served) -> None:
    startup = httpx.get(wine.url("/version")).json()["startup"]
    phases = ("process_and_server_imports_seconds", "mlflow_import_seconds", "model_load_seconds", "warmup_seconds")
    assert set(startup) == {*phases, "ready_seconds"}
    assert all(startup[phase] >= 0 for phase in phases)
    # Imports, then MLflow, the model and the warm-up, one after the other: ready comes after all of them, and the
    # process (its interpreter and imports included) is what took that long, so the phases are real shares of it.
    assert startup["ready_seconds"] >= sum(startup[phase] for phase in phases) - 0.01
    assert startup["process_and_server_imports_seconds"] > 0.05  # the interpreter's start counts, not only main()
    assert startup["mlflow_import_seconds"] > 0
    ready = [line for line in wine.log_lines() if line.get("msg") == "model ready"]
    assert [line["startup"] for line in ready] == [startup]


@pytest.mark.parametrize("rows", [1, 7, 100])
def test_invocations_dataframe_split(
    wine: Served, wine_features: Any, wine_expected: Callable[[Any], list[int]], rows: int
) -> None:
    frame = wine_features.sample(rows, random_state=rows)
    response = wine.post_json("/invocations", split_body(frame))
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": wine_expected(frame)}


def test_every_mlflow_input_format_gives_the_same_answer(
    wine: Served, wine_features: Any, wine_expected: Callable[[Any], list[int]]
) -> None:
    frame = wine_features.iloc[[0, 60, 150]]
    records = frame.to_dict(orient="records")
    columns = {name: frame[name].tolist() for name in frame.columns}
    bodies = {
        "dataframe_split": split_body(frame),
        "dataframe_records": {"dataframe_records": records},
        "instances": {"instances": records},
        "inputs (columns)": {"inputs": columns},
        "inputs (records)": {"inputs": records},
        "split, columns reordered": {
            "dataframe_split": {
                "columns": list(frame.columns)[::-1],
                "data": frame[frame.columns[::-1]].values.tolist(),
            }
        },
        "split with params": {**split_body(frame), "params": {}},
    }
    expected = {"predictions": wine_expected(frame)}
    for name, body in bodies.items():
        response = wine.post_json("/invocations", body)
        assert (response.status_code, response.json()) == (200, expected), name


def test_csv_and_parquet_bodies(wine: Served, wine_features: Any, wine_expected: Callable[[Any], list[int]]) -> None:
    frame = wine_features.head(5)
    csv = httpx.post(wine.url("/invocations"), content=frame.to_csv(index=False), headers={"content-type": "text/csv"})
    assert (csv.status_code, csv.json()) == (200, {"predictions": wine_expected(frame)})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    parquet = httpx.post(
        wine.url("/invocations"),
        content=buffer.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert (parquet.status_code, parquet.json()) == (200, {"predictions": wine_expected(frame)})


def test_request_id_is_echoed_or_generated(wine: Served, wine_features: Any) -> None:
    body = split_body(wine_features.head(1))
    given = wine.post_json("/invocations", body, headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = wine.post_json("/invocations", body)
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = wine.post_json("/invocations", body, headers={"x-request-id": "no spaces\tor tabs"})
    assert unsafe.headers["x-request-id"] != "no spaces\tor tabs"


def test_v2_metadata_describes_inputs_and_outputs(wine: Served, wine_features: Any) -> None:
    response = httpx.get(wine.url("/v2/models/wine"))
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["name"] == "wine"
    assert metadata["versions"] == ["3"]
    assert [i["name"] for i in metadata["inputs"]] == list(wine_features.columns)
    assert {i["datatype"] for i in metadata["inputs"]} == {"FP64"}
    assert metadata["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    assert httpx.get(wine.url("/v2/models/wine/versions/3")).json() == metadata
    assert httpx.get(wine.url("/v2/models/wine/ready")).json() == {"name": "wine", "ready": True}
    assert httpx.get(wine.url("/v2")).json()["name"] == "model_server"


def test_v2_infer_with_one_tensor_per_column(
    wine: Served, wine_features: Any, wine_expected: Callable[[Any], list[int]]
) -> None:
    frame = wine_features.iloc[[3, 80, 170, 171]]
    body = {
        "id": "req-7",
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": name, "shape": [len(frame), 1], "datatype": "FP64", "data": frame[name].tolist()}
            for name in frame.columns
        ],
    }
    response = wine.post_json("/v2/models/wine/infer", body)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "model_name": "wine",
        "model_version": "3",
        "id": "req-7",
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [4], "data": wine_expected(frame)}],
    }


def test_v2_infer_with_one_matrix_tensor(
    wine: Served, wine_features: Any, wine_expected: Callable[[Any], list[int]]
) -> None:
    frame = wine_features.iloc[[10, 100]]
    body = {"inputs": [{"name": "input-0", "shape": [2, 13], "datatype": "FP64", "data": frame.values.tolist()}]}
    response = wine.post_json("/v2/models/wine/versions/3/infer", body)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == wine_expected(frame)


def test_v2_unknown_model_or_version_is_404(wine: Served) -> None:
    for path in ("/v2/models/other", "/v2/models/other/infer", "/v2/models/wine/versions/9"):
        response = httpx.get(wine.url(path)) if not path.endswith("infer") else wine.post_json(path, {"inputs": []})
        assert response.status_code == 404, path
        assert "this server serves wine version 3" in response.json()["error"]


def test_unknown_path_and_wrong_method(wine: Served) -> None:
    missing = httpx.get(wine.url("/predict"))
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    wrong = httpx.get(wine.url("/invocations"))
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"


def test_metrics_are_prometheus_text(wine: Served) -> None:
    response = httpx.get(wine.url("/metrics"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "model_server_requests_total",
        "model_server_request_duration_seconds_bucket",
        "model_server_rows_predicted_total",
        "model_server_model_load_seconds",
        "model_server_batch_rows_bucket",
        "model_server_ready 1.0",
        'model_server_model_info{image_code_hash="c0ffee1",model_name="wine",model_run_id="run-abc"',
    ):
        assert name in text, name


def test_the_server_writes_nothing_outside_its_tmpdir(wine: Served, wine_model: Any) -> None:
    # The session started it with a fresh working directory, HOME and TMPDIR (as a read-only root with an emptyDir
    # at /tmp would give it); by now it has loaded, warmed up and served every kind of request above.
    assert wine.post_json("/invocations", {"dataframe_split": {"columns": [], "data": []}}).status_code == 400
    assert list((wine.workdir / "cwd").iterdir()) == []
    assert list((wine.workdir / "home").iterdir()) == []
    assert sorted(p.name for p in wine_model.iterdir()) == [
        "MLmodel",
        "conda.yaml",
        "drift-reference.json",
        "input_example.json",
        "model.pkl",
        "python_env.yaml",
        "requirements.txt",
        "serving_input_example.json",
    ]
