"""The alert rules for one served model, as data: serving SLOs and data drift.

They are written once, here, and rendered twice: as Azure Monitor Prometheus rule groups (components/model_alerts.py,
`alertsmanagement.PrometheusRuleGroup`) and as a Prometheus rules file (`render_rules_file`, written by
`python -m monitoring`), which `promtool test rules` checks in the test suite and the local demo's Prometheus loads.

The series they read:
- the model server's own `/metrics` (model_image/model_server/metrics.py, and the drift monitor beside it), scraped
  as job `SCRAPE_JOB` (the Azure scrape config and the local Prometheus both use that job name);
- the release controller's own `/metrics` (Argo Rollouts: each Rollout's desired and available replicas, labelled
  with its `namespace` and `name`, argoproj/argo-rollouts controller/metrics/prommetrics.go, v1.9.0), scraped as job
  `ROLLOUTS_JOB`: the model's pods belong to a Rollout, which kube-state-metrics does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from io import StringIO
from typing import Any, Literal

from ruamel.yaml import YAML

from stacks.settings import DriftAlertSettings, MonitoringSettings, ServingSloSettings

SCRAPE_JOB = "model-server"
ROLLOUTS_JOB = "argo-rollouts"
EVALUATION_INTERVAL_SECONDS = 60
# The scoring routes as the server labels them (model_server/transport.py `Transport._route`, protocol_v2.py
# `V2Protocol.resolve`): MLflow's and the v2 protocol's.
SCORING_ROUTES = "/invocations|/v2/models/.+/infer"
RATE_WINDOW = "5m"

# Series names, as the model server exports them (prometheus_client adds `_total` to counters).
REQUESTS = "model_server_requests_total"
LATENCY_BUCKETS = "model_server_request_duration_seconds_bucket"
MODEL_INFO = "model_server_model_info"
# The drift series, as model_server/drift_metrics.py names them (no labels but `feature`; NaN until a window is full).
DRIFT_SCORE = "model_server_drift_feature_score"
DRIFT_WINDOW_ROWS = "model_server_drift_window_rows"
# The release controller's gauges (one series per controller replica: the rules take the max over them).
ROLLOUT_DESIRED_REPLICAS = "rollout_info_replicas_desired"
ROLLOUT_AVAILABLE_REPLICAS = "rollout_info_replicas_available"

# Alert names the listener and the dashboards key on.
ERROR_RATIO_ALERT = "ModelServerErrorRatioHigh"
LATENCY_ALERT = "ModelServerLatencyP99High"
REPLICAS_ALERT = "ModelServerReplicasNotReady"
DRIFT_ALERT = "ModelDataDrift"

Severity = Literal["critical", "warning"]
# Azure Monitor alert severities: 0 Critical, 1 Error, 2 Warning, 3 Informational, 4 Verbose.
AZURE_SEVERITY: dict[Severity, int] = {"critical": 1, "warning": 2}

_DURATION = re.compile(r"^(\d+)([smh])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule: what it measures (PromQL), how long it must hold, and what it tells the receiver."""

    alert: str
    expr: str
    for_seconds: int
    severity: Severity
    category: Literal["serving", "drift"]
    summary: str
    description: str

    @property
    def labels(self) -> dict[str, str]:
        """Static labels; the expression adds its own (job, namespace, feature, model_name, model_version)."""
        return {"severity": self.severity, "category": self.category}

    @property
    def annotations(self) -> dict[str, str]:
        return {"summary": self.summary, "description": self.description}


@dataclass(frozen=True)
class RuleGroup:
    """Rules evaluated together, every `interval_seconds`."""

    name: str
    interval_seconds: int
    rules: tuple[AlertRule, ...]


def duration_seconds(duration: str) -> int:
    """`"5m"` -> 300 (the settings' duration format)."""
    match = _DURATION.match(duration)
    if match is None:
        raise ValueError(f"expected a duration such as 30s, 5m or 1h (got {duration!r})")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def prometheus_duration(seconds: int) -> str:
    """300 -> `"5m"`: the shortest exact Prometheus form."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def iso8601_duration(seconds: int) -> str:
    """300 -> `"PT5M"`: the form Azure Monitor's rule groups take for `for` and `interval`."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "PT" + "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if n) if seconds else "PT0S"


def promql_number(value: float) -> str:
    # repr: the shortest text that reads back as the same float (PromQL parses it, exponent included).
    return repr(float(value))


def serving_rules(slo: ServingSloSettings, app: str) -> tuple[AlertRule, ...]:
    """The serving SLOs for the model Rollout `app` (its namespace and Rollout share the name)."""
    job = f'job="{SCRAPE_JOB}"'
    scoring = f'{job}, route=~"{SCORING_ROUTES}"'
    sustained = duration_seconds(slo.sustained_for)
    p99_seconds = slo.latency_p99_ms / 1000
    error_ratio = (
        f'sum by (job, namespace) (rate({REQUESTS}{{{scoring}, status=~"5.."}}[{RATE_WINDOW}]))\n'
        f"  /\n"
        f"sum by (job, namespace) (rate({REQUESTS}{{{scoring}}}[{RATE_WINDOW}]))\n"
        f"  > {promql_number(slo.error_ratio)}"
    )
    latency = (
        f"histogram_quantile(0.99,\n"
        f"  sum by (job, namespace, le) (rate({LATENCY_BUCKETS}{{{scoring}}}[{RATE_WINDOW}]))\n"
        f") > {promql_number(p99_seconds)}"
    )
    rollout = f'job="{ROLLOUTS_JOB}", namespace="{app}", name="{app}"'
    replicas = (
        f"max by (namespace, name) ({ROLLOUT_AVAILABLE_REPLICAS}{{{rollout}}})\n"
        f"  < on (namespace, name)\n"
        f"max by (namespace, name) ({ROLLOUT_DESIRED_REPLICAS}{{{rollout}}})"
    )
    return (
        AlertRule(
            alert=ERROR_RATIO_ALERT,
            expr=error_ratio,
            for_seconds=sustained,
            severity="critical",
            category="serving",
            summary="The model server answers too many scoring requests with a server error.",
            description=f"More than {slo.error_ratio:.2%} of scoring requests got a 5xx over {RATE_WINDOW}, "
            f"for {slo.sustained_for}.",
        ),
        AlertRule(
            alert=LATENCY_ALERT,
            expr=latency,
            for_seconds=sustained,
            severity="warning",
            category="serving",
            summary="The model server's p99 scoring latency is above its target.",
            description=f"p99 of scoring requests above {slo.latency_p99_ms} ms over {RATE_WINDOW}, "
            f"for {slo.sustained_for}.",
        ),
        AlertRule(
            alert=REPLICAS_ALERT,
            expr=replicas,
            for_seconds=duration_seconds(slo.replicas_not_ready_for),
            severity="critical",
            category="serving",
            summary=f"The Rollout {app} has fewer available replicas than it wants.",
            description=f"Available replicas below the desired count for {slo.replicas_not_ready_for} "
            "(pods failing readiness, crash-looping or unschedulable).",
        ),
    )


def drift_rules(drift: DriftAlertSettings) -> tuple[AlertRule, ...]:
    """Drift of the served data from the training data, per feature, held for a sustained window."""
    job = f'job="{SCRAPE_JOB}"'
    # A pod's score counts once its window holds enough rows (a fresh pod's first rows are noise); the model's
    # name and version come from the server's info series, so the alert says which model version to retrain from.
    expr = (
        f"max by (job, namespace, feature, model_name, model_version) (\n"
        f"    (\n"
        f"      {DRIFT_SCORE}{{{job}}}\n"
        f"        and on (job, instance)\n"
        f"      ({DRIFT_WINDOW_ROWS}{{{job}}} >= {drift.min_window_rows})\n"
        f"    )\n"
        f"  * on (job, instance) group_left (model_name, model_version)\n"
        f"    {MODEL_INFO}{{{job}}}\n"
        f") > {promql_number(drift.threshold)}"
    )
    return (
        AlertRule(
            alert=DRIFT_ALERT,
            expr=expr,
            for_seconds=duration_seconds(drift.sustained_for),
            severity="warning",
            category="drift",
            summary="The data the model scores has drifted from its training data.",
            description=f"A feature's population stability index stayed above {promql_number(drift.threshold)} for "
            f"{drift.sustained_for} (windows of at least {drift.min_window_rows} rows).",
        ),
    )


def rule_groups(settings: MonitoringSettings, app: str, prefix: str) -> tuple[RuleGroup, ...]:
    """Every rule group for one stack's model: `<prefix>-serving` and `<prefix>-drift`."""
    return (
        RuleGroup(f"{prefix}-serving", EVALUATION_INTERVAL_SECONDS, serving_rules(settings.slo, app)),
        RuleGroup(f"{prefix}-drift", EVALUATION_INTERVAL_SECONDS, drift_rules(settings.drift)),
    )


def rules_document(groups: tuple[RuleGroup, ...]) -> dict[str, Any]:
    """The Prometheus rules file, as data (https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/)."""
    return {
        "groups": [
            {
                "name": group.name,
                "interval": prometheus_duration(group.interval_seconds),
                "rules": [
                    {
                        "alert": rule.alert,
                        "expr": rule.expr,
                        "for": prometheus_duration(rule.for_seconds),
                        "labels": rule.labels,
                        "annotations": rule.annotations,
                    }
                    for rule in group.rules
                ],
            }
            for group in groups
        ]
    }


def render_rules_file(groups: tuple[RuleGroup, ...], header: str = "") -> str:
    """The Prometheus rules file as YAML text (multi-line expressions as block scalars, stable key order)."""
    from ruamel.yaml.scalarstring import LiteralScalarString

    document = rules_document(groups)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["expr"] = LiteralScalarString(rule["expr"] + "\n")
    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = StringIO()
    yaml.dump(document, out)
    return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + out.getvalue()
