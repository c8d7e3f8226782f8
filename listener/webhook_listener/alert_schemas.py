"""Payload shapes (pydantic) of the two alert senders: Prometheus Alertmanager's webhook and Azure Monitor's common
alert schema. Field names are the wire's (camelCase). Unknown extra fields are allowed (both senders add fields over
time); the fields we act on are checked strictly.

* Alertmanager `webhook_config` body, version "4": https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
  (`{"version": "4", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
  "commonAnnotations", "externalURL", "alerts": [{"status", "labels", "annotations", "startsAt", "endsAt",
  "generatorURL", "fingerprint"}]}`).
* Azure Monitor common alert schema: https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-common-schema
  (`{"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {...}, "alertContext": {...}}}`); for an
  Azure Monitor managed Prometheus rule `monitoringService` is "Prometheus" and `alertContext` carries the rule's
  `labels` and `annotations` (sample payloads: learn.microsoft.com/azure/azure-monitor/alerts/alerts-payload-samples).
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_ALERTS = 1000
_Short = Annotated[str, StringConstraints(min_length=1, max_length=500)]
_Labels = dict[Annotated[str, StringConstraints(max_length=200)], Annotated[str, StringConstraints(max_length=2000)]]
# Alertmanager's fingerprint is the hex of a 64-bit label-set hash (model.Fingerprint.String()).
_FINGERPRINT = re.compile(r"^[0-9a-fA-F]{1,32}$")


def parse_timestamp(value: str) -> datetime.datetime:
    """An RFC 3339 timestamp as an aware datetime (a naive one is taken as UTC)."""
    # Go prints nanoseconds (9 digits), which Python 3.11 cannot parse: drop the digits beyond microseconds.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    parsed = datetime.datetime.fromisoformat(trimmed)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)


def _rfc3339(value: str) -> str:
    """Keep the sender's text (it is part of a dedupe key) but refuse what is not a timestamp."""
    try:
        parse_timestamp(value)
    except ValueError:
        raise ValueError("must be an RFC 3339 timestamp") from None
    return value


Timestamp = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_rfc3339)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


# --- Prometheus Alertmanager --------------------------------------------------------------------------------


class AlertmanagerAlert(_Payload):
    status: Literal["firing", "resolved"]
    labels: _Labels
    annotations: _Labels = Field(default_factory=dict)
    startsAt: Timestamp
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: Annotated[str, StringConstraints(pattern=_FINGERPRINT.pattern)]


class AlertmanagerNotification(_Payload):
    """One notification for one alert group; `alerts` holds firing and resolved alerts of the group."""

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str
    groupKey: str
    truncatedAlerts: int = Field(default=0, ge=0)
    groupLabels: _Labels = Field(default_factory=dict)
    commonLabels: _Labels = Field(default_factory=dict)
    commonAnnotations: _Labels = Field(default_factory=dict)
    externalURL: str | None = None
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=MAX_ALERTS)


# --- Azure Monitor common alert schema ------------------------------------------------------------------------


class AzureEssentials(_Payload):
    alertId: _Short  # the alert instance's resource id
    alertRule: _Short
    severity: str | None = None
    signalType: str | None = None
    monitorCondition: Literal["Fired", "Resolved"]
    monitoringService: str | None = None
    firedDateTime: Timestamp
    description: str | None = None
    configurationItems: list[str] | None = None


class PrometheusAlertContext(_Payload):
    """`alertContext` of an Azure Monitor managed Prometheus alert (other alert types carry other shapes)."""

    labels: _Labels = Field(default_factory=dict)
    annotations: _Labels = Field(default_factory=dict)
    expression: str | None = None
    expressionValue: str | None = None


class AzureAlertData(_Payload):
    essentials: AzureEssentials
    alertContext: dict[str, Any] | None = None
    customProperties: dict[str, Any] | None = None


class AzureCommonAlert(_Payload):
    schemaId: Literal["azureMonitorCommonAlertSchema"]
    data: AzureAlertData
