"""ContainerInsights: the data collection rule that makes the cluster's monitoring add-on send logs anywhere.

Owns: a data collection rule with the ContainerInsights extension (stream group
`Microsoft-ContainerInsights-Group-Default`: ContainerLogV2, KubePodInventory, KubeEvents, ...) flowing to the
stack's Log Analytics workspace, and its association with the cluster.
Registered outputs: `dataCollectionRuleId`; the `rule` and `association` resources are attributes.

Why it exists: the cluster's `omsagent` add-on runs in managed-identity mode (`useAADAuth: "true"`,
components/aks_cluster.py). In that mode the agent takes what to collect and where to send it from a data
collection rule associated with the cluster; without one it collects nothing ("Container insights with managed
identity authentication ... uses a data collection rule (DCR)": learn.microsoft.com/azure/azure-monitor/containers/
container-insights-authentication, and .../containers/kubernetes-monitoring-enable ARM template, which creates
`MSCI-<region>-<cluster>` with this stream and the association `ContainerInsightsExtension`). The model server's
sampled payloads and access log are stdout lines, so they land in ContainerLogV2 with every other container log.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import monitor

from components.placement import Placement

CONTAINER_INSIGHTS_STREAM = "Microsoft-ContainerInsights-Group-Default"
WORKSPACE_DESTINATION = "ciworkspace"
# The association name Azure's template and the Azure CLI use for the add-on's rule.
ASSOCIATION_NAME = "ContainerInsightsExtension"


@dataclass(frozen=True)
class ContainerInsightsArgs:
    """Which cluster's logs go to which Log Analytics workspace, and how often inventory is collected."""

    placement: Placement
    """Name (`<project>-<stack>-ci-dcr`), resource group, region (the cluster's) and tags of the rule."""
    cluster_id: pulumi.Input[str]
    """The AKS cluster whose monitoring add-on uses the rule."""
    log_analytics_workspace_id: pulumi.Input[str]
    """Where the logs go: the same workspace the add-on is configured with."""
    interval: str = "1m"
    """How often inventory and performance data are collected (container logs are streamed regardless)."""


class ContainerInsights(pulumi.ComponentResource):
    """The Container Insights data collection rule of one cluster and its association."""

    rule: monitor.DataCollectionRule
    association: monitor.DataCollectionRuleAssociation
    data_collection_rule_id: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerInsightsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:monitoring:ContainerInsights", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.rule = monitor.DataCollectionRule(
            f"{name}-rule",
            data_collection_rule_name=args.placement.naming.resource("ci-dcr"),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            kind=monitor.KnownDataCollectionRuleResourceKind.LINUX,
            description="Container Insights: container logs (ContainerLogV2), inventory and events of the cluster.",
            data_sources=monitor.DataCollectionRuleDataSourcesArgs(
                extensions=[
                    monitor.ExtensionDataSourceArgs(
                        name="ContainerInsightsExtension",
                        extension_name="ContainerInsights",
                        streams=[CONTAINER_INSIGHTS_STREAM],
                        extension_settings={
                            "dataCollectionSettings": {
                                "interval": args.interval,
                                "namespaceFilteringMode": "Off",
                                # ContainerLogV2: one table with the pod and container names beside each line.
                                "enableContainerLogV2": True,
                            }
                        },
                    )
                ]
            ),
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                log_analytics=[
                    monitor.LogAnalyticsDestinationArgs(
                        name=WORKSPACE_DESTINATION, workspace_resource_id=args.log_analytics_workspace_id
                    )
                ]
            ),
            data_flows=[
                monitor.DataFlowArgs(streams=[CONTAINER_INSIGHTS_STREAM], destinations=[WORKSPACE_DESTINATION])
            ],
            tags=args.placement.tag_map(),
            opts=child,
        )
        self.association = monitor.DataCollectionRuleAssociation(
            f"{name}-association",
            association_name=ASSOCIATION_NAME,
            resource_uri=args.cluster_id,
            data_collection_rule_id=self.rule.id,
            description="Container Insights collection of this cluster. Deleting it stops log collection.",
            opts=child,
        )
        self.data_collection_rule_id = self.rule.id
        self.register_outputs({"dataCollectionRuleId": self.data_collection_rule_id})
