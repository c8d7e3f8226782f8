"""Decide whether a verified, well-formed event means "promote" under the settings.

Each function returns a `Promotion`, or an `Ignored` carrying the reason (answered 202 and logged, not acted on).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from webhook_listener.schemas import (
    DATABRICKS_STAGE_EVENTS,
    DatabricksEvent,
    JobPromotion,
    MlflowAliasCreated,
    MlflowEnvelope,
    Promotion,
    Source,
)
from webhook_listener.settings import ListenerSettings

MLFLOW_PROMOTE_EVENT = "model_version_alias.created"


@dataclass(frozen=True)
class Ignored:
    reason: str


class PayloadError(ValueError):
    """The body is JSON but not the shape its event needs (answered 400 with this reason)."""


def _model_ignored(model: str, settings: ListenerSettings) -> Ignored | None:
    if settings.models and model not in settings.models:
        return Ignored(f"model {model!r} is not one of the configured models")
    return None


def from_mlflow(envelope: MlflowEnvelope, delivery_id: str, settings: ListenerSettings) -> Promotion | Ignored:
    if envelope.event != MLFLOW_PROMOTE_EVENT:
        return Ignored(f"event {envelope.event!r} is not {MLFLOW_PROMOTE_EVENT!r}")
    try:
        data = MlflowAliasCreated.model_validate(envelope.data)
    except ValueError as exc:
        raise PayloadError(f"{MLFLOW_PROMOTE_EVENT} data: {exc}") from None
    if data.alias != settings.promote_alias:
        return Ignored(f"alias {data.alias!r} is not the promote alias {settings.promote_alias!r}")
    if ignored := _model_ignored(data.name, settings):
        return ignored
    return Promotion(
        source=Source.MLFLOW,
        delivery_id=delivery_id,
        model=data.name,
        version=data.version,
        alias=data.alias,
        target_stack=settings.target_stack,
    )


def databricks_delivery_id(event: DatabricksEvent, stage: str | None) -> str:
    """Databricks sends no delivery id: the same webhook, timestamp, model, version and stage is the same event."""
    key = "\x1f".join(
        [event.webhook_id, str(event.event_timestamp), event.model_name or "", event.version or "", stage or ""]
    )
    return "dbx-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def from_databricks(event: DatabricksEvent, settings: ListenerSettings) -> Promotion | Ignored:
    if event.event not in DATABRICKS_STAGE_EVENTS:
        return Ignored(f"event {event.event!r} is not a stage transition")
    stage = event.to_stage or DATABRICKS_STAGE_EVENTS[event.event]
    if event.model_name is None or event.version is None or stage is None:
        raise PayloadError(f"{event.event} needs model_name, version and to_stage")
    wanted = {s.casefold() for s in settings.promote_stages}
    if stage.casefold() not in wanted:
        return Ignored(f"stage {stage!r} is not one of the promote stages {sorted(settings.promote_stages)}")
    if ignored := _model_ignored(event.model_name, settings):
        return ignored
    return Promotion(
        source=Source.DATABRICKS,
        delivery_id=databricks_delivery_id(event, stage),
        model=event.model_name,
        version=event.version,
        stage=stage,
        target_stack=settings.target_stack,
    )


def from_job(request: JobPromotion, settings: ListenerSettings) -> Promotion | Ignored:
    if request.alias != settings.promote_alias:
        return Ignored(f"alias {request.alias!r} is not the promote alias {settings.promote_alias!r}")
    if ignored := _model_ignored(request.model, settings):
        return ignored
    return Promotion(
        source=Source.DATABRICKS_JOB,
        delivery_id=request.delivery_id,
        model=request.model,
        version=request.version,
        alias=request.alias,
        target_stack=settings.target_stack,
    )
