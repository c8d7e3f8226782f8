"""What tells the release listener that a model was promoted: a registry webhook, or a job for Unity Catalog.

* Workspace registry (`RegistryWebhook`): a Databricks MLflow registry webhook on the promote events, for one model
  or registry-wide, calling the listener's `/api/webhooks/databricks` URL and signing every delivery with the shared
  HMAC secret (`X-Databricks-Signature`). URL and secret are secret inputs and secret outputs.
* Unity Catalog (`AliasJob`) has no registry webhooks, and the provider refuses a job trigger of the model kind (its
  Check admits only file arrival, table update or periodic triggers). Instead a job on a schedule (every few
  minutes) runs one small serverless notebook task that reads the promote alias of one model, or of every model in
  a schema, and POSTs each one to the listener's `/api/webhooks/databricks-job` with the bearer job token. Its
  delivery id names the model, version, alias and how many times the alias moved before (a tag the job keeps on the
  model), so the listener hands each move off once however many times it is read, a rollback to an earlier version
  included.

Day zero: a model-scoped webhook names a model, and the registry refuses one for a model that does not exist yet,
so before the first model is registered the scope is the registry (or the schema), which fires for the first
version ever registered. Nothing here depends on the pinned version, so the first pin changes none of it, and
nothing depends on who runs `pulumi up`: the notebook lives in a folder of the platform at the workspace root.

The Databricks provider comes in through `opts` (`provider=` or `providers=[...]`) and reaches every child.
Registered outputs: `webhookId`, `jobId` (each None when that signal is not declared); the `webhook` and `job`
resources (or None) are attributes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pulumi
import pulumi_databricks as databricks

NOTEBOOK_SOURCE = Path(__file__).parent / "notebooks" / "notify_listener.py"
# Keys in the job's secret scope; the notebook reads them by these names.
JOB_URL_KEY = "listener-job-url"
JOB_TOKEN_KEY = "listener-job-token"
# The platform's folder at the workspace root, where only workspace admins create or edit anything: the job runs
# its notebook with READ on the secret scope, so whoever can edit the notebook can read the secrets. (/Shared is
# editable by every workspace user, and a home folder differs with whoever runs `pulumi up`.)
WORKSPACE_FOLDER = "/mlops-release"
# How often the job reads the alias (Quartz cron, UTC): every five minutes.
POLL_SCHEDULE = "0 0/5 * * * ?"

# A Unity Catalog securable the job reads: a schema (`catalog.schema`) or a model (`catalog.schema.model`).
_UC_SECURABLE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?$")

# Every event a registry webhook may name (docs.databricks.com/api/model-registry/v1/registry-webhook, `events`).
REGISTRY_WEBHOOK_EVENTS = frozenset(
    {
        "MODEL_VERSION_CREATED",
        "MODEL_VERSION_TRANSITIONED_STAGE",
        "TRANSITION_REQUEST_CREATED",
        "COMMENT_CREATED",
        "REGISTERED_MODEL_CREATED",
        "MODEL_VERSION_TAG_SET",
        "MODEL_VERSION_TRANSITIONED_TO_STAGING",
        "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION",
        "MODEL_VERSION_TRANSITIONED_TO_ARCHIVED",
        "TRANSITION_REQUEST_TO_STAGING_CREATED",
        "TRANSITION_REQUEST_TO_PRODUCTION_CREATED",
        "TRANSITION_REQUEST_TO_ARCHIVED_CREATED",
    }
)
# "This event type can only be specified for a registry-wide webhook" (same page).
REGISTRY_WIDE_ONLY = "REGISTERED_MODEL_CREATED"

WebhookStatus = Literal["ACTIVE", "TEST_MODE", "DISABLED"]
# TEST_MODE webhooks fire only from the test endpoint, DISABLED ones never. A paused schedule is the job's
# counterpart of both: no run on its own, while "Run now" still works.
_SCHEDULE_PAUSE_STATUS: dict[WebhookStatus, str] = {"ACTIVE": "UNPAUSED", "TEST_MODE": "PAUSED", "DISABLED": "PAUSED"}


@dataclass(frozen=True)
class RegistryWebhook:
    """The workspace registry's signal: a webhook on promote events, for one model or for every model."""

    events: Sequence[str]
    """The registry events that count as a promotion (at least one)."""
    model_name: str | None
    """The one model it fires for; None: every model of the registry (the only scope before the first model)."""
    status: WebhookStatus = "ACTIVE"
    """ACTIVE, TEST_MODE (fires only from the test endpoint) or DISABLED."""

    def __post_init__(self) -> None:
        if not self.events:
            raise ValueError("events: at least one promote event is required")
        unknown = sorted(set(self.events) - REGISTRY_WEBHOOK_EVENTS)
        if unknown:
            raise ValueError(f"events: {', '.join(unknown)} are not registry webhook events")
        if len(set(self.events)) != len(self.events):
            raise ValueError(f"events: each event once (got {list(self.events)})")
        if self.model_name is not None and REGISTRY_WIDE_ONLY in self.events:
            raise ValueError(f"events: {REGISTRY_WIDE_ONLY} fires only on a registry-wide webhook (model_name None)")
        if self.model_name == "":
            raise ValueError("model_name: a model name, or None for every model")


@dataclass(frozen=True)
class AliasJob:
    """Unity Catalog's signal: a scheduled job that reads the promote alias of one model or of a schema's models."""

    securable: str
    """`catalog.schema.model` (one model) or `catalog.schema` (every model in it, the first one included)."""
    alias: str
    """The alias whose move is a promotion."""
    status: WebhookStatus = "ACTIVE"
    """ACTIVE runs on schedule; TEST_MODE and DISABLED pause the schedule ("Run now" still works)."""

    def __post_init__(self) -> None:
        if not _UC_SECURABLE.match(self.securable):
            raise ValueError(
                f"securable: expected catalog.schema.model or catalog.schema (Unity Catalog), not {self.securable!r}"
            )
        if not self.alias:
            raise ValueError("alias: the promote alias is required")


PromotionSignal = RegistryWebhook | AliasJob


@dataclass(frozen=True)
class ModelRegistryWebhookArgs:
    """The promotion signal to declare and what the listener shares with its callers."""

    signal: PromotionSignal
    """A registry webhook (workspace registry) or an alias-reading job (Unity Catalog), and what it watches."""
    listener_webhook_url: pulumi.Input[str]
    """The listener's `/api/webhooks/databricks` URL (a secret; the route checks the HMAC signature)."""
    listener_job_url: pulumi.Input[str]
    """The listener's `/api/webhooks/databricks-job` URL (a secret; the route checks the bearer token)."""
    hmac_secret: pulumi.Input[str]
    """The webhook's signing secret, the same value the listener reads from Key Vault."""
    job_token: pulumi.Input[str]
    """The bearer token the Unity Catalog job sends, the same value the listener reads from Key Vault."""
    scope_ready: Sequence[pulumi.Resource] = ()
    """What must exist before the webhook or job is made: the schema (and models) a job reads."""


class ModelRegistryWebhook(pulumi.ComponentResource):
    """The promotion signal for the pinned model (see the module docstring)."""

    webhook: databricks.MlflowWebhook | None
    job: databricks.Job | None

    def __init__(self, name: str, args: ModelRegistryWebhookArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:release:ModelRegistryWebhook", name, None, opts)
        self.webhook = None
        self.job = None
        if isinstance(args.signal, AliasJob):
            self.job = self._alias_job(name, args.signal, args)
        else:
            self.webhook = self._registry_webhook(name, args.signal, args)
        self.register_outputs(
            {
                "webhookId": self.webhook.id if self.webhook is not None else None,
                "jobId": self.job.id if self.job is not None else None,
            }
        )

    def _registry_webhook(
        self, name: str, signal: RegistryWebhook, args: ModelRegistryWebhookArgs
    ) -> databricks.MlflowWebhook:
        model_name = signal.model_name
        return databricks.MlflowWebhook(
            f"{name}-webhook",
            events=list(signal.events),
            model_name=model_name,
            status=signal.status,
            description=(
                f"Release on promotion ({', '.join(signal.events)}) of "
                f"{model_name or 'every model'}: calls the mlops release listener."
            ),
            http_url_spec=databricks.MlflowWebhookHttpUrlSpecArgs(
                # The SDK marks neither as secret. The secret signs every delivery; the URL shares its output
                # (`httpUrlSpec`), which is marked secret as a whole.
                url=pulumi.Output.secret(args.listener_webhook_url),
                secret=pulumi.Output.secret(args.hmac_secret),
                enable_ssl_verification=True,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, additional_secret_outputs=["httpUrlSpec"], depends_on=list(args.scope_ready)
            ),
        )

    def _alias_job(self, name: str, signal: AliasJob, args: ModelRegistryWebhookArgs) -> databricks.Job:
        child = pulumi.ResourceOptions(parent=self)
        # Where the listener URL and the token live. A Databricks-backed secret scope is the most secure place the
        # provider offers for them: values are write-only through the API, never shown in the job's settings, run
        # parameters or UI, redacted from notebook output, and readable only by principals with READ on the scope
        # (the deploying principal that owns it and runs the job; workspace admins). A job parameter would be
        # visible to anyone who can see the job; an Azure Key Vault-backed scope cannot be created by a service
        # principal.
        scope = databricks.SecretScope(f"{name}-scope", name=f"{name}-listener", backend_type="DATABRICKS", opts=child)
        url_secret = databricks.Secret(
            f"{name}-job-url",
            scope=scope.name,
            key=JOB_URL_KEY,
            string_value=pulumi.Output.secret(args.listener_job_url),
            opts=child,
        )
        token_secret = databricks.Secret(
            f"{name}-job-token",
            scope=scope.name,
            key=JOB_TOKEN_KEY,
            string_value=pulumi.Output.secret(args.job_token),
            opts=child,
        )
        # Workspace admins have CAN MANAGE on every folder, and only they create objects at the workspace root;
        # objects inherit their folder's permissions (learn.microsoft.com/azure/databricks/security/auth/access-control,
        # "Folder permissions"; /Shared gives every user CAN MANAGE). The path does not depend on who deploys.
        folder_path = f"{WORKSPACE_FOLDER}/{name}"
        folder = databricks.Directory(f"{name}-folder", path=folder_path, opts=child)
        notebook = databricks.Notebook(
            f"{name}-notebook",
            # A plain string, known in a preview before the folder exists.
            path=f"{folder_path}/notify_listener",
            # The notebook's bytes, not its path: a path differs per checkout (a CI runner, a laptop) and would show
            # as a change on every deploy from elsewhere; the content changes only when the notebook does.
            content_base64=base64.b64encode(NOTEBOOK_SOURCE.read_bytes()).decode("ascii"),
            language="PYTHON",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[folder]),
        )
        securable = signal.securable
        return databricks.Job(
            f"{name}-job",
            name=f"{name}: notify the release listener ({securable})",
            description=(
                f"Reads alias {signal.alias!r} of the models in {securable} every five minutes and tells "
                "the mlops release listener which version it names (the listener acts on each once)."
            ),
            # A schedule, not a model update trigger: the provider's Check refuses a trigger without file_arrival,
            # table_update or periodic (terraform-provider-databricks jobs/resource_job.go, ExactlyOneOf).
            schedule=databricks.JobScheduleArgs(
                quartz_cron_expression=POLL_SCHEDULE,
                timezone_id="UTC",
                pause_status=_SCHEDULE_PAUSE_STATUS[signal.status],
            ),
            parameters=[
                databricks.JobParameterArgs(name="securable", default=securable),
                databricks.JobParameterArgs(name="alias", default=signal.alias),
                databricks.JobParameterArgs(name="secret_scope", default=scope.name),
            ],
            tasks=[
                # No cluster settings: the task runs on serverless jobs compute.
                databricks.JobTaskArgs(
                    task_key="notify_listener",
                    notebook_task=databricks.JobTaskNotebookTaskArgs(notebook_path=notebook.path, source="WORKSPACE"),
                    max_retries=3,
                    min_retry_interval_millis=60_000,
                    retry_on_timeout=True,
                    timeout_seconds=300,
                )
            ],
            # One read at a time; a scheduled run that finds one running waits in the queue.
            max_concurrent_runs=1,
            queue=databricks.JobQueueArgs(enabled=True),
            timeout_seconds=1800,
            tags={"managed-by": "pulumi", "purpose": "mlops-release"},
            # No run_as: the job runs as its creator, the deployer, who reads each model's aliases and writes its
            # `mlops_release_<alias>` tag: USE CATALOG, USE SCHEMA, EXECUTE and APPLY TAG, i.e. list the deployer in
            # `releasers` (a schema's owner holds no privileges on the models in it: learn.microsoft.com/azure/
            # databricks/data-governance/unity-catalog/manage-privileges/ownership). Running as a releaser's
            # service principal instead needs the Service Principal User role on it
            # (docs.databricks.com/security/auth/access-control/service-principal-acl.html).
            # The securable it reads should exist by its first run.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[url_secret, token_secret, *args.scope_ready]),
        )
