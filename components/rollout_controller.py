"""RolloutController: Argo Rollouts on one cluster, the controller that releases a new model version as a canary.

Owns: the Helm release of the `argo-rollouts` chart (pinned, from Argo's own chart repository) in its own
namespace, which installs the controller, its CRDs (Rollout, AnalysisTemplate, AnalysisRun, ...) and its RBAC.
Registered outputs: `namespace`; the `release` resource is an attribute.

Why Argo Rollouts: a CNCF project whose canary steps and analysis are the release's own objects, judged by the
controller alone, with the nginx ingress controller (AKS's app-routing add-on) as a traffic router and replica share
where there is no router (argoproj.github.io/argo-rollouts/features/canary/); docs/decisions/0001-canary-release.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# The chart, pinned: argoproj/argo-helm charts/argo-rollouts/Chart.yaml at tag argo-rollouts-2.41.0 (appVersion
# v1.9.0). tests/reference/argo-rollouts/ holds that Chart.yaml and values.yaml verbatim.
CHART = "argo-rollouts"
CHART_VERSION = "2.41.0"
CHART_REPOSITORY = "https://argoproj.github.io/argo-helm"
CONTROLLER_VERSION = "v1.9.0"
NAMESPACE = "argo-rollouts"
RELEASE_NAME = "argo-rollouts"
# Traffic routers the chart grants the controller rights for (values.yaml `providerRBAC.providers`). The model uses
# the nginx ingress controller, whose rights (ingresses) are in the chart's base rules, so every one is off;
# `gatewayAPI` also adds create/update on every ConfigMap when on (templates/_helpers.tpl, roleRules).
TRAFFIC_ROUTER_PROVIDERS = (
    "istio",
    "smi",
    "ambassador",
    "awsLoadBalancerController",
    "awsAppMesh",
    "traefik",
    "apisix",
    "contour",
    "glooPlatform",
    "gatewayAPI",
)
METRICS_PORT = 8090
# The controller's pods, as the chart labels them (templates/controller/deployment.yaml: selectorLabels from
# templates/_helpers.tpl and the component from values.yaml `controller.component`) and its metrics port's name.
CONTROLLER_POD_LABELS = {
    "app.kubernetes.io/name": CHART,
    "app.kubernetes.io/instance": RELEASE_NAME,
    "app.kubernetes.io/component": "rollouts-controller",
}
METRICS_PORT_NAME = "metrics"


@dataclass(frozen=True)
class RolloutControllerArgs:
    """How the controller runs on the cluster."""

    replicas: int = 2
    """Controller replicas (one leads, the others stand by: the chart enables leader election)."""
    protect: bool = False
    """Protect the release: deleting it would delete the controller every model rollout on the cluster needs."""


def chart_values(args: RolloutControllerArgs) -> dict[str, Any]:
    """The chart values: the controller and its CRDs, no dashboard, no rights for routers the model does not use."""
    return {
        "installCRDs": True,
        # The CRDs outlive the release (`helm.sh/resource-policy: keep`): uninstalling the controller must not
        # delete every Rollout on the cluster, and with them the model's pods.
        "keepCRDs": True,
        "providerRBAC": {"enabled": False, "providers": dict.fromkeys(TRAFFIC_ROUTER_PROVIDERS, False)},
        "dashboard": {"enabled": False},
        "controller": {
            "replicas": args.replicas,
            "image": {"tag": CONTROLLER_VERSION},
            # The controller's own /metrics (analysis runs, rollout phases) behind a Service, for the scrape job.
            "metrics": {"enabled": True},
            "pdb": {"enabled": args.replicas > 1, "minAvailable": 1},
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        },
    }


class RolloutController(pulumi.ComponentResource):
    """Argo Rollouts on one cluster: the Helm release of its pinned chart, in the `argo-rollouts` namespace.

    Registered outputs: `namespace`."""

    release: k8s.helm.v3.Release
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: RolloutControllerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:delivery:RolloutController", name, None, opts)
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            k8s.helm.v3.ReleaseArgs(
                name=RELEASE_NAME,
                chart=CHART,
                version=CHART_VERSION,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
                namespace=NAMESPACE,
                create_namespace=True,
                values=chart_values(args),
                # A failed install or upgrade is rolled back by Helm, so the cluster never keeps half a controller.
                atomic=True,
                timeout=600,
                max_history=10,
            ),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.namespace = pulumi.Output.from_input(NAMESPACE)
        self.register_outputs({"namespace": self.namespace})
