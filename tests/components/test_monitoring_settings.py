"""The stack files' `monitoring` section: thresholds and receivers checked like every other setting, one line each."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stacks.files import load_stack_config
from stacks.settings_errors import SettingsError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def problems_after(project: Path, old: str, new: str) -> list[str]:
    path = project / "Pulumi.prod.yaml"
    text = path.read_text()
    assert old in text, f"{old!r} not in Pulumi.prod.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(SettingsError) as caught:
        load_stack_config(project, "prod").settings()
    return caught.value.problems


KEY = "Pulumi.prod.yaml: mlops-serving:monitoring"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("errorRatio: 0.01", "errorRatio: 0", f"{KEY}.slo.errorRatio: expected greater than 0 (got 0)"),
        ("errorRatio: 0.01", "errorRatio: 1.5", f"{KEY}.slo.errorRatio: expected less than 1 (got 1.5)"),
        (
            "latencyP99Ms: 250",
            "latencyP99Ms: 20000",
            f"{KEY}.slo.latencyP99Ms: expected less than or equal to 5000 (got 20000)",
        ),
        (
            "sustainedFor: 5m",
            "sustainedFor: 5 minutes",
            f'{KEY}.slo.sustainedFor: expected a duration such as "30s", "5m" or "1h" (got "5 minutes")',
        ),
        (
            "threshold: 0.2",
            "threshold: -1",
            f"{KEY}.drift.threshold: expected greater than 0 (got -1)",
        ),
        (
            "minWindowRows: 500",
            "minWindowRows: 0",
            f"{KEY}.drift.minWindowRows: expected greater than or equal to 1 (got 0)",
        ),
        (
            "        - mlops-oncall@acme-ml.example",
            "        - oncall",
            f'{KEY}.receivers.emails[0]: expected an email address such as oncall@example.com (got "oncall")',
        ),
        (
            "      emails:\n        - mlops-oncall@acme-ml.example\n      listener: true",
            "      emails: []\n      listener: false",
            f"{KEY}.receivers: no receiver: list emails or set listener: true",
        ),
        (
            "    grafana: true",
            "    grafana: yes please",
            f'{KEY}.grafana: expected a valid boolean, unable to interpret input (got "yes please")',
        ),
        ("    drift:", "    drfit:", f"{KEY}.drfit: is not a known setting"),
    ],
)
def test_bad_monitoring_value_names_key_and_expectation(project: Path, old: str, new: str, expected: str) -> None:
    assert problems_after(project, old, new) == [expected]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_both_stacks_set_their_own_thresholds_and_receivers(stack: str) -> None:
    monitoring = load_stack_config(ROOT, stack).settings().monitoring
    assert monitoring.receivers.emails
    assert monitoring.receivers.listener
    assert monitoring.drift.threshold > 0


def test_prod_is_held_to_tighter_serving_slos_than_staging() -> None:
    staging = load_stack_config(ROOT, "staging").settings().monitoring.slo
    prod = load_stack_config(ROOT, "prod").settings().monitoring.slo
    assert prod.error_ratio < staging.error_ratio
    assert prod.latency_p99_ms < staging.latency_p99_ms
