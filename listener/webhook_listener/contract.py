"""What the Pulumi program relies on about the listener: the environment it reads and the storage it uses.

The program sets the Function App's settings by these names and creates the queues and the table by these names;
`settings.ListenerSettings` reads the same names and takes its storage defaults from here. Standard library only:
the program imports this module without the listener's dependencies (pydantic-settings, the Azure SDKs), and
`webhook_listener/__init__.py` imports nothing. A test holds `Env` to the settings class's own list
(`settings.ALL_SETTINGS`).
"""

from __future__ import annotations

import enum
from typing import Final

ENV_PREFIX: Final = "LISTENER_"

QUEUE_NAME: Final = "model-promotions"
"""The hand-off queue between the HTTP routes and the worker (the Functions queue trigger)."""
POISON_QUEUE_NAME: Final = "model-promotions-poison"
"""Where undeliverable messages go; also the Functions queue trigger's own `<queue>-poison`."""
DEDUPE_TABLE_NAME: Final = "webhookdeliveries"
"""One row per delivery id: what makes every webhook act at most once."""
QUEUE_TRIGGER_CONNECTION: Final = "AzureWebJobsStorage"
"""The Functions host connection the queue trigger binds to (identity-based host storage: `AzureWebJobsStorage__*`)."""


class DispatchTarget(enum.StrEnum):
    """Where the listener starts a release: the value of `Env.DISPATCH_TARGET`."""

    GITHUB = "github"
    AZURE_DEVOPS = "azure-devops"


class Events:
    """The event types the listener dispatches to CI (GitHub's `repository_dispatch` `event_type`), each with the
    `client_payload` its schema's `client_payload()` writes; the release tools read them (`release/promote.py`,
    `release/drift.py`) and the workflows trigger on them."""

    PROMOTED: Final = "model-promoted"
    DRIFT: Final = "model-drift"


class Routes:
    """The paths the senders are given: the registry webhooks (the program registers them), the alert routes
    (the alert rules' action groups and Alertmanager post there) and the health check. Under `/api`, the Functions
    host's route prefix; the app's route table is built from these."""

    WEBHOOK_MLFLOW: Final = "/api/webhooks/mlflow"
    WEBHOOK_DATABRICKS: Final = "/api/webhooks/databricks"
    WEBHOOK_DATABRICKS_JOB: Final = "/api/webhooks/databricks-job"
    ALERTS_ALERTMANAGER: Final = "/api/alerts/alertmanager"
    ALERTS_AZURE_MONITOR: Final = "/api/alerts/azure-monitor"
    HEALTH: Final = "/api/health"


class Env:
    """The names of the environment variables (app settings) the listener reads."""

    WEBHOOK_SECRET: Final = "LISTENER_WEBHOOK_SECRET"
    JOB_TOKEN: Final = "LISTENER_JOB_TOKEN"
    ALERTMANAGER_TOKEN: Final = "LISTENER_ALERTMANAGER_TOKEN"
    AZURE_MONITOR_TOKEN: Final = "LISTENER_AZURE_MONITOR_TOKEN"
    TIMESTAMP_TOLERANCE_SECONDS: Final = "LISTENER_TIMESTAMP_TOLERANCE_SECONDS"
    MAX_BODY_BYTES: Final = "LISTENER_MAX_BODY_BYTES"
    MODELS: Final = "LISTENER_MODELS"
    PROMOTE_ALIAS: Final = "LISTENER_PROMOTE_ALIAS"
    PROMOTE_STAGES: Final = "LISTENER_PROMOTE_STAGES"
    TARGET_STACK: Final = "LISTENER_TARGET_STACK"
    DRIFT_ALERT_NAMES: Final = "LISTENER_DRIFT_ALERT_NAMES"
    STORAGE_CONNECTION_STRING: Final = "LISTENER_STORAGE_CONNECTION_STRING"
    QUEUE_ACCOUNT_URL: Final = "LISTENER_QUEUE_ACCOUNT_URL"
    TABLE_ACCOUNT_URL: Final = "LISTENER_TABLE_ACCOUNT_URL"
    AZURE_CLIENT_ID: Final = "AZURE_CLIENT_ID"
    """No prefix: DefaultAzureCredential reads the same variable to pick the user-assigned identity."""
    QUEUE_NAME: Final = "LISTENER_QUEUE_NAME"
    POISON_QUEUE_NAME: Final = "LISTENER_POISON_QUEUE_NAME"
    DEDUPE_TABLE_NAME: Final = "LISTENER_DEDUPE_TABLE_NAME"
    QUEUE_TRIGGER_CONNECTION: Final = "LISTENER_QUEUE_TRIGGER_CONNECTION"
    ACCEPT_TIMEOUT_SECONDS: Final = "LISTENER_ACCEPT_TIMEOUT_SECONDS"
    DISPATCH_TARGET: Final = "LISTENER_DISPATCH_TARGET"
    MAX_DISPATCH_ATTEMPTS: Final = "LISTENER_MAX_DISPATCH_ATTEMPTS"
    RETRY_BASE_SECONDS: Final = "LISTENER_RETRY_BASE_SECONDS"
    RETRY_MAX_SECONDS: Final = "LISTENER_RETRY_MAX_SECONDS"
    DISPATCH_TIMEOUT_SECONDS: Final = "LISTENER_DISPATCH_TIMEOUT_SECONDS"
    WORKER_POLL_SECONDS: Final = "LISTENER_WORKER_POLL_SECONDS"
    GITHUB_API_URL: Final = "LISTENER_GITHUB_API_URL"
    GITHUB_REPOSITORY: Final = "LISTENER_GITHUB_REPOSITORY"
    GITHUB_TOKEN: Final = "LISTENER_GITHUB_TOKEN"
    GITHUB_EVENT_TYPE: Final = "LISTENER_GITHUB_EVENT_TYPE"
    GITHUB_DRIFT_EVENT_TYPE: Final = "LISTENER_GITHUB_DRIFT_EVENT_TYPE"
    AZURE_DEVOPS_ORG_URL: Final = "LISTENER_AZURE_DEVOPS_ORG_URL"
    AZURE_DEVOPS_PROJECT: Final = "LISTENER_AZURE_DEVOPS_PROJECT"
    AZURE_DEVOPS_PIPELINE_ID: Final = "LISTENER_AZURE_DEVOPS_PIPELINE_ID"
    AZURE_DEVOPS_DRIFT_PIPELINE_ID: Final = "LISTENER_AZURE_DEVOPS_DRIFT_PIPELINE_ID"
    AZURE_DEVOPS_TOKEN: Final = "LISTENER_AZURE_DEVOPS_TOKEN"
    LOG_LEVEL: Final = "LISTENER_LOG_LEVEL"


def env_names() -> frozenset[str]:
    """Every name in `Env`."""
    return frozenset(value for key, value in vars(Env).items() if key.isupper())
