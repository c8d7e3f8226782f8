"""ManagedGrafana: an Azure Managed Grafana workspace reading the stack's Azure Monitor workspace (optional).

Owns: the Grafana workspace (Standard, system-assigned identity, API keys off) with the Azure Monitor workspace
integration (which adds the managed Prometheus data source), the identity's `Monitoring Data Reader` role on that
workspace (what the integration queries with: learn.microsoft.com/azure/managed-grafana/
how-to-connect-azure-monitor-workspace), and `Grafana Admin` for the cluster's admin groups.
Registered outputs: `endpoint`; the `grafana` workspace resource is an attribute.

The dashboard itself (monitoring/rules/<stack>.dashboard.json, from monitoring/dashboard.py) is Grafana content,
not an Azure resource: Azure Resource Manager has no API for a Managed Grafana workspace's dashboards, so it is
imported with `az grafana dashboard import` after `pulumi up`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, dashboard

from components import azure_facts
from components.placement import Placement
from components.role_assignment import assign_role


@dataclass(frozen=True)
class ManagedGrafanaArgs:
    """Where Grafana lives, which Azure Monitor workspace it reads, and who administers it."""

    placement: Placement
    """Name (a global `grafana` name), resource group, region and tags of the workspace."""
    subscription_id: pulumi.Input[str]
    """The subscription whose built-in role definitions the grants name."""
    azure_monitor_workspace_id: pulumi.Input[str]
    """The Azure Monitor workspace Grafana reads (its managed Prometheus data source)."""
    admin_group_object_ids: Sequence[str]
    """Entra groups made Grafana admins (the cluster's admin groups)."""


class ManagedGrafana(pulumi.ComponentResource):
    """Azure Managed Grafana with the stack's managed Prometheus as its data source."""

    grafana: dashboard.Grafana
    endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: ManagedGrafanaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:monitoring:ManagedGrafana", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.grafana = dashboard.Grafana(
            f"{name}-workspace",
            workspace_name=args.placement.naming.global_name("grafana", "gf"),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            sku=dashboard.ResourceSkuArgs(name="Standard"),
            identity=dashboard.ManagedServiceIdentityArgs(type=dashboard.ManagedServiceIdentityType.SYSTEM_ASSIGNED),
            properties=dashboard.ManagedGrafanaPropertiesArgs(
                # Entra ID sign-in only: no long-lived Grafana API keys.
                api_key=dashboard.ApiKey.DISABLED,
                public_network_access=dashboard.PublicNetworkAccess.ENABLED,
                grafana_integrations=dashboard.GrafanaIntegrationsArgs(
                    azure_monitor_workspace_integrations=[
                        dashboard.AzureMonitorWorkspaceIntegrationArgs(
                            azure_monitor_workspace_resource_id=args.azure_monitor_workspace_id
                        )
                    ]
                ),
            ),
            tags=args.placement.tag_map(),
            opts=child,
        )
        principal = self.grafana.identity.apply(_principal_id)
        assign_role(
            f"{name}-reads-prometheus",
            role_id=azure_facts.MONITORING_DATA_READER,
            scope=args.azure_monitor_workspace_id,
            principal_id=principal,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            subscription_id=args.subscription_id,
            parent=self,
            description="Managed Grafana queries the stack's managed Prometheus",
        )
        for i, group in enumerate(args.admin_group_object_ids):
            assign_role(
                f"{name}-admin-{i}",
                role_id=azure_facts.GRAFANA_ADMIN,
                scope=self.grafana.id,
                principal_id=group,
                principal_type=authorization.PrincipalType.GROUP,
                subscription_id=args.subscription_id,
                parent=self,
                description="Cluster admins administer the stack's Grafana",
            )
        self.endpoint = self.grafana.properties.apply(_endpoint)
        self.register_outputs({"endpoint": self.endpoint})


def _principal_id(identity: dashboard.outputs.ManagedServiceIdentityResponse | None) -> str:
    if identity is None or not identity.principal_id:
        raise ValueError("the Grafana workspace reports no system-assigned identity principalId")
    return identity.principal_id


def _endpoint(properties: dashboard.outputs.ManagedGrafanaPropertiesResponse) -> str:
    if not properties.endpoint:
        raise ValueError("the Grafana workspace reports no endpoint")
    return properties.endpoint
