"""ManagedPrometheus: Azure Monitor managed service for Prometheus for one stack's AKS cluster.

Owns: the Azure Monitor workspace (where the metrics live and the Prometheus rule groups query), the data
collection endpoint and data collection rule that forward the cluster's Prometheus metrics to it, and the rule's
association with the cluster. The cluster's own side is `azureMonitorProfile.metrics.enabled` (components/
aks_cluster.py), which deploys the ama-metrics agents; they find this rule through the association.
Registered outputs: `workspaceId`, `queryEndpoint`, `dataCollectionRuleId`; the `workspace`, `endpoint`, `rule` and
`association` resources are attributes.

The shapes are those of Azure's own template for managed Prometheus (learn.microsoft.com/azure/azure-monitor/
containers/kubernetes-monitoring-enable, "ARM"/"Bicep" tabs; Azure/ARO-HCP dev-infrastructure/modules/metrics/
datacollection.bicep): a Linux DCE, a Linux DCR with a `prometheusForwarder` source of stream
`Microsoft-PrometheusMetrics` flowing to a `monitoringAccounts` destination, and the association the Azure CLI
names `ContainerInsightsMetricsExtension` (azure-cli aks/azuremonitormetrics `get_default_dcra_name`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import monitor

from components.placement import Placement

PROMETHEUS_STREAM = "Microsoft-PrometheusMetrics"
MONITORING_ACCOUNT = "MonitoringAccount1"
# The association name the Azure CLI gives it: enabling metrics with `az aks update` later finds ours, not a twin.
ASSOCIATION_NAME = "ContainerInsightsMetricsExtension"


@dataclass(frozen=True)
class ManagedPrometheusArgs:
    """Where the workspace lives and which cluster it collects from."""

    placement: Placement
    """Names (`<project>-<stack>-prometheus`, `-prom-dce`, `-prom-dcr`), resource group, region (the
    endpoint and rule must be in the workspace's) and tags of the workspace, endpoint and rule."""
    cluster_id: pulumi.Input[str]
    """The AKS cluster whose metrics are forwarded (the association is created on it)."""


class ManagedPrometheus(pulumi.ComponentResource):
    """An Azure Monitor workspace fed by one cluster's Prometheus metrics (DCE, DCR, association)."""

    workspace: monitor.AzureMonitorWorkspace
    endpoint: monitor.DataCollectionEndpoint
    rule: monitor.DataCollectionRule
    association: monitor.DataCollectionRuleAssociation
    workspace_id: pulumi.Output[str]
    query_endpoint: pulumi.Output[str]
    data_collection_rule_id: pulumi.Output[str]

    def __init__(self, name: str, args: ManagedPrometheusArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:monitoring:ManagedPrometheus", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.placement.tag_map()
        self.workspace = monitor.AzureMonitorWorkspace(
            f"{name}-workspace",
            azure_monitor_workspace_name=args.placement.naming.resource("prometheus"),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            tags=tags,
            opts=child,
        )
        self.endpoint = monitor.DataCollectionEndpoint(
            f"{name}-endpoint",
            data_collection_endpoint_name=args.placement.naming.resource("prom-dce"),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            kind=monitor.KnownDataCollectionEndpointResourceKind.LINUX,
            description="Ingestion endpoint of the cluster's managed Prometheus metrics.",
            tags=tags,
            opts=child,
        )
        self.rule = monitor.DataCollectionRule(
            f"{name}-rule",
            data_collection_rule_name=args.placement.naming.resource("prom-dcr"),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            kind=monitor.KnownDataCollectionRuleResourceKind.LINUX,
            description="Forwards the cluster's Prometheus metrics (ama-metrics) to the Azure Monitor workspace.",
            data_collection_endpoint_id=self.endpoint.id,
            data_sources=monitor.DataCollectionRuleDataSourcesArgs(
                prometheus_forwarder=[
                    monitor.PrometheusForwarderDataSourceArgs(
                        name="PrometheusDataSource", streams=[PROMETHEUS_STREAM], label_include_filter={}
                    )
                ]
            ),
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                monitoring_accounts=[
                    monitor.MonitoringAccountDestinationArgs(
                        name=MONITORING_ACCOUNT, account_resource_id=self.workspace.id
                    )
                ]
            ),
            data_flows=[monitor.DataFlowArgs(streams=[PROMETHEUS_STREAM], destinations=[MONITORING_ACCOUNT])],
            tags=tags,
            opts=child,
        )
        # The agents start with the cluster and retry until this association exists; nothing is lost but the
        # first minutes of metrics on a new cluster.
        self.association = monitor.DataCollectionRuleAssociation(
            f"{name}-association",
            association_name=ASSOCIATION_NAME,
            resource_uri=args.cluster_id,
            data_collection_rule_id=self.rule.id,
            description="Sends this cluster's Prometheus metrics to the stack's Azure Monitor workspace. "
            "Deleting it stops managed Prometheus collection.",
            opts=child,
        )
        self.workspace_id = self.workspace.id
        self.query_endpoint = self.workspace.metrics.apply(_query_endpoint)
        self.data_collection_rule_id = self.rule.id
        self.register_outputs(
            {
                "workspaceId": self.workspace_id,
                "queryEndpoint": self.query_endpoint,
                "dataCollectionRuleId": self.data_collection_rule_id,
            }
        )


def _query_endpoint(metrics: monitor.outputs.AzureMonitorWorkspaceResponseMetrics | None) -> str:
    if metrics is None or not metrics.prometheus_query_endpoint:
        raise ValueError("the Azure Monitor workspace reports no metrics.prometheusQueryEndpoint")
    return metrics.prometheus_query_endpoint
