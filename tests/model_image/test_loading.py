"""Loading in-process: which scoring path a model gets, what a broken model does, where identity comes from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_server.fetch import METADATA_FILE
from model_server.loading import ModelLoadError, load_model, resolve_identity
from model_server.parsing import InputError, parse_csv, parse_mlflow_json
from model_server.schema import Column, Kind, TabularSchema
from model_server.scoring import ScoringPath
from model_server.settings import load_settings


def test_the_demo_model_gets_the_array_path_with_batching(wine_model: Path) -> None:
    loaded = load_model(load_settings({"MODEL_DIR": str(wine_model)}))
    assert loaded.scorer.path is ScoringPath.ARRAY
    assert loaded.mergeable
    assert loaded.flavor == "mlflow.sklearn"
    assert loaded.schema is not None
    assert loaded.schema.all_float64


def test_a_python_model_over_doubles_gets_the_dataframe_fast_path(slow_model: Path) -> None:
    loaded = load_model(load_settings({"MODEL_DIR": str(slow_model)}))
    assert loaded.scorer.path is ScoringPath.FAST  # not ARRAY: only scikit-learn models get the bare matrix
    assert loaded.mergeable


def test_a_typed_pyfunc_keeps_mlflows_schema_enforcement(typed_model: Path) -> None:
    loaded = load_model(load_settings({"MODEL_DIR": str(typed_model)}))
    assert loaded.scorer.path is ScoringPath.CHECKED
    assert loaded.schema is not None
    assert [c.kind for c in loaded.schema.columns] == [Kind.INT, Kind.INT, Kind.BOOL, Kind.STRING, Kind.FLOAT]


def test_a_corrupt_model_file_fails_the_load(wine_model: Path, tmp_path: Path) -> None:
    broken = shutil.copytree(wine_model, tmp_path / "broken")
    (broken / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match="load_model"):
        load_model(load_settings({"MODEL_DIR": str(broken)}))


def test_an_input_example_the_model_cannot_score_fails_the_warm_up(wine_model: Path, tmp_path: Path) -> None:
    broken = shutil.copytree(wine_model, tmp_path / "bad-example")
    example = json.loads((broken / "serving_input_example.json").read_text())
    example["dataframe_split"]["columns"] = example["dataframe_split"]["columns"][1:]
    example["dataframe_split"]["data"] = [row[1:] for row in example["dataframe_split"]["data"]]
    (broken / "serving_input_example.json").write_text(json.dumps(example))
    with pytest.raises(ModelLoadError, match="input example"):
        load_model(load_settings({"MODEL_DIR": str(broken)}))


def test_identity_comes_from_env_then_fetch_metadata_then_mlmodel(wine_model: Path, tmp_path: Path) -> None:
    model = shutil.copytree(wine_model, tmp_path / "model")
    assert resolve_identity(load_settings({"MODEL_DIR": str(model)})).name == "model"
    metadata = {"model_name": "wine", "model_version": "4", "run_id": "r-meta", "model_uri": "models:/wine/4"}
    (model / METADATA_FILE).write_text(json.dumps(metadata))
    from_file = resolve_identity(load_settings({"MODEL_DIR": str(model), "IMAGE_CODE_HASH": "abc"}))
    assert (from_file.name, from_file.version, from_file.run_id, from_file.model_uri) == (
        "wine",
        "4",
        "r-meta",
        "models:/wine/4",
    )
    assert from_file.image_code_hash == "abc"
    from_env = resolve_identity(load_settings({"MODEL_DIR": str(model), "MODEL_VERSION": "5", "MODEL_RUN_ID": "r-env"}))
    assert (from_env.name, from_env.version, from_env.run_id) == ("wine", "5", "r-env")


TYPED = TabularSchema(
    (
        Column("n", "long", Kind.INT, np.dtype(np.int64), "INT64"),
        Column("b", "boolean", Kind.BOOL, np.dtype(np.bool_), "BOOL"),
        Column("s", "string", Kind.STRING, np.dtype(object), "BYTES"),
        Column("x", "double", Kind.FLOAT, np.dtype(np.float64), "FP64", required=False),
    )
)


def test_parser_accepts_what_mlflow_accepts_without_corrupting_it() -> None:
    body = {"dataframe_records": [{"n": "3", "b": "true", "s": "a", "x": None}, {"n": 4.0, "b": False, "s": None}]}
    frame, params = parse_mlflow_json(TYPED, json.dumps(body).encode(), 10)
    assert params is None
    assert frame.columns is not None
    assert frame.columns["n"].tolist() == [3, 4]
    assert frame.columns["n"].dtype == np.int64
    assert frame.columns["b"].tolist() == [True, False]
    assert frame.columns["s"].tolist() == ["a", None]
    assert np.isnan(frame.columns["x"]).all()  # a key missing from a record is a missing value, as in pandas


def test_parser_omits_an_absent_optional_column() -> None:
    frame, _ = parse_mlflow_json(TYPED, b'{"inputs": {"n": 1, "b": true, "s": "z"}}', 10)
    assert frame.n_rows == 1
    assert frame.columns is not None
    assert list(frame.columns) == ["n", "b", "s"]


def test_csv_keeps_string_columns_as_text() -> None:
    frame = parse_csv(TYPED, b"n,b,s,x\n1,True,007,2.5\n", 10)
    assert frame.columns is not None
    assert frame.columns["s"].tolist() == ["007"]  # not the number 7
    assert frame.columns["x"].tolist() == [2.5]


def test_parser_refuses_a_fraction_for_an_integer_column_from_csv() -> None:
    with pytest.raises(InputError, match="Column 'n' expects long"):
        parse_csv(TYPED, b"n,b,s\n1.5,True,a\n", 10)
