"""The Open Inference Protocol (V2, as KServe and Seldon speak it) on top of the same parser, batcher and model.

The routes (`V2Protocol`), and the request and response documents they read and write (the functions). Inputs
are either one tensor per signature column (`name` = column, `shape` [n] or [n, 1]) or a single 2-D tensor
[n, number of columns] whose columns follow the signature's order. Outputs are one tensor per output column
(DataFrame or dict outputs) or one tensor named `predict`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from model_server import SERVER_NAME, SERVER_VERSION
from model_server.lifecycle import Lifecycle
from model_server.loading import LoadedModel
from model_server.metrics import Metrics
from model_server.parsing import Frame, InputError, check_row_count, frame_from_columns, loads_json
from model_server.predicting import ScoringProtocol, log_payload, predict
from model_server.schema import Kind, TabularSchema, mlflow_v2_datatype, v2_datatype
from model_server.settings import Settings
from model_server.transport import JSON, HttpError, Request, Resolved, Response, RouteTable, json_response, read_body

MODELS_PREFIX = "/v2/models/"

# which V2 datatypes each column kind accepts
_ACCEPTED = {
    Kind.FLOAT: {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"},
    Kind.INT: {"INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"},
    Kind.BOOL: {"BOOL"},
    Kind.STRING: {"BYTES"},
}


def _flatten(data: Any) -> Iterator[Any]:
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _tensor(raw: Any, index: int) -> tuple[str, list[int], str, list[Any]]:
    if not isinstance(raw, dict):
        raise InputError(f"inputs[{index}] must be an object with name, shape, datatype and data.")
    name, shape, datatype, data = raw.get("name"), raw.get("shape"), raw.get("datatype"), raw.get("data")
    if not isinstance(name, str):
        raise InputError(f"inputs[{index}] needs a 'name' (a string).")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InputError(f"Input '{name}' needs a 'shape': a list of non-negative integers.")
    if not isinstance(datatype, str):
        raise InputError(f"Input '{name}' needs a 'datatype' such as FP64, INT64, BOOL or BYTES.")
    if not isinstance(data, list):
        raise InputError(f"Input '{name}' needs 'data': a list (flat or nested, row-major).")
    flat = list(_flatten(data)) if data and isinstance(data[0], list) else data
    if len(flat) != int(np.prod(shape)):
        raise InputError(f"Input '{name}' has {len(flat)} values but its shape {shape} holds {int(np.prod(shape))}.")
    return name, shape, datatype.upper(), flat


def parse_infer(schema: TabularSchema, body: bytes, max_rows: int) -> tuple[Frame, str | None]:
    """A V2 inference request to (Frame, request id)."""
    document = loads_json(body)
    if not isinstance(document, dict):
        raise InputError("An inference request must be a JSON object with 'inputs'.")
    request_id = document.get("id")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("An inference request needs 'inputs': a non-empty list of tensors.")
    tensors = [_tensor(raw, i) for i, raw in enumerate(inputs)]
    values: dict[str, list[Any]] = {}
    if len(tensors) == 1 and tensors[0][0] not in schema.by_name and len(tensors[0][1]) == 2:
        name, shape, datatype, flat = tensors[0]
        if shape[1] != len(schema.columns):
            raise InputError(
                f"Input '{name}' is not a column of the model and its shape {shape} does not have one column per "
                f"signature column ({len(schema.columns)}): send one tensor per column, named after it."
            )
        n_rows = shape[0]
        check_row_count(n_rows, max_rows)
        width = len(schema.columns)
        for i, column in enumerate(schema.columns):
            _check_datatype(column.kind, column.name, column.mlflow_type, datatype, name)
            values[column.name] = flat[i::width]
        return frame_from_columns(schema, values, n_rows), _as_id(request_id)
    by_name = {t[0]: t for t in tensors}
    n_rows = -1
    for column in schema.columns:
        tensor = by_name.get(column.name)
        if tensor is None:
            continue
        name, shape, datatype, flat = tensor
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise InputError(f"Input '{name}' must have shape [rows] or [rows, 1]; got {shape}.", column=name)
        if n_rows not in (-1, shape[0]):
            raise InputError(f"Input '{name}' has {shape[0]} rows, other inputs have {n_rows}.", column=name)
        n_rows = shape[0]
        _check_datatype(column.kind, column.name, column.mlflow_type, datatype, name)
        values[column.name] = flat
    if n_rows == -1:
        raise InputError(f"No input is named after a column of the model; it expects: {schema.describe()}.")
    for column in schema.columns:
        if column.required and column.name not in values:
            raise InputError(
                f"Missing input '{column.name}' ({column.v2_datatype}). The model expects: {schema.describe()}.",
                column=column.name,
            )
    check_row_count(n_rows, max_rows)
    return frame_from_columns(schema, values, n_rows), _as_id(request_id)


def _as_id(value: Any) -> str | None:
    return None if value is None else str(value)


def _check_datatype(kind: Kind, column: str, mlflow_type: str, datatype: str, tensor: str) -> None:
    if datatype not in _ACCEPTED[kind]:
        allowed = ", ".join(sorted(_ACCEPTED[kind]))
        raise InputError(
            f"Input '{tensor}' has datatype {datatype}; column '{column}' is {mlflow_type}, which takes {allowed}.",
            column=column,
        )


def _output_tensor(name: str, values: Any) -> dict[str, Any]:
    array = np.asarray(values)
    if array.dtype.kind in {"O", "U"}:
        data = [None if v is None else str(v) for v in array.reshape(-1).tolist()]
        return {"name": name, "datatype": "BYTES", "shape": list(array.shape), "data": data}
    return {
        "name": name,
        "datatype": v2_datatype(array.dtype),
        "shape": list(array.shape),
        "data": array.reshape(-1).tolist(),
    }


def output_tensors(raw: Any) -> list[dict[str, Any]]:
    """The model's output as V2 output tensors."""
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        return [_output_tensor(str(col), raw[col].to_numpy()) for col in raw.columns]
    if isinstance(raw, pd.Series):
        return [_output_tensor(str(raw.name) if raw.name is not None else "predict", raw.to_numpy())]
    if isinstance(raw, dict):
        return [_output_tensor(str(key), value) for key, value in raw.items()]
    return [_output_tensor("predict", raw)]


def infer_response(loaded: LoadedModel, raw: Any, request_id: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "model_name": loaded.identity.name,
        "model_version": loaded.identity.version,
        "outputs": output_tensors(raw),
    }
    if request_id is not None:
        response["id"] = request_id
    return response


def _spec_tensor(spec: Any, default_name: str) -> dict[str, Any]:
    type_ = getattr(spec, "type", None)
    type_name = getattr(type_, "name", None) or str(type_)
    shape = list(getattr(spec, "shape", None) or [-1])
    return {"name": spec.name or default_name, "datatype": mlflow_v2_datatype(type_name), "shape": shape}


def model_metadata(loaded: LoadedModel) -> dict[str, Any]:
    """`GET /v2/models/{name}`: name, versions, platform, input and output tensors."""
    inputs: list[dict[str, Any]]
    if loaded.schema is not None:
        inputs = [{"name": c.name, "datatype": c.v2_datatype, "shape": [-1, 1]} for c in loaded.schema.columns]
    elif loaded.input_schema is not None:
        inputs = [_spec_tensor(spec, f"input-{i}") for i, spec in enumerate(loaded.input_schema.inputs)]
    else:
        inputs = []
    output_schema = loaded.output_schema
    outputs = [_spec_tensor(spec, "predict") for spec in output_schema.inputs] if output_schema is not None else []
    return {
        "name": loaded.identity.name,
        "versions": [loaded.identity.version] if loaded.identity.version else [],
        "platform": f"mlflow-{loaded.flavor}",
        "inputs": inputs,
        "outputs": outputs,
    }


class V2Protocol(ScoringProtocol):
    """Owns the Open Inference Protocol's routes: the server's metadata and health (`/v2`, `/v2/health/*`) and, under
    `/v2/models/{name}[/versions/{version}]`, the model's metadata, readiness and `infer`, with V2's error shape.
    """

    # Probes, left out of the access log.
    quiet_routes = frozenset({"/v2/health/live", "/v2/health/ready"})

    def __init__(self, settings: Settings, metrics: Metrics, lifecycle: Lifecycle) -> None:
        super().__init__(settings, metrics, lifecycle)
        self.routes: RouteTable = {
            "/v2": ("GET", self.server_metadata),
            "/v2/health/live": ("GET", self.live),
            "/v2/health/ready": ("GET", self.ready),
        }
        self._model_routes: RouteTable = {
            "": ("GET", self.metadata),
            "ready": ("GET", self.model_ready),
            "infer": ("POST", self.infer),
        }

    def resolve(self, path: str, request: Request) -> Resolved:
        """A path under MODELS_PREFIX: (route template for metrics, method, handler); the name and version go to
        `request.params`."""
        parts = path[len(MODELS_PREFIX) :].split("/")
        name, rest = parts[0], parts[1:]
        template = "/v2/models/{name}"
        if len(rest) >= 2 and rest[0] == "versions":
            request.params["version"] = rest[1]
            template += "/versions/{version}"
            rest = rest[2:]
        action = "/".join(rest)
        entry = self._model_routes.get(action)
        if name and entry is not None:
            request.params["name"] = name
            return template + (f"/{action}" if action else ""), entry[0], entry[1]
        return "/v2/other", "GET", None

    async def server_metadata(self, request: Request) -> Response:
        return json_response(200, {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []})

    async def live(self, request: Request) -> Response:
        return json_response(200, {"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.lifecycle.readiness()[0]
        return json_response(200 if ready else 503, {"ready": ready})

    def _check_model(self, request: Request) -> None:
        name, version = request.params.get("name"), request.params.get("version")
        ident = self.lifecycle.identity
        if name != ident.name or (version is not None and version != ident.version):
            served = ident.name + (f" version {ident.version}" if ident.version else "")
            asked = f"{name}" + (f" version {version}" if version else "")
            raise HttpError(404, f"Model {asked} is not served here; this server serves {served}.")

    async def model_ready(self, request: Request) -> Response:
        self._check_model(request)
        ready = self.lifecycle.readiness()[0]
        return json_response(200 if ready else 503, {"name": self.lifecycle.identity.name, "ready": ready})

    async def metadata(self, request: Request) -> Response:
        self._check_model(request)
        loaded, _ = self.lifecycle.require_model()
        return json_response(200, model_metadata(loaded))

    async def infer(self, request: Request) -> Response:
        self._check_model(request)
        loaded, batcher = self.lifecycle.require_model()
        body = await read_body(request, self.settings.max_body_bytes)
        if loaded.schema is None:
            raise HttpError(400, "This model's signature is not a table of named columns; use /invocations.")
        frame, request_id = parse_infer(loaded.schema, body, self.settings.max_request_rows)
        request.rows = frame.n_rows
        raw = await predict(batcher, frame, None, request, self.metrics)
        if self._sample_rate and random.random() < self._sample_rate:  # noqa: S311 (sampling, not security)
            log_payload(loaded, request, "/v2/models/{name}/infer", frame, raw)
        return 200, orjson.dumps(infer_response(loaded, raw, request_id), option=orjson.OPT_SERIALIZE_NUMPY), JSON
