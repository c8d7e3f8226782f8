"""What tells the release listener that a model was promoted: a registry webhook, or a job for Unity Catalog.

* Workspace registry (`modelRegistry.type: workspace`): a Databricks MLflow registry webhook on the promote events of
  `release.events`, for the pinned model or registry-wide (`release.webhookScope`), calling the listener's
  `/api/webhooks/databricks` URL (function key included) and signing every delivery with the shared HMAC secret
  (`X-Databricks-Signature`). URL and secret are secret inputs and secret outputs.
* Unity Catalog (`modelRegistry.type: unity-catalog`) has no registry webhooks, and the provider refuses a job
  trigger of the model kind (its Check admits only file arrival, table update or periodic triggers). Instead a job
  on a schedule (every few minutes) runs one small serverless notebook task that reads the promote alias
  (`release.promoteAlias`) of the pinned model, or of every model in the schema of `modelRegistry`, and POSTs each
  one to the listener's `/api/webhooks/databricks-job` with the bearer job token. Its delivery id names the model,
  version, alias and how many times the alias moved before (a tag the job keeps on the model), so the listener hands
  each move off once however many times it is read, a rollback to an earlier version included.

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

import pulumi
import pulumi_databricks as databricks

from stacks.settings import ModelRegistrySettings, ModelSettings, ReleaseSettings

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

_UC_NAME = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")

# TEST_MODE webhooks fire only from the test endpoint, DISABLED ones never. A paused schedule is the job's
# counterpart of both: no run on its own, while "Run now" still works.
_SCHEDULE_PAUSE_STATUS = {"ACTIVE": "UNPAUSED", "TEST_MODE": "PAUSED", "DISABLED": "PAUSED"}


@dataclass(frozen=True)
class ModelRegistryWebhookArgs:
    """The release settings, the pinned model and what the listener shares with its callers."""

    release: ReleaseSettings
    """Promote events, scope, status and promote alias."""
    model: ModelSettings | None
    """The pinned model (None on day zero); the scope when `release.webhookScope` is model."""
    registry: ModelRegistrySettings
    """Where models are registered; `type` picks a registry webhook or a Unity Catalog job."""
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


def _validate(args: ModelRegistryWebhookArgs) -> None:
    if args.release.webhook_scope == "model" and args.model is None:
        raise pulumi.InputPropertyError(
            "release.webhookScope", "model needs a pinned model; use registry until the first promotion"
        )
    if args.registry.type == "unity-catalog" and args.model is not None and not _UC_NAME.match(args.model.name):
        raise pulumi.InputPropertyError(
            "model.name",
            f"a Unity Catalog model is named catalog.schema.model (three parts), not {args.model.name!r}",
        )


class ModelRegistryWebhook(pulumi.ComponentResource):
    """The promotion signal for the pinned model (see the module docstring)."""

    webhook: databricks.MlflowWebhook | None
    job: databricks.Job | None

    def __init__(self, name: str, args: ModelRegistryWebhookArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:release:ModelRegistryWebhook", name, None, opts)
        _validate(args)
        self.webhook = None
        self.job = None
        if args.registry.type == "unity-catalog":
            self.job = self._alias_job(name, args)
        else:
            self.webhook = self._registry_webhook(name, args)
        self.register_outputs(
            {
                "webhookId": self.webhook.id if self.webhook is not None else None,
                "jobId": self.job.id if self.job is not None else None,
            }
        )

    def _registry_webhook(self, name: str, args: ModelRegistryWebhookArgs) -> databricks.MlflowWebhook:
        release = args.release
        model_name = args.model.name if release.webhook_scope == "model" and args.model is not None else None
        return databricks.MlflowWebhook(
            f"{name}-webhook",
            events=list(release.events),
            model_name=model_name,
            status=release.webhook_status,
            description=(
                f"Release on promotion ({', '.join(release.events)}) of "
                f"{model_name or 'every model'}: calls the mlops release listener."
            ),
            http_url_spec=databricks.MlflowWebhookHttpUrlSpecArgs(
                # The SDK does not mark either as secret; the URL carries the function key.
                url=pulumi.Output.secret(args.listener_webhook_url),
                secret=pulumi.Output.secret(args.hmac_secret),
                enable_ssl_verification=True,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, additional_secret_outputs=["httpUrlSpec"], depends_on=list(args.scope_ready)
            ),
        )

    def _alias_job(self, name: str, args: ModelRegistryWebhookArgs) -> databricks.Job:
        release = args.release
        child = pulumi.ResourceOptions(parent=self)
        # Where the listener URL and the token live. A Databricks-backed secret scope is the most secure place the
        # provider offers for them: values are write-only through the API, never shown in the job's settings, run
        # parameters or UI, redacted from notebook output, and readable only by principals with READ on the scope
        # (the deploying principal that owns it and runs the job; workspace admins). A job parameter would be
        # visible to anyone who can see the job; an Azure Key Vault-backed scope cannot be created by a service
        # principal and would not hold the URL's function key anyway.
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
        # The model, or the schema of modelRegistry for a registry-wide scope (every model in it, the first included).
        if release.webhook_scope == "model" and args.model is not None:
            securable = args.model.name
        else:
            securable = args.registry.schema_full_name
        return databricks.Job(
            f"{name}-job",
            name=f"{name}: notify the release listener ({securable})",
            description=(
                f"Reads alias {release.promote_alias!r} of the models in {securable} every five minutes and tells "
                "the mlops release listener which version it names (the listener acts on each once)."
            ),
            # A schedule, not a model update trigger: the provider's Check refuses a trigger without file_arrival,
            # table_update or periodic (terraform-provider-databricks jobs/resource_job.go, ExactlyOneOf).
            schedule=databricks.JobScheduleArgs(
                quartz_cron_expression=POLL_SCHEDULE,
                timezone_id="UTC",
                pause_status=_SCHEDULE_PAUSE_STATUS[release.webhook_status],
            ),
            parameters=[
                databricks.JobParameterArgs(name="securable", default=securable),
                databricks.JobParameterArgs(name="alias", default=release.promote_alias),
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
