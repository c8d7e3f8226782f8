"""Decide which alerts of a verified, well-formed notification mean "the model drifted: retrain".

An alert is a drift alert when its alert name is one of `LISTENER_DRIFT_ALERT_NAMES`. Only *firing* drift alerts
become `DriftAlert`s; resolved ones and other alerts are answered 202 `ignored` with the reason and never acted on.

The dedupe keys follow how each sender repeats itself:

* Alertmanager resends every firing alert of a group each `repeat_interval` (and on every group change) with the
  same `fingerprint` (hash of its label set) and the same `startsAt`; a new episode of the same alert has a new
  `startsAt`. So fingerprint + startsAt is one alert episode. A drift rule may fire one alert per feature (the
  stack's rule does, so the alert says which feature drifted); of the firing drift alerts of one notification for
  the same model version, only the one that started first becomes an event, so one drift episode retrains once,
  and the repeats and the features that join later map to the same key.
* Azure Monitor gives each alert instance an `alertId`, notifies once per `monitorCondition` change (Fired,
  Resolved), and its action group may deliver one notification more than once. So alertId + monitorCondition.
"""

from __future__ import annotations

import datetime
import hashlib

from webhook_listener.alert_schemas import (
    AlertmanagerAlert,
    AlertmanagerNotification,
    AzureCommonAlert,
    PrometheusAlertContext,
    parse_timestamp,
)
from webhook_listener.promotion import Ignored
from webhook_listener.schemas import DriftAlert, Source
from webhook_listener.settings import DispatchTarget, ListenerSettings

MODEL_LABELS = ("model_name", "model")
VERSION_LABELS = ("model_version", "version")
MAX_SUMMARY = 500


def drift_dispatch_missing(settings: ListenerSettings) -> Ignored | None:
    """Drift alerts go nowhere when the Azure DevOps target has no drift pipeline: say so rather than queue them."""
    if settings.dispatch_target is DispatchTarget.AZURE_DEVOPS and settings.azure_devops_drift_pipeline_id is None:
        return Ignored("no drift pipeline configured (LISTENER_AZURE_DEVOPS_DRIFT_PIPELINE_ID)")
    return None


def _delivery_id(prefix: str, *parts: str) -> str:
    return prefix + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:40]


def alertmanager_delivery_id(alert: AlertmanagerAlert) -> str:
    return _delivery_id("am-", alert.fingerprint, alert.startsAt)


def azure_delivery_id(alert: AzureCommonAlert) -> str:
    essentials = alert.data.essentials
    return _delivery_id("azm-", essentials.alertId, essentials.monitorCondition)


def _first(labels: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((labels[name] for name in names if labels.get(name)), None)


def _version(labels: dict[str, str]) -> str | None:
    value = _first(labels, VERSION_LABELS)
    return value if value is not None and value.isdigit() and len(value) <= 50 else None


def _summary(annotations: dict[str, str], fallback: str | None = None) -> str | None:
    text = annotations.get("summary") or annotations.get("description") or fallback
    return text[:MAX_SUMMARY] if text else None


def _model(labels: dict[str, str], settings: ListenerSettings) -> str | None:
    """The model named by the alert's labels; with none, the one configured model if there is exactly one."""
    named = _first(labels, MODEL_LABELS)
    if named is not None:
        return named
    return settings.models[0] if len(settings.models) == 1 else None


def _not_ours(model: str | None, settings: ListenerSettings) -> bool:
    return model is not None and bool(settings.models) and model not in settings.models


def from_alertmanager(
    notification: AlertmanagerNotification, settings: ListenerSettings
) -> tuple[list[DriftAlert], list[str]]:
    """The firing drift alerts of the notification, and why each other alert was ignored."""
    drifts: dict[tuple[str, str | None, str | None], DriftAlert] = {}
    started: dict[tuple[str, str | None, str | None], tuple[datetime.datetime, str]] = {}
    ignored: list[str] = []
    for alert in notification.alerts:
        name = alert.labels.get("alertname", "")
        if name not in settings.drift_alert_names:
            ignored.append(f"alert {name!r} is not a drift alert")
            continue
        if alert.status != "firing":
            ignored.append(f"alert {name!r} is {alert.status}")
            continue
        model = _model(alert.labels, settings)
        if _not_ours(model, settings):
            ignored.append(f"model {model!r} is not one of the configured models")
            continue
        version = _version(alert.labels)
        episode = (name, model, version)
        order = (parse_timestamp(alert.startsAt), alert.fingerprint)
        if episode in started and started[episode] <= order:
            ignored.append(
                f"alert {name!r} ({alert.fingerprint}) is part of a drift episode already in this notification"
            )
            continue
        if episode in started:
            ignored.append(f"alert {name!r} ({drifts[episode].delivery_id}) is part of an earlier-started drift alert")
        started[episode] = order
        drifts[episode] = DriftAlert(
            source=Source.ALERTMANAGER,
            delivery_id=alertmanager_delivery_id(alert),
            alert=name,
            model=model,
            version=version,
            target_stack=settings.target_stack,
            fired_at=alert.startsAt,
            severity=(alert.labels.get("severity") or None),
            summary=_summary(alert.annotations),
        )
    return list(drifts.values()), ignored


def _azure_alert_name(alert: AzureCommonAlert, context: PrometheusAlertContext) -> str:
    # A managed-Prometheus alert carries its rule's `alertname` label; `alertRule` reads "<rule group>/<alert>".
    return context.labels.get("alertname") or alert.data.essentials.alertRule.rsplit("/", 1)[-1]


def from_azure_monitor(alert: AzureCommonAlert, settings: ListenerSettings) -> DriftAlert | Ignored:
    essentials = alert.data.essentials
    context = PrometheusAlertContext.model_validate(alert.data.alertContext or {})
    name = _azure_alert_name(alert, context)
    if name not in settings.drift_alert_names:
        return Ignored(f"alert {name!r} is not a drift alert")
    if essentials.monitorCondition != "Fired":
        return Ignored(f"alert {name!r} is {essentials.monitorCondition.lower()}")
    model = _model(context.labels, settings)
    if _not_ours(model, settings):
        return Ignored(f"model {model!r} is not one of the configured models")
    return DriftAlert(
        source=Source.AZURE_MONITOR,
        delivery_id=azure_delivery_id(alert),
        alert=name,
        model=model,
        version=_version(context.labels),
        target_stack=settings.target_stack,
        fired_at=essentials.firedDateTime,
        severity=essentials.severity,
        summary=_summary(context.annotations, essentials.description),
    )
