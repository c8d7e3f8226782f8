"""Request bodies to checked, typed columns (a Frame), with 4xx errors that say which column and what was expected.

The accepted values follow what `mlflow models serve` accepts, so its clients switch with no change: numbers, numeric
strings, booleans and null (NaN) for double/float columns; extra columns are ignored and order does not matter. Where
MLflow would silently corrupt a value (1.5 or 2**40 into an integer column, a number into a string column), this
parser refuses it instead and says why.

The hot path for the common case (every column double, `dataframe_split`) is one `numpy.array(rows, float64)` call.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from model_server.schema import Column, Kind, TabularSchema

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
REQUIRED_FORMAT = (
    "The input must be a JSON object with exactly one of the fields 'dataframe_split', 'dataframe_records', "
    "'instances' or 'inputs' (plus optional 'params')"
)


class InputError(Exception):
    """A request the server refuses; `status` is a 4xx, `message` says what was wrong and what was expected."""

    def __init__(self, message: str, *, status: int = 400, error_code: str = "BAD_REQUEST", column: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.column = column


@dataclass(frozen=True, eq=False)
class Frame:
    """Checked rows of one request, in signature order.

    `matrix` (rows x columns, float64) when every column is a required double; otherwise `columns` (name -> 1-D array;
    optional columns may be absent).
    """

    n_rows: int
    matrix: NDArray[np.float64] | None = None
    columns: Mapping[str, NDArray[Any]] | None = None

    @property
    def layout(self) -> tuple[str, ...]:
        """Frames with the same layout can be concatenated into one predict call."""
        return ("<matrix>",) if self.matrix is not None else tuple(self.columns or ())

    def rows(self, names: Sequence[str]) -> list[list[Any]]:
        """The values as JSON-able rows (for payload logs)."""
        if self.matrix is not None:
            return list(self.matrix.tolist())
        assert self.columns is not None
        present = [n for n in names if n in self.columns]
        return [list(row) for row in zip(*(self.columns[n].tolist() for n in present), strict=True)]


def check_row_count(n_rows: int, max_rows: int) -> None:
    if n_rows == 0:
        raise InputError("Empty batch: the request holds no rows; send at least one row.")
    if n_rows > max_rows:
        raise InputError(
            f"Too many rows: {n_rows} in one request, the limit is {max_rows} (MAX_REQUEST_ROWS); split the request.",
            status=413,
            error_code="REQUEST_LIMIT_EXCEEDED",
        )


def loads_json(body: bytes) -> Any:
    """JSON text to Python objects; falls back to the standard library for the NaN/Infinity literals it accepts."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as fast_error:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InputError(f"The body is not valid JSON: {fast_error}.") from None


# ---------------------------------------------------------------------------------------------------------------
# One column of values -> a typed 1-D array


def _describe(value: Any) -> str:
    text = repr(value)
    return (text[:40] + "...") if len(text) > 43 else text


def _type_error(column: Column, row: int, value: Any, why: str = "") -> InputError:
    what = f"{_describe(value)} ({'null' if value is None else type(value).__name__})"
    return InputError(
        f"Column '{column.name}' expects {column.mlflow_type}{why}; row {row} has {what}.", column=column.name
    )


def _first_bad(column: Column, values: Sequence[Any], ok: Any) -> InputError:
    for row, value in enumerate(values):
        if not ok(value):
            return _type_error(column, row, value)
    return InputError(f"Column '{column.name}' expects one {column.mlflow_type} per row.", column=column.name)


def _is_float_like(value: Any) -> bool:
    try:
        np.asarray([value], dtype=np.float64)
    except (ValueError, TypeError):
        return False
    return np.ndim(value) == 0


def _to_float(column: Column, values: Sequence[Any] | NDArray[Any]) -> NDArray[Any]:
    try:
        array = np.asarray(values, dtype=column.dtype)
    except (ValueError, TypeError):
        raise _first_bad(column, list(values), _is_float_like) from None
    if array.ndim != 1:
        raise _first_bad(column, list(values), lambda v: np.ndim(v) == 0)
    return array


def _int_value(value: Any) -> int | None:
    """The integer a JSON/CSV value stands for, or None if it is not exactly an integer."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if np.isfinite(value) and float(value).is_integer() else None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _to_int(column: Column, values: Sequence[Any] | NDArray[Any]) -> NDArray[Any]:
    info = np.iinfo(column.dtype)
    array: NDArray[Any] | None = values if isinstance(values, np.ndarray) else None
    if array is None:
        try:
            array = np.asarray(values)
        except (ValueError, TypeError):
            array = None
    if array is not None and array.ndim == 1 and array.dtype.kind in "iub":
        if array.size and array.dtype.kind != "b" and (array.min() < info.min or array.max() > info.max):
            row = int(np.argmax((array < info.min) | (array > info.max)))
            raise _type_error(column, row, array[row].item(), f" (between {info.min} and {info.max})")
        return array.astype(column.dtype, copy=False)
    # Mixed or textual values: judge each original value (numpy would have turned them all into strings).
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    converted = []
    for row, value in enumerate(items):
        number = _int_value(value)
        if number is None:
            missing = value is None or (isinstance(value, float) and np.isnan(value))
            raise _type_error(column, row, value, ", which has no null" if missing else " (a whole number)")
        if not info.min <= number <= info.max:
            raise _type_error(column, row, value, f" (between {info.min} and {info.max})")
        converted.append(number)
    return np.asarray(converted, dtype=column.dtype)


_BOOL_TEXT = {"true": True, "false": False}


def _to_bool(column: Column, values: Sequence[Any] | NDArray[Any]) -> NDArray[Any]:
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        return values.astype(np.bool_, copy=False)
    converted = []
    for row, value in enumerate(values):
        if isinstance(value, bool | np.bool_):
            converted.append(bool(value))
        elif isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
            converted.append(_BOOL_TEXT[value.strip().lower()])
        else:
            raise _type_error(column, row, value, " (true or false)")
    return np.asarray(converted, dtype=np.bool_)


def _to_string(column: Column, values: Sequence[Any] | NDArray[Any]) -> NDArray[Any]:
    converted: list[str | None] = []
    for row, value in enumerate(values):
        if isinstance(value, str) or value is None:
            converted.append(value)
        elif isinstance(value, float) and np.isnan(value):
            converted.append(None)  # a missing CSV/parquet cell
        else:
            raise _type_error(column, row, value)
    array = np.empty(len(converted), dtype=object)
    array[:] = converted
    return array


_CONVERTERS = {Kind.FLOAT: _to_float, Kind.INT: _to_int, Kind.BOOL: _to_bool, Kind.STRING: _to_string}


def convert_column(column: Column, values: Sequence[Any] | NDArray[Any]) -> NDArray[Any]:
    """Values of one column to the dtype MLflow's schema enforcement would give it; InputError names the column."""
    return _CONVERTERS[column.kind](column, values)


def _missing(schema: TabularSchema, name: str) -> InputError:
    column = schema.by_name[name]
    return InputError(
        f"Missing column '{name}' ({column.mlflow_type}). The model expects: {schema.describe()}.", column=name
    )


def frame_from_columns(schema: TabularSchema, values: Mapping[str, Sequence[Any] | NDArray[Any]], n_rows: int) -> Frame:
    """A Frame from column-oriented values (every sequence has n_rows items)."""
    for column in schema.columns:
        if column.required and column.name not in values:
            raise _missing(schema, column.name)
    columns = {c.name: convert_column(c, values[c.name]) for c in schema.columns if c.name in values}
    if schema.all_float64:
        return Frame(n_rows, matrix=np.column_stack([columns[n] for n in schema.names]))
    return Frame(n_rows, columns=columns)


# ---------------------------------------------------------------------------------------------------------------
# MLflow scoring protocol bodies


def _split(schema: TabularSchema, payload: Any, max_rows: int) -> Frame:
    if not isinstance(payload, dict):
        raise InputError("'dataframe_split' must be an object with 'columns' and 'data'.")
    names, data = payload.get("columns"), payload.get("data")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError("'dataframe_split' needs 'columns': a list of column names.")
    if not isinstance(data, list):
        raise InputError("'dataframe_split' needs 'data': a list of rows, one value per column.")
    check_row_count(len(data), max_rows)
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise InputError(f"Column '{duplicate}' appears more than once in 'columns'.", column=duplicate)
    position = {name: i for i, name in enumerate(names)}
    for column in schema.columns:
        if column.required and column.name not in position:
            raise _missing(schema, column.name)
    if schema.all_float64:
        try:
            matrix = np.array(data, dtype=np.float64)
        except (ValueError, TypeError):
            matrix = None
        if matrix is not None and matrix.ndim == 2 and matrix.shape[1] == len(names):
            if tuple(names) != schema.names:
                matrix = np.ascontiguousarray(matrix[:, [position[n] for n in schema.names]])
            return Frame(len(data), matrix=matrix)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(names):
            size = f"{len(row)} values" if isinstance(row, list) else f"a {type(row).__name__}"
            raise InputError(f"Row {i} of 'dataframe_split' has {size}; 'columns' names {len(names)}.")
    values = {c.name: [row[position[c.name]] for row in data] for c in schema.columns if c.name in position}
    return frame_from_columns(schema, values, len(data))


def _records(schema: TabularSchema, records: Any, field_name: str, max_rows: int) -> Frame:
    if not isinstance(records, list):
        raise InputError(f"'{field_name}' must be a list of records (objects mapping column name to value).")
    check_row_count(len(records), max_rows)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InputError(
                f"Record {i} of '{field_name}' is a {type(record).__name__}; each record must be an object mapping "
                f"column name to value (rows of positional values go in 'dataframe_split' with 'columns')."
            )
    first = records[0]
    present = [c for c in schema.columns if c.name in first or any(c.name in r for r in records)]
    for column in schema.columns:
        if column.required and column not in present:
            raise _missing(schema, column.name)
    # A key absent from some records is a missing value there (null), as pandas reads records.
    values = {c.name: [r.get(c.name) for r in records] for c in present}
    return frame_from_columns(schema, values, len(records))


def _column_dict(schema: TabularSchema, payload: dict[str, Any], field_name: str, max_rows: int) -> Frame:
    relevant = {name: payload[name] for name in schema.names if name in payload}
    lists = [v for v in relevant.values() if isinstance(v, list)]
    if lists and len(lists) != len(relevant):
        raise InputError(f"'{field_name}' mixes lists and single values; give every column a list of equal length.")
    if not lists:
        values: dict[str, Sequence[Any]] = {name: [v] for name, v in relevant.items()}
        n_rows = 1 if relevant else 0
    else:
        lengths = {name: len(v) for name, v in relevant.items()}
        if len(set(lengths.values())) > 1:
            by_length = ", ".join(f"{name} has {length}" for name, length in lengths.items())
            raise InputError(
                f"The columns in '{field_name}' have different numbers of values ({by_length}); "
                "give every column one value per row."
            )
        n_rows = next(iter(lengths.values()))
        values = relevant
    for column in schema.columns:
        if column.required and column.name not in values:
            raise _missing(schema, column.name)
    check_row_count(n_rows, max_rows)
    return frame_from_columns(schema, values, n_rows)


def parse_mlflow_json(schema: TabularSchema, body: bytes, max_rows: int) -> tuple[Frame, dict[str, Any] | None]:
    """An MLflow scoring-protocol JSON body to (Frame, params)."""
    document = loads_json(body)
    if not isinstance(document, dict):
        raise InputError(f"{REQUIRED_FORMAT}; got a JSON {type(document).__name__}.")
    formats = [key for key in MLFLOW_FORMATS if key in document]
    if len(formats) != 1:
        raise InputError(f"{REQUIRED_FORMAT}; got the fields {sorted(document)}.")
    params = document.get("params")
    if params is not None and not isinstance(params, dict):
        raise InputError("'params' must be an object mapping parameter name to value.")
    field_name = formats[0]
    payload = document[field_name]
    if field_name == "dataframe_split":
        return _split(schema, payload, max_rows), params
    if field_name == "dataframe_records":
        return _records(schema, payload, field_name, max_rows), params
    if isinstance(payload, dict):
        return _column_dict(schema, payload, field_name, max_rows), params
    return _records(schema, payload, field_name, max_rows), params


def frame_from_dataframe(schema: TabularSchema, frame: Any, max_rows: int) -> Frame:
    """A pandas DataFrame (from CSV or parquet) to a checked Frame."""
    check_row_count(len(frame), max_rows)
    values = {name: frame[name].to_numpy() for name in schema.names if name in frame.columns}
    return frame_from_columns(schema, values, len(frame))


def parse_csv(schema: TabularSchema, body: bytes, max_rows: int) -> Frame:
    """A CSV body with a header row to a Frame; pandas reads the numbers with the signature's dtypes, as MLflow does."""
    import pandas as pd

    text = io.BytesIO(body)
    typed: dict[str, Any] = {c.name: c.dtype for c in schema.columns if c.kind is Kind.FLOAT}
    typed.update({c.name: str for c in schema.columns if c.kind is Kind.STRING})
    try:
        frame = pd.read_csv(text, dtype=typed)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"The body is not valid CSV with a header row: {exc}.") from None
    except ValueError:
        # A value pandas could not read with the column's dtype: read it as text to name the column and row.
        text.seek(0)
        frame = pd.read_csv(text, dtype=str)
    return frame_from_dataframe(schema, frame, max_rows)


PARQUET_NEEDS_PYARROW = (
    "Parquet bodies need pyarrow, which this image does not install (the server leaves it out; the model's "
    "requirements do not name it). Send JSON or CSV, or add pyarrow to the model's requirements."
)


@functools.cache
def parquet_readable() -> bool:
    """Whether pyarrow imports here (the image has it only when the model's requirements bring it); tried once."""
    try:
        importlib.import_module("pyarrow")
    except ImportError:
        return False
    return True


def parse_parquet(schema: TabularSchema, body: bytes, max_rows: int) -> Frame:
    import pandas as pd

    try:
        frame = pd.read_parquet(io.BytesIO(body))
    except Exception as exc:  # pyarrow raises many types for a corrupt file
        raise InputError(f"The body is not a valid parquet file: {exc}.") from None
    return frame_from_dataframe(schema, frame, max_rows)
