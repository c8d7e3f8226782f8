"""The canary analysis checks for one served model, as data: PromQL that judges a new model version (the canary)
while Argo Rollouts sends it a share of the traffic.

They read the same series as the alert rules (monitoring/rules.py, whose names and thresholds they import), but
only the canary's: the scrape job copies Argo Rollouts' pod-template-hash pod label onto every series
(components/model_metrics_scrape.py), and each check selects the canary's hash, and where it compares, the stable's.

The rule every check keeps: a check PASSES iff its pass query (`CanaryCheck.query`) returns at least one sample.
The bound is applied inside PromQL, so a value on the wrong side of it returns nothing, and so does no data at all:
a canary that is not scraped, has no series, or has no traffic (0/0 is NaN, and a PromQL comparison drops NaN)
FAILS. An analysis that passes because it could not measure anything is the failure this rule exists to prevent.
Where a check cannot judge a canary that is there (its drift window is not full yet; the stable version has no
latency to compare with), its `exempt` query returns a sample of the canary's own series; it never makes an absent
canary pass. In an AnalysisTemplate the matching
condition is `SUCCESS_CONDITION`: Argo hands a vector to it as the list `result` of its sample values
(argoproj/argo-rollouts metricproviders/prometheus/prometheus.go `processResponse`, v1.9.0).

Latency is judged twice, against the SLO (`latency-p99`) and against the stable version (`latency-vs-stable`): two
checks, so a failed analysis says which, and the relative one can never let through what the SLO would not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from monitoring.rules import (
    DRIFT_SCORE,
    DRIFT_WINDOW_ROWS,
    LATENCY_BUCKETS,
    RATE_WINDOW,
    REQUESTS,
    SCORING_ROUTES,
    SCRAPE_JOB,
    promql_number,
)
from stacks.settings import MonitoringSettings

# The pod label Argo Rollouts puts on every pod of a ReplicaSet it makes, valued with the pod template's hash
# (argoproj/argo-rollouts pkg/apis/rollouts/v1alpha1/types.go `DefaultRolloutUniqueLabelKey`, v1.9.0).
POD_TEMPLATE_HASH_LABEL = "rollouts-pod-template-hash"
# The series label the scrape job copies it to (a Prometheus label name: no dashes).
HASH_LABEL = "rollouts_pod_template_hash"
# A measurement passes iff the pass query returned a sample; without a failureCondition, not passing is failing
# (argoproj/argo-rollouts utils/evaluate/evaluate.go `EvaluateResult`, v1.9.0).
SUCCESS_CONDITION = "len(result) > 0"

# The canary may be this much slower than the stable version at p99 ...
LATENCY_VS_STABLE_FACTOR = 1.5
# ... unless its p99 is under this share of the SLO target: a p99 over a canary's small share of traffic is a
# handful of requests, so a ratio of two small latencies fails on noise while the SLO keeps half its headroom.
LATENCY_VS_STABLE_FLOOR = 0.5

_CHECK_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# A Kubernetes label value (the pod-template hash Argo computes is one), or an AnalysisTemplate argument that Argo
# replaces before it queries (`{{args.<name>}}`, argoproj/argo-rollouts utils/template/template.go `ResolveArgs`).
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_ARGUMENT = re.compile(r"^\{\{args\.[a-z0-9]+(-[a-z0-9]+)*\}\}$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class CanaryCheck:
    """One check of the canary: the value it measures, the bound that value must keep, and why not-yet is no fail."""

    name: str
    """kebab-case, the AnalysisTemplate metric's name."""
    value_query: str
    """PromQL: the measured value for the canary (no bound applied)."""
    bound: float
    summary: str
    """One line: what the check measures and its bound."""
    comparison: Literal["<=", ">="] = "<="
    """How the value must compare with the bound to pass."""
    exempt: str | None = None
    """PromQL that returns a sample of the canary's own series while the check cannot judge it yet; the check then
    passes. Empty when the canary has no series, so an absent canary still fails."""

    def __post_init__(self) -> None:
        if not _CHECK_NAME.match(self.name):
            raise ValueError(f"check name: expected kebab-case such as error-ratio (got {self.name!r})")

    @property
    def query(self) -> str:
        """The pass query: non-empty iff the check passes (see the module docstring)."""
        judged = f"(\n{_indent(self.value_query)}\n) {self.comparison} {promql_number(self.bound)}"
        if self.exempt is None:
            return judged
        return f"{judged}\nor\n(\n{_indent(self.exempt)}\n)"


def _indent(query: str) -> str:
    return "\n".join(f"  {line}" for line in query.splitlines())


def _hash(key: str, value: str) -> str:
    if not (_LABEL_VALUE.match(value) or _ARGUMENT.match(value)):
        raise ValueError(
            f"{key}: expected a pod-template hash (a Kubernetes label value) or an AnalysisTemplate argument such "
            f"as {{{{args.{key.replace('_', '-')}}}}} (got {value!r})"
        )
    return value


def canary_checks(
    settings: MonitoringSettings, app: str, canary_hash: str, stable_hash: str
) -> tuple[CanaryCheck, ...]:
    """The checks of the canary of the model served in namespace `app`, against the stack's thresholds.

    `canary_hash` and `stable_hash` are the pods' pod-template hashes, or the AnalysisTemplate arguments Argo fills
    with them (`podTemplateHashValue: Latest` and `Stable`); either way they are PromQL string values."""
    if not _NAMESPACE.match(app):
        raise ValueError(f"app: expected a Kubernetes namespace name (got {app!r})")
    canary, stable = _hash("canary_hash", canary_hash), _hash("stable_hash", stable_hash)
    if canary == stable:
        raise ValueError(f"canary_hash and stable_hash: expected two versions (both are {canary!r})")
    slo, drift = settings.slo, settings.drift

    def pods(version: str) -> str:
        return f'job="{SCRAPE_JOB}", namespace="{app}", {HASH_LABEL}="{version}"'

    def p99(version: str) -> str:
        buckets = f'{LATENCY_BUCKETS}{{{pods(version)}, route=~"{SCORING_ROUTES}"}}'
        return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{RATE_WINDOW}])))"

    scoring = f'{pods(canary)}, route=~"{SCORING_ROUTES}"'
    # The server makes a status's series on its first such answer: a canary that never failed has no 5xx series.
    error_ratio = (
        f'(sum(rate({REQUESTS}{{{scoring}, status=~"5.."}}[{RATE_WINDOW}])) or vector(0))\n'
        f"  /\n"
        f"sum(rate({REQUESTS}{{{scoring}}}[{RATE_WINDOW}]))"
    )
    p99_seconds = slo.latency_p99_ms / 1000
    floor = p99_seconds * LATENCY_VS_STABLE_FLOOR
    # A stable version with no p99 (no traffic left to it, or not scraped) leaves the canary to the absolute bound.
    latency_exempt = (
        f"{p99(canary)} <= {promql_number(floor)}\nor\n({p99(canary)} >= 0 unless on () {p99(stable)} >= 0)"
    )
    # A pod's score counts once its window holds the rows the alert rule asks for and the server has scored it
    # (`>= 0` drops the NaN the server reports until then; a PSI is never negative).
    counted = (
        f"({DRIFT_SCORE}{{{pods(canary)}}} >= 0)\n"
        f"  and on (job, instance)\n"
        f"({DRIFT_WINDOW_ROWS}{{{pods(canary)}}} >= {drift.min_window_rows})"
    )
    drift_exempt = f"count({DRIFT_WINDOW_ROWS}{{{pods(canary)}}})\n  unless on ()\ncount(\n{_indent(counted)}\n)"
    return (
        # Prometheus writes `up` for every target it tries to scrape, with the target's labels
        # (prometheus.io/docs/concepts/jobs_instances, "Automatically generated labels and time series").
        CanaryCheck(
            name="ready",
            value_query=f"count(up{{{pods(canary)}}} == 1)",
            bound=1,
            comparison=">=",
            summary="At least one canary pod is scraped and up.",
        ),
        CanaryCheck(
            name="error-ratio",
            value_query=error_ratio,
            bound=slo.error_ratio,
            summary=f"The canary answers at most {slo.error_ratio:.2%} of its scoring requests with a 5xx "
            f"over {RATE_WINDOW} (no requests: fail).",
        ),
        CanaryCheck(
            name="latency-p99",
            value_query=p99(canary),
            bound=p99_seconds,
            summary=f"The canary's p99 scoring latency over {RATE_WINDOW} is at most {slo.latency_p99_ms} ms.",
        ),
        CanaryCheck(
            name="latency-vs-stable",
            value_query=f"{p99(canary)}\n  /\n{p99(stable)}",
            bound=LATENCY_VS_STABLE_FACTOR,
            exempt=latency_exempt,
            summary=f"The canary's p99 is at most {LATENCY_VS_STABLE_FACTOR:g}x the stable version's, unless it "
            f"is under {floor * 1000:g} ms or the stable version has no p99.",
        ),
        CanaryCheck(
            name="drift",
            value_query=f"max(\n{_indent(counted)}\n)",
            bound=drift.threshold,
            exempt=drift_exempt,
            summary=f"No feature of the canary's scored data has a drift score above {promql_number(drift.threshold)} "
            f"once a pod's window holds {drift.min_window_rows} rows (until then: not judged).",
        ),
    )
