"""The release listener: a Python Function App on Linux Flex Consumption that receives the registry's webhooks.

Owns: the app's user-assigned identity, the Flex Consumption plan and app, its host storage account (identity only,
shared keys off) with the hand-off queue, the poison queue and the dedupe table, a separate code-package account
with the deployment container the app runs its package from, and the role assignments the identity needs, each at
the narrowest scope that works. Secrets never enter the app's settings: they are Key Vault references resolved by
the platform with the identity. The code package itself is not Pulumi's: the deploy workflow's publish step owns it.

Exports the app, its host name, the two webhook URLs (secret: they point at the release trigger), the health URL,
the identity's principal id, the storage account, the queue names and the content hash of the package the publish
step must deploy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
from pulumi_azure_native import authorization, managedidentity, storage, web

from components.contracts import listener
from components.naming import Naming
from stacks.settings import ReleaseSettings

# The listener's names (listener/webhook_listener/contract.py, which its settings class reads too).
Env = listener.Env
QUEUE_NAME = listener.QUEUE_NAME
POISON_QUEUE_NAME = listener.POISON_QUEUE_NAME
DEDUPE_TABLE_NAME = listener.DEDUPE_TABLE_NAME
# The queue trigger binds to the host storage connection; with identity-based host storage that is the
# `AzureWebJobsStorage__*` settings below, so the trigger and the listener's own clients use the same account.
QUEUE_TRIGGER_CONNECTION = listener.QUEUE_TRIGGER_CONNECTION

# Flex Consumption keeps the code in a blob container of its own ("deployment container"); one deploy writes the
# package there under this exact name (functions-infrastructure-as-code.md, "Deployment package").
DEPLOYMENT_CONTAINER = "app-package"
PACKAGE_BLOB_NAME = "released-package.zip"

PYTHON_VERSION = "3.11"
INSTANCE_MEMORY_MB = 2048
# A webhook receiver sees a handful of requests per release, and the plan scales to zero, so the ceiling only caps
# a burst (forged requests are refused at the signature check, but still run). 40: the lowest ceiling the Flex
# Consumption API has accepted since its preview ("The lowest maximum scale in preview is 40",
# flex-consumption-plan.md); current docs allow 1 (event-driven-scaling.md, "Limit scale-out") and default to 100.
MAXIMUM_INSTANCE_COUNT = 40

# Built-in role definition ids (the same in every tenant).
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"

# What never goes into the code package: tests, caches, local-only settings (local.settings.json holds local
# secrets), virtual environments and locally built dependencies (the platform builds them from requirements.txt).
_EXCLUDED_DIRS = frozenset(
    {"tests", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", "venv", ".python_packages"}
)
_EXCLUDED_FILES = frozenset({"local.settings.json"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_REQUIRED_FILES = ("function_app.py", "host.json", "requirements.txt")

_SECRET_URI = re.compile(r"^https://(?P<vault>[A-Za-z0-9-]+)\.vault\.azure\.net/secrets/(?P<name>[A-Za-z0-9-]+)/?$")


@dataclass(frozen=True)
class WebhookListenerArgs:
    """What the listener needs from the rest of the platform."""

    naming: Naming
    """The stack's naming scheme (app, plan, identity and storage names)."""
    resource_group_name: pulumi.Input[str]
    """The resource group every child lives in."""
    location: str
    """Azure region of every child."""
    tags: Mapping[str, str]
    """Tags on every child that takes tags."""
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
    """Versionless Key Vault URI of the CI dispatch token (GitHub or Azure DevOps, per `release.dispatch.target`)."""
    release: ReleaseSettings
    """What counts as a promotion and where the release is dispatched."""
    model_names: Sequence[str]
    """Models the listener acts on (registered names; `catalog.schema.model` for Unity Catalog); empty means any."""
    target_stack: str
    """The stack a promotion releases to first (the pin the dispatched workflow bumps)."""
    protect: bool
    """Protect the stateful children (identity, storage, queues, table, app) from deletion."""
    secrets: Sequence[pulumi.Resource] = ()
    """The Key Vault secrets behind those URIs: each role assignment scoped to a secret is made after them."""
    azure_monitor_token_secret_uri: pulumi.Input[str] | None = None
    """Versionless Key Vault URI of the secret the action group's webhook URL carries; None: that route refuses all."""
    alertmanager_token_secret_uri: pulumi.Input[str] | None = None
    """Versionless Key Vault URI of the bearer token Alertmanager sends; None: that route refuses all."""


def _alert_token_settings(args: WebhookListenerArgs) -> list[tuple[str, pulumi.Input[str]]]:
    """The alert routes' tokens (issue 13), as Key Vault references, for those that are configured."""
    pairs = (
        (Env.AZURE_MONITOR_TOKEN, args.azure_monitor_token_secret_uri),
        (Env.ALERTMANAGER_TOKEN, args.alertmanager_token_secret_uri),
    )
    return [(name, key_vault_reference(uri)) for name, uri in pairs if uri is not None]


def key_vault_reference(secret_uri: pulumi.Input[str]) -> pulumi.Output[str]:
    """An app setting value the platform replaces with the secret's current value (never the value itself)."""
    return pulumi.Output.concat("@Microsoft.KeyVault(SecretUri=", secret_uri, ")")


def listener_app_settings(
    args: WebhookListenerArgs,
    *,
    storage_account_name: pulumi.Input[str],
    queue_account_url: pulumi.Input[str],
    table_account_url: pulumi.Input[str],
    identity_client_id: pulumi.Input[str],
) -> list[web.NameValuePairArgs]:
    """Every app setting of the listener: the Functions host's own, then the listener's (`LISTENER_*`).

    Flex Consumption takes runtime, version, scale and deployment from `functionAppConfig`, so the settings that
    configure those on other plans (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE,
    WEBSITE_CONTENT*) are deliberately absent. Secrets appear only as Key Vault references.
    """
    release = args.release
    dispatch = release.dispatch
    settings: list[tuple[str, pulumi.Input[str]]] = [
        # Host storage through the identity: no connection string, no account key.
        ("AzureWebJobsStorage__accountName", storage_account_name),
        ("AzureWebJobsStorage__credential", "managedidentity"),
        ("AzureWebJobsStorage__clientId", identity_client_id),
        ("APPLICATIONINSIGHTS_CONNECTION_STRING", args.app_insights_connection_string),
        # Telemetry authenticated with the identity, so App Insights can run with local (key) auth disabled.
        (
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            pulumi.Output.concat("ClientId=", identity_client_id, ";Authorization=AAD"),
        ),
        # DefaultAzureCredential in the listener picks the user-assigned identity by this client id.
        (Env.AZURE_CLIENT_ID, identity_client_id),
        (Env.WEBHOOK_SECRET, key_vault_reference(args.webhook_secret_uri)),
        (Env.JOB_TOKEN, key_vault_reference(args.job_token_secret_uri)),
        *_alert_token_settings(args),
        (Env.MODELS, ",".join(args.model_names)),
        (Env.PROMOTE_ALIAS, release.promote_alias),
        (Env.PROMOTE_STAGES, ",".join(release.promote_stages)),
        (Env.TARGET_STACK, args.target_stack),
        (Env.QUEUE_ACCOUNT_URL, queue_account_url),
        (Env.TABLE_ACCOUNT_URL, table_account_url),
        (Env.QUEUE_NAME, QUEUE_NAME),
        (Env.POISON_QUEUE_NAME, POISON_QUEUE_NAME),
        (Env.DEDUPE_TABLE_NAME, DEDUPE_TABLE_NAME),
        (Env.QUEUE_TRIGGER_CONNECTION, QUEUE_TRIGGER_CONNECTION),
        (Env.DISPATCH_TARGET, dispatch.target),
        (Env.MAX_DISPATCH_ATTEMPTS, str(release.max_dispatch_attempts)),
    ]
    if dispatch.target == "github":
        if dispatch.repository is None:  # DispatchSettings refuses this already; kept for the type checker
            raise ValueError("release.dispatch.repository is required for the github target")
        settings += [
            (Env.GITHUB_API_URL, dispatch.api_url),
            (Env.GITHUB_REPOSITORY, dispatch.repository),
            (Env.GITHUB_EVENT_TYPE, dispatch.event_type),
            (Env.GITHUB_TOKEN, key_vault_reference(args.dispatch_token_secret_uri)),
        ]
    else:
        if dispatch.organization_url is None or dispatch.project is None or dispatch.pipeline_id is None:
            raise ValueError("release.dispatch needs organizationUrl, project and pipelineId for azure-devops")
        settings += [
            (Env.AZURE_DEVOPS_ORG_URL, dispatch.organization_url),
            (Env.AZURE_DEVOPS_PROJECT, dispatch.project),
            (Env.AZURE_DEVOPS_PIPELINE_ID, str(dispatch.pipeline_id)),
            (Env.AZURE_DEVOPS_TOKEN, key_vault_reference(args.dispatch_token_secret_uri)),
        ]
    return [web.NameValuePairArgs(name=name, value=value) for name, value in settings]


def package_files(source_dir: Path) -> list[tuple[str, Path]]:
    """The files that make up the code package, as (name in the zip, path), sorted by name.

    Hidden files and directories, tests, caches, local settings and locally built dependencies are left out, so
    that only a change to the code itself changes the package.
    """

    def walk(directory: Path) -> Iterator[Path]:
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith(".") or entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name not in _EXCLUDED_DIRS:
                    yield from walk(entry)
            elif entry.name not in _EXCLUDED_FILES and not entry.name.endswith(_EXCLUDED_SUFFIXES):
                yield entry

    return [(path.relative_to(source_dir).as_posix(), path) for path in walk(source_dir)]


def package_sha256(files: Sequence[tuple[str, Path]]) -> str:
    """A content hash over the package's file names and bytes (what Pulumi's own archive hash also depends on)."""
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


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
    if not args.location:
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
            match = _SECRET_URI.match(uri)
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


def _secret_resource_id(key_vault_id: pulumi.Input[str], secret_uri: pulumi.Input[str]) -> pulumi.Output[str]:
    """The ARM id of the secret a URI names: the scope of a role assignment on that one secret."""

    def build(vault_id: str, uri: str) -> str:
        match = _SECRET_URI.match(uri)
        if match is None:
            raise ValueError(f"{uri!r} is not a versionless Key Vault secret URI")
        return f"{vault_id}/secrets/{match['name']}"

    return pulumi.Output.all(key_vault_id, secret_uri).apply(lambda v: build(str(v[0]), str(v[1])))


def _site_name(naming: Naming) -> str:
    # `<app>.azurewebsites.net` is global.
    return naming.global_name("functionapp", "listener")


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
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)
        tags = dict(args.tags)
        rg = args.resource_group_name
        naming = args.naming

        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=naming.resource("listener-id"),
            resource_group_name=rg,
            location=args.location,
            tags=tags,
            opts=stateful,
        )

        # Host storage, the hand-off queue, the poison queue and the dedupe table. Shared keys are off: every
        # client (Functions host, queue trigger, the listener's own clients) authenticates as the identity.
        account = storage.StorageAccount(
            f"{name}-storage",
            account_name=naming.global_name("storage", "listener"),
            resource_group_name=rg,
            location=args.location,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=storage.SkuName.STANDARD_LRS),
            allow_shared_key_access=False,
            allow_blob_public_access=False,
            allow_cross_tenant_replication=False,
            default_to_o_auth_authentication=True,
            enable_https_traffic_only=True,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            tags=tags,
            opts=stateful,
        )
        queue = storage.Queue(
            f"{name}-queue", account_name=account.name, resource_group_name=rg, queue_name=QUEUE_NAME, opts=stateful
        )
        poison_queue = storage.Queue(
            f"{name}-poison-queue",
            account_name=account.name,
            resource_group_name=rg,
            queue_name=POISON_QUEUE_NAME,
            opts=stateful,
        )
        table = storage.Table(
            f"{name}-dedupe-table",
            account_name=account.name,
            resource_group_name=rg,
            table_name=DEDUPE_TABLE_NAME,
            opts=stateful,
        )

        # The deployment container lives in an account of its own, holding nothing but the package, so the only
        # writer there (one deploy, as the app's identity) can touch nothing of the host's. Shared keys off: nothing
        # uploads with a key (Pulumi does not upload the package).
        package_account = storage.StorageAccount(
            f"{name}-package-storage",
            account_name=naming.global_name("storage", "pkg"),
            resource_group_name=rg,
            location=args.location,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=storage.SkuName.STANDARD_LRS),
            allow_shared_key_access=False,
            allow_blob_public_access=False,
            allow_cross_tenant_replication=False,
            default_to_o_auth_authentication=True,
            enable_https_traffic_only=True,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            tags=tags,
            opts=child,
        )
        container = storage.BlobContainer(
            f"{name}-package-container",
            account_name=package_account.name,
            resource_group_name=rg,
            container_name=DEPLOYMENT_CONTAINER,
            public_access=storage.PublicAccess.NONE,
            opts=child,
        )

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

        # Role assignments: exactly what the identity uses, each at the narrowest scope that works.
        client_config = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))

        def grant(
            role: str, suffix: str, scope: pulumi.Input[str], depends_on: Sequence[pulumi.Resource] = ()
        ) -> authorization.RoleAssignment:
            return authorization.RoleAssignment(
                f"{name}-{suffix}",
                principal_id=identity.principal_id,
                principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
                role_definition_id=pulumi.Output.concat(
                    "/subscriptions/",
                    client_config.subscription_id,
                    "/providers/Microsoft.Authorization/roleDefinitions/",
                    role,
                ),
                scope=scope,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
            )

        # Host storage: the host creates its own containers (keys, leases) at start, hence Owner on the account.
        host_storage = grant(STORAGE_BLOB_DATA_OWNER, "host-storage-blob-owner", account.id)
        # The package container only: the platform reads the package and one deploy writes it, as the identity.
        package_access = grant(STORAGE_BLOB_DATA_CONTRIBUTOR, "package-blob-contributor", container.id)
        grant(STORAGE_QUEUE_DATA_CONTRIBUTOR, "queue-contributor", queue.id)
        grant(STORAGE_QUEUE_DATA_CONTRIBUTOR, "poison-queue-contributor", poison_queue.id)
        grant(STORAGE_TABLE_DATA_CONTRIBUTOR, "dedupe-table-contributor", table.id)
        # One secret each rather than the whole vault: the vault holds other secrets the listener has no use for.
        # Each grant is made after the secrets exist: a role assignment names its scope, and the scope must be a
        # secret the vault holds, not one an operator will set later.
        secret_readers = [
            grant(
                KEY_VAULT_SECRETS_USER,
                f"kv-{role}",
                _secret_resource_id(args.key_vault_id, uri),
                depends_on=list(args.secrets),
            )
            for role, uri in (
                ("webhook-secret", args.webhook_secret_uri),
                ("job-token", args.job_token_secret_uri),
                ("dispatch-token", args.dispatch_token_secret_uri),
                ("azure-monitor-token", args.azure_monitor_token_secret_uri),
                ("alertmanager-token", args.alertmanager_token_secret_uri),
            )
            if uri is not None
        ]
        grant(MONITORING_METRICS_PUBLISHER, "app-insights-publisher", args.app_insights_id)

        plan = web.AppServicePlan(
            f"{name}-plan",
            name=naming.resource("listener-plan"),
            resource_group_name=rg,
            location=args.location,
            kind="functionapp",
            reserved=True,  # Linux
            sku=web.SkuDescriptionArgs(name="FC1", tier="FlexConsumption"),
            tags=tags,
            opts=child,
        )

        endpoints = account.primary_endpoints
        app = web.WebApp(
            f"{name}-app",
            name=_site_name(naming),
            resource_group_name=rg,
            location=args.location,
            kind="functionapp,linux",
            server_farm_id=plan.id,
            https_only=True,
            client_affinity_enabled=False,
            identity=web.ManagedServiceIdentityArgs(
                type=web.ManagedServiceIdentityType.USER_ASSIGNED, user_assigned_identities=[identity.id]
            ),
            key_vault_reference_identity=identity.id,
            function_app_config=web.FunctionAppConfigArgs(
                deployment=web.FunctionsDeploymentArgs(
                    storage=web.FunctionsDeploymentStorageArgs(
                        type=web.FunctionsDeploymentStorageType.BLOB_CONTAINER,
                        value=pulumi.Output.concat(
                            package_account.primary_endpoints.apply(lambda e: e.blob), DEPLOYMENT_CONTAINER
                        ),
                        authentication=web.FunctionsDeploymentStorageAuthenticationArgs(
                            type=web.AuthenticationType.USER_ASSIGNED_IDENTITY,
                            user_assigned_identity_resource_id=identity.id,
                        ),
                    )
                ),
                runtime=web.FunctionsRuntimeArgs(name=web.RuntimeName.PYTHON, version=PYTHON_VERSION),
                scale_and_concurrency=web.FunctionsScaleAndConcurrencyArgs(
                    instance_memory_mb=INSTANCE_MEMORY_MB, maximum_instance_count=MAXIMUM_INSTANCE_COUNT
                ),
            ),
            site_config=web.SiteConfigArgs(
                app_settings=listener_app_settings(
                    args,
                    storage_account_name=account.name,
                    queue_account_url=endpoints.apply(lambda e: e.queue.rstrip("/")),
                    table_account_url=endpoints.apply(lambda e: e.table.rstrip("/")),
                    identity_client_id=identity.client_id,
                ),
                min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
                scm_min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
                ftps_state=web.FtpsState.DISABLED,
                http20_enabled=True,
                remote_debugging_enabled=False,
            ),
            tags=tags,
            # The host must reach its storage, the package and its Key Vault references from its first start.
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect, depends_on=[host_storage, package_access, *secret_readers]
            ),
        )
        # Basic (user/password) publishing credentials off for FTP and for the SCM site: deployments use Entra ID.
        web.WebAppFtpAllowed(f"{name}-ftp-basic-auth", name=app.name, resource_group_name=rg, allow=False, opts=child)
        web.WebAppScmAllowed(f"{name}-scm-basic-auth", name=app.name, resource_group_name=rg, allow=False, opts=child)

        # No function key in the URLs: the functions are anonymous at the host and every route verifies its own
        # HMAC signature or bearer token (listener/function_app.py). Reading the app's host keys here would fail
        # on the first `pulumi up`: the app has no code until the publish step deploys it, and a codeless app's
        # host runtime does not answer the keys API (Azure/azure-functions-host#5722, Azure/azure-cli#20892).
        # The URLs stay secret: they are where a release is triggered.
        self.function_app = app
        self.default_host_name = app.default_host_name
        base = pulumi.Output.concat("https://", app.default_host_name)
        self.databricks_webhook_url = pulumi.Output.secret(pulumi.Output.concat(base, "/api/webhooks/databricks"))
        self.job_webhook_url = pulumi.Output.secret(pulumi.Output.concat(base, "/api/webhooks/databricks-job"))
        self.health_url = pulumi.Output.concat(base, "/api/health")
        self.identity_principal_id = identity.principal_id
        self.storage_account_name = account.name
        self.queue_name = queue.name
        self.poison_queue_name = poison_queue.name
        self.register_outputs(
            {
                "defaultHostName": self.default_host_name,
                "databricksWebhookUrl": self.databricks_webhook_url,
                "jobWebhookUrl": self.job_webhook_url,
                "healthUrl": self.health_url,
                "identityPrincipalId": self.identity_principal_id,
                "storageAccountName": self.storage_account_name,
                "packageSha256": self.package_sha256,
            }
        )
