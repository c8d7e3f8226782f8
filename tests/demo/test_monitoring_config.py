"""The local Prometheus and Alertmanager set-up: the demo's rules are the stack's with only the durations changed,
and both config files pass the tools' own checks (`promtool check config`, `amtool check-config`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from localrun.monitoring import alertmanager, demo_rules, prometheus
from localrun.processes import REPO_ROOT
from monitoring.__main__ import stack_rules_file

needs_tools = pytest.mark.skipif(
    shutil.which("promtool") is None or shutil.which("amtool") is None, reason="Debian's prometheus packages"
)


def _rules(text: str) -> list[dict[str, object]]:
    document = YAML(typ="safe", pure=True).load(text)
    return [dict(rule, group=group["name"]) for group in document["groups"] for rule in group["rules"]]


def test_the_demo_rules_are_the_stacks_with_only_the_durations_shortened() -> None:
    stack = stack_rules_file(REPO_ROOT, "staging")
    demo = demo_rules(stack, interval="2s", pending="6s")

    stack_rules, demo_rules_ = _rules(stack), _rules(demo)
    assert [r["alert"] for r in demo_rules_] == [r["alert"] for r in stack_rules]
    for before, after in zip(stack_rules, demo_rules_, strict=True):
        assert after["for"] == "6s"
        assert {k: v for k, v in after.items() if k != "for"} == {k: v for k, v in before.items() if k != "for"}
    groups = YAML(typ="safe", pure=True).load(demo)["groups"]
    assert {g["interval"] for g in groups} == {"2s"}


@needs_tools
def test_prometheus_and_alertmanager_configs_pass_the_tools_checks(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(demo_rules(stack_rules_file(REPO_ROOT, "staging"), interval="2s", pending="6s"))
    prom = prometheus(tmp_path / "prom", scrape_target="127.0.0.1:8080", rules_file=rules, alertmanager_port=9093)
    manager = alertmanager(tmp_path / "am", webhook_url="http://127.0.0.1:7071/api/alerts/alertmanager", token="t" * 20)
    checks = [
        ["promtool", "check", "config", str(tmp_path / "prom" / "prometheus.yml")],
        ["amtool", "check-config", str(tmp_path / "am" / "alertmanager.yml")],
    ]
    for argv in checks:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--cluster.listen-address=" in manager.argv  # no gossip listener on 0.0.0.0:9094
    assert any(a.startswith("--web.listen-address=127.0.0.1:") for a in prom.argv)
    assert "t" * 20 not in (tmp_path / "am" / "alertmanager.yml").read_text()  # the token is in a 0600 file
    assert (tmp_path / "am" / "listener-token").stat().st_mode & 0o077 == 0
