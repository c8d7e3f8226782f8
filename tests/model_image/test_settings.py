"""Settings: read from the environment, validated all at once, CLI flags on top; the pod's CPU limit from cgroups."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_server.server import cgroup_cpu_limit
from model_server.settings import DEFAULT_MODEL_DIR, SettingsError, load_settings


def test_defaults_are_the_container_contract() -> None:
    settings = load_settings({})
    assert settings.model_dir == DEFAULT_MODEL_DIR == Path("/opt/model")
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8080, 1)
    assert settings.batch_max_rows > 1  # batching on
    assert settings.payload_log_sample_rate == 0.0  # payload logging off
    assert settings.access_log is True


def test_environment_then_flags() -> None:
    env = {"MODEL_DIR": "/m", "PORT": "9000", "HOST": "192.0.2.1", "ACCESS_LOG": "false", "LOG_LEVEL": "DEBUG"}
    settings = load_settings(env, port=9100, host=None)
    assert settings.model_dir == Path("/m")
    assert settings.port == 9100  # the flag wins
    assert settings.host == "192.0.2.1"  # no flag given: the environment stands
    assert settings.access_log is False
    assert settings.log_level == "debug"


def test_blank_variables_are_unset() -> None:
    settings = load_settings({"MODEL_NAME": "", "PORT": "  "})
    assert settings.model_name is None
    assert settings.port == 8080


def test_every_invalid_variable_is_named_at_once() -> None:
    env = {
        "PORT": "http",
        "PAYLOAD_LOG_SAMPLE_RATE": "1.5",
        "WORKERS": "0",
        "LOG_LEVEL": "loud",
        "MAX_BODY_BYTES": "10",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    message = str(caught.value)
    for name in ("PORT", "PAYLOAD_LOG_SAMPLE_RATE", "WORKERS", "LOG_LEVEL", "MAX_BODY_BYTES"):
        assert name in message


def test_nan_is_not_a_sample_rate() -> None:
    with pytest.raises(SettingsError, match="PAYLOAD_LOG_SAMPLE_RATE"):
        load_settings({"PAYLOAD_LOG_SAMPLE_RATE": "nan"})


def test_cpu_limit_comes_from_cgroups_not_the_node(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(v2) == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1) == 0.5
    assert cgroup_cpu_limit(tmp_path / "none") is None


def test_drift_settings_default_on_and_are_checked_together() -> None:
    settings = load_settings({})
    assert settings.drift_monitoring is True
    assert settings.drift_min_rows <= settings.drift_window_rows
    assert load_settings({"DRIFT_MONITORING": "false"}).drift_monitoring is False
    env = {"DRIFT_WINDOW_ROWS": "1000", "DRIFT_MIN_ROWS": "2000", "DRIFT_PSI_THRESHOLD": "-1"}
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert "DRIFT_MIN_ROWS: Value error, must not exceed DRIFT_WINDOW_ROWS (1000)" in message
    assert "DRIFT_PSI_THRESHOLD" in message
    with pytest.raises(SettingsError, match="DRIFT_REFRESH_SECONDS"):
        load_settings({"DRIFT_REFRESH_SECONDS": "inf"})
