"""The listener's Function App (builder functions the WebhookListener component calls): the Flex Consumption plan, the
app with its app settings, and basic publishing credentials turned off (the FTP(S) switch of other plans does not
exist on Flex).

Flex Consumption takes runtime, version, scale and deployment from `functionAppConfig`; every other setting is an app
setting (`listener_app_settings`), secrets only as Key Vault references resolved with the app's identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pulumi
from pulumi_azure_native import managedidentity, web

from components.contracts import listener
from components.listener_access import ListenerAccess
from components.listener_storage import (
    DEDUPE_TABLE_NAME,
    DEPLOYMENT_CONTAINER,
    POISON_QUEUE_NAME,
    QUEUE_NAME,
    QUEUE_TRIGGER_CONNECTION,
    ListenerStorage,
)
from components.naming import Naming
from components.placement import Placement
from stacks.identifiers import REPOSITORY

# "A custom webhook event name. Must be 100 characters or fewer." (docs.github.com/rest/repos/repos,
# "Create a repository dispatch event").
GITHUB_EVENT_TYPE_MAX = 100


@dataclass(frozen=True)
class GitHubDispatch:
    """Start the release with a GitHub `repository_dispatch` event."""

    repository: str
    """`<owner>/<name>`."""
    event_type: str
    """The dispatch's `event_type`, which the release workflow listens for."""
    api_url: str = "https://api.github.com"
    """The GitHub API (GitHub Enterprise Server has its own)."""

    def __post_init__(self) -> None:
        if not REPOSITORY.match(self.repository):
            raise ValueError(f"repository: expected <owner>/<name>, got {self.repository!r}")
        if not 1 <= len(self.event_type) <= GITHUB_EVENT_TYPE_MAX:
            raise ValueError(f"event_type: 1 to {GITHUB_EVENT_TYPE_MAX} characters (got {len(self.event_type)})")
        if not self.api_url.startswith("https://"):
            raise ValueError(f"api_url: expected an https:// URL, got {self.api_url!r}")


@dataclass(frozen=True)
class AzureDevOpsDispatch:
    """Start the release by running an Azure DevOps pipeline."""

    organization_url: str
    """`https://dev.azure.com/<organization>`."""
    project: str
    """The project the pipeline belongs to."""
    pipeline_id: int
    """The pipeline's id."""

    def __post_init__(self) -> None:
        if not self.organization_url.startswith("https://"):
            raise ValueError(f"organization_url: expected an https:// URL, got {self.organization_url!r}")
        if not self.project:
            raise ValueError("project: required")
        if self.pipeline_id < 1:
            raise ValueError(f"pipeline_id: expected a pipeline id (>= 1), got {self.pipeline_id}")


Dispatch = GitHubDispatch | AzureDevOpsDispatch


@dataclass(frozen=True)
class ListenerRelease:
    """What the listener counts as a promotion, and how it starts the release."""

    dispatch: Dispatch
    """Where the release starts: a GitHub repository or an Azure DevOps pipeline."""
    promote_alias: str
    """The Unity Catalog alias whose move is a promotion."""
    promote_stages: Sequence[str]
    """The workspace registry stages a transition to which is a promotion."""
    max_dispatch_attempts: int
    """How many times one promotion's dispatch is tried before it goes to the poison queue."""

    def __post_init__(self) -> None:
        if not self.promote_alias:
            raise ValueError("promote_alias: required")
        if not self.promote_stages:
            raise ValueError("promote_stages: at least one stage is required")
        if self.max_dispatch_attempts < 1:
            raise ValueError(f"max_dispatch_attempts: at least 1 (got {self.max_dispatch_attempts})")


class AppInputs(Protocol):
    """What the Function App and its settings read (WebhookListenerArgs has it)."""

    @property
    def placement(self) -> Placement: ...
    @property
    def release(self) -> ListenerRelease: ...
    @property
    def model_names(self) -> Sequence[str]: ...
    @property
    def target_stack(self) -> str: ...
    @property
    def app_insights_connection_string(self) -> pulumi.Input[str]: ...
    @property
    def webhook_secret_uri(self) -> pulumi.Input[str]: ...
    @property
    def job_token_secret_uri(self) -> pulumi.Input[str]: ...
    @property
    def dispatch_token_secret_uri(self) -> pulumi.Input[str]: ...
    @property
    def azure_monitor_token_secret_uri(self) -> pulumi.Input[str] | None: ...
    @property
    def alertmanager_token_secret_uri(self) -> pulumi.Input[str] | None: ...


# The names the listener reads its settings under (listener/webhook_listener/contract.py).
Env = listener.Env

PYTHON_VERSION = "3.11"
INSTANCE_MEMORY_MB = 2048
# A webhook receiver sees a handful of requests per release, and the plan scales to zero, so the ceiling only caps
# a burst (forged requests are refused at the signature check, but still run). 40: the lowest ceiling the Flex
# Consumption API has accepted since its preview ("The lowest maximum scale in preview is 40",
# flex-consumption-plan.md); current docs allow 1 (event-driven-scaling.md, "Limit scale-out") and default to 100.
MAXIMUM_INSTANCE_COUNT = 40


def _alert_token_settings(args: AppInputs) -> list[tuple[str, pulumi.Input[str]]]:
    """The alert routes' tokens, as Key Vault references, for those that are configured."""
    pairs = (
        (Env.AZURE_MONITOR_TOKEN, args.azure_monitor_token_secret_uri),
        (Env.ALERTMANAGER_TOKEN, args.alertmanager_token_secret_uri),
    )
    return [(name, key_vault_reference(uri)) for name, uri in pairs if uri is not None]


def _target(dispatch: Dispatch) -> listener.DispatchTarget:
    if isinstance(dispatch, GitHubDispatch):
        return listener.DispatchTarget.GITHUB
    return listener.DispatchTarget.AZURE_DEVOPS


def key_vault_reference(secret_uri: pulumi.Input[str]) -> pulumi.Output[str]:
    """An app setting value the platform replaces with the secret's current value (never the value itself)."""
    return pulumi.Output.concat("@Microsoft.KeyVault(SecretUri=", secret_uri, ")")


def listener_app_settings(
    args: AppInputs,
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
        (Env.DISPATCH_TARGET, _target(dispatch).value),
        (Env.MAX_DISPATCH_ATTEMPTS, str(release.max_dispatch_attempts)),
    ]
    if isinstance(dispatch, GitHubDispatch):
        settings += [
            (Env.GITHUB_API_URL, dispatch.api_url),
            (Env.GITHUB_REPOSITORY, dispatch.repository),
            (Env.GITHUB_EVENT_TYPE, dispatch.event_type),
            (Env.GITHUB_TOKEN, key_vault_reference(args.dispatch_token_secret_uri)),
        ]
    else:
        settings += [
            (Env.AZURE_DEVOPS_ORG_URL, dispatch.organization_url),
            (Env.AZURE_DEVOPS_PROJECT, dispatch.project),
            (Env.AZURE_DEVOPS_PIPELINE_ID, str(dispatch.pipeline_id)),
            (Env.AZURE_DEVOPS_TOKEN, key_vault_reference(args.dispatch_token_secret_uri)),
        ]
    return [web.NameValuePairArgs(name=name, value=value) for name, value in settings]


def _site_name(naming: Naming) -> str:
    # `<app>.azurewebsites.net` is global.
    return naming.global_name("functionapp", "listener")


def build_function_app(
    name: str,
    args: AppInputs,
    *,
    identity: managedidentity.UserAssignedIdentity,
    stores: ListenerStorage,
    access: ListenerAccess,
    parent: pulumi.Resource,
) -> web.WebApp:
    """The plan, the app (protected as `args.placement` says) and its basic-auth switches, children of `parent`."""
    naming = args.placement.naming
    rg = args.placement.resource_group_name
    tags = args.placement.tag_map()
    child = pulumi.ResourceOptions(parent=parent)
    account, package_account = stores.account, stores.package_account
    plan = web.AppServicePlan(
        f"{name}-plan",
        name=naming.resource("listener-plan"),
        resource_group_name=rg,
        location=args.placement.location,
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
        location=args.placement.location,
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
            # No ftps_state: a Flex Consumption site has no FTP(S) and ARM refuses the property (BadRequest 51021;
            # learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations).
            http20_enabled=True,
            remote_debugging_enabled=False,
        ),
        tags=tags,
        # The host must reach its storage, the package and its Key Vault references from its first start.
        opts=pulumi.ResourceOptions(
            parent=parent,
            protect=args.placement.protect,
            depends_on=[access.host_storage, access.package_access, *access.secret_readers],
        ),
    )
    # Basic (user/password) publishing credentials off for the SCM site: deployments use Entra ID. Flex Consumption
    # has no FTP(S) (functions-app-settings, "Flex Consumption plan deprecations"), so no FTP policy: nothing shows
    # ARM accepts one there, and terraform-provider-azurerm's Flex app sets only this one
    # (internal/services/appservice/function_app_flex_consumption_resource.go).
    web.WebAppScmAllowed(f"{name}-scm-basic-auth", name=app.name, resource_group_name=rg, allow=False, opts=child)

    return app
