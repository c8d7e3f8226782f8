"""ModelRegistryWebhook through the harness: the registry webhook for workspace models (staging's release settings,
registry-wide scope, TEST_MODE), the alias-triggered job for Unity Catalog models, secrets kept secret everywhere,
and the job's notebook run against the listener's own request checks."""

from __future__ import annotations

import asyncio
import base64
import json
import runpy
import sys
import types
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import Message
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
    AliasJob,
    ModelRegistryWebhook,
    ModelRegistryWebhookArgs,
    RegistryWebhook,
)
from offline import harness
from offline.cloud_facts import CloudError
from offline.harness import ProgramRun, RecordedResource
from offline.mockcloud import MockCloud
from program import stack_args
from stacks.files import load_stack_config
from stacks.settings import ModelRegistrySettings, ModelSettings, ReleaseSettings
from webhook_listener.schemas import JobPromotion
from webhook_listener.signatures import verify_bearer

REPO = Path(__file__).resolve().parents[2]
PROJECT = "mlops-serving"
# Planted values: none of them may appear in any input that is not secret.
URL_SECRET = "planteduriquerysecret0123456789"
HMAC_SECRET = "plantedhmacsecret0123456789abcdef"
JOB_TOKEN = "plantedjobtoken0123456789abcdef"
PLANTED = (URL_SECRET, HMAC_SECRET, JOB_TOKEN)
LISTENER = "https://mlops-serving-staging-listener-81d83c.azurewebsites.net"
# A secret in the URLs' query: whatever a URL carries stays out of every plain input.
WEBHOOK_URL = f"{LISTENER}/api/webhooks/databricks?secret={URL_SECRET}"
JOB_URL = f"{LISTENER}/api/webhooks/databricks-job?secret={URL_SECRET}"
NOTEBOOK_PATH = "/mlops-release/release/notify_listener"

WEBHOOK = "databricks:index/mlflowWebhook:MlflowWebhook"
JOB = "databricks:index/job:Job"
SECRET = "databricks:index/secret:Secret"
NOTEBOOK = "databricks:index/notebook:Notebook"
SCOPE = "databricks:index/secretScope:SecretScope"
DIRECTORY = "databricks:index/directory:Directory"

WORKSPACE_MODEL = ModelSettings(name="wine-quality", version=1, catalog="workspace")
UC_MODEL = ModelSettings(name="main.ml.wine_quality", version=1, catalog="unity-catalog")


class DayZeroDatabricksCloud(MockCloud):
    """The mock cloud with the Databricks provider not configured yet (the new workspace's URL unknown, day zero):
    the engine answers every invoke through it with an empty map. Records the Databricks invokes made."""

    calls: list[tuple[str, str]] = []  # noqa: RUF012 - reset by run_webhook before each run

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        if args.token.startswith("databricks:"):
            DayZeroDatabricksCloud.calls.append((args.token, args.provider))
            return {}
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
        signal=stack_args.promotion_signal(release, registry or registry_of(model), model),
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

    DayZeroDatabricksCloud.calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "MockCloud", DayZeroDatabricksCloud)
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


def test_children_are_parented_and_named_from_the_instance_name(workspace_run: ProgramRun, uc_run: ProgramRun) -> None:
    for run in (workspace_run, uc_run):
        component = run.one("mlops:release:ModelRegistryWebhook")
        children = [r for r in run.resources if r.parent == component.urn]
        assert {r.urn for r in children} == {r.urn for r in run.resources if r.type.startswith("databricks:index/")}
        for child in children:
            assert child.name.startswith("release-"), child.name


# --- Unity Catalog: the alias-triggered job ------------------------------------------------------------------


def test_unity_catalog_model_gets_a_scheduled_alias_reading_job_instead_of_a_webhook(
    uc_run: ProgramRun, staging_release: ReleaseSettings
) -> None:
    assert uc_run.all(WEBHOOK) == []
    job = uc_run.one(JOB)
    # The provider refuses a trigger of the model kind (the mock cloud's Check rule), so the job runs on a schedule.
    assert "trigger" not in job.inputs
    assert job.inputs["schedule"] == {
        "quartzCronExpression": "0 0/5 * * * ?",
        "timezoneId": "UTC",
        "pauseStatus": "UNPAUSED",
    }
    assert {"name": "alias", "default": staging_release.promote_alias} in job.inputs["parameters"]
    assert {"name": "securable", "default": "main.ml.wine_quality"} in job.inputs["parameters"]
    assert job.inputs["maxConcurrentRuns"] == 1
    assert job.inputs["queue"] == {"enabled": True}
    assert job.inputs["timeoutSeconds"] == 1800


def test_a_job_with_only_a_model_trigger_is_refused_as_the_provider_refuses_it() -> None:
    def program() -> None:
        provider = databricks.Provider("workspace", host="https://adb-1234567890123456.7.azuredatabricks.net")
        databricks.Job(
            "trigger-job",
            trigger=databricks.JobTriggerArgs(
                model=databricks.JobTriggerModelArgs(condition="MODEL_ALIAS_SET", securable_name="main.ml")
            ),
            opts=pulumi.ResourceOptions(provider=provider),
        )

    with pytest.raises(CloudError, match=r"one of `trigger.0.file_arrival,trigger.0.periodic,trigger.0.table_update`"):
        harness.run_program(program, {}, project=PROJECT, stack="staging")


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
        "path": NOTEBOOK_PATH,
        "contentBase64": base64.b64encode(NOTEBOOK_SOURCE.read_bytes()).decode("ascii"),
        "language": "PYTHON",
    }
    assert NOTEBOOK_SOURCE.is_file()


def test_the_notebook_lives_in_the_platforms_root_folder_whoever_deploys(uc_run: ProgramRun) -> None:
    # The Databricks provider is unconfigured on day zero, so every invoke through it answers an empty map; the
    # component makes none, and the notebook's path (which forces a replacement) names no user.
    assert DayZeroDatabricksCloud.calls == []
    folder = uc_run.one(DIRECTORY)
    assert folder.inputs == {"path": "/mlops-release/release"}
    notebook = uc_run.one(NOTEBOOK)
    assert notebook.inputs["path"] == f"{folder.inputs['path']}/notify_listener"
    assert folder.urn in notebook.dependencies
    # Not /Shared (every user may edit there) and not a home folder (it changes with the caller).
    assert not notebook.inputs["path"].startswith(("/Shared/", "/Users/", "/Workspace/Shared/"))


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
        {"name": "securable", "default": "main.ml.wine_quality"},
        {"name": "alias", "default": "champion"},
        {"name": "secret_scope", "default": "release-listener"},
    ]
    for secret in secrets.values():
        assert secret.urn in job.dependencies
    assert_no_planted_secret_in_plain_inputs(uc_run)


@pytest.mark.parametrize(("status", "pause"), [("TEST_MODE", "PAUSED"), ("DISABLED", "PAUSED"), ("ACTIVE", "UNPAUSED")])
def test_the_schedule_runs_only_when_the_status_is_active(
    status: str, pause: str, staging_release: ReleaseSettings
) -> None:
    run = run_webhook(staging_release.model_copy(update={"webhook_status": status}), UC_MODEL)
    assert run.one(JOB).inputs["schedule"]["pauseStatus"] == pause


def test_registry_scope_watches_the_models_schema(staging_release: ReleaseSettings) -> None:
    run = run_webhook(staging_release.model_copy(update={"webhook_scope": "registry"}), UC_MODEL)
    assert {"name": "securable", "default": "main.ml"} in run.one(JOB).inputs["parameters"]


@pytest.mark.parametrize("name", ["wine-quality", "ml.wine_quality", "a.b.c.d", "main..wine"])
def test_unity_catalog_model_name_must_be_catalog_schema_model(name: str) -> None:
    with pytest.raises(ValidationError, match=r"catalog\.schema\.model"):
        ModelSettings(name=name, version=1, catalog="unity-catalog")


@pytest.mark.parametrize("securable", ["wine-quality", "a.b.c.d", "main..wine", ""])
def test_an_alias_job_reads_only_a_model_or_a_schema(securable: str) -> None:
    with pytest.raises(ValueError, match=r"catalog\.schema\.model or catalog\.schema"):
        AliasJob(securable=securable, alias="champion")


def test_a_registry_webhook_needs_an_event() -> None:
    with pytest.raises(ValueError, match="at least one promote event"):
        RegistryWebhook(events=(), model_name=None)


# --- the notebook the job runs, against the listener's own checks ------------------------------------------


class FakeDbutils:
    """The slice of dbutils the notebook uses: job parameters (widgets) and the secret scope."""

    def __init__(self, widgets: Mapping[str, str], secrets: Mapping[tuple[str, str], str]) -> None:
        self.widgets = types.SimpleNamespace(get=lambda name: widgets[name])
        self.secrets = types.SimpleNamespace(get=lambda scope, key: secrets[(scope, key)])


class FakeRegistry:
    """The slice of the workspace client the notebook uses: a schema's models and each model's aliases."""

    def __init__(self, aliases: Mapping[str, Mapping[str, int]]) -> None:
        self.aliases = aliases

    def list(self, catalog_name: str, schema_name: str) -> list[types.SimpleNamespace]:
        prefix = f"{catalog_name}.{schema_name}."
        return [types.SimpleNamespace(full_name=m) for m in self.aliases if m.startswith(prefix)]

    def get(self, full_name: str, include_aliases: bool) -> types.SimpleNamespace:
        assert include_aliases
        named = [types.SimpleNamespace(alias_name=a, version_num=v) for a, v in self.aliases[full_name].items()]
        return types.SimpleNamespace(aliases=named)


# Unity Catalog's tag rules (learn.microsoft.com/azure/databricks/database-objects/tags, "Constraints"): keys up to
# 255 characters, values up to 1000, neither holding . , - = / : nor leading or trailing spaces.
_FORBIDDEN_IN_TAGS = set(".,-=/:")


class FakeModelTags:
    """The slice of MLflow's Unity Catalog client the notebook uses: a registered model's tags, kept across runs
    like the catalog keeps them, refusing what Unity Catalog refuses."""

    def __init__(self, tags: dict[str, dict[str, str]], registry_uri: str) -> None:
        assert registry_uri == "databricks-uc"
        self.tags = tags

    def get_registered_model(self, name: str) -> types.SimpleNamespace:
        return types.SimpleNamespace(name=name, tags=dict(self.tags.get(name, {})))

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        for kind, text, limit in (("key", key, 255), ("value", value, 1000)):
            if not text or len(text) > limit or _FORBIDDEN_IN_TAGS & set(text) or text != text.strip():
                raise ValueError(f"INVALID_PARAMETER_VALUE: tag {kind} {text!r}")
        self.tags.setdefault(name, {})[key] = value


class FakeListener:
    """The job route's answers: 202, "accepted" for a delivery id it has not seen and "duplicate" for one it has
    (it keeps every id, webhook_listener/deliveries.py); `failing` answers 503 instead, as with storage down."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.accepted: list[JobPromotion] = []
        self.failing = False

    def answer(self, request: urllib.request.Request) -> FakeResponse:
        assert isinstance(request.data, bytes)
        body = JobPromotion.model_validate(json.loads(request.data))
        if self.failing:
            raise urllib.error.HTTPError(request.full_url, 503, "Service Unavailable", Message(), None)
        if body.delivery_id not in self.seen:
            self.seen.append(body.delivery_id)
            self.accepted.append(body)
        return FakeResponse()


class FakeResponse:
    status = 202

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def run_notebook(
    monkeypatch: pytest.MonkeyPatch,
    securable: str,
    aliases: Mapping[str, Mapping[str, int]],
    *,
    tags: dict[str, dict[str, str]] | None = None,
    listener: FakeListener | None = None,
    alias: str = "champion",
) -> list[urllib.request.Request]:
    dbutils = FakeDbutils(
        widgets={"securable": securable, "alias": alias, "secret_scope": "release-listener"},
        secrets={("release-listener", JOB_URL_KEY): JOB_URL, ("release-listener", JOB_TOKEN_KEY): JOB_TOKEN},
    )
    registry = FakeRegistry(aliases)
    model_tags = {} if tags is None else tags
    answering = listener or FakeListener()
    sent: list[urllib.request.Request] = []

    def urlopen(request: urllib.request.Request, timeout: float) -> FakeResponse:
        assert timeout == 30
        sent.append(request)
        return answering.answer(request)

    client = types.SimpleNamespace(registered_models=registry)
    monkeypatch.setitem(sys.modules, "databricks.sdk.runtime", types.SimpleNamespace(dbutils=dbutils))
    monkeypatch.setitem(sys.modules, "databricks.sdk", types.SimpleNamespace(WorkspaceClient=lambda: client))
    mlflow = types.SimpleNamespace(MlflowClient=lambda registry_uri: FakeModelTags(model_tags, registry_uri))
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    runpy.run_path(str(NOTEBOOK_SOURCE), run_name="__main__")
    return sent


def delivery_ids(sent: list[urllib.request.Request]) -> list[str]:
    return [json.loads(r.data)["delivery_id"] for r in sent]  # type: ignore[arg-type]


def test_the_notebook_posts_what_the_listener_job_route_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    aliases = {
        "main.ml.wine_quality": {"champion": 7, "challenger": 8},
        "main.ml.other": {"challenger": 2},  # the promote alias is not set: nothing to release
        "main.other.model": {"champion": 1},  # another schema
    }
    [request] = run_notebook(monkeypatch, "main.ml", aliases)
    assert request.full_url == JOB_URL
    assert request.get_method() == "POST"
    headers = {k.lower(): v for k, v in request.header_items()}
    assert headers["content-type"] == "application/json"
    verify_bearer(headers, JOB_TOKEN)  # raises if the listener would refuse the token
    assert isinstance(request.data, bytes)
    body = JobPromotion.model_validate(json.loads(request.data))
    assert (body.model, body.version, body.alias) == ("main.ml.wine_quality", "7", "champion")
    assert body.delivery_id == "uc-main.ml.wine_quality-7-champion"


def test_every_read_of_one_promotion_has_the_same_delivery_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # The listener keeps every delivery id it has seen: the same id on every scheduled read releases a version once,
    # and a new version under the alias is a new id.
    tags: dict[str, dict[str, str]] = {}
    first = run_notebook(monkeypatch, "main.ml.wine_quality", {"main.ml.wine_quality": {"champion": 7}}, tags=tags)
    again = run_notebook(monkeypatch, "main.ml.wine_quality", {"main.ml.wine_quality": {"champion": 7}}, tags=tags)
    moved = run_notebook(monkeypatch, "main.ml.wine_quality", {"main.ml.wine_quality": {"champion": 8}}, tags=tags)
    ids = delivery_ids([*first, *again, *moved])
    assert ids[0] == ids[1] != ids[2]


def test_every_move_of_the_alias_is_released_once_rolling_back_included(monkeypatch: pytest.MonkeyPatch) -> None:
    # v1 -> v2 -> v1 -> v2, each position read three times: the listener acts on each move once, the rollbacks too,
    # and on none of the repeated reads.
    tags: dict[str, dict[str, str]] = {}
    listener = FakeListener()
    ids: list[list[str]] = []
    for version in (1, 2, 1, 2):
        aliases = {"main.ml.wine_quality": {"champion": version}}
        reads = [run_notebook(monkeypatch, "main.ml", aliases, tags=tags, listener=listener) for _ in range(3)]
        ids.append([i for sent in reads for i in delivery_ids(sent)])
    assert all(len(set(position)) == 1 and len(position) == 3 for position in ids)
    assert len({position[0] for position in ids}) == 4
    assert [(p.model, p.version, p.alias) for p in listener.accepted] == [
        ("main.ml.wine_quality", "1", "champion"),
        ("main.ml.wine_quality", "2", "champion"),
        ("main.ml.wine_quality", "1", "champion"),
        ("main.ml.wine_quality", "2", "champion"),
    ]
    # The first read sends the id the job sent before it kept a tag, so a promotion already released stays released.
    assert ids[0][0] == "uc-main.ml.wine_quality-1-champion"
    assert tags == {"main.ml.wine_quality": {"mlops_release_champion": "2_3"}}


def test_a_refused_post_moves_nothing_and_the_retry_sends_the_same_id(monkeypatch: pytest.MonkeyPatch) -> None:
    tags: dict[str, dict[str, str]] = {}
    listener = FakeListener()
    model = "main.ml.wine_quality"
    run_notebook(monkeypatch, model, {model: {"champion": 3}}, tags=tags, listener=listener)
    listener.failing = True
    with pytest.raises(urllib.error.HTTPError):
        run_notebook(monkeypatch, model, {model: {"champion": 2}}, tags=tags, listener=listener)
    assert tags[model] == {"mlops_release_champion": "3_0"}  # the tag moves only after a 2xx
    listener.failing = False
    retried = run_notebook(monkeypatch, model, {model: {"champion": 2}}, tags=tags, listener=listener)
    assert [p.version for p in listener.accepted] == ["3", "2"]
    assert delivery_ids(retried) == ["uc-main.ml.wine_quality-2-champion-g1"]
    assert tags[model] == {"mlops_release_champion": "2_1"}


def test_the_tag_follows_each_alias_and_keeps_to_unity_catalogs_tag_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake refuses keys or values Unity Catalog refuses; an alias with characters a key cannot hold still works.
    tags: dict[str, dict[str, str]] = {"main.ml.wine_quality": {"owner_team": "ml"}}
    model = "main.ml.wine_quality"
    for version in (5, 6):
        aliases = {model: {"prod-v2.0": version, "champion": 1}}
        [sent] = run_notebook(monkeypatch, model, aliases, tags=tags, alias="prod-v2.0")
        assert json.loads(sent.data)["alias"] == "prod-v2.0"  # type: ignore[arg-type]
    assert tags == {model: {"owner_team": "ml", "mlops_release_prod_v2_0": "6_1"}}


def test_the_cloud_answers_an_invoke_through_an_unconfigured_databricks_provider_with_an_empty_map() -> None:
    # Day zero: the provider's host is the new workspace's URL, unknown until the workspace exists.
    seen: list[Any] = []

    def program() -> None:
        unknown: pulumi.Output[str] = pulumi.Output(set(), _resolved(""), _resolved(False))
        provider = databricks.Provider("workspace", host=unknown)
        me = databricks.get_current_user_output(opts=pulumi.InvokeOutputOptions(provider=provider))
        me.home.apply(seen.append)

    run = harness.preview_program(program, {}, project=PROJECT, stack="staging")
    assert ("databricks:index/getCurrentUser:getCurrentUser", {}) in run.invokes
    assert seen in ([], [None])  # no home: what made the old notebook path fail


def _resolved(value: Any) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_event_loop().create_future()
    future.set_result(value)
    return future
