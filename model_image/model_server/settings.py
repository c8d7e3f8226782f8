"""The server's settings: one typed, validated object read from the environment, with CLI flags on top.

Every setting is an environment variable (the README lists them); `load_settings` validates them all at once and
names each bad variable, so a misconfigured pod fails at start with one clear message instead of at the first request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from model_server import contract

DEFAULT_MODEL_DIR = Path(contract.MODEL_DIR)
MIB = 1024 * 1024


class SettingsError(ValueError):
    """One or more settings are invalid; the message names every offending environment variable."""


class Settings(BaseModel):
    """Everything the server reads from its environment. Field aliases are the environment variable names.

    The aliases stay string literals (type checkers read them to type the constructor); `contract.Env` lists the
    same names for the Pulumi program, and tests/contracts holds the two lists equal.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    model_dir: Path = Field(DEFAULT_MODEL_DIR, alias="MODEL_DIR", description="Directory of the MLflow model.")
    host: str = Field("127.0.0.1", alias="HOST", min_length=1, description="Address to listen on.")
    port: int = Field(contract.PORT, alias="PORT", ge=1, le=65535)
    workers: int = Field(
        1,
        alias="WORKERS",
        ge=1,
        le=64,
        description="Server processes. 1 (one process per pod, scaled by replicas) is the measured-safe default.",
    )
    model_name: str | None = Field(None, alias="MODEL_NAME")
    model_version: str | None = Field(None, alias="MODEL_VERSION")
    model_run_id: str | None = Field(None, alias="MODEL_RUN_ID")
    image_code_hash: str | None = Field(None, alias="IMAGE_CODE_HASH")
    max_body_bytes: int = Field(
        10 * MIB, alias="MAX_BODY_BYTES", ge=1024, description="Larger bodies get 413 before they are read."
    )
    max_request_rows: int = Field(10_000, alias="MAX_REQUEST_ROWS", ge=1, description="Rows allowed in one request.")
    batch_max_rows: int = Field(
        256,
        alias="BATCH_MAX_ROWS",
        ge=1,
        description="Rows merged into one predict call from requests that queued up meanwhile; 1 turns merging off.",
    )
    predict_in_thread: bool = Field(
        False,
        alias="PREDICT_IN_THREAD",
        description="Run predict in one worker thread instead of on the event loop (for slow models).",
    )
    payload_log_sample_rate: float = Field(
        0.0, alias="PAYLOAD_LOG_SAMPLE_RATE", ge=0.0, le=1.0, description="Share of requests whose inputs are logged."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", alias="LOG_LEVEL")
    access_log: bool = Field(True, alias="ACCESS_LOG")
    keepalive_timeout_seconds: float = Field(75.0, alias="KEEPALIVE_TIMEOUT_SECONDS", gt=0, le=3600)
    graceful_shutdown_seconds: float = Field(25.0, alias="GRACEFUL_SHUTDOWN_SECONDS", ge=0, le=3600)
    shutdown_drain_seconds: float = Field(0.0, alias="SHUTDOWN_DRAIN_SECONDS", ge=0, le=600)
    max_concurrency: int = Field(
        1024, alias="MAX_CONCURRENCY", ge=0, description="Open connections + in-flight requests before 503; 0: none."
    )

    drift_monitoring: bool = Field(
        True,
        alias="DRIFT_MONITORING",
        description="Compare the scored rows with the model's drift reference, if it has one (false: never).",
    )
    drift_window_rows: int = Field(
        5000, alias="DRIFT_WINDOW_ROWS", ge=100, le=1_000_000, description="Rows in the sliding drift window."
    )
    drift_min_rows: int = Field(
        500, alias="DRIFT_MIN_ROWS", ge=1, description="Rows the window needs before drift scores are reported."
    )
    drift_psi_threshold: float = Field(
        0.2, alias="DRIFT_PSI_THRESHOLD", gt=0, le=100, description="A feature whose PSI is above this has drifted."
    )
    drift_refresh_seconds: float = Field(
        10.0, alias="DRIFT_REFRESH_SECONDS", gt=0, le=3600, description="How often scores are recomputed."
    )

    @field_validator("drift_min_rows")
    @classmethod
    def _min_rows_fit_the_window(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("drift_window_rows")
        if window is not None and value > window:
            raise ValueError(f"must not exceed DRIFT_WINDOW_ROWS ({window})")
        return value

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name -> environment variable name."""
        return {name: str(field.alias) for name, field in cls.model_fields.items()}


def _normalise(field: str, raw: str) -> Any:
    """Environment strings to what pydantic validates; blank means unset (None), numbers must be finite."""
    value = raw.strip()
    if field in {"log_level"}:
        return value.lower()
    if field in {
        "payload_log_sample_rate",
        "keepalive_timeout_seconds",
        "graceful_shutdown_seconds",
        "drift_psi_threshold",
        "drift_refresh_seconds",
    }:
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Settings from `environ`, then `overrides` (CLI flags; None means "not given"). Raises SettingsError."""
    values: dict[str, Any] = {}
    for field, env_name in Settings.env_names().items():
        raw = environ.get(env_name)
        if raw is not None and raw.strip() != "":
            values[field] = _normalise(field, raw)
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return Settings.model_validate({Settings.env_names()[key]: value for key, value in values.items()})
    except ValidationError as exc:
        names = Settings.env_names()
        problems = []
        for error in exc.errors():
            location = str(error["loc"][0]) if error["loc"] else "settings"
            env_name = names.get(location, location)
            problems.append(f"{env_name}: {error['msg']} (got {error.get('input')!r})")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
