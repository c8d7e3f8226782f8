"""The model's input signature as the server checks it: named columns of simple types, read once at load.

Column-based MLflow signatures whose columns are all double, float, long, integer, boolean or string get the server's
own parser and checks (fast, with messages that name the column). Anything else (tensor specs, arrays, objects, no
signature) is parsed by MLflow's own code, exactly as `mlflow models serve` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np


class Kind(Enum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STRING = "string"


# MLflow data type name -> (kind, numpy dtype MLflow's schema enforcement produces, Open Inference Protocol datatype)
_TYPES: dict[str, tuple[Kind, np.dtype[Any], str]] = {
    "double": (Kind.FLOAT, np.dtype(np.float64), "FP64"),
    "float": (Kind.FLOAT, np.dtype(np.float32), "FP32"),
    "long": (Kind.INT, np.dtype(np.int64), "INT64"),
    "integer": (Kind.INT, np.dtype(np.int32), "INT32"),
    "boolean": (Kind.BOOL, np.dtype(np.bool_), "BOOL"),
    "string": (Kind.STRING, np.dtype(object), "BYTES"),
}

# numpy dtype kind/size -> Open Inference Protocol datatype, for describing outputs
_V2_BY_DTYPE = {
    "f8": "FP64",
    "f4": "FP32",
    "f2": "FP16",
    "i8": "INT64",
    "i4": "INT32",
    "i2": "INT16",
    "i1": "INT8",
    "u8": "UINT64",
    "u4": "UINT32",
    "u2": "UINT16",
    "u1": "UINT8",
    "b1": "BOOL",
}


def v2_datatype(dtype: np.dtype[Any]) -> str:
    """The Open Inference Protocol datatype of a numpy dtype (strings and objects are BYTES)."""
    return _V2_BY_DTYPE.get(f"{dtype.kind}{dtype.itemsize}", "BYTES")


def mlflow_v2_datatype(mlflow_type: str) -> str:
    """The Open Inference Protocol datatype for an MLflow column or tensor type name."""
    if mlflow_type in _TYPES:
        return _TYPES[mlflow_type][2]
    try:
        return v2_datatype(np.dtype(mlflow_type))
    except TypeError:
        return "BYTES"


@dataclass(frozen=True)
class Column:
    name: str
    mlflow_type: str
    kind: Kind
    dtype: np.dtype[Any]
    v2_datatype: str
    required: bool = True


@dataclass(frozen=True)
class TabularSchema:
    """The columns a request must carry, in signature order."""

    columns: tuple[Column, ...]
    names: tuple[str, ...] = field(init=False)
    by_name: dict[str, Column] = field(init=False)
    all_float64: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(c.name for c in self.columns))
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})
        object.__setattr__(
            self,
            "all_float64",
            bool(self.columns) and all(c.dtype == np.float64 and c.required for c in self.columns),
        )

    def describe(self, limit: int = 20) -> str:
        """`a (double), b (long), ...` for error messages."""
        shown = ", ".join(f"{c.name} ({c.mlflow_type})" for c in self.columns[:limit])
        more = len(self.columns) - limit
        return shown + (f" and {more} more" if more > 0 else "")


def tabular_schema(mlflow_schema: Any) -> TabularSchema | None:
    """A TabularSchema for an MLflow input Schema, or None when the server must leave parsing to MLflow."""
    if mlflow_schema is None or mlflow_schema.is_tensor_spec():
        return None
    columns = []
    for spec in mlflow_schema.inputs:
        type_name = getattr(spec.type, "name", None)
        if spec.name is None or type_name not in _TYPES:
            return None
        kind, dtype, v2 = _TYPES[type_name]
        columns.append(Column(spec.name, type_name, kind, dtype, v2, bool(getattr(spec, "required", True))))
    if not columns or len({c.name for c in columns}) != len(columns):
        return None
    return TabularSchema(tuple(columns))
