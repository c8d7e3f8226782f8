"""Payload shapes (pydantic) for the three promotion senders, the `Promotion` every accepted promotion becomes, and
the `DriftAlert` a firing drift alert becomes (the alert senders' bodies are in `alert_schemas.py`).

Captured payloads these follow: platform-facts.md §1.3 (open-source MLflow) and §2 (Databricks). Unknown extra
fields are allowed (senders add fields over time); the fields we act on are checked strictly.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, TypeAdapter

from webhook_listener.signatures import DELIVERY_ID_PATTERN

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=500)]
# Versions are strings on the wire ("3"); a sender that sends 3 gets it read as "3".
Version = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[0-9]+$")]


class Source(enum.StrEnum):
    MLFLOW = "mlflow"
    DATABRICKS = "databricks"
    DATABRICKS_JOB = "databricks-job"
    ALERTMANAGER = "alertmanager"
    AZURE_MONITOR = "azure-monitor"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, frozen=True)


# --- open-source MLflow -------------------------------------------------------------------------------------


class MlflowEnvelope(_Payload):
    """`{"entity": "model_version_alias", "action": "created", "timestamp": "...", "data": {...}}`"""

    entity: NonEmpty
    action: NonEmpty
    timestamp: str
    data: dict[str, Any]

    @property
    def event(self) -> str:
        return f"{self.entity}.{self.action}"


class MlflowAliasCreated(_Payload):
    """`data` of `model_version_alias.created` (also sent when an alias moves to another version)."""

    name: NonEmpty
    alias: NonEmpty
    version: Version


# --- Databricks workspace registry --------------------------------------------------------------------------

DATABRICKS_STAGE_EVENTS: dict[str, str | None] = {
    "MODEL_VERSION_TRANSITIONED_STAGE": None,  # the stage is in `to_stage`
    "MODEL_VERSION_TRANSITIONED_TO_STAGING": "Staging",
    "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION": "Production",
    "MODEL_VERSION_TRANSITIONED_TO_ARCHIVED": "Archived",
}


class DatabricksEvent(_Payload):
    """A registry webhook body, e.g. `{"event": "MODEL_VERSION_TRANSITIONED_STAGE", "webhook_id": "...",
    "event_timestamp": 1589859029343, "model_name": "...", "version": "8", "to_stage": "Production", ...}`."""

    event: NonEmpty
    webhook_id: NonEmpty
    event_timestamp: int = Field(ge=0, description="epoch milliseconds")
    model_name: NonEmpty | None = None
    version: Version | None = None
    to_stage: NonEmpty | None = None
    from_stage: str | None = None


# --- the Databricks job that stands in for Unity Catalog model webhooks -------------------------------------


class JobPromotion(BaseModel):
    """What the job posts to /api/webhooks/databricks-job, one request per alias update it was triggered for.

    `delivery_id` must be stable across the job's own retries (e.g. `<job run id>-<model>-<version>-<alias>`),
    so a retry is recognised as a redelivery.
    """

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, frozen=True)

    delivery_id: Annotated[str, StringConstraints(pattern=DELIVERY_ID_PATTERN.pattern)]
    timestamp: int = Field(ge=0, description="unix seconds when the job sent the request")
    model: NonEmpty
    version: Version
    alias: NonEmpty


# --- what an accepted event becomes -------------------------------------------------------------------------


class Promotion(BaseModel):
    """A verified event that means "release this model version"; the queue message body and the CI payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    source: Source
    delivery_id: Annotated[str, StringConstraints(pattern=DELIVERY_ID_PATTERN.pattern)]
    model: NonEmpty
    version: Version
    stage: NonEmpty | None = None
    alias: NonEmpty | None = None
    target_stack: NonEmpty

    def client_payload(self) -> dict[str, str | None]:
        """The CI payload: the same seven fields for GitHub's `client_payload` and Azure DevOps' variables."""
        return {
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "alias": self.alias,
            "target_stack": self.target_stack,
            "delivery_id": self.delivery_id,
            "source": self.source.value,
        }


DRIFT_KIND: Literal["model-drift"] = "model-drift"


class DriftAlert(BaseModel):
    """A verified, firing drift alert: "the model sees data it was not trained on, retrain it". The queue message
    and the CI payload of the `model-drift` event. `kind` tells it apart from a `Promotion` on the shared queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    kind: Literal["model-drift"] = DRIFT_KIND
    source: Source
    delivery_id: Annotated[str, StringConstraints(pattern=DELIVERY_ID_PATTERN.pattern)]
    alert: NonEmpty
    model: NonEmpty | None = None
    version: Version | None = None
    target_stack: NonEmpty
    fired_at: NonEmpty
    severity: str | None = Field(default=None, max_length=50)
    summary: str | None = Field(default=None, max_length=500)

    def client_payload(self) -> dict[str, str | None]:
        """The `model-drift` payload (nine fields: GitHub takes at most ten top-level `client_payload` keys)."""
        return {
            "alert": self.alert,
            "model": self.model,
            "version": self.version,
            "target_stack": self.target_stack,
            "fired_at": self.fired_at,
            "severity": self.severity,
            "summary": self.summary,
            "delivery_id": self.delivery_id,
            "source": self.source.value,
        }


QueuedEvent = Promotion | DriftAlert


def _queued_kind(value: Any) -> str:
    # Promotions carry no `kind` (messages queued before drift alerts existed must still parse).
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return "drift" if kind is not None else "promotion"


QUEUED_EVENT: TypeAdapter[QueuedEvent] = TypeAdapter(
    Annotated[
        Annotated[Promotion, Tag("promotion")] | Annotated[DriftAlert, Tag("drift")],
        Discriminator(_queued_kind),
    ]
)


class PoisonMessage(BaseModel):
    """What lands on the poison queue: the event, why it failed, and how often it was tried."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    promotion: Promotion | DriftAlert | None
    raw_message: str | None = None
    reason: str
    error_kind: str
    attempts: int
    failed_at: float
