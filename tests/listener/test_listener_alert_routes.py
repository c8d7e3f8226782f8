"""POST /api/alerts/alertmanager and /api/alerts/azure-monitor: a firing drift alert becomes one `model-drift` dispatch.

The bodies are written here from the senders' documented shapes, independently of the package's models:
Alertmanager's webhook_config body, version "4" (https://prometheus.io/docs/alerting/latest/configuration/), and
Azure Monitor's common alert schema for a managed-Prometheus alert
(https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-payload-samples).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.listener.helpers import JOB_TOKEN, CiRecorder, Listener, MakeListener, job_request
from webhook_listener.deliveries import State
from webhook_listener.schemas import QUEUED_EVENT, DriftAlert, Promotion, QueuedEvent, Source

ALERTMANAGER_TOKEN = "test-alertmanager-token-0123456789"
AZURE_TOKEN = "test-azure-monitor-token-0123456789"
DRIFT = "ModelDataDrift"
STARTS_AT = "2026-11-30T06:01:15.123456789Z"  # Go prints nanoseconds


def am_alert(
    *,
    name: str = DRIFT,
    status: str = "firing",
    fingerprint: str = "1a30ba71cca2921f",
    starts_at: str = STARTS_AT,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": name,
            "severity": "warning",
            "model_name": "wine-quality",
            "model_version": "2",
            "job": "model-server",
            **(labels or {}),
        },
        "annotations": {"summary": "3 of 11 features drifted (PSI > 0.2)"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-30T06:20:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=model_drift_features_drifted_ratio",
        "fingerprint": fingerprint,
    }


def am_notification(*alerts: dict[str, Any], version: str = "4") -> dict[str, Any]:
    alerts = alerts or (am_alert(),)
    return {
        "version": version,
        "groupKey": '{}:{alertname="ModelDataDrift"}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "listener",
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }


def azure_alert(
    *,
    name: str = DRIFT,
    condition: str = "Fired",
    alert_id: str = "/subscriptions/sub-1/providers/Microsoft.AlertsManagement/alerts/6e1d6a0c-5b1b-4d4e-9f31",
) -> dict[str, Any]:
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": alert_id,
                "alertRule": f"model-monitoring-staging/{name}",
                "severity": "Sev3",
                "signalType": "Metric",
                "monitorCondition": condition,
                "monitoringService": "Prometheus",
                "alertTargetIDs": ["/subscriptions/sub-1/resourcegroups/rg/providers/microsoft.monitor/accounts/amw"],
                "configurationItems": ["aks-staging"],
                "originAlertId": "3b72be0b-4bcb-3713-ee7c-67e71b100dab",
                "firedDateTime": "2026-11-30T06:03:02.3929824Z",
                "description": "The model sees data it was not trained on",
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0",
            },
            "alertContext": {
                "interval": "PT1M",
                "expression": "max(model_drift_features_drifted_ratio) > 0.2",
                "expressionValue": "0.27",
                "for": "PT10M",
                "labels": {"alertname": name, "cluster": "aks-staging", "model_name": "wine-quality"},
                "annotations": {"summary": "3 of 11 features drifted"},
                "ruleGroup": "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.AlertsManagement/"
                "prometheusRuleGroups/model-monitoring-staging",
            },
            "customProperties": None,
        },
    }


@pytest.fixture
async def alerting(make_listener: MakeListener) -> Listener:
    return await make_listener(
        alertmanager_token=ALERTMANAGER_TOKEN, azure_monitor_token=AZURE_TOKEN, models="wine-quality"
    )


async def post_am(listener: Listener, document: Any, token: str | None = ALERTMANAGER_TOKEN) -> Any:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await listener.client.post("/api/alerts/alertmanager", content=json.dumps(document), headers=headers)


async def post_azure(listener: Listener, document: Any, token: str | None = AZURE_TOKEN) -> Any:
    params = {"code": "function-key"} | ({"token": token} if token is not None else {})
    return await listener.client.post(
        "/api/alerts/azure-monitor",
        params=params,
        content=json.dumps(document),
        headers={"Content-Type": "application/json"},
    )


async def queued(listener: Listener) -> list[QueuedEvent]:
    services = await listener.runtime.services()
    peeked = await services.queue.client.peek_messages(max_messages=32)
    return [QUEUED_EVENT.validate_json(str(m.content)) for m in peeked]


# --- Alertmanager ---------------------------------------------------------------------------------------------


async def test_a_firing_drift_alert_from_alertmanager_is_queued_as_drift(alerting: Listener) -> None:
    response = await post_am(alerting, am_notification())

    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    [event] = await queued(alerting)
    assert isinstance(event, DriftAlert)
    assert (event.source, event.alert, event.model, event.version, event.fired_at) == (
        Source.ALERTMANAGER,
        DRIFT,
        "wine-quality",
        "2",
        STARTS_AT,
    )
    assert response.json()["delivery_ids"] == [event.delivery_id]
    record = await alerting.record(event)
    assert record is not None
    assert record.state is State.ENQUEUED


async def test_alertmanager_repeating_a_firing_alert_is_a_duplicate_but_a_new_episode_is_not(
    alerting: Listener,
) -> None:
    assert (await post_am(alerting, am_notification())).json()["status"] == "accepted"
    # repeat_interval: the same alert (fingerprint) of the same episode (startsAt), in a new notification.
    repeat = am_notification(am_alert())
    repeat["groupKey"] = "another"
    again = await post_am(alerting, repeat)
    assert (again.status_code, again.json()["status"]) == (202, "duplicate")
    # It resolved and fired again: a new startsAt is a new episode.
    later = await post_am(alerting, am_notification(am_alert(starts_at="2026-11-30T09:00:00Z")))
    assert later.json()["status"] == "accepted"
    assert len(await queued(alerting)) == 2


@pytest.mark.parametrize(
    ("alert", "reason"),
    [
        (am_alert(status="resolved"), f"alert {DRIFT!r} is resolved"),
        (am_alert(name="ModelServerErrorRatio"), "alert 'ModelServerErrorRatio' is not a drift alert"),
        (am_alert(labels={"model_name": "churn"}), "model 'churn' is not one of the configured models"),
    ],
)
async def test_resolved_other_or_foreign_alerts_are_ignored(
    alerting: Listener, alert: dict[str, Any], reason: str
) -> None:
    response = await post_am(alerting, am_notification(alert))
    assert response.status_code == 202
    assert response.json() == {"status": "ignored", "reason": reason}
    assert await queued(alerting) == []


async def test_only_the_firing_drift_alerts_of_a_group_are_queued(alerting: Listener) -> None:
    notification = am_notification(
        am_alert(fingerprint="aa01"),
        am_alert(fingerprint="aa02", status="resolved"),
        am_alert(fingerprint="aa03", name="ModelServerLatencyP99"),
        am_alert(fingerprint="aa04", labels={"model_version": "3"}),
    )
    response = await post_am(alerting, notification)
    assert response.json()["status"] == "accepted"
    assert response.json()["ignored"] == 2
    assert len(response.json()["delivery_ids"]) == 2
    assert len(await queued(alerting)) == 2


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing bearer token"),
        ("wrong-token-0123456789abcdef", "bad bearer token"),
        (JOB_TOKEN, "bad bearer token"),
        (AZURE_TOKEN, "bad bearer token"),
    ],
)
async def test_alertmanager_without_its_token_is_401_and_nothing_is_queued(
    alerting: Listener, token: str | None, reason: str
) -> None:
    response = await post_am(alerting, am_notification(), token=token)
    assert response.status_code == 401
    assert response.json() == {"status": "rejected", "reason": reason}
    assert await queued(alerting) == []


async def test_alertmanager_route_without_a_token_configured_refuses_everyone(make_listener: MakeListener) -> None:
    listener = await make_listener()
    response = await post_am(listener, am_notification())
    assert (response.status_code, response.json()["reason"]) == (401, "the alertmanager route is not configured")


async def test_the_token_is_checked_before_the_body_is_read_as_json(alerting: Listener) -> None:
    response = await alerting.client.post(
        "/api/alerts/alertmanager", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("document", "reason_part"),
    [
        (am_notification(version="3"), "version"),
        ({**am_notification(), "alerts": []}, "alerts"),
        (am_notification(am_alert(starts_at="yesterday")), "startsAt"),
        (am_notification(am_alert(fingerprint="not/a-key")), "fingerprint"),
        ({k: v for k, v in am_notification().items() if k != "status"}, "status"),
        ([am_alert()], "not a JSON object"),
        (am_notification(am_alert(labels={"severity": "s" * 60})), "severity"),
    ],
)
async def test_malformed_alertmanager_bodies_are_400(alerting: Listener, document: Any, reason_part: str) -> None:
    response = await post_am(alerting, document)
    assert response.status_code == 400
    assert reason_part in response.json()["reason"]
    assert await queued(alerting) == []


async def test_per_feature_drift_alerts_of_one_model_version_are_one_event_the_first_started(
    alerting: Listener,
) -> None:
    features = [
        am_alert(fingerprint="f003", starts_at="2026-11-30T06:03:00Z", labels={"feature": "proline"}),
        am_alert(fingerprint="f001", starts_at="2026-11-30T06:01:00.5+00:00", labels={"feature": "alcohol"}),
        am_alert(fingerprint="f002", starts_at="2026-11-30T06:02:00Z", labels={"feature": "flavanoids"}),
    ]
    first = await post_am(alerting, am_notification(*features))
    assert (first.json()["status"], first.json()["ignored"], len(first.json()["delivery_ids"])) == ("accepted", 2, 1)
    [event] = await queued(alerting)
    assert isinstance(event, DriftAlert)
    assert event.fired_at == "2026-11-30T06:01:00.5+00:00"
    # The repeat, with one more feature drifting since: the same episode.
    later = am_alert(fingerprint="f004", starts_at="2026-11-30T06:09:00Z", labels={"feature": "hue"})
    again = await post_am(alerting, am_notification(*features, later))
    assert again.json()["status"] == "duplicate"
    assert len(await queued(alerting)) == 1


async def test_alert_bodies_must_be_json_and_not_too_large(make_listener: MakeListener) -> None:
    listener = await make_listener(alertmanager_token=ALERTMANAGER_TOKEN, max_body_bytes=1024)
    headers = {"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"}
    form = await listener.client.post(
        "/api/alerts/alertmanager", content=json.dumps(am_notification()), headers=headers
    )
    assert form.status_code == 415
    big = am_notification(*(am_alert(fingerprint=f"{i:04x}") for i in range(40)))
    too_big = await post_am(listener, big)
    assert too_big.status_code == 413


# --- Azure Monitor --------------------------------------------------------------------------------------------


async def test_a_fired_azure_monitor_drift_alert_is_queued_as_drift(alerting: Listener) -> None:
    response = await post_azure(alerting, azure_alert())

    assert (response.status_code, response.json()["status"]) == (202, "accepted")
    [event] = await queued(alerting)
    assert isinstance(event, DriftAlert)
    assert (event.source, event.alert, event.model, event.severity, event.summary) == (
        Source.AZURE_MONITOR,
        DRIFT,
        "wine-quality",
        "Sev3",
        "3 of 11 features drifted",
    )


async def test_azure_monitor_delivering_the_same_alert_twice_is_a_duplicate(alerting: Listener) -> None:
    assert (await post_azure(alerting, azure_alert())).json()["status"] == "accepted"
    again = await post_azure(alerting, azure_alert())
    assert (again.status_code, again.json()["status"]) == (202, "duplicate")
    other_instance = await post_azure(alerting, azure_alert(alert_id="/subscriptions/sub-1/alerts/another"))
    assert other_instance.json()["status"] == "accepted"
    assert len(await queued(alerting)) == 2


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (azure_alert(condition="Resolved"), f"alert {DRIFT!r} is resolved"),
        (azure_alert(name="ModelPodsNotReady"), "alert 'ModelPodsNotReady' is not a drift alert"),
    ],
)
async def test_resolved_or_other_azure_alerts_are_ignored(
    alerting: Listener, document: dict[str, Any], reason: str
) -> None:
    response = await post_azure(alerting, document)
    assert (response.status_code, response.json()) == (202, {"status": "ignored", "reason": reason})
    assert await queued(alerting) == []


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing token parameter"),
        ("wrong-token-0123456789abcdef", "bad token parameter"),
        (ALERTMANAGER_TOKEN, "bad token parameter"),
    ],
)
async def test_azure_monitor_without_its_token_is_401(alerting: Listener, token: str | None, reason: str) -> None:
    response = await post_azure(alerting, azure_alert(), token=token)
    assert (response.status_code, response.json()) == (401, {"status": "rejected", "reason": reason})
    assert await queued(alerting) == []


async def test_azure_monitor_token_in_a_header_is_not_accepted(alerting: Listener) -> None:
    response = await alerting.client.post(
        "/api/alerts/azure-monitor",
        content=json.dumps(azure_alert()),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {AZURE_TOKEN}"},
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("document", "reason_part"),
    [
        ({**azure_alert(), "schemaId": "Microsoft.Insights/activityLogs"}, "schemaId"),
        ({"schemaId": "azureMonitorCommonAlertSchema", "data": {}}, "essentials"),
        (
            {"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {"alertId": "x", "alertRule": "r"}}},
            "monitorCondition",
        ),
        (
            {**azure_alert(), "data": {**azure_alert()["data"], "alertContext": {"labels": {"alertname": 3}}}},
            "labels",
        ),
        (
            {
                **azure_alert(),
                "data": {
                    **azure_alert()["data"],
                    "essentials": {**azure_alert()["data"]["essentials"], "severity": "S" * 60},
                },
            },
            "severity",
        ),
    ],
)
async def test_malformed_azure_alerts_are_400(alerting: Listener, document: Any, reason_part: str) -> None:
    response = await post_azure(alerting, document)
    assert response.status_code == 400
    assert reason_part in response.json()["reason"]


# --- dispatch -------------------------------------------------------------------------------------------------


async def test_drift_is_dispatched_as_model_drift_and_a_promotion_still_as_model_promoted(
    make_listener: MakeListener, ci: CiRecorder
) -> None:
    listener = await make_listener(alertmanager_token=ALERTMANAGER_TOKEN)
    assert (await post_am(listener, am_notification())).json()["status"] == "accepted"
    assert (await listener.post_job(job_request(model="wine-quality"))).json()["status"] == "accepted"

    async def both_sent() -> bool:
        return len(ci.snapshot()) >= 2

    await listener.work_until(both_sent)
    bodies = {r.json()["event_type"]: r.json()["client_payload"] for r in ci.snapshot()}
    assert set(bodies) == {"model-drift", "model-promoted"}
    drift = bodies["model-drift"]
    assert (drift["alert"], drift["model"], drift["version"], drift["source"]) == (
        DRIFT,
        "wine-quality",
        "2",
        "alertmanager",
    )
    assert len(drift) <= 10  # GitHub: client_payload takes at most ten top-level properties
    assert bodies["model-promoted"]["source"] == "databricks-job"


async def test_a_dispatched_drift_alert_sent_again_is_not_dispatched_again(alerting: Listener, ci: CiRecorder) -> None:
    assert (await post_am(alerting, am_notification())).json()["status"] == "accepted"

    async def sent() -> bool:
        return len(ci.snapshot()) == 1

    await alerting.work_until(sent)
    again = await post_am(alerting, am_notification())
    assert again.json()["status"] == "duplicate"
    assert await queued(alerting) == []


async def test_azure_devops_target_without_a_drift_pipeline_ignores_drift(make_listener: MakeListener) -> None:
    listener = await make_listener(
        alertmanager_token=ALERTMANAGER_TOKEN,
        dispatch_target="azure-devops",
        azure_devops_org_url="https://dev.azure.com/acme",
        azure_devops_project="serving",
        azure_devops_pipeline_id=7,
        azure_devops_token="adopat0123456789abcdefghijklmnop",
    )
    response = await post_am(listener, am_notification())
    assert response.json()["status"] == "ignored"
    assert "LISTENER_AZURE_DEVOPS_DRIFT_PIPELINE_ID" in response.json()["reason"]


async def test_queued_promotions_without_a_kind_still_parse_as_promotions() -> None:
    body = Promotion(
        source=Source.MLFLOW, delivery_id="d-1", model="m", version="1", target_stack="staging"
    ).model_dump_json()
    assert "kind" not in json.loads(body)
    assert isinstance(QUEUED_EVENT.validate_json(body), Promotion)


async def test_every_alert_answer_is_logged_without_the_tokens(
    alerting: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="webhook_listener"):
        await post_am(alerting, am_notification())
        await post_am(alerting, am_notification(am_alert(status="resolved")))
        await post_am(alerting, am_notification(), token=f"{ALERTMANAGER_TOKEN}x")
        await post_azure(alerting, azure_alert(), token=f"{AZURE_TOKEN}x")
    events = [json.loads(record.getMessage()) for record in caplog.records]
    by_event: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_event.setdefault(event["event"], []).append(event)
    assert by_event["drift alert accepted"][0]["route"] == "alertmanager"
    assert by_event["alert ignored"][0]["reason"] == f"alert {DRIFT!r} is resolved"
    assert {(e["route"], e["status"]) for e in by_event["alert rejected"]} == {
        ("alertmanager", 401),
        ("azure-monitor", 401),
    }
    for record in caplog.records:
        assert ALERTMANAGER_TOKEN not in record.getMessage()
        assert AZURE_TOKEN not in record.getMessage()
