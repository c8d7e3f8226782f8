"""WebhookListener through the harness: every input and option the component registers, for staging's release
settings and the azure-devops variant; the app settings against what the listener really reads; the code package
against changes to its source folder."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi_azure_native import web

from components.naming import Naming
from components.placement import Placement
from components.webhook_listener import (
    DEDUPE_TABLE_NAME,
    POISON_QUEUE_NAME,
    QUEUE_NAME,
    AzureDevOpsDispatch,
    GitHubDispatch,
    ListenerRelease,
    WebhookListener,
    WebhookListenerArgs,
    package_files,
    package_sha256,
)
from offline.cloud_facts import SUBSCRIPTION_ID, CloudError
from offline.harness import ProgramOptions, ProgramRun, RecordedResource, run_program
from program import stack_args
from stacks.files import load_stack_config
from webhook_listener.settings import ALL_SETTINGS, SECRET_SETTINGS, DispatchTarget, load_settings

REPO = Path(__file__).resolve().parents[2]
PROJECT = "mlops-serving"
RG = "mlops-serving-staging-rg"
KEY_VAULT_ID = (
    f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/mlops-kv-abc123"
)
WEBHOOK_SECRET_URI = "https://mlops-kv-abc123.vault.azure.net/secrets/webhook-hmac-secret"
JOB_TOKEN_URI = "https://mlops-kv-abc123.vault.azure.net/secrets/listener-job-token"
DISPATCH_TOKEN_URI = "https://mlops-kv-abc123.vault.azure.net/secrets/dispatch-token"
AZURE_MONITOR_TOKEN_URI = "https://mlops-kv-abc123.vault.azure.net/secrets/listener-azure-monitor-token"
ALERTMANAGER_TOKEN_URI = "https://mlops-kv-abc123.vault.azure.net/secrets/listener-alertmanager-token"
APP_INSIGHTS_ID = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RG}/providers/Microsoft.Insights/components/ai"
APP_INSIGHTS_CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://x/"
# Every secret the mock cloud makes up for this run starts with this.
PLANTED = "plantedlistenersecret"

WEB_APP = "azure-native:web:WebApp"
ACCOUNT = "azure-native:storage:StorageAccount"
ROLE = "azure-native:authorization:RoleAssignment"
BLOB = "azure-native:storage:Blob"

# Settings of the Functions host itself (not read by the listener's code).
HOST_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
# Listener settings the component leaves at the listener's defaults on purpose: tuning knobs, and the connection
# string (Azure uses the identity and account URLs instead). A new listener setting fails the match test until it
# is either set by the component or added here.
LEFT_TO_LISTENER_DEFAULTS = {
    # The alert routes' defaults: alert name `ModelDataDrift` (the stack's rule), event type `model-drift`.
    "LISTENER_DRIFT_ALERT_NAMES",
    "LISTENER_GITHUB_DRIFT_EVENT_TYPE",
    "LISTENER_AZURE_DEVOPS_DRIFT_PIPELINE_ID",
    "LISTENER_TIMESTAMP_TOLERANCE_SECONDS",
    "LISTENER_MAX_BODY_BYTES",
    "LISTENER_STORAGE_CONNECTION_STRING",
    "LISTENER_ACCEPT_TIMEOUT_SECONDS",
    "LISTENER_RETRY_BASE_SECONDS",
    "LISTENER_RETRY_MAX_SECONDS",
    "LISTENER_DISPATCH_TIMEOUT_SECONDS",
    "LISTENER_WORKER_POLL_SECONDS",
    "LISTENER_LOG_LEVEL",
}
GITHUB_ONLY = {
    "LISTENER_GITHUB_API_URL",
    "LISTENER_GITHUB_REPOSITORY",
    "LISTENER_GITHUB_EVENT_TYPE",
    "LISTENER_GITHUB_TOKEN",
}
DEVOPS_ONLY = {
    "LISTENER_AZURE_DEVOPS_ORG_URL",
    "LISTENER_AZURE_DEVOPS_PROJECT",
    "LISTENER_AZURE_DEVOPS_PIPELINE_ID",
    "LISTENER_AZURE_DEVOPS_TOKEN",
}
# Settings that configure runtime and deployment on other plans; Flex Consumption refuses or ignores them.
NOT_ON_FLEX = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "AzureWebJobsStorage",
}


def role_id(guid: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


@pytest.fixture(scope="module")
def staging_release() -> ListenerRelease:
    release = load_stack_config(REPO, "staging").settings().release
    assert release is not None
    return stack_args.listener_release(release)


@pytest.fixture(scope="module")
def devops_release(staging_release: ListenerRelease) -> ListenerRelease:
    dispatch = AzureDevOpsDispatch(organization_url="https://dev.azure.com/acme-ml", project="mlops", pipeline_id=42)
    return dataclasses.replace(staging_release, dispatch=dispatch)


PLACEMENT = Placement(Naming(PROJECT, "staging"), RG, "westeurope", {"environment": "staging"}, protect=True)


def make_args(release: ListenerRelease, **changes: Any) -> WebhookListenerArgs:
    args = WebhookListenerArgs(
        placement=PLACEMENT,
        source_dir=REPO / "listener",
        app_insights_connection_string=APP_INSIGHTS_CONNECTION,
        app_insights_id=APP_INSIGHTS_ID,
        key_vault_id=KEY_VAULT_ID,
        webhook_secret_uri=WEBHOOK_SECRET_URI,
        job_token_secret_uri=JOB_TOKEN_URI,
        dispatch_token_secret_uri=DISPATCH_TOKEN_URI,
        release=release,
        model_names=["wine-quality"],
        target_stack="staging",
        azure_monitor_token_secret_uri=AZURE_MONITOR_TOKEN_URI,
        alertmanager_token_secret_uri=ALERTMANAGER_TOKEN_URI,
    )
    return dataclasses.replace(args, **changes)


def run_listener(args: WebhookListenerArgs) -> ProgramRun:
    def program() -> None:
        listener = WebhookListener("listener", args)
        pulumi.export("defaultHostName", listener.default_host_name)
        pulumi.export("packageSha256", listener.package_sha256)
        pulumi.export("databricksWebhookUrl", listener.databricks_webhook_url)
        pulumi.export("jobWebhookUrl", listener.job_webhook_url)
        pulumi.export("healthUrl", listener.health_url)
        pulumi.export("identityPrincipalId", listener.identity_principal_id)
        pulumi.export("storageAccountName", listener.storage_account_name)
        pulumi.export("queueName", listener.queue_name)
        pulumi.export("poisonQueueName", listener.poison_queue_name)
        pulumi.export("functionAppName", listener.function_app.name)

    return run_program(program, {}, project=PROJECT, stack="staging", options=ProgramOptions(secret_marker=PLANTED))


@pytest.fixture(scope="module")
def run(staging_release: ListenerRelease) -> ProgramRun:
    return run_listener(make_args(staging_release))


@pytest.fixture(scope="module")
def devops_run(devops_release: ListenerRelease) -> ProgramRun:
    return run_listener(make_args(devops_release))


def app_settings(run: ProgramRun) -> dict[str, str]:
    pairs = run.one(WEB_APP).inputs["siteConfig"]["appSettings"]
    names = [p["name"] for p in pairs]
    assert len(names) == len(set(names)), f"duplicate app settings: {names}"
    return {p["name"]: p["value"] for p in pairs}


def host_account(run: ProgramRun) -> RecordedResource:
    return run.one(ACCOUNT, "listener-storage")


# --- the Function App ---------------------------------------------------------------------------------------


def test_app_runs_python_311_on_a_linux_flex_consumption_plan(run: ProgramRun) -> None:
    plan = run.one("azure-native:web:AppServicePlan")
    assert plan.inputs["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan.inputs["kind"] == "functionapp"
    assert plan.inputs["reserved"] is True
    assert plan.inputs["name"] == "mlops-serving-staging-listener-plan"
    app = run.one(WEB_APP)
    assert app.inputs["kind"] == "functionapp,linux"
    assert plan.urn in app.property_dependencies["serverFarmId"]
    config = app.inputs["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["scaleAndConcurrency"]["instanceMemoryMB"] == 2048
    assert app.inputs["location"] == "westeurope"
    assert app.inputs["tags"] == {"environment": "staging"}


def test_app_name_is_global_stable_and_valid(run: ProgramRun, staging_release: ListenerRelease) -> None:
    name = run.one(WEB_APP).inputs["name"]
    assert name.startswith("mlops-serving-staging-listener-")
    assert len(name) <= 60
    assert name == run_listener(make_args(staging_release)).one(WEB_APP).inputs["name"]


def test_app_is_https_only_with_tls_12_and_no_ftp_or_basic_publishing(run: ProgramRun) -> None:
    app = run.one(WEB_APP)
    assert app.inputs["httpsOnly"] is True
    assert app.inputs["clientAffinityEnabled"] is False
    site = app.inputs["siteConfig"]
    assert site["minTlsVersion"] == "1.2"
    assert site["scmMinTlsVersion"] == "1.2"
    # Flex Consumption has no FTP(S) and refuses the property; the policies below keep basic publishing off.
    assert "ftpsState" not in site
    assert site["remoteDebuggingEnabled"] is False
    assert "linuxFxVersion" not in site
    policy = run.one("azure-native:web:WebAppScmAllowed")
    assert policy.inputs == {"allow": False, "name": app.inputs["name"], "resourceGroupName": RG}
    assert app.urn in policy.property_dependencies["name"]
    # Flex has no FTP to turn off, and nothing shows ARM takes an FTP policy there.
    assert run.all("azure-native:web:WebAppFtpAllowed") == []


def _flex_site_program(ftps_state: web.FtpsState | None, *, on_plan_only: bool = False) -> None:
    # A bare Flex Consumption site: the cloud's answer depends only on whether it sends siteConfig.ftpsState.
    plan = web.AppServicePlan(
        "p", resource_group_name=RG, sku=web.SkuDescriptionArgs(name="FC1", tier="FlexConsumption")
    )
    config = None if on_plan_only else web.FunctionAppConfigArgs(runtime=web.FunctionsRuntimeArgs(name="python"))
    web.WebApp(
        "site",
        resource_group_name=RG,
        server_farm_id=plan.id,
        function_app_config=config,
        site_config=web.SiteConfigArgs(min_tls_version="1.2", ftps_state=ftps_state),
    )


@pytest.mark.parametrize("on_plan_only", [False, True])
def test_the_cloud_refuses_ftps_state_on_a_flex_consumption_site(on_plan_only: bool) -> None:
    with pytest.raises(CloudError, match=r"Site\.SiteConfig\.FtpsState\) for Flex Consumption sites is invalid"):
        run_program(
            lambda: _flex_site_program(web.FtpsState.DISABLED, on_plan_only=on_plan_only),
            {},
            project=PROJECT,
            stack="staging",
        )
    assert run_program(
        lambda: _flex_site_program(None, on_plan_only=on_plan_only), {}, project=PROJECT, stack="staging"
    ).one(WEB_APP)


def test_app_runs_as_its_user_assigned_identity_and_resolves_key_vault_references_with_it(run: ProgramRun) -> None:
    identity = run.one("azure-native:managedidentity:UserAssignedIdentity")
    assert identity.inputs == {
        "resourceName": "mlops-serving-staging-listener-id",
        "resourceGroupName": RG,
        "location": "westeurope",
        "tags": {"environment": "staging"},
    }
    app = run.one(WEB_APP)
    identity_id = app.inputs["identity"]["userAssignedIdentities"][0]
    assert identity_id.endswith("/userAssignedIdentities/mlops-serving-staging-listener-id")
    assert app.inputs["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity_id]}
    assert app.inputs["keyVaultReferenceIdentity"] == identity_id
    assert identity.urn in app.property_dependencies["keyVaultReferenceIdentity"]


def test_host_storage_is_identity_based_and_the_account_refuses_keys(run: ProgramRun) -> None:
    account = host_account(run)
    assert account.inputs == {
        "accountName": "mlopsstagilistenerdf3be7",
        "resourceGroupName": RG,
        "location": "westeurope",
        "kind": "StorageV2",
        "sku": {"name": "Standard_LRS"},
        "allowSharedKeyAccess": False,
        "allowBlobPublicAccess": False,
        "allowCrossTenantReplication": False,
        "defaultToOAuthAuthentication": True,
        "enableHttpsTrafficOnly": True,
        "minimumTlsVersion": "TLS1_2",
        "tags": {"environment": "staging"},
    }
    settings = app_settings(run)
    client_id = settings["AZURE_CLIENT_ID"]
    assert settings["AzureWebJobsStorage__accountName"] == account.inputs["accountName"]
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == client_id
    assert settings["LISTENER_QUEUE_ACCOUNT_URL"] == "https://mlopsstagilistenerdf3be7.queue.core.windows.net"
    assert settings["LISTENER_TABLE_ACCOUNT_URL"] == "https://mlopsstagilistenerdf3be7.table.core.windows.net"
    assert not any("AccountKey" in value or "SharedAccessSignature" in value for value in settings.values())


def test_flex_only_settings_are_left_to_function_app_config(run: ProgramRun) -> None:
    assert not NOT_ON_FLEX & set(app_settings(run))


def test_telemetry_goes_to_app_insights_authenticated_as_the_identity(run: ProgramRun) -> None:
    settings = app_settings(run)
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == APP_INSIGHTS_CONNECTION
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        f"ClientId={settings['AZURE_CLIENT_ID']};Authorization=AAD"
    )


# --- app settings against the listener's own settings class --------------------------------------------------


def test_app_settings_are_exactly_the_names_the_listener_reads(run: ProgramRun, devops_run: ProgramRun) -> None:
    for variant, other_target in ((run, DEVOPS_ONLY), (devops_run, GITHUB_ONLY)):
        listener_names = set(app_settings(variant)) - HOST_SETTINGS
        assert listener_names == ALL_SETTINGS - LEFT_TO_LISTENER_DEFAULTS - other_target


def test_every_secret_setting_is_a_key_vault_reference_and_nothing_else_is(
    run: ProgramRun, devops_run: ProgramRun
) -> None:
    expected = {
        "LISTENER_WEBHOOK_SECRET": WEBHOOK_SECRET_URI,
        "LISTENER_JOB_TOKEN": JOB_TOKEN_URI,
        "LISTENER_AZURE_MONITOR_TOKEN": AZURE_MONITOR_TOKEN_URI,
        "LISTENER_ALERTMANAGER_TOKEN": ALERTMANAGER_TOKEN_URI,
        "LISTENER_GITHUB_TOKEN": DISPATCH_TOKEN_URI,
        "LISTENER_AZURE_DEVOPS_TOKEN": DISPATCH_TOKEN_URI,
    }
    for variant in (run, devops_run):
        settings = app_settings(variant)
        for name, value in settings.items():
            if name in SECRET_SETTINGS:
                assert value == f"@Microsoft.KeyVault(SecretUri={expected[name]})", name
            else:
                assert not value.startswith("@Microsoft.KeyVault"), name
        assert "LISTENER_STORAGE_CONNECTION_STRING" not in settings


def listener_environment(run: ProgramRun) -> dict[str, str]:
    """The app settings as the worker sees them once the platform has resolved the Key Vault references."""
    return {
        name: "resolved-secret-value-0123456789abcdef" if value.startswith("@Microsoft.KeyVault") else value
        for name, value in app_settings(run).items()
        if name not in HOST_SETTINGS
    }


@pytest.mark.parametrize(
    ("run_fixture", "release_fixture"), [("run", "staging_release"), ("devops_run", "devops_release")]
)
def test_the_listener_settings_class_accepts_the_app_settings(
    run_fixture: str, release_fixture: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    program_run: ProgramRun = request.getfixturevalue(run_fixture)
    release: ListenerRelease = request.getfixturevalue(release_fixture)
    environment = listener_environment(program_run)
    for name in ALL_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.queue_name == QUEUE_NAME
    assert settings.poison_queue_name == POISON_QUEUE_NAME
    assert settings.dedupe_table_name == DEDUPE_TABLE_NAME
    assert settings.queue_trigger_connection == "AzureWebJobsStorage"
    assert settings.queue_account_url == environment["LISTENER_QUEUE_ACCOUNT_URL"]
    assert settings.table_account_url == environment["LISTENER_TABLE_ACCOUNT_URL"]
    assert settings.storage_connection_string is None
    assert settings.models == ("wine-quality",)
    assert settings.promote_alias == release.promote_alias
    assert settings.promote_stages == tuple(release.promote_stages)
    assert settings.target_stack == "staging"
    assert settings.max_dispatch_attempts == release.max_dispatch_attempts
    assert settings.azure_client_id == environment["AZURE_CLIENT_ID"]
    if isinstance(release.dispatch, GitHubDispatch):
        assert settings.dispatch_target is DispatchTarget.GITHUB
        assert settings.github_repository == "acme-ml/mlops-serving"
        assert settings.github_event_type == "model-promoted"
        assert settings.github_api_url == "https://api.github.com"
        assert settings.github_token is not None
    else:
        assert settings.dispatch_target is DispatchTarget.AZURE_DEVOPS
        assert settings.azure_devops_org_url == "https://dev.azure.com/acme-ml"
        assert settings.azure_devops_project == "mlops"
        assert settings.azure_devops_pipeline_id == 42
        assert settings.azure_devops_token is not None


# --- queue, poison queue, dedupe table, package account -------------------------------------------------------


def test_queue_poison_queue_and_dedupe_table_live_in_the_host_account(run: ProgramRun) -> None:
    account = host_account(run)
    expected = {
        ("azure-native:storage:Queue", "listener-queue"): {"queueName": QUEUE_NAME},
        ("azure-native:storage:Queue", "listener-poison-queue"): {"queueName": POISON_QUEUE_NAME},
        ("azure-native:storage:Table", "listener-dedupe-table"): {"tableName": DEDUPE_TABLE_NAME},
    }
    for (type_, name), own in expected.items():
        resource = run.one(type_, name)
        assert resource.inputs == {**own, "accountName": account.inputs["accountName"], "resourceGroupName": RG}
        assert account.urn in resource.property_dependencies["accountName"]
    assert run.outputs["queueName"] == QUEUE_NAME
    assert run.outputs["poisonQueueName"] == POISON_QUEUE_NAME
    assert run.outputs["storageAccountName"] == account.inputs["accountName"]


def test_package_account_holds_only_the_package_container_and_is_private(run: ProgramRun) -> None:
    package = run.one(ACCOUNT, "listener-package-storage")
    assert package.inputs["accountName"] != host_account(run).inputs["accountName"]
    assert package.inputs["allowBlobPublicAccess"] is False
    assert package.inputs["minimumTlsVersion"] == "TLS1_2"
    assert package.inputs["enableHttpsTrafficOnly"] is True
    # Nothing uploads with a key: the publish step deploys as the app's identity, Pulumi uploads nothing.
    assert package.inputs["allowSharedKeyAccess"] is False
    container = run.one("azure-native:storage:BlobContainer")
    assert container.inputs == {
        "accountName": package.inputs["accountName"],
        "resourceGroupName": RG,
        "containerName": "app-package",
        "publicAccess": "None",
    }
    in_package_account = {r.urn for r in run.resources if package.urn in r.property_dependencies.get("accountName", ())}
    assert in_package_account == {container.urn}


def test_the_publish_step_is_the_only_owner_of_the_code_package(run: ProgramRun) -> None:
    # A blob Pulumi uploaded and the publish step's one deploy would both own `released-package.zip`: a
    # `pulumi up` alone would then swap in a package without its remotely built dependencies.
    assert run.all(BLOB) == []
    assert not [r for r in run.resources if "released-package.zip" in json.dumps(r.inputs)]
    # What Pulumi does give the publish step: the content hash of the package this source makes.
    assert run.outputs["packageSha256"] == package_sha256(package_files(REPO / "listener"))


def test_flex_deploys_from_the_package_container_as_the_identity(run: ProgramRun) -> None:
    app = run.one(WEB_APP)
    package_account = run.one(ACCOUNT, "listener-package-storage").inputs["accountName"]
    assert app.inputs["functionAppConfig"]["deployment"] == {
        "storage": {
            "type": "blobContainer",
            "value": f"https://{package_account}.blob.core.windows.net/app-package",
            "authentication": {
                "type": "UserAssignedIdentity",
                "userAssignedIdentityResourceId": app.inputs["keyVaultReferenceIdentity"],
            },
        }
    }


def test_flex_maximum_instance_count_is_one_every_api_version_accepts(run: ProgramRun) -> None:
    # 40 was the floor through the preview ("The lowest maximum scale in preview is 40"); current docs allow 1.
    scale = run.one(WEB_APP).inputs["functionAppConfig"]["scaleAndConcurrency"]
    assert scale == {"instanceMemoryMB": 2048, "maximumInstanceCount": 40}


# --- roles ------------------------------------------------------------------------------------------------------


def test_identity_gets_exactly_the_roles_it_uses_each_at_the_narrowest_scope(run: ProgramRun) -> None:
    host = host_account(run).inputs["accountName"]
    package = run.one(ACCOUNT, "listener-package-storage").inputs["accountName"]
    storage = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts"
    expected = {
        "listener-host-storage-blob-owner": ("b7e6dc6d-f1e8-4753-8033-0f276bb0955b", f"{storage}/{host}"),
        "listener-package-blob-contributor": (
            "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
            f"{storage}/{package}/blobServices/default/containers/app-package",
        ),
        "listener-queue-contributor": (
            "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
            f"{storage}/{host}/queueServices/default/queues/{QUEUE_NAME}",
        ),
        "listener-poison-queue-contributor": (
            "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
            f"{storage}/{host}/queueServices/default/queues/{POISON_QUEUE_NAME}",
        ),
        "listener-dedupe-table-contributor": (
            "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
            f"{storage}/{host}/tableServices/default/tables/{DEDUPE_TABLE_NAME}",
        ),
        "listener-kv-webhook-secret": (
            "4633458b-17de-408a-b874-0445c86b69e6",
            f"{KEY_VAULT_ID}/secrets/webhook-hmac-secret",
        ),
        "listener-kv-job-token": ("4633458b-17de-408a-b874-0445c86b69e6", f"{KEY_VAULT_ID}/secrets/listener-job-token"),
        "listener-kv-dispatch-token": (
            "4633458b-17de-408a-b874-0445c86b69e6",
            f"{KEY_VAULT_ID}/secrets/dispatch-token",
        ),
        "listener-kv-azure-monitor-token": (
            "4633458b-17de-408a-b874-0445c86b69e6",
            f"{KEY_VAULT_ID}/secrets/listener-azure-monitor-token",
        ),
        "listener-kv-alertmanager-token": (
            "4633458b-17de-408a-b874-0445c86b69e6",
            f"{KEY_VAULT_ID}/secrets/listener-alertmanager-token",
        ),
        "listener-app-insights-publisher": ("3913510d-42f4-4e42-8a64-420c390055eb", APP_INSIGHTS_ID),
    }
    assignments = {r.name: r for r in run.all(ROLE)}
    assert set(assignments) == set(expected)
    identity = run.one("azure-native:managedidentity:UserAssignedIdentity")
    for name, (guid, scope) in expected.items():
        assignment = assignments[name]
        assert assignment.inputs == {
            "principalId": run.outputs["identityPrincipalId"],
            "principalType": "ServicePrincipal",
            "roleDefinitionId": role_id(guid),
            "scope": scope,
        }, name
        assert identity.urn in assignment.property_dependencies["principalId"]


def test_each_secret_grant_is_made_after_the_secrets_exist(staging_release: ListenerRelease) -> None:
    def program() -> None:
        secret = pulumi.CustomResource(
            "azure-native:keyvault:Secret", "dispatch-token", {"secretName": "dispatch-token"}
        )
        WebhookListener("listener", make_args(staging_release, secrets=[secret]))

    run = run_program(program, {}, project=PROJECT, stack="staging")
    secret = run.one("azure-native:keyvault:Secret")
    for role in ("webhook-secret", "job-token", "dispatch-token"):
        assert secret.urn in run.one(ROLE, f"listener-kv-{role}").dependencies, role


def test_app_waits_for_the_roles_its_first_start_needs(run: ProgramRun) -> None:
    app = run.one(WEB_APP)
    needed = [
        "listener-host-storage-blob-owner",
        "listener-package-blob-contributor",
        "listener-kv-webhook-secret",
        "listener-kv-job-token",
        "listener-kv-dispatch-token",
        "listener-kv-azure-monitor-token",
        "listener-kv-alertmanager-token",
    ]
    for name in needed:
        assert run.one(ROLE, name).urn in app.dependencies, name


# --- outputs and secrets ----------------------------------------------------------------------------------------


def test_urls_need_no_host_key_so_a_codeless_app_does_not_fail_the_first_run(run: ProgramRun) -> None:
    app = run.one(WEB_APP)
    host = f"{app.inputs['name']}.azurewebsites.net"
    # The app has no code until the publish step runs, and a codeless app's host does not answer the keys API.
    assert not [token for token, _ in run.invokes if token == "azure-native:web:listWebAppHostKeys"]
    assert run.outputs["defaultHostName"] == host
    assert run.outputs["databricksWebhookUrl"] == f"https://{host}/api/webhooks/databricks"
    assert run.outputs["jobWebhookUrl"] == f"https://{host}/api/webhooks/databricks-job"
    assert run.outputs["healthUrl"] == f"https://{host}/api/health"
    assert set(run.secret_outputs) == {"databricksWebhookUrl", "jobWebhookUrl"}


def test_no_secret_value_appears_in_plain_inputs_or_outputs(run: ProgramRun) -> None:
    for resource in run.resources:
        plain = {k: v for k, v in resource.inputs.items() if k not in resource.secret_inputs}
        assert PLANTED not in json.dumps(plain, default=repr), resource.name
    for name, value in run.outputs.items():
        if name not in run.secret_outputs:
            assert PLANTED not in json.dumps(value), name


def test_children_are_parented_and_named_from_the_instance_name(run: ProgramRun) -> None:
    component = run.one("mlops:release:WebhookListener")
    assert component.name == "listener"
    children = [r for r in run.resources if r is not component]
    assert children
    for child in children:
        assert child.parent == component.urn, child.name
        assert child.name.startswith("listener-"), child.name


@pytest.mark.parametrize("protect", [True, False])
def test_stateful_children_are_protected_as_asked(protect: bool, staging_release: ListenerRelease) -> None:
    run = run_listener(make_args(staging_release, placement=dataclasses.replace(PLACEMENT, protect=protect)))
    stateful = {
        "listener-identity",
        "listener-storage",
        "listener-queue",
        "listener-poison-queue",
        "listener-dedupe-table",
        "listener-app",
    }
    protected = {r.name for r in run.resources if r.protect}
    assert protected == (stateful if protect else set())


def test_invalid_args_are_reported_together_naming_each_property(
    staging_release: ListenerRelease, tmp_path: Path
) -> None:
    (tmp_path / "host.json").write_text("{}")
    args = make_args(
        staging_release,
        source_dir=tmp_path,
        target_stack="",
        model_names=["wine-quality", "a,b"],
        job_token_secret_uri="https://other-vault.vault.azure.net/secrets/listener-job-token",
        webhook_secret_uri="https://mlops-kv-abc123.vault.azure.net/secrets/webhook-hmac-secret/0123abcd",
        azure_monitor_token_secret_uri="https://other-vault.vault.azure.net/secrets/listener-azure-monitor-token",
    )
    with pytest.raises(pulumi.InputPropertiesError) as caught:
        run_listener(args)
    errors = caught.value.errors or []
    assert sorted(e["property_path"] for e in errors) == [
        "azure_monitor_token_secret_uri",
        "job_token_secret_uri",
        "model_names[1]",
        "source_dir",
        "target_stack",
        "webhook_secret_uri",
    ]
    assert "missing function_app.py, requirements.txt" in str(caught.value)


# --- the code package -------------------------------------------------------------------------------------------


def test_the_package_is_the_listener_source_without_tests_caches_or_local_settings() -> None:
    members = {name for name, _ in package_files(REPO / "listener")}
    assert {"function_app.py", "host.json", "requirements.txt", "webhook_listener/settings.py"} <= members
    for name in members:
        parts = name.split("/")
        assert not {"tests", "__pycache__", ".venv", ".python_packages"} & set(parts), name
        assert not any(part.startswith(".") for part in parts), name
        assert not name.endswith((".pyc", "local.settings.json")), name


def test_the_package_hash_changes_only_when_a_packaged_source_file_changes(
    staging_release: ListenerRelease, tmp_path: Path
) -> None:
    source = tmp_path / "listener"
    shutil.copytree(REPO / "listener", source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    def exported() -> str:
        return str(run_listener(make_args(staging_release, source_dir=source)).outputs["packageSha256"])

    first = exported()
    assert exported() == first  # same files: same package, nothing to publish

    # Files outside the package: tests, caches, local settings, a local virtualenv.
    (source / "tests").mkdir()
    (source / "tests" / "test_new.py").write_text("def test_x() -> None: ...\n")
    (source / "webhook_listener" / "__pycache__").mkdir(exist_ok=True)
    (source / "webhook_listener" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\x00cache")
    (source / "local.settings.json").write_text('{"Values": {"LISTENER_WEBHOOK_SECRET": "local"}}')
    (source / ".venv").mkdir()
    (source / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    assert exported() == first

    # One packaged file changes: the hash changes.
    promotion = source / "webhook_listener" / "promotion.py"
    promotion.write_text(promotion.read_text() + "\n# a change\n")
    assert exported() != first
