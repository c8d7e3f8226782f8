"""The listener's settings: environment variables with the prefix `LISTENER_`, read by one class.

In Azure the secret settings hold Key Vault references (`@Microsoft.KeyVault(SecretUri=...)`) that the platform
resolves into plain values before the worker starts, so this module only ever sees environment variables.
`ALL_SETTINGS` and `SECRET_SETTINGS` name every variable the code reads, so the Pulumi component can set them by
name (secrets as Key Vault references) and a test can check the two lists stay in step with the class.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from webhook_listener import contract

ENV_PREFIX = contract.ENV_PREFIX
MIN_SECRET_LENGTH = 16

_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


DispatchTarget = contract.DispatchTarget


def _split_csv(value: Any) -> Any:
    """`a, b,c` -> ("a", "b", "c"); an empty string is an empty tuple. Sequences pass through."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class ListenerSettings(BaseSettings):
    """Everything the listener reads from its environment. Build it with `load_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    # --- who may call us ---
    webhook_secret: SecretStr = Field(description="HMAC secret shared with the MLflow and Databricks webhooks.")
    job_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the Databricks job sends to /api/webhooks/databricks-job; unset disables that route.",
    )
    alertmanager_token: SecretStr | None = Field(
        default=None,
        description="Bearer token Alertmanager sends to /api/alerts/alertmanager; unset disables that route.",
    )
    azure_monitor_token: SecretStr | None = Field(
        default=None,
        description="Secret the action group's webhook URL carries as `?token=` to /api/alerts/azure-monitor; "
        "unset disables that route.",
    )
    timestamp_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    max_body_bytes: int = Field(default=65_536, ge=1_024, le=10_485_760)

    # --- what counts as a promotion ---
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Comma-separated model names to act on; empty means any model."
    )
    promote_alias: str = Field(default="champion", min_length=1)
    promote_stages: Annotated[tuple[str, ...], NoDecode] = Field(default=("Production",))
    target_stack: str = Field(default="staging", min_length=1)

    # --- what counts as a drift alert (dispatched as its own event, `github_drift_event_type`) ---
    drift_alert_names: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("ModelDataDrift",), description="Comma-separated alert names that mean the model drifted."
    )

    # --- storage: a connection string (Azurite, local) or account URLs with managed identity (Azure) ---
    storage_connection_string: SecretStr | None = None
    queue_account_url: str | None = None
    table_account_url: str | None = None
    azure_client_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices(contract.Env.AZURE_CLIENT_ID, "azure_client_id"),
        description="Client id of the user-assigned managed identity (read by DefaultAzureCredential too).",
    )
    queue_name: str = contract.QUEUE_NAME
    poison_queue_name: str = contract.POISON_QUEUE_NAME
    dedupe_table_name: str = contract.DEDUPE_TABLE_NAME
    queue_trigger_connection: str = Field(
        default=contract.QUEUE_TRIGGER_CONNECTION,
        description="Name of the Functions host connection the queue trigger uses; same account as the URLs above.",
    )
    accept_timeout_seconds: float = Field(default=3.0, gt=0, le=30)

    # --- dispatch ---
    dispatch_target: DispatchTarget = DispatchTarget.GITHUB
    max_dispatch_attempts: int = Field(default=5, ge=1, le=50)
    retry_base_seconds: int = Field(default=5, ge=1, le=3600)
    retry_max_seconds: int = Field(default=600, ge=1, le=86_400)
    dispatch_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)

    github_api_url: str = "https://api.github.com"
    github_repository: str | None = None
    github_token: SecretStr | None = None
    github_event_type: str = Field(default=contract.Events.PROMOTED, min_length=1, max_length=100)
    github_drift_event_type: str = Field(default=contract.Events.DRIFT, min_length=1, max_length=100)

    azure_devops_org_url: str | None = None
    azure_devops_project: str | None = None
    azure_devops_pipeline_id: int | None = Field(default=None, ge=1)
    azure_devops_drift_pipeline_id: int | None = Field(
        default=None, ge=1, description="Pipeline run for drift alerts; unset: drift alerts are ignored (logged)."
    )
    azure_devops_token: SecretStr | None = None

    log_level: str = "INFO"

    @field_validator("models", "promote_stages", "drift_alert_names", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("github_api_url", "azure_devops_org_url", "queue_account_url", "table_account_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Check everything at once and name every offending setting in one error."""
        problems = [*self._secret_problems(), *self._storage_problems(), *self._dispatch_problems()]
        if self.retry_max_seconds < self.retry_base_seconds:
            problems.append("LISTENER_RETRY_MAX_SECONDS must be at least LISTENER_RETRY_BASE_SECONDS")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _secret_problems(self) -> list[str]:
        problems = []
        for name in ("webhook_secret", "job_token", "alertmanager_token", "azure_monitor_token"):
            secret: SecretStr | None = getattr(self, name)
            if secret is not None and len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
                problems.append(f"{ENV_PREFIX}{name.upper()} must be at least {MIN_SECRET_LENGTH} characters")
        return problems

    def _storage_problems(self) -> list[str]:
        problems = []
        has_urls = self.queue_account_url is not None or self.table_account_url is not None
        if self.storage_connection_string is not None and has_urls:
            problems.append("set LISTENER_STORAGE_CONNECTION_STRING or the account URLs, not both")
        elif self.storage_connection_string is None and (
            self.queue_account_url is None or self.table_account_url is None
        ):
            problems.append(
                "storage: set LISTENER_STORAGE_CONNECTION_STRING, or both LISTENER_QUEUE_ACCOUNT_URL and "
                "LISTENER_TABLE_ACCOUNT_URL (managed identity)"
            )
        for name in ("queue_name", "poison_queue_name"):
            if not _QUEUE_NAME.match(getattr(self, name)):
                problems.append(f"{ENV_PREFIX}{name.upper()} is not a valid queue name (3-63 of a-z, 0-9, -)")
        if self.queue_name == self.poison_queue_name:
            problems.append("LISTENER_QUEUE_NAME and LISTENER_POISON_QUEUE_NAME must differ")
        if not _TABLE_NAME.match(self.dedupe_table_name):
            problems.append("LISTENER_DEDUPE_TABLE_NAME is not a valid table name (3-63 letters and digits)")
        return problems

    def _dispatch_problems(self) -> list[str]:
        problems = []
        if self.dispatch_target is DispatchTarget.GITHUB:
            if self.github_repository is None or not _REPOSITORY.match(self.github_repository):
                problems.append("LISTENER_GITHUB_REPOSITORY must be owner/name for the github target")
            if self.github_token is None or not self.github_token.get_secret_value():
                problems.append("LISTENER_GITHUB_TOKEN is required for the github target")
            return problems
        for name in ("azure_devops_org_url", "azure_devops_project", "azure_devops_pipeline_id"):
            if getattr(self, name) is None:
                problems.append(f"{ENV_PREFIX}{name.upper()} is required for the azure-devops target")
        if self.azure_devops_token is None or not self.azure_devops_token.get_secret_value():
            problems.append("LISTENER_AZURE_DEVOPS_TOKEN is required for the azure-devops target")
        return problems

    def secret_values(self) -> tuple[str, ...]:
        """The plain values of every secret setting that is set (for the log redaction filter)."""
        values: list[str] = []
        for field_name in _SECRET_FIELDS:
            secret: SecretStr | None = getattr(self, field_name)
            if secret is not None and secret.get_secret_value():
                values.append(secret.get_secret_value())
        return tuple(values)


def load_settings(**overrides: Any) -> ListenerSettings:
    """Read the settings from the environment; keyword arguments (field names) override it (tests use them)."""
    return ListenerSettings(**overrides)


def _env_name(field_name: str) -> str:
    field = ListenerSettings.model_fields[field_name]
    if isinstance(field.validation_alias, AliasChoices):
        first = field.validation_alias.choices[0]
        assert isinstance(first, str)
        return first
    return f"{ENV_PREFIX}{field_name.upper()}"


_SECRET_FIELDS = (
    "webhook_secret",
    "job_token",
    "alertmanager_token",
    "azure_monitor_token",
    "storage_connection_string",
    "github_token",
    "azure_devops_token",
)

# Every environment variable the listener reads, and the ones that are secrets (Key Vault references in Azure).
ALL_SETTINGS: frozenset[str] = frozenset(_env_name(name) for name in ListenerSettings.model_fields)
SECRET_SETTINGS: frozenset[str] = frozenset(_env_name(name) for name in _SECRET_FIELDS)
