"""ModelRegistryWebhook through the harness: the registry webhook for workspace models (staging's release settings,
registry-wide scope, TEST_MODE), the alias-triggered job for Unity Catalog models, secrets kept secret everywhere,
and the job's notebook run against the listener's own request checks."""

from __future__ import annotations

import base64
import json
import runpy
import sys
import types
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pulumi_databricks as databricks
import pytest
from pydantic import ValidationError

from components.model_registry_webhook import (
    JOB_TOKEN_KEY,
    JOB_URL_KEY,
    NOTEBOOK_SOURCE,
    ModelRegistryWebhook,
    ModelRegistryWebhookArgs,
)
from offline import harness
from offline.harness import ProgramRun, RecordedResource
from offline.mockcloud import MockCloud
from stacks.files import load_stack_config
from stacks.settings import ModelRegistrySettings, ModelSettings, ReleaseSettings
from webhook_listener.schemas import JobPromotion
from webhook_listener.signatures import verify_bearer

REPO = Path(__file__).resolve().parents[2]
PROJECT = "mlops-serving"
# Planted values: none of them may appear in any input that is not secret.
FUNCTION_KEY = "plantedfunctionkey0123456789"
HMAC_SECRET = "plantedhmacsecret0123456789abcdef"
JOB_TOKEN = "plantedjobtoken0123456789abcdef"
PLANTED = (FUNCTION_KEY, HMAC_SECRET, JOB_TOKEN)
LISTENER = "https://mlops-serving-staging-listener-81d83c.azurewebsites.net"
WEBHOOK_URL = f"{LISTENER}/api/webhooks/databricks?code={FUNCTION_KEY}"
JOB_URL = f"{LISTENER}/api/webhooks/databricks-job?code={FUNCTION_KEY}"
DEPLOYER_HOME = "/Users/deployer@example.com"

WEBHOOK = "databricks:index/mlflowWebhook:MlflowWebhook"
JOB = "databricks:index/job:Job"
SECRET = "databricks:index/secret:Secret"
NOTEBOOK = "databricks:index/notebook:Notebook"
SCOPE = "databricks:index/secretScope:SecretScope"

WORKSPACE_MODEL = ModelSettings(name="wine-quality", version=1, catalog="workspace")
UC_MODEL = ModelSettings(name="main.ml.wine_quality", version=1, catalog="unity-catalog")


class DatabricksUserCloud(MockCloud):
    """The mock cloud plus the one Databricks invoke this component makes (getCurrentUser), with its provider.

    Proposed for offline/mockcloud.py; until then the tests swap it in for the harness's MockCloud.
    """

    calls: list[tuple[str, str]] = []  # noqa: RUF012 - reset by run_webhook before each run

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        if args.token == "databricks:index/getCurrentUser:getCurrentUser":
            DatabricksUserCloud.calls.append((args.token, args.provider))
            self.invokes.append((args.token, {}))
            return {
                "id": "4242",
                "userName": "deployer@example.com",
                "home": DEPLOYER_HOME,
                "repos": "/Repos/deployer@example.com",
                "alphanumeric": "deployer_example_com",
                "externalId": "00000000-0000-4000-8000-0000000000d1",
                "aclPrincipalId": "users/deployer@example.com",
                "workspaceUrl": "https://adb-1234567890123456.7.azuredatabricks.net",
            }
        return super().call(args)


@pytest.fixture(scope="module")
def staging_release() -> ReleaseSettings:
    release = load_stack_config(REPO, "staging").settings().release
    assert release is not None
    # Most tests here are about the pinned model's webhook or trigger; the registry scope has its own tests.
    return release.model_copy(update={"webhook_scope": "model"})


def registry_of(model: ModelSettings) -> ModelRegistrySettings:
    """The registry a model lives in: the workspace registry, or the Unity Catalog schema its name says."""
    if model.catalog == "workspace":
        return ModelRegistrySettings(type="workspace")
    catalog, schema, _ = model.name.split(".")
    return ModelRegistrySettings(type="unity-catalog", catalog=catalog, schema=schema)


def run_webhook(
    release: ReleaseSettings,
    model: ModelSettings,
    *,
    provider_option: str = "providers",
    registry: ModelRegistrySettings | None = None,
) -> ProgramRun:
    args = ModelRegistryWebhookArgs(
        release=release,
        model=model,
        registry=registry or registry_of(model),
        # Plain strings on purpose: the component must make them secret itself.
        listener_webhook_url=WEBHOOK_URL,
        listener_job_url=JOB_URL,
        hmac_secret=HMAC_SECRET,
        job_token=JOB_TOKEN,
    )

    def program() -> None:
        provider = databricks.Provider("workspace", host="https://adb-1234567890123456.7.azuredatabricks.net")
        opts = (
            pulumi.ResourceOptions(providers=[provider])
            if provider_option == "providers"
            else pulumi.ResourceOptions(provider=provider)
        )
        ModelRegistryWebhook("release", args, opts=opts)

    DatabricksUserCloud.calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "MockCloud", DatabricksUserCloud)
        # Steady state: the pinned model is registered (a model-scoped webhook or trigger needs it to exist).
        registered = harness.ProgramOptions(registry_models={model.name: [model.version]})
        return harness.run_program(program, {}, project=PROJECT, stack="staging", options=registered)


@pytest.fixture(scope="module")
def workspace_run(staging_release: ReleaseSettings) -> ProgramRun:
    return run_webhook(staging_release, WORKSPACE_MODEL)


@pytest.fixture(scope="module")
def uc_run(staging_release: ReleaseSettings) -> ProgramRun:
    return run_webhook(staging_release, UC_MODEL)


def provider_urn(run: ProgramRun) -> str:
    return run.one("pulumi:providers:databricks").urn


def assert_no_planted_secret_in_plain_inputs(run: ProgramRun) -> None:
    for resource in run.resources:
        plain = {k: v for k, v in resource.inputs.items() if k not in resource.secret_inputs}
        text = json.dumps(plain, default=repr)
        for value in PLANTED:
            assert value not in text, f"{value} in a plain input of {resource.name}"


# --- workspace registry: the webhook ------------------------------------------------------------------------


def test_webhook_fires_on_the_configured_promote_events_for_the_pinned_model(
    workspace_run: ProgramRun, staging_release: ReleaseSettings
) -> None:
    webhook = workspace_run.one(WEBHOOK)
    assert webhook.inputs["events"] == [
        "MODEL_VERSION_TRANSITIONED_TO_STAGING",
        "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION",
    ]
    assert webhook.inputs["events"] == staging_release.events
    assert webhook.inputs["modelName"] == "wine-quality"
    assert webhook.inputs["status"] == "ACTIVE"
    assert "wine-quality" in webhook.inputs["description"]
    assert "jobSpec" not in webhook.inputs
    assert workspace_run.all(JOB) == []


def test_webhook_calls_the_listener_url_with_the_shared_secret_both_secret(workspace_run: ProgramRun) -> None:
    webhook = workspace_run.one(WEBHOOK)
    assert webhook.inputs["httpUrlSpec"] == {
        "url": WEBHOOK_URL,
        "secret": HMAC_SECRET,
        "enableSslVerification": True,
    }
    assert webhook.secret_inputs == ("httpUrlSpec",)
    assert webhook.additional_secret_outputs == ("httpUrlSpec",)
    assert_no_planted_secret_in_plain_inputs(workspace_run)


def test_registry_scope_webhook_has_no_model_name(staging_release: ReleaseSettings) -> None:
    run = run_webhook(staging_release.model_copy(update={"webhook_scope": "registry"}), WORKSPACE_MODEL)
    webhook = run.one(WEBHOOK)
    assert "modelName" not in webhook.inputs
    assert webhook.inputs["events"] == staging_release.events
    assert "every model" in webhook.inputs["description"]
    assert webhook.secret_inputs == ("httpUrlSpec",)


@pytest.mark.parametrize("status", ["TEST_MODE", "DISABLED"])
def test_webhook_status_comes_from_config(status: str, staging_release: ReleaseSettings) -> None:
    run = run_webhook(staging_release.model_copy(update={"webhook_status": status}), WORKSPACE_MODEL)
    assert run.one(WEBHOOK).inputs["status"] == status


def test_other_promote_events_are_passed_through(staging_release: ReleaseSettings) -> None:
    events = ["TRANSITION_REQUEST_TO_PRODUCTION_CREATED", "MODEL_VERSION_TRANSITIONED_STAGE"]
    run = run_webhook(staging_release.model_copy(update={"events": events}), WORKSPACE_MODEL)
    assert run.one(WEBHOOK).inputs["events"] == events


@pytest.mark.parametrize("provider_option", ["providers", "provider"])
def test_the_databricks_provider_from_opts_reaches_every_databricks_child(
    provider_option: str, staging_release: ReleaseSettings
) -> None:
    for model in (WORKSPACE_MODEL, UC_MODEL):
        run = run_webhook(staging_release, model, provider_option=provider_option)
        children = [r for r in run.resources if r.type.startswith("databricks:")]
        assert children
        for child in children:
            assert child.provider.startswith(provider_urn(run) + "::"), child.name
        if model is UC_MODEL:
            [(_, invoke_provider)] = DatabricksUserCloud.calls
            assert invoke_provider.startswith(provider_urn(run) + "::")


def test_children_are_parented_and_named_from_the_instance_name(workspace_run: ProgramRun, uc_run: ProgramRun) -> None:
    for run in (workspace_run, uc_run):
        component = run.one("mlops:release:ModelRegistryWebhook")
        children = [r for r in run.resources if r.parent == component.urn]
        assert {r.urn for r in children} == {r.urn for r in run.resources if r.type.startswith("databricks:index/")}
        for child in children:
            assert child.name.startswith("release-"), child.name


# --- Unity Catalog: the alias-triggered job ------------------------------------------------------------------


def test_unity_catalog_model_gets_an_alias_triggered_job_instead_of_a_webhook(
    uc_run: ProgramRun, staging_release: ReleaseSettings
) -> None:
    assert uc_run.all(WEBHOOK) == []
    job = uc_run.one(JOB)
    assert job.inputs["trigger"] == {
        "pauseStatus": "UNPAUSED",
        "model": {
            "condition": "MODEL_ALIAS_SET",
            "aliases": [staging_release.promote_alias],
            "securableName": "main.ml.wine_quality",
        },
    }
    assert job.inputs["maxConcurrentRuns"] == 1
    assert job.inputs["queue"] == {"enabled": True}
    assert job.inputs["timeoutSeconds"] == 1800


def test_the_job_runs_one_serverless_notebook_task(uc_run: ProgramRun) -> None:
    job = uc_run.one(JOB)
    notebook = uc_run.one(NOTEBOOK)
    assert job.inputs["tasks"] == [
        {
            "taskKey": "notify_listener",
            "notebookTask": {"notebookPath": notebook.inputs["path"], "source": "WORKSPACE"},
            "maxRetries": 3,
            "minRetryIntervalMillis": 60000,
            "retryOnTimeout": True,
            "timeoutSeconds": 300,
        }
    ]
    # Serverless: no cluster of any kind on the job or the task.
    for key in ("jobClusters", "newCluster", "existingClusterId", "environments"):
        assert key not in job.inputs
    assert notebook.urn in job.property_dependencies["tasks"]
    assert notebook.inputs == {
        "path": f"{DEPLOYER_HOME}/mlops-release/release/notify_listener",
        "contentBase64": base64.b64encode(NOTEBOOK_SOURCE.read_bytes()).decode("ascii"),
        "language": "PYTHON",
    }
    assert NOTEBOOK_SOURCE.is_file()


def test_the_job_reads_url_and_token_from_a_secret_scope_not_from_parameters(uc_run: ProgramRun) -> None:
    scope = uc_run.one(SCOPE)
    assert scope.inputs == {"name": "release-listener", "backendType": "DATABRICKS"}
    secrets = {r.inputs["key"]: r for r in uc_run.all(SECRET)}
    assert set(secrets) == {JOB_URL_KEY, JOB_TOKEN_KEY}
    for key, value in ((JOB_URL_KEY, JOB_URL), (JOB_TOKEN_KEY, JOB_TOKEN)):
        secret: RecordedResource = secrets[key]
        assert secret.inputs == {"scope": "release-listener", "key": key, "stringValue": value}
        assert secret.secret_inputs == ("stringValue",)
        assert "stringValue" in secret.additional_secret_outputs
        assert scope.urn in secret.property_dependencies["scope"]
    job = uc_run.one(JOB)
    assert job.inputs["parameters"] == [
        {"name": "model_updates", "default": "{{job.trigger.model.updates}}"},
        {"name": "job_run_id", "default": "{{job.run_id}}"},
        {"name": "secret_scope", "default": "release-listener"},
    ]
    for secret in secrets.values():
        assert secret.urn in job.dependencies
    assert_no_planted_secret_in_plain_inputs(uc_run)


@pytest.mark.parametrize(("status", "pause"), [("TEST_MODE", "PAUSED"), ("DISABLED", "PAUSED"), ("ACTIVE", "UNPAUSED")])
def test_the_trigger_runs_only_when_the_status_is_active(
    status: str, pause: str, staging_release: ReleaseSettings
) -> None:
    run = run_webhook(staging_release.model_copy(update={"webhook_status": status}), UC_MODEL)
    assert run.one(JOB).inputs["trigger"]["pauseStatus"] == pause


def test_registry_scope_watches_the_models_schema(staging_release: ReleaseSettings) -> None:
    run = run_webhook(staging_release.model_copy(update={"webhook_scope": "registry"}), UC_MODEL)
    assert run.one(JOB).inputs["trigger"]["model"]["securableName"] == "main.ml"


@pytest.mark.parametrize("name", ["wine-quality", "ml.wine_quality", "a.b.c.d", "main..wine"])
def test_unity_catalog_model_name_must_be_catalog_schema_model(name: str, staging_release: ReleaseSettings) -> None:
    with pytest.raises(ValidationError, match=r"catalog\.schema\.model"):
        ModelSettings(name=name, version=1, catalog="unity-catalog")
    # The component checks again, for settings made without validation.
    model = ModelSettings.model_construct(name=name, version=1, catalog="unity-catalog", image_digest=None)
    with pytest.raises(pulumi.InputPropertyError) as caught:
        run_webhook(
            staging_release, model, registry=ModelRegistrySettings(type="unity-catalog", catalog="c", schema="s")
        )
    assert caught.value.property_path == "model.name"
    assert "catalog.schema.model" in caught.value.reason


# --- the notebook the job runs, against the listener's own checks ------------------------------------------


class FakeDbutils:
    """The slice of dbutils the notebook uses: job parameters (widgets) and the secret scope."""

    def __init__(self, widgets: Mapping[str, str], secrets: Mapping[tuple[str, str], str]) -> None:
        self.widgets = types.SimpleNamespace(get=lambda name: widgets[name])
        self.secrets = types.SimpleNamespace(get=lambda scope, key: secrets[(scope, key)])


class FakeResponse:
    status = 202

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_the_notebook_posts_what_the_listener_job_route_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    updates = [
        {"full_name": "main.ml.wine_quality", "version": 7, "alias_name": "champion"},
        {"full_name": "main.ml.wine_quality", "version": 8},  # not an alias update: skipped
    ]
    dbutils = FakeDbutils(
        widgets={"model_updates": json.dumps(updates), "job_run_id": "991", "secret_scope": "release-listener"},
        secrets={("release-listener", JOB_URL_KEY): JOB_URL, ("release-listener", JOB_TOKEN_KEY): JOB_TOKEN},
    )
    sent: list[urllib.request.Request] = []

    def urlopen(request: urllib.request.Request, timeout: float) -> FakeResponse:
        assert timeout == 30
        sent.append(request)
        return FakeResponse()

    monkeypatch.setitem(sys.modules, "databricks.sdk.runtime", types.SimpleNamespace(dbutils=dbutils))
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    runpy.run_path(str(NOTEBOOK_SOURCE), run_name="__main__")

    [request] = sent
    assert request.full_url == JOB_URL
    assert request.get_method() == "POST"
    headers = {k.lower(): v for k, v in request.header_items()}
    assert headers["content-type"] == "application/json"
    verify_bearer(headers, JOB_TOKEN)  # raises if the listener would refuse the token
    assert isinstance(request.data, bytes)
    body = JobPromotion.model_validate(json.loads(request.data))
    assert (body.model, body.version, body.alias) == ("main.ml.wine_quality", "7", "champion")
    assert body.delivery_id == "uc-991-main.ml.wine_quality-7-champion"
