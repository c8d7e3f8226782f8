"""The serving and drift dashboard (Grafana JSON model), built from the same series and thresholds as the rules.

`python -m monitoring` writes it beside each stack's rules file (`monitoring/rules/<stack>.dashboard.json`); import it
into the stack's Azure Managed Grafana (`az grafana dashboard import --name <grafana> --definition <file>`), whose
Azure Monitor workspace data source the program links (components/managed_grafana.py).
"""

from __future__ import annotations

from typing import Any

from monitoring.rules import (
    DRIFT_SCORE,
    DRIFT_WINDOW_ROWS,
    LATENCY_BUCKETS,
    RATE_WINDOW,
    REQUESTS,
    ROLLOUT_AVAILABLE_REPLICAS,
    ROLLOUT_DESIRED_REPLICAS,
    ROLLOUTS_JOB,
    SCORING_ROUTES,
    SCRAPE_JOB,
)
from stacks.settings import MonitoringSettings

# Grafana's datasource variable: the dashboard works against whichever Prometheus data source the user picks.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(
    panel_id: int, title: str, exprs: list[tuple[str, str]], *, unit: str, threshold: float | None
) -> dict[str, Any]:
    # Two panels a row, 8 units high, in the order they are numbered.
    x, y = 12 * ((panel_id - 1) % 2), 8 * ((panel_id - 1) // 2)
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if threshold is not None:
        steps.append({"color": "red", "value": threshold})
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": {"thresholdsStyle": {"mode": "line" if threshold is not None else "off"}},
            },
            "overrides": [],
        },
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def dashboard_document(settings: MonitoringSettings, app: str, title: str) -> dict[str, Any]:
    """Traffic, error ratio, p99 and replicas against the SLOs; drift per feature against the threshold."""
    scoring = f'job="{SCRAPE_JOB}", namespace="{app}", route=~"{SCORING_ROUTES}"'
    server = f'job="{SCRAPE_JOB}", namespace="{app}"'
    rollout = f'job="{ROLLOUTS_JOB}", namespace="{app}", name="{app}"'
    slo, drift = settings.slo, settings.drift
    panels = [
        _panel(
            1,
            "Scoring requests per second, by status",
            [(f"sum by (status) (rate({REQUESTS}{{{scoring}}}[{RATE_WINDOW}]))", "{{status}}")],
            unit="reqps",
            threshold=None,
        ),
        _panel(
            2,
            "Server error ratio (SLO line)",
            [
                (
                    f'sum(rate({REQUESTS}{{{scoring}, status=~"5.."}}[{RATE_WINDOW}])) / '
                    f"sum(rate({REQUESTS}{{{scoring}}}[{RATE_WINDOW}]))",
                    "5xx share",
                )
            ],
            unit="percentunit",
            threshold=slo.error_ratio,
        ),
        _panel(
            3,
            "p99 scoring latency (target line)",
            [(f"histogram_quantile(0.99, sum by (le) (rate({LATENCY_BUCKETS}{{{scoring}}}[{RATE_WINDOW}])))", "p99")],
            unit="s",
            threshold=slo.latency_p99_ms / 1000,
        ),
        _panel(
            4,
            "Replicas: available and desired",
            [
                (f"max({ROLLOUT_AVAILABLE_REPLICAS}{{{rollout}}})", "available"),
                (f"max({ROLLOUT_DESIRED_REPLICAS}{{{rollout}}})", "desired"),
            ],
            unit="short",
            threshold=None,
        ),
        _panel(
            5,
            "Drift score per feature (alert threshold line)",
            [(f"max by (feature) ({DRIFT_SCORE}{{{server}}})", "{{feature}}")],
            unit="short",
            threshold=drift.threshold,
        ),
        _panel(
            6,
            "Rows in the drift window",
            [(f"sum by (pod) ({DRIFT_WINDOW_ROWS}{{{server}}})", "{{pod}}")],
            unit="short",
            threshold=None,
        ),
    ]
    return {
        "title": title,
        "uid": title.lower().replace(" ", "-")[:40],
        "tags": ["mlops", "model-serving", "drift"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": panels,
    }
