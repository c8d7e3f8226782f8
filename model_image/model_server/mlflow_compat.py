"""Every MLflow internal the server relies on, in one place, typed.

The server reproduces `mlflow models serve` byte for byte by calling the same functions it calls (its JSON encoder,
its `invocations`), and skips MLflow's per-call schema enforcement by calling the flavor's predict function. These
are private APIs: when the image's MLflow version changes, this module is what to re-read, and the load-time check in
loading.choose_scoring falls back to MLflow's own path if an answer ever differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def mlflow_version() -> str:
    """The version of the `mlflow` package imported here: the image installs it as mlflow-skinny, so there is no
    `mlflow` distribution to ask importlib.metadata about."""
    from mlflow.version import VERSION

    return str(VERSION)


def jsonable(raw: Any) -> Any:
    """Predictions as JSON-able Python objects, exactly as MLflow's scoring server converts them."""
    from mlflow.utils.proto_json_utils import _get_jsonable_obj

    return _get_jsonable_obj(raw, pandas_orient="records")  # type: ignore[no-untyped-call]


def predictions_json(raw: Any) -> bytes:
    """`{"predictions": ...}` with MLflow's encoder (numpy scalars, NaN, separators and key order as MLflow)."""
    from mlflow.utils.proto_json_utils import NumpyEncoder

    return json.dumps({"predictions": jsonable(raw)}, cls=NumpyEncoder).encode()


def invocations(model: Any, body: bytes, content_type: str) -> tuple[int, bytes, str]:
    """MLflow's own parse, predict and encode for one request: (status, body, media type). Raises MlflowException."""
    from mlflow.pyfunc.scoring_server import invocations as mlflow_invocations

    result: Any = mlflow_invocations(body, content_type, model, model.metadata.get_input_schema())  # type: ignore[no-untyped-call]
    return int(result.status), str(result.response).encode(), str(result.mimetype)


def http_status(exc: Exception) -> int:
    """The HTTP status MLflow's scoring server answers for this MlflowException."""
    status: Any = exc.get_http_status_code()  # type: ignore[attr-defined]
    return int(status)


def error_json(exc: Exception) -> bytes:
    """The error body MLflow's scoring server answers for this MlflowException."""
    body: Any = exc.serialize_as_json()  # type: ignore[attr-defined]
    return str(body).encode()


def is_mlflow_exception(exc: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException)


def flavor_predict_fn(model: Any) -> Callable[[Any], Any] | None:
    """The flavor's predict function under `PyFuncModel.predict` (which adds schema enforcement), if it has one."""
    fn = getattr(model, "_predict_fn", None)
    return fn if callable(fn) else None


def signature_from_type_hints(metadata: Any) -> bool:
    return bool(getattr(metadata, "_is_signature_from_type_hint", lambda: False)())


def type_hint_from_example(metadata: Any) -> bool:
    return bool(getattr(metadata, "_is_type_hint_from_example", lambda: False)())


def flavor_name(model: Any) -> str:
    """The pyfunc loader module, e.g. `mlflow.sklearn`."""
    return str(model.metadata.flavors.get("python_function", {}).get("loader_module", "unknown"))


def raw_model(model: Any) -> Any:
    """The flavor's own model object (the fitted estimator for scikit-learn), or None."""
    try:
        return model.get_raw_model()
    except (AttributeError, NotImplementedError):
        return None
