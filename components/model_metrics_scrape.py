"""ModelMetricsScrape: tells the cluster's managed Prometheus agent to scrape the model server's pods and the
release controller's (the replica counts of each Rollout).

Owns: the ConfigMap `ama-metrics-prometheus-config` in `kube-system`, which the ama-metrics replica reads for
custom scrape jobs and merges with its default targets (learn.microsoft.com/azure/azure-monitor/containers/
prometheus-metrics-scrape-configuration, "Configure custom Prometheus scrape jobs"; the replica, not the DaemonSet,
runs jobs from this ConfigMap: .../prometheus-metrics-troubleshoot). The add-on ships no such ConfigMap, so the
program owns the whole object.

Why a scrape job and not pod annotations: annotation-based scraping also needs `podannotationnamespaceregex` in
another add-on ConfigMap (ama-metrics-settings-configmap) and new annotations on the pod template, which would roll
every model pod once; a job selects the pods by the labels they already carry, and the pods never change.
Custom jobs are not subject to the minimal ingestion profile: every series the server exports is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from io import StringIO
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from ruamel.yaml import YAML

from components.contracts import server
from monitoring.analysis import HASH_LABEL, POD_TEMPLATE_HASH_LABEL
from monitoring.rules import ROLLOUTS_JOB, SCRAPE_JOB

CONFIG_MAP_NAME = "ama-metrics-prometheus-config"
CONFIG_MAP_NAMESPACE = "kube-system"
CONFIG_KEY = "prometheus-config"
SCRAPE_INTERVAL = "30s"


@dataclass(frozen=True)
class ModelMetricsScrapeArgs:
    """Which pods to scrape, on which named port and path."""

    namespace: pulumi.Input[str]
    """The model's namespace (ModelDeployment.namespace)."""
    pod_selector: Mapping[str, str]
    """The labels that select the serving pods (ModelDeployment.pod_selector)."""
    port_name: str
    """The container port name the server listens on (its `/metrics` is on the serving port)."""
    metrics_path: str = server.Routes.METRICS
    """The path the server exports its Prometheus metrics on."""
    controller: ControllerPods | None = None
    """The release controller's pods, whose own metrics hold each Rollout's replica counts (the replicas alert)."""


@dataclass(frozen=True)
class ControllerPods:
    """Where the release controller's metrics are: its namespace, its pods' labels and the metrics port's name."""

    namespace: str
    pod_selector: Mapping[str, str]
    port_name: str


def _label_meta(label: str) -> str:
    # Prometheus turns a pod label into a meta label with every character that is not [a-zA-Z0-9_] as `_`.
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() or c == "_" else "_" for c in label)


def _keep_pods(pod_selector: Mapping[str, str], port_name: str) -> list[dict[str, Any]]:
    labels = sorted(pod_selector.items())
    return [
        {
            "action": "keep",
            "source_labels": [_label_meta(k) for k, _ in labels],
            "regex": ";".join(v for _, v in labels),
        },
        # One target per pod: the named container port, not every port of the pod.
        {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": port_name},
    ]


def controller_scrape_job(controller: ControllerPods) -> dict[str, Any]:
    """`ROLLOUTS_JOB`: the controller's pods on their metrics port. Their series carry the Rollout's own `namespace`
    and `name`; `honor_labels` keeps them should a target label of that name ever be attached (otherwise Prometheus
    renames the scraped one to `exported_namespace`: prometheus.io/docs configuration, scrape_config honor_labels)."""
    return {
        "job_name": ROLLOUTS_JOB,
        "scrape_interval": SCRAPE_INTERVAL,
        "honor_labels": True,
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [controller.namespace]}}],
        "relabel_configs": _keep_pods(controller.pod_selector, controller.port_name),
    }


def scrape_config(
    namespace: str,
    pod_selector: Mapping[str, str],
    port_name: str,
    metrics_path: str,
    controller: ControllerPods | None = None,
) -> dict[str, Any]:
    """The Prometheus config: job `SCRAPE_JOB`, the serving pods of `namespace` on their named port; and, given the
    release controller, its job."""
    return {
        "scrape_configs": [
            {
                "job_name": SCRAPE_JOB,
                "scrape_interval": SCRAPE_INTERVAL,
                "metrics_path": metrics_path,
                "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
                "relabel_configs": [
                    *_keep_pods(pod_selector, port_name),
                    {
                        "action": "replace",
                        "source_labels": ["__meta_kubernetes_namespace"],
                        "target_label": "namespace",
                    },
                    {"action": "replace", "source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    # The canary analysis tells the versions apart by the hash Argo Rollouts labels their pods with; a
                    # pod without that label gets no such series label (an empty value deletes it, Prometheus
                    # model/relabel/relabel.go `relabel`, case Replace).
                    {
                        "action": "replace",
                        "source_labels": [_label_meta(POD_TEMPLATE_HASH_LABEL)],
                        "target_label": HASH_LABEL,
                    },
                ],
            },
            *([controller_scrape_job(controller)] if controller is not None else []),
        ]
    }


def _yaml(document: dict[str, Any]) -> str:
    yaml = YAML()
    yaml.width = 4096
    out = StringIO()
    yaml.dump(document, out)
    return out.getvalue()


class ModelMetricsScrape(pulumi.ComponentResource):
    """The managed Prometheus scrape job for the model server's pods (a ConfigMap in kube-system).

    Registered outputs: none; the ConfigMap is the attribute `config_map`."""

    config_map: k8s.core.v1.ConfigMap

    def __init__(self, name: str, args: ModelMetricsScrapeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:monitoring:ModelMetricsScrape", name, None, opts)
        config = pulumi.Output.from_input(args.namespace).apply(
            lambda ns: _yaml(scrape_config(ns, args.pod_selector, args.port_name, args.metrics_path, args.controller))
        )
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=CONFIG_MAP_NAME,
                namespace=CONFIG_MAP_NAMESPACE,
                labels={"app.kubernetes.io/managed-by": "pulumi"},
            ),
            data={CONFIG_KEY: config},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
