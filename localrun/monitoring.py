"""A real Prometheus and Alertmanager (Debian's `prometheus` and `prometheus-alertmanager`) on 127.0.0.1.

Prometheus scrapes the local model server as job `model-server` (the job the rules select) and evaluates a rules
file; Alertmanager sends every alert to the listener's Alertmanager route with the bearer token, read from a file
(`credentials_file`) so it is in no config file or command line. Neither tool has telemetry or an update check;
Alertmanager's cluster gossip, which would listen on 0.0.0.0:9094, is switched off.

`demo_rules` keeps a rules file's expressions and shortens only its evaluation interval and `for` durations, so that
a demo sees an alert fire in seconds instead of half an hour.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from localrun.processes import LOOPBACK, ManagedProcess, free_port
from localrun.weighted_proxy import check_backend
from monitoring.analysis import HASH_LABEL
from monitoring.rules import SCRAPE_JOB

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name for the alertmanager binary
MODEL_SERVER_JOB = "model-server"
MISSING_TOOLS = "install Debian's `prometheus` and `prometheus-alertmanager` (scripts/bootstrap.sh does, as root)"


class MonitoringToolsMissingError(RuntimeError):
    """Prometheus or Alertmanager is not installed."""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MonitoringToolsMissingError(f"`{name}` not found on PATH: {MISSING_TOOLS}")
    return found


def _dump(document: Any) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def demo_rules(rules_text: str, *, interval: str, pending: str) -> str:
    """The same rules with every group's `interval` and every rule's `for` set to the given durations."""
    yaml = YAML()
    document = yaml.load(rules_text)
    for group in document["groups"]:
        group["interval"] = interval
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = pending
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def _prometheus_process(workdir: Path, config: dict[str, Any], port: int | None) -> ManagedProcess:
    """Prometheus with `config`, on 127.0.0.1, its data and log under `workdir`."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(_dump(config))
    return ManagedProcess(
        name="prometheus",
        argv=[
            _binary(PROMETHEUS),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=warn",
        ],
        log_path=workdir / "prometheus.log",
        ready_url=f"http://{LOOPBACK}:{port}/-/ready",
    )


def prometheus(
    workdir: Path,
    *,
    scrape_target: str,
    rules_file: Path,
    alertmanager_port: int,
    scrape_interval: str = "1s",
    port: int | None = None,
) -> ManagedProcess:
    """Prometheus scraping `scrape_target` (host:port) as job `model-server`, alerting to the local Alertmanager."""
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(rules_file)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"{LOOPBACK}:{alertmanager_port}"]}]}]},
        "scrape_configs": [{"job_name": MODEL_SERVER_JOB, "static_configs": [{"targets": [scrape_target]}]}],
    }
    return _prometheus_process(workdir, config, port)


def canary_prometheus(
    workdir: Path,
    *,
    namespace: str,
    targets: Mapping[str, str],
    scrape_interval: str = "1s",
    port: int | None = None,
) -> ManagedProcess:
    """Prometheus scraping each model server of a canary release as the cluster's scrape job does: job `SCRAPE_JOB`,
    every series labelled with the model's `namespace` and its version's pod-template hash (`HASH_LABEL`).

    `targets` maps each version's hash (any label value locally: a version name will do) to its server's
    `host:port`. No rules, no Alertmanager: the canary's judge queries this Prometheus directly.
    """
    if not targets:
        raise ValueError("targets: expected at least one pod-template hash -> '<host>:<port>' pair")
    static_configs = [
        # Static target labels play the relabelled pod labels (components/model_metrics_scrape.py `scrape_config`).
        {
            "targets": [check_backend(f"targets[{version!r}]", address)],
            "labels": {"namespace": namespace, HASH_LABEL: version},
        }
        for version, address in targets.items()
    ]
    config = {
        "global": {"scrape_interval": scrape_interval},
        "scrape_configs": [{"job_name": SCRAPE_JOB, "static_configs": static_configs}],
    }
    return _prometheus_process(workdir, config, port)


def alertmanager(
    workdir: Path,
    *,
    webhook_url: str,
    token: str,
    group_wait: str = "1s",
    group_interval: str = "5s",
    repeat_interval: str = "1m",
    port: int | None = None,
) -> ManagedProcess:
    """Alertmanager routing every alert to `webhook_url` with `Authorization: Bearer <token>`."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    credentials = workdir / "listener-token"
    credentials.write_text(token)
    credentials.chmod(0o600)
    config = {
        "route": {
            "receiver": "listener",
            "group_by": ["alertname"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "listener",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(credentials)}},
                    }
                ],
            }
        ],
    }
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(_dump(config))
    return ManagedProcess(
        name="alertmanager",
        argv=[
            _binary(ALERTMANAGER),
            f"--config.file={config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        log_path=workdir / "alertmanager.log",
        ready_url=f"http://{LOOPBACK}:{port}/-/ready",
    )


def port_of(process: ManagedProcess) -> int:
    """The port a process from this module listens on (from its ready URL)."""
    assert process.ready_url is not None
    return int(process.ready_url.rsplit(":", 1)[1].split("/", 1)[0])
