"""Frames to predictions to response bytes, in one of four scoring paths chosen (and proven) at load.

* ARRAY: like FAST, but the predict function gets the float64 matrix itself, for scikit-learn models fitted on
  exactly the signature's columns in the signature's order. scikit-learn would otherwise re-check the DataFrame's
  column names and dtypes on every call (about half of a small tree ensemble's predict time); the server checks the
  names once, at load, and its parser guarantees the order.
* FAST: the server's parser, then the flavor's own predict function on a DataFrame that already has the signature's
  columns and dtypes (MLflow's per-call schema enforcement would redo that work; it costs more than the model for
  small trees). Only for all-float signatures without params.
* CHECKED: the server's parser, then `PyFuncModel.predict` (MLflow's schema enforcement runs too).
* MLFLOW: MLflow's own parser and predict (`mlflow.pyfunc.scoring_server.invocations`), for signatures the server's
  parser does not cover (tensors, arrays, objects, none).

At load the server scores the model's input example through MLflow's scoring server code and through each candidate
path, and keeps the first path whose response bytes are identical (see loading.choose_scoring).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import numpy as np

from model_server import mlflow_compat
from model_server.parsing import Frame
from model_server.schema import TabularSchema


class ScoringPath(Enum):
    ARRAY = "array"
    FAST = "fast"
    CHECKED = "checked"
    MLFLOW = "mlflow"


class NotSplittableError(ValueError):
    """The model's output for a merged batch cannot be cut back into one answer per request."""


def column_index(schema: TabularSchema) -> Any:
    """The column labels as a plain object Index, built once: pandas 3 would otherwise build an Arrow string index
    for every DataFrame (ten times the cost of the DataFrame itself for one row)."""
    import pandas as pd

    return pd.Index(list(schema.names), dtype=object)


def to_dataframe(schema: TabularSchema, frames: Sequence[Frame], columns: Any = None) -> Any:
    """One pandas DataFrame of every frame's rows, in order (frames share a layout)."""
    import pandas as pd

    first = frames[0]
    if first.matrix is not None:
        matrices = [f.matrix for f in frames if f.matrix is not None]
        matrix = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
        return pd.DataFrame(matrix, columns=column_index(schema) if columns is None else columns, copy=False)
    assert first.columns is not None
    if len(frames) == 1:
        return pd.DataFrame(dict(first.columns), copy=False)
    return pd.DataFrame(
        {name: np.concatenate([f.columns[name] for f in frames if f.columns is not None]) for name in first.columns},
        copy=False,
    )


def split_output(raw: Any, sizes: Sequence[int]) -> list[Any]:
    """Cut the predictions for a merged batch into one piece per request, keeping the output's type."""
    import pandas as pd

    total = sum(sizes)
    bounds = np.cumsum([0, *sizes]).tolist()
    pieces = list(itertools.pairwise(bounds))
    if isinstance(raw, np.ndarray) and raw.ndim >= 1 and raw.shape[0] == total:
        return [raw[a:b] for a, b in pieces]
    if isinstance(raw, pd.DataFrame | pd.Series) and len(raw) == total:
        return [raw.iloc[a:b] for a, b in pieces]
    if isinstance(raw, list) and len(raw) == total:
        return [raw[a:b] for a, b in pieces]
    raise NotSplittableError(f"cannot split a {type(raw).__name__} of the model's output into {len(sizes)} answers")


def mlflow_response_body(raw: Any) -> bytes:
    """`{"predictions": ...}` exactly as `mlflow models serve` writes it (same JSON encoder, separators, key order)."""
    return mlflow_compat.predictions_json(raw)


class Scorer:
    """Runs the model on frames along one scoring path. Not thread-safe; the batcher calls it from one place."""

    def __init__(self, model: Any, schema: TabularSchema | None, path: ScoringPath) -> None:
        self.model = model
        self.schema = schema
        self.path = path
        self._columns = column_index(schema) if schema is not None else None
        direct = path in {ScoringPath.FAST, ScoringPath.ARRAY}
        self._direct: Callable[[Any], Any] | None = mlflow_compat.flavor_predict_fn(model) if direct else None
        self._array = path is ScoringPath.ARRAY

    def predict_frames(self, frames: Sequence[Frame], params: dict[str, Any] | None) -> list[Any]:
        """Predictions for each frame (one predict call for all of them)."""
        assert self.schema is not None, "frames need a tabular schema"
        if self._array and params is None:
            matrices = [f.matrix for f in frames if f.matrix is not None]
            data: Any = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
        else:
            data = to_dataframe(self.schema, frames, self._columns)
        if self._direct is not None and params is None:
            raw = self._direct(data)
        else:
            raw = self.model.predict(data, params=params)
        if len(frames) == 1:
            return [raw]
        return split_output(raw, [f.n_rows for f in frames])

    def score_with_mlflow(self, body: bytes, content_type: str) -> tuple[int, bytes, str]:
        """MLflow's own parse, predict and encode: (status, body, media type). Raises MlflowException."""
        return mlflow_compat.invocations(self.model, body, content_type)
