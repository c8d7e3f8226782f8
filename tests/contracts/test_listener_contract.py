"""The program ↔ listener boundary: the app settings, queue and table names the program uses are the ones the
listener reads, all taken from `webhook_listener/contract.py`. (tests/components/test_webhook_listener.py checks the
app settings the program renders against the settings class, value by value.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from offline.preview import StackRun
from webhook_listener import contract
from webhook_listener.settings import ALL_SETTINGS, ListenerSettings

ROOT = Path(__file__).resolve().parents[2]
SITE = "azure-native:web:WebApp"
QUEUE = "azure-native:storage:Queue"
TABLE = "azure-native:storage:Table"


def app_settings(run: StackRun) -> dict[str, Any]:
    app = run.run.one(SITE)
    return {pair["name"]: pair["value"] for pair in app.inputs["siteConfig"]["appSettings"]}


def test_the_contract_names_exactly_the_variables_the_listener_settings_read() -> None:
    assert contract.env_names() == ALL_SETTINGS


def test_the_listener_defaults_are_the_contract_storage_names() -> None:
    fields = ListenerSettings.model_fields
    assert fields["queue_name"].default == contract.QUEUE_NAME
    assert fields["poison_queue_name"].default == contract.POISON_QUEUE_NAME
    assert fields["dedupe_table_name"].default == contract.DEDUPE_TABLE_NAME
    assert fields["queue_trigger_connection"].default == contract.QUEUE_TRIGGER_CONNECTION


def test_the_program_sets_only_names_the_listener_reads_and_creates_the_storage_it_names(staging: StackRun) -> None:
    settings = app_settings(staging)
    listener_names = {name for name in settings if name.startswith(contract.ENV_PREFIX)}
    assert listener_names <= ALL_SETTINGS
    assert {contract.Env.WEBHOOK_SECRET, contract.Env.QUEUE_ACCOUNT_URL, contract.Env.TABLE_ACCOUNT_URL} <= set(
        settings
    )
    queues = {r.inputs["queueName"] for r in staging.run.all(QUEUE)}
    tables = {r.inputs["tableName"] for r in staging.run.all(TABLE)}
    assert queues == {settings[contract.Env.QUEUE_NAME], settings[contract.Env.POISON_QUEUE_NAME]}
    assert queues == {contract.QUEUE_NAME, contract.POISON_QUEUE_NAME}
    assert tables == {settings[contract.Env.DEDUPE_TABLE_NAME]} == {contract.DEDUPE_TABLE_NAME}


ACTION_GROUP = "azure-native:monitor:ActionGroup"
DATABRICKS_SECRET = "databricks:index/secret:Secret"


def contract_routes() -> set[str]:
    return {value for key, value in vars(contract.Routes).items() if key.isupper()}


def test_the_app_serves_exactly_the_contract_routes() -> None:
    from webhook_listener.app import create_app
    from webhook_listener.settings import load_settings

    settings = load_settings(
        webhook_secret="s" * 32,
        storage_connection_string="UseDevelopmentStorage=true",
        github_repository="acme/serving",
        github_token="t" * 20,
    )
    served = {route.path for route in create_app(settings).routes}  # type: ignore[attr-defined]
    assert served == contract_routes()


def test_the_urls_the_program_gives_the_senders_are_contract_routes(staging: StackRun) -> None:
    (group,) = staging.run.all(ACTION_GROUP)
    (receiver,) = group.inputs["webhookReceivers"]
    assert urlsplit(receiver["serviceUri"]).path == contract.Routes.ALERTS_AZURE_MONITOR
    job_url = next(r for r in staging.run.all(DATABRICKS_SECRET) if r.inputs["key"] == "listener-job-url")
    assert urlsplit(job_url.inputs["stringValue"]).path == contract.Routes.WEBHOOK_DATABRICKS_JOB


def test_what_the_listener_dispatches_is_what_the_release_tools_read() -> None:
    """The `client_payload` of each event, as the listener writes it, parses as the release tool's payload, field
    for field; the event types are the contract's, and the workflows trigger on them."""
    from release import drift, promote
    from webhook_listener.schemas import DriftAlert, Promotion, Source

    promotion = Promotion(
        model="mlops.models.wine_quality",
        version="3",
        stage=None,
        alias="champion",
        target_stack="staging",
        delivery_id="d-3",
        source=Source.MLFLOW,
    )
    written = promotion.client_payload()
    assert set(written) == set(promote.PromotionPayload.model_fields)
    read = promote.parse_payload(written)
    assert (read.model, read.version, read.alias) == ("mlops.models.wine_quality", "3", "champion")

    alert = DriftAlert(
        alert="ModelDataDrift",
        model="mlops.models.wine_quality",
        version="3",
        target_stack="staging",
        fired_at="2026-12-07T20:00:00Z",
        severity="warning",
        summary="drift score 0.31",
        delivery_id="a-1",
        source=Source.ALERTMANAGER,
    )
    drift_written = alert.client_payload()
    assert set(drift_written) == set(drift.DriftPayload.model_fields)
    assert drift.DriftPayload.model_validate(drift_written).alert == "ModelDataDrift"

    assert (promote.EVENT_TYPE, drift.EVENT_TYPE) == (contract.Events.PROMOTED, contract.Events.DRIFT)
    settings = ListenerSettings.model_fields
    assert settings["github_event_type"].default == contract.Events.PROMOTED
    assert settings["github_drift_event_type"].default == contract.Events.DRIFT
    for workflow, event in (
        ("promote-model.yml", contract.Events.PROMOTED),
        ("model-drift.yml", contract.Events.DRIFT),
    ):
        text = (ROOT / ".github" / "workflows" / workflow).read_text(encoding="utf-8")
        assert f"types: [{event}]" in text, workflow
