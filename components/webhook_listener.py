"""The release listener: a Python Function App on Linux Flex Consumption that receives the registry's webhooks.

Owns: the app's user-assigned identity, the Flex Consumption plan and app, its host storage account (identity only,
shared keys off) with the hand-off queue, the poison queue and the dedupe table, a separate code-package account
with the deployment container the app runs its package from, and the role assignments the identity needs, each at
the narrowest scope that works. Secrets never enter the app's settings: they are Key Vault references resolved by
the platform with the identity. The code package itself is not Pulumi's: the deploy workflow's publish step owns it.

The component calls one builder per part: `build_listener_storage` (components/listener_storage.py),
`grant_listener_access` (components/listener_access.py), `build_function_app` and its app settings
(components/listener_app.py); the package's file list and hash are in components/listener_package.py.

Registered outputs: `defaultHostName`, `databricksWebhookUrl` and `jobWebhookUrl` (secret: they point at the release
trigger), `healthUrl`, `identityPrincipalId`, `storageAccountName`, `queueName`, `poisonQueueName` and
`packageSha256` (the content hash of the package the publish step must deploy); `function_app` is the app resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
from pulumi_azure_native import managedidentity, web

from components.contracts import listener
from components.listener_access import SECRET_URI, grant_listener_access
from components.listener_app import (
    AzureDevOpsDispatch,
    Dispatch,
    GitHubDispatch,
    ListenerRelease,
    build_function_app,
    key_vault_reference,
    listener_app_settings,
)
from components.listener_package import package_files, package_sha256
from components.listener_storage import (
    DEDUPE_TABLE_NAME,
    DEPLOYMENT_CONTAINER,
    PACKAGE_BLOB_NAME,
    POISON_QUEUE_NAME,
    QUEUE_NAME,
    build_listener_storage,
)
from components.placement import Placement

# Re-exported: the tests, release/package_listener.py and the lock check import them from here.
__all__ = [
    "DEDUPE_TABLE_NAME",
    "DEPLOYMENT_CONTAINER",
    "PACKAGE_BLOB_NAME",
    "POISON_QUEUE_NAME",
    "QUEUE_NAME",
    "AzureDevOpsDispatch",
    "Dispatch",
    "GitHubDispatch",
    "ListenerRelease",
    "WebhookListener",
    "WebhookListenerArgs",
    "key_vault_reference",
    "listener_app_settings",
    "package_files",
    "package_sha256",
]

_REQUIRED_FILES = ("function_app.py", "host.json", "requirements.txt")


@dataclass(frozen=True)
class WebhookListenerArgs:
    """What the listener needs from the rest of the platform."""

    placement: Placement
    """Names (app, plan, identity and storage), resource group, region and tags of every child; `protect` protects
    the stateful children (identity, host storage, queues, table, app)."""
    source_dir: Path
    """The Function App root (`function_app.py`, `host.json`, `requirements.txt`, the `webhook_listener` package)."""
    app_insights_connection_string: pulumi.Input[str]
    """Application Insights connection string (an ingestion endpoint; telemetry is authenticated with Entra ID)."""
    app_insights_id: pulumi.Input[str]
    """Application Insights resource id: the identity publishes telemetry there (Monitoring Metrics Publisher)."""
    key_vault_id: pulumi.Input[str]
    """The platform Key Vault (RBAC authorization) that holds the secrets below."""
    webhook_secret_uri: pulumi.Input[str]
    """Versionless Key Vault URI of the webhook HMAC secret shared with the registry webhook."""
    job_token_secret_uri: pulumi.Input[str]
    """Versionless Key Vault URI of the bearer token the Unity Catalog job sends."""
    dispatch_token_secret_uri: pulumi.Input[str]
    """Versionless Key Vault URI of the CI dispatch token (GitHub or Azure DevOps, per `release.dispatch`)."""
    release: ListenerRelease
    """What counts as a promotion and where the release is dispatched."""
    model_names: Sequence[str]
    """Models the listener acts on (registered names; `catalog.schema.model` for Unity Catalog); empty means any."""
    target_stack: str
    """The stack a promotion releases to first (the pin the dispatched workflow bumps)."""
    secrets: Sequence[pulumi.Resource] = ()
    """The Key Vault secrets behind those URIs: each role assignment scoped to a secret is made after them."""
    azure_monitor_token_secret_uri: pulumi.Input[str] | None = None
    """Versionless Key Vault URI of the secret the action group's webhook URL carries; None: that route refuses all."""
    alertmanager_token_secret_uri: pulumi.Input[str] | None = None
    """Versionless Key Vault URI of the bearer token Alertmanager sends; None: that route refuses all."""


def _validate(args: WebhookListenerArgs) -> None:
    errors: list[pulumi.InputPropertyErrorDetails] = []

    def problem(path: str, reason: str) -> None:
        errors.append(pulumi.InputPropertyErrorDetails(property_path=path, reason=reason))

    if not args.source_dir.is_dir():
        problem("source_dir", f"{args.source_dir} is not a directory")
    else:
        missing = [f for f in _REQUIRED_FILES if not (args.source_dir / f).is_file()]
        if missing:
            problem("source_dir", f"{args.source_dir} is not a Function App root: missing {', '.join(missing)}")
    if not args.placement.location:
        problem("location", "an Azure region is required")
    if not args.target_stack:
        problem("target_stack", "the stack a promotion releases to is required")
    for i, model in enumerate(args.model_names):
        if not model or "," in model:
            problem(f"model_names[{i}]", f"{model!r} is not a model name (non-empty, no commas)")
    for field in (
        "webhook_secret_uri",
        "job_token_secret_uri",
        "dispatch_token_secret_uri",
        "azure_monitor_token_secret_uri",
        "alertmanager_token_secret_uri",
    ):
        uri = getattr(args, field)
        if isinstance(uri, str):
            match = SECRET_URI.match(uri)
            if match is None:
                problem(
                    field,
                    f"{uri!r} is not a versionless Key Vault secret URI (https://<vault>.vault.azure.net/secrets/<name>)",
                )
            elif isinstance(args.key_vault_id, str) and not args.key_vault_id.lower().endswith(
                f"/vaults/{match['vault'].lower()}"
            ):
                problem(field, f"the secret is in vault {match['vault']!r}, not in key_vault_id")
    if errors:
        summary = "; ".join(f"{e['property_path']}: {e['reason']}" for e in errors)
        raise pulumi.InputPropertiesError(f"invalid WebhookListenerArgs: {summary}", errors)


class WebhookListener(pulumi.ComponentResource):
    """The release listener Function App and everything it owns (see the module docstring)."""

    function_app: web.WebApp
    default_host_name: pulumi.Output[str]
    databricks_webhook_url: pulumi.Output[str]
    job_webhook_url: pulumi.Output[str]
    health_url: pulumi.Output[str]
    identity_principal_id: pulumi.Output[str]
    storage_account_name: pulumi.Output[str]
    queue_name: pulumi.Output[str]
    poison_queue_name: pulumi.Output[str]
    package_sha256: str

    def __init__(self, name: str, args: WebhookListenerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:release:WebhookListener", name, None, opts)
        _validate(args)
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=args.placement.naming.resource("listener-id"),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            tags=args.placement.tag_map(),
            opts=pulumi.ResourceOptions(parent=self, protect=args.placement.protect),
        )
        stores = build_listener_storage(name, args.placement, self)

        # The code package has one owner: the deploy workflow's publish step. Flex Consumption runs the zip named
        # `released-package.zip` in the deployment container, but only a *one deploy* publishes it (the
        # `/api/publish` endpoint behind `az functionapp deploy`); "if you choose to instead directly upload your
        # package to the container, the package doesn't get automatically deployed", and a Python app also needs
        # the remote build that installs its requirements (functions-infrastructure-as-code.md, "Deployment
        # sources"). A blob Pulumi uploaded would be a second owner of the same name: a `pulumi up` that changed
        # `listener/` without the publish step would swap in a package without its dependencies. Pulumi only
        # exports the content hash of the package this commit's `listener/` makes (`packageSha256`, the same
        # function release/package_listener.py uses), so the publish step can compare it with what it deploys.
        self.package_sha256 = package_sha256(package_files(args.source_dir))
        access = grant_listener_access(name, args, identity=identity, stores=stores, parent=self)
        app = build_function_app(name, args, identity=identity, stores=stores, access=access, parent=self)

        # No function key in the URLs: the functions are anonymous at the host and every route verifies its own
        # HMAC signature or bearer token (listener/function_app.py). Reading the app's host keys here would fail
        # on the first `pulumi up`: the app has no code until the publish step deploys it, and a codeless app's
        # host runtime does not answer the keys API (Azure/azure-functions-host#5722, Azure/azure-cli#20892).
        # The URLs stay secret: they are where a release is triggered.
        self.function_app = app
        self.default_host_name = app.default_host_name
        base = pulumi.Output.concat("https://", app.default_host_name)
        self.databricks_webhook_url = pulumi.Output.secret(
            pulumi.Output.concat(base, listener.Routes.WEBHOOK_DATABRICKS)
        )
        self.job_webhook_url = pulumi.Output.secret(pulumi.Output.concat(base, listener.Routes.WEBHOOK_DATABRICKS_JOB))
        self.health_url = pulumi.Output.concat(base, listener.Routes.HEALTH)
        self.identity_principal_id = identity.principal_id
        self.storage_account_name = stores.account.name
        self.queue_name = stores.queue.name
        self.poison_queue_name = stores.poison_queue.name
        self.register_outputs(
            {
                "defaultHostName": self.default_host_name,
                "databricksWebhookUrl": self.databricks_webhook_url,
                "jobWebhookUrl": self.job_webhook_url,
                "healthUrl": self.health_url,
                "identityPrincipalId": self.identity_principal_id,
                "storageAccountName": self.storage_account_name,
                "queueName": self.queue_name,
                "poisonQueueName": self.poison_queue_name,
                "packageSha256": self.package_sha256,
            }
        )
