"""The alert rules, run by a real Prometheus rule engine: `promtool test rules` against fixed series.

Every rule gets a case where it fires and cases where it stays quiet, built from each shipped stack's own thresholds
(so a threshold change is tested too). The series carry the names and labels the model server and kube-state-metrics
export (model_image/model_server/metrics.py; kube-state-metrics as Azure managed Prometheus scrapes it).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from model_server.metrics import LATENCY_BUCKETS
from monitoring.__main__ import dashboard_path, rules_path, stack_dashboard, stack_rules_file
from monitoring.__main__ import main as monitoring_main
from monitoring.rules import (
    DRIFT_ALERT,
    DRIFT_SCORE,
    DRIFT_WINDOW_ROWS,
    ERROR_RATIO_ALERT,
    LATENCY_ALERT,
    REPLICAS_ALERT,
    ROLLOUTS_JOB,
    SCRAPE_JOB,
    AlertRule,
    duration_seconds,
    rule_groups,
)
from stacks.files import load_stack_config
from stacks.identifiers import kubernetes_name
from stacks.settings import MonitoringSettings, pinned_model

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed; scripts/bootstrap.sh installs it"
)

NAMESPACE = "wine-quality"
POD = {"job": SCRAPE_JOB, "namespace": NAMESPACE, "instance": "10.244.1.7:8080", "pod": "wine-quality-7d9c-abcde"}
INFO = {"model_name": "wine-quality", "model_version": "3"}


@dataclass
class Case:
    """Input series (promtool notation, one sample a minute) and the alerts expected at `at_minutes`."""

    name: str
    series: list[tuple[str, dict[str, str], str]]
    at_minutes: int
    fires: list[dict[str, str]] = field(default_factory=list)


def _selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _constant(value: float, minutes: int) -> str:
    # promtool's expanding notation (`1x40`) has no form for NaN: spell every sample out.
    return " ".join(["NaN"] * (minutes + 1)) if math.isnan(value) else f"{value:g}x{minutes}"


def _counter(per_minute: float, minutes: int) -> str:
    return f"0+{per_minute:g}x{minutes}"


def serving_cases(settings: MonitoringSettings, app: str) -> dict[str, list[Case]]:
    slo = settings.slo
    hold = duration_seconds(slo.sustained_for) // 60
    # The rate window is 5m; the breach needs `for` on top of it, and a few minutes of slack.
    at = hold + 10
    length = at + 5
    ok_per_minute = 60_000
    labels = {"job": SCRAPE_JOB, "namespace": NAMESPACE}

    def requests(errors_per_minute: float) -> list[tuple[str, dict[str, str], str]]:
        base = {**POD, "route": "/invocations"}
        return [
            ("model_server_requests_total", {**base, "status": "200"}, _counter(ok_per_minute, length)),
            ("model_server_requests_total", {**base, "status": "500"}, _counter(errors_per_minute, length)),
            # Client errors are the caller's fault, never the server's SLO.
            ("model_server_requests_total", {**base, "status": "400"}, _counter(ok_per_minute, length)),
            # Health checks do not count.
            ("model_server_requests_total", {**POD, "route": "/health/ready", "status": "503"}, _counter(600, length)),
        ]

    ratio = slo.error_ratio
    errors_above = math.ceil(ok_per_minute * 2 * ratio * 2 / (1 - 2 * ratio)) if ratio < 0.5 else ok_per_minute * 8
    errors_below = math.floor(ok_per_minute * 2 * ratio / 3)

    def latency(seconds: float) -> list[tuple[str, dict[str, str], str]]:
        # Every request takes `seconds`: buckets below it stay at 0, buckets from it up count every request.
        series = []
        for bound in [*LATENCY_BUCKETS, math.inf]:
            le = "+Inf" if bound == math.inf else f"{bound:g}"
            per_minute = ok_per_minute if seconds <= bound else 0
            series.append(
                (
                    "model_server_request_duration_seconds_bucket",
                    {**POD, "route": "/invocations", "le": le},
                    _counter(per_minute, length),
                )
            )
        return series

    target = slo.latency_p99_ms / 1000
    slow = min(b for b in LATENCY_BUCKETS if b > target * 1.05)
    fast = max(b for b in LATENCY_BUCKETS if b <= target / 2) if min(LATENCY_BUCKETS) <= target / 2 else None

    rollout = {"job": ROLLOUTS_JOB, "namespace": app, "name": app}
    replicas_hold = duration_seconds(slo.replicas_not_ready_for) // 60

    def replicas(available: str, minutes: int) -> list[tuple[str, dict[str, str], str]]:
        # Each of the controller's two replicas exports the gauges (an instance label apart).
        return [
            (series, {**rollout, "instance": instance}, values)
            for instance in ("10.0.0.1:8090", "10.0.0.2:8090")
            for series, values in (
                ("rollout_info_replicas_desired", f"3x{minutes}"),
                ("rollout_info_replicas_available", available),
            )
        ]

    fast_cases = [Case("latency under target", latency(fast), at)] if fast is not None else []
    return {
        ERROR_RATIO_ALERT: [
            Case("5xx share above the SLO", requests(errors_above), at, fires=[labels]),
            Case("5xx share below the SLO", requests(errors_below), at),
            Case("5xx share above the SLO, not yet for long enough", requests(errors_above), hold),
        ],
        LATENCY_ALERT: [
            Case("p99 above target", latency(slow), at, fires=[labels]),
            *fast_cases,
            Case("p99 above target, not yet for long enough", latency(slow), hold),
        ],
        REPLICAS_ALERT: [
            Case(
                "one replica short",
                replicas(f"2x{replicas_hold + 10}", replicas_hold + 10),
                replicas_hold + 5,
                fires=[{"namespace": app, "name": app}],
            ),
            Case("all replicas available", replicas(f"3x{replicas_hold + 10}", replicas_hold + 10), replicas_hold + 5),
            # A rolling update or a scale-up is short of ready pods for a moment: that is no alert.
            Case(
                "short for a few minutes, then recovered",
                replicas(f"2x3 3x{replicas_hold + 6}", replicas_hold + 10),
                replicas_hold + 5,
            ),
            Case(
                "a different rollout short",
                [
                    ("rollout_info_replicas_desired", {**rollout, "name": "other"}, f"3x{replicas_hold + 10}"),
                    ("rollout_info_replicas_available", {**rollout, "name": "other"}, f"1x{replicas_hold + 10}"),
                ],
                replicas_hold + 5,
            ),
        ],
    }


def drift_cases(settings: MonitoringSettings) -> dict[str, list[Case]]:
    drift = settings.drift
    hold = duration_seconds(drift.sustained_for) // 60
    at = hold + 5
    length = at + 5
    high, low = drift.threshold * 2, drift.threshold / 2
    rows = drift.min_window_rows

    def pod(score_alcohol: float, score_ph: float, window_rows: int) -> list[tuple[str, dict[str, str], str]]:
        info = {**POD, **INFO, "model_run_id": "r1", "image_code_hash": "abc", "scoring_path": "fast"}
        return [
            (DRIFT_SCORE, {**POD, "feature": "alcohol"}, _constant(score_alcohol, length)),
            (DRIFT_SCORE, {**POD, "feature": "pH"}, _constant(score_ph, length)),
            (DRIFT_WINDOW_ROWS, POD, f"{window_rows}x{length}"),
            ("model_server_model_info", info, f"1x{length}"),
        ]

    fired = {"job": SCRAPE_JOB, "namespace": NAMESPACE, "feature": "alcohol", **INFO}
    return {
        DRIFT_ALERT: [
            Case("one feature above the threshold", pod(high, low, rows * 2), at, fires=[fired]),
            Case("every feature below the threshold", pod(low, low, rows * 2), at),
            Case("above the threshold on too few rows", pod(high, low, max(rows - 1, 0)), at),
            # The server reports NaN until its window is full enough to score.
            Case("no score yet (NaN)", pod(math.nan, math.nan, rows * 2), at),
            Case("above the threshold, not yet for long enough", pod(high, low, rows * 2), hold - 1),
        ],
    }


def promtool_tests(rules_file: Path, rules: dict[str, AlertRule], cases: dict[str, list[Case]]) -> dict[str, Any]:
    tests = []
    for alert, alert_cases in cases.items():
        rule = rules[alert]
        for case in alert_cases:
            tests.append(
                {
                    "name": f"{alert}: {case.name}",
                    "interval": "1m",
                    "input_series": [
                        {"series": _selector(name, labels), "values": values} for name, labels, values in case.series
                    ],
                    "alert_rule_test": [
                        {
                            "eval_time": f"{case.at_minutes}m",
                            "alertname": alert,
                            "exp_alerts": [
                                {"exp_labels": {**labels, **rule.labels}, "exp_annotations": rule.annotations}
                                for labels in case.fires
                            ],
                        }
                    ],
                }
            )
    return {"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": tests}


def _run_promtool(tmp_path: Path, stack: str, mutate_expectations: bool = False) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    config = load_stack_config(ROOT, stack)
    settings = config.settings()
    app = kubernetes_name(pinned_model(settings).name)
    rules_file = tmp_path / f"{stack}.rules.yml"
    rules_file.write_text(stack_rules_file(ROOT, stack))
    groups = rule_groups(settings.monitoring, app, f"{config.project}-{stack}")
    rules = {rule.alert: rule for group in groups for rule in group.rules}
    cases = {**serving_cases(settings.monitoring, app), **drift_cases(settings.monitoring)}
    assert set(cases) == set(rules), "every rule needs its cases"
    for alert, alert_cases in cases.items():
        assert any(c.fires for c in alert_cases), f"{alert} has no case where it fires"
        assert any(not c.fires for c in alert_cases), f"{alert} has no case where it stays quiet"
    if mutate_expectations:
        for alert_cases in cases.values():
            for case in alert_cases:
                case.fires = [] if case.fires else [{"job": SCRAPE_JOB}]
    test_file = tmp_path / f"{stack}.test.yml"
    yaml = YAML()
    yaml.width = 4096
    with test_file.open("w") as out:
        yaml.dump(promtool_tests(rules_file, rules, cases), out)
    command = [PROMTOOL, "test", "rules", test_file.name]
    return subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)


@needs_promtool
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_rule_fires_on_a_breach_and_stays_quiet_otherwise(tmp_path: Path, stack: str) -> None:
    result = _run_promtool(tmp_path, stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_really_checks_the_expectations(tmp_path: Path) -> None:
    # The same cases with every expectation inverted must fail, case by case: the test above cannot pass vacuously.
    result = _run_promtool(tmp_path, "staging", mutate_expectations=True)
    assert result.returncode != 0
    for alert in (ERROR_RATIO_ALERT, LATENCY_ALERT, REPLICAS_ALERT, DRIFT_ALERT):
        assert f"alertname: {alert}" in result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_rules_file_passes_promtool_check(tmp_path: Path, stack: str) -> None:
    assert PROMTOOL is not None
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(stack_rules_file(ROOT, stack))
    command = [PROMTOOL, "check", "rules", str(rules_file)]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_checked_in_rules_files_match_the_stack_settings(stack: str) -> None:
    assert rules_path(stack).read_text() == stack_rules_file(ROOT, stack), "run `python -m monitoring`"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_checked_in_dashboards_match_the_stack_settings(stack: str) -> None:
    assert dashboard_path(stack).read_text() == stack_dashboard(ROOT, stack), "run `python -m monitoring`"


@needs_promtool
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_dashboard_queries_are_valid_promql_on_the_rules_series(tmp_path: Path, stack: str) -> None:
    # promtool parses expressions only inside rule files: each panel query becomes a recording rule.
    assert PROMTOOL is not None
    document = json.loads(stack_dashboard(ROOT, stack))
    queries = [t["expr"].replace("${datasource}", "") for p in document["panels"] for t in p["targets"]]
    assert any(DRIFT_SCORE in q for q in queries)
    assert any("model_server_request_duration_seconds_bucket" in q for q in queries)
    rules = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"panel:q{i}", "expr": q} for i, q in enumerate(queries)]}
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(json.dumps(rules))
    command = [PROMTOOL, "check", "rules", str(path)]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    thresholds = [
        step["value"]
        for p in document["panels"]
        for step in p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        if step["value"] is not None
    ]
    monitoring = load_stack_config(ROOT, stack).settings().monitoring
    assert monitoring.drift.threshold in thresholds
    assert monitoring.slo.error_ratio in thresholds


def test_monitoring_cli_check_flags_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "staging.rules.yml"
    stale.write_text("groups: []\n")
    assert monitoring_main(["staging", "--out", str(stale), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert monitoring_main(["staging", "--out", str(stale)]) == 0
    assert monitoring_main(["staging", "--out", str(stale), "--check"]) == 0


def test_thresholds_come_from_the_stack_settings() -> None:
    settings = MonitoringSettings.model_validate(
        {"slo": {"errorRatio": 0.05, "latencyP99Ms": 800, "sustainedFor": "2m"}, "drift": {"threshold": 0.3}}
    )
    rules = {r.alert: r for g in rule_groups(settings, "m", "p-s") for r in g.rules}
    assert rules[ERROR_RATIO_ALERT].expr.rstrip().endswith("> 0.05")
    assert rules[LATENCY_ALERT].expr.rstrip().endswith("> 0.8")
    assert rules[LATENCY_ALERT].for_seconds == 120
    assert rules[DRIFT_ALERT].expr.rstrip().endswith("> 0.3")


def test_drift_series_names_are_the_ones_the_server_exports() -> None:
    # The server names its drift series in one module (model_server/drift_metrics.py); the rules read the same names.
    drift_metrics = pytest.importorskip("model_server.drift_metrics")
    assert drift_metrics.FEATURE_SCORE == DRIFT_SCORE
    assert drift_metrics.WINDOW_ROWS == DRIFT_WINDOW_ROWS
    assert drift_metrics.LABELS[DRIFT_SCORE] == ("feature",)
