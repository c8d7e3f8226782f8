"""Load the model, learn who it is, warm it up, and prove which scoring path answers exactly like MLflow.

`load_model` is blocking; the app runs it in a background thread so that `/health/live` answers while a large model
loads, and `/health/ready` turns true only when `load_model` returned, i.e. after a warm-up prediction on the model's
input example succeeded and matched `mlflow models serve` byte for byte.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_server import mlflow_compat
from model_server.drift import DriftReferenceMismatchError, check_reference
from model_server.drift_reference import DriftReference, DriftReferenceError, read_reference
from model_server.fetch import METADATA_FILE
from model_server.model_requirements import missing_library_hint
from model_server.parsing import InputError, parse_mlflow_json
from model_server.schema import Kind, TabularSchema, tabular_schema
from model_server.scoring import NotSplittableError, Scorer, ScoringPath, mlflow_response_body
from model_server.settings import Settings

log = logging.getLogger("model_server.loading")


class ModelLoadError(RuntimeError):
    """The model could not be loaded, or its warm-up prediction failed."""


@dataclass(frozen=True)
class ModelIdentity:
    """Which model version this server serves, and which image it runs in."""

    name: str
    version: str | None
    run_id: str | None
    image_code_hash: str | None
    model_uri: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "model_run_id": self.run_id,
            "model_uri": self.model_uri,
            "image_code_hash": self.image_code_hash,
        }


def read_serving_metadata(model_dir: Path) -> dict[str, Any]:
    """The registry facts `fetch` wrote next to the model, or {} for a model saved to a directory."""
    path = model_dir / METADATA_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def _mlmodel_run_id(model_dir: Path) -> str | None:
    import yaml

    try:
        data = yaml.safe_load((model_dir / "MLmodel").read_text())
    except (OSError, yaml.YAMLError):
        return None
    run_id = data.get("run_id") if isinstance(data, dict) else None
    return str(run_id) if run_id else None


def resolve_identity(settings: Settings) -> ModelIdentity:
    """Environment first (the image sets it), then serving-metadata.json, then the MLmodel file."""
    meta = read_serving_metadata(settings.model_dir)

    def pick(env_value: str | None, key: str) -> str | None:
        value = env_value or meta.get(key)
        return str(value) if value not in (None, "") else None

    return ModelIdentity(
        name=pick(settings.model_name, "model_name") or "model",
        version=pick(settings.model_version, "model_version"),
        run_id=pick(settings.model_run_id, "run_id") or _mlmodel_run_id(settings.model_dir),
        image_code_hash=settings.image_code_hash,
        model_uri=pick(None, "model_uri"),
    )


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve: what it is, how to score it, and what the warm-up proved."""

    model: Any
    identity: ModelIdentity
    schema: TabularSchema | None
    scorer: Scorer
    mergeable: bool
    load_seconds: float
    warmup_seconds: float
    flavor: str
    drift_reference: DriftReference | None = None
    mlflow_import_seconds: float = 0.0

    @property
    def input_schema(self) -> Any:
        return self.model.metadata.get_input_schema()

    @property
    def output_schema(self) -> Any:
        return self.model.metadata.get_output_schema()


def _example_body(model: Any, model_dir: Path, schema: TabularSchema | None) -> tuple[bytes | None, bool]:
    """The model's serving input example as a request body, and whether it is the model's own (not synthesized)."""
    from mlflow.models.utils import convert_input_example_to_serving_input

    metadata = model.metadata
    serving = metadata.get_serving_input(str(model_dir)) if hasattr(metadata, "get_serving_input") else None
    if serving:
        return str(serving).encode(), True
    example = metadata.load_input_example(str(model_dir)) if metadata.saved_input_example_info else None
    if example is not None:
        converted = convert_input_example_to_serving_input(example)
        if converted:
            return str(converted).encode(), True
    if schema is None:
        return None, False
    filler = {Kind.FLOAT: 0.0, Kind.INT: 0, Kind.BOOL: False, Kind.STRING: ""}
    row = [filler[c.kind] for c in schema.columns]
    return json.dumps({"dataframe_split": {"columns": list(schema.names), "data": [row]}}).encode(), False


def _fast_path_allowed(model: Any, schema: TabularSchema | None) -> bool:
    metadata = model.metadata
    return (
        schema is not None
        and all(c.kind is Kind.FLOAT and c.required for c in schema.columns)
        and metadata.get_params_schema() is None
        and not mlflow_compat.type_hint_from_example(metadata)
        and mlflow_compat.flavor_predict_fn(model) is not None
    )


def _array_path_allowed(model: Any, schema: TabularSchema) -> bool:
    """A scikit-learn model whose fitted feature names are the signature's columns, in order (or that has none)."""
    if not schema.all_float64 or mlflow_compat.flavor_name(model) != "mlflow.sklearn":
        return False
    names = getattr(mlflow_compat.raw_model(model), "feature_names_in_", None)
    if names is not None and [str(n) for n in names] != list(schema.names):
        return False
    # Passing the matrix to a model fitted on a DataFrame makes scikit-learn warn on every call that the input has
    # no feature names; the names were checked above, once.
    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
    return True


def choose_scoring(model: Any, schema: TabularSchema | None, body: bytes | None) -> tuple[Scorer, bool]:
    """The fastest scoring path whose answer to `body` equals MLflow's byte for byte, and whether merging is safe.

    Raises ModelLoadError when MLflow's own scoring of the example fails (the model cannot serve its own example).
    """
    mlflow_path = Scorer(model, schema, ScoringPath.MLFLOW)
    if body is None:
        log.warning("model has no input example and no signature: no warm-up, MLflow's own parsing, no batching")
        return mlflow_path, False
    try:
        status, reference, _ = mlflow_path.score_with_mlflow(body, "application/json")
    except Exception as exc:  # MlflowException or whatever the model raises
        raise ModelLoadError(f"MLflow's scoring server fails on the model's input example: {exc}") from exc
    if status != 200:
        raise ModelLoadError(f"MLflow's scoring server refuses the model's input example ({status}): {reference!r}")
    if schema is None:
        return mlflow_path, False
    try:
        frame, params = parse_mlflow_json(schema, body, max_rows=1 << 30)
    except InputError as exc:
        log.warning("the server's parser refuses the input example (%s); using MLflow's own parsing", exc.message)
        return mlflow_path, False
    candidates = [ScoringPath.CHECKED]
    if _fast_path_allowed(model, schema):
        candidates[:0] = (
            [ScoringPath.ARRAY, ScoringPath.FAST] if _array_path_allowed(model, schema) else [ScoringPath.FAST]
        )
    for path in candidates:
        scorer = Scorer(model, schema, path)
        try:
            answer = mlflow_response_body(scorer.predict_frames([frame], params)[0])
        except Exception as exc:
            log.warning("scoring path %s fails on the input example (%r); not using it", path.value, exc)
            continue
        if answer != reference:
            log.warning("scoring path %s answers %r, MLflow answers %r; not using it", path.value, answer, reference)
            continue
        return scorer, params is None and _merging_is_exact(scorer, frame, answer)
    return mlflow_path, False


def _merging_is_exact(scorer: Scorer, frame: Any, single_answer: bytes) -> bool:
    """Two copies of the example in one predict call must give the single answer twice, byte for byte."""
    try:
        pieces = scorer.predict_frames([frame, frame], None)
    except (NotSplittableError, ValueError, TypeError) as exc:
        log.warning("predictions cannot be split per request (%s); batching is off", exc)
        return False
    return all(mlflow_response_body(piece) == single_answer for piece in pieces)


def _missing_module_hint(exc: BaseException) -> str:
    """What to add to the model's requirements, when `exc` (or what caused it) is a missing module."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ModuleNotFoundError):
            hint = missing_library_hint(current.name)
            return f".{hint}" if hint else ""
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return ""


def load_model(settings: Settings) -> LoadedModel:
    """Load, warm up and verify the model in `settings.model_dir` (blocking; seconds to minutes)."""
    model_dir = settings.model_dir
    if not (model_dir / "MLmodel").is_file():
        raise ModelLoadError(f"{model_dir} holds no MLflow model (no MLmodel file); set MODEL_DIR or --model-dir")
    started = time.perf_counter()
    import mlflow.pyfunc
    from mlflow.environment_variables import _MLFLOW_IS_IN_SERVING_ENVIRONMENT

    mlflow_import_seconds = time.perf_counter() - started

    try:
        reference = read_reference(model_dir)
    except DriftReferenceError as exc:
        raise ModelLoadError(str(exc)) from exc
    identity = resolve_identity(settings)
    started = time.perf_counter()
    try:
        model = mlflow.pyfunc.load_model(str(model_dir))
    except Exception as exc:
        hint = _missing_module_hint(exc)
        raise ModelLoadError(f"mlflow.pyfunc.load_model({str(model_dir)!r}) failed: {exc!r}{hint}") from exc
    load_seconds = time.perf_counter() - started
    os.environ[_MLFLOW_IS_IN_SERVING_ENVIRONMENT.name] = "true"  # as mlflow's scoring server does

    metadata = model.metadata
    signature_from_hints = mlflow_compat.signature_from_type_hints(metadata)
    schema = None if signature_from_hints else tabular_schema(metadata.get_input_schema())
    body, own_example = _example_body(model, model_dir, schema)
    started = time.perf_counter()
    try:
        scorer, mergeable = choose_scoring(model, schema, body)
    except ModelLoadError as exc:
        if own_example:
            hint = _missing_module_hint(exc)
            if hint:
                raise ModelLoadError(f"{exc}{hint}") from exc
            raise
        log.warning("warm-up on a synthesized example failed; using MLflow's own parsing, no batching")
        scorer, mergeable = Scorer(model, schema, ScoringPath.MLFLOW), False
    except Exception as exc:
        hint = _missing_module_hint(exc)
        raise ModelLoadError(f"warm-up prediction on the input example failed: {exc!r}{hint}") from exc
    warmup_seconds = time.perf_counter() - started
    flavor = mlflow_compat.flavor_name(model)
    if reference is not None and schema is not None:
        try:
            check_reference(reference, schema)
        except DriftReferenceMismatchError as exc:
            raise ModelLoadError(str(exc)) from exc
    return LoadedModel(
        model=model,
        identity=identity,
        schema=schema if scorer.path is not ScoringPath.MLFLOW else None,
        scorer=scorer,
        mergeable=mergeable,
        load_seconds=load_seconds,
        warmup_seconds=warmup_seconds,
        flavor=flavor,
        drift_reference=reference,
        mlflow_import_seconds=mlflow_import_seconds,
    )
