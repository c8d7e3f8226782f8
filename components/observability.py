"""Observability: the stack's Log Analytics workspace and a workspace-based Application Insights."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, operationalinsights

from components.placement import Placement


@dataclass(frozen=True)
class ObservabilityArgs:
    """Where the workspace lives and how long it keeps logs."""

    placement: Placement
    """Names (`<project>-<stack>-logs`, `-insights`), resource group, region and tags; nothing is protected."""
    retention_in_days: int = 30
    """How long the workspace keeps logs, in days (30 to 730)."""


class Observability(pulumi.ComponentResource):
    """Owns the Log Analytics workspace (container insights, function logs) and Application Insights on top of it.

    Registered outputs: `workspaceId` (for the AKS monitoring add-on), `appInsightsId`; the attribute
    `app_insights_connection_string` (the listener's telemetry: an endpoint and ingestion key, not a credential that
    can read data) is not registered, so the key is not copied into the component's outputs.
    """

    workspace_id: pulumi.Output[str]
    app_insights_id: pulumi.Output[str]
    app_insights_connection_string: pulumi.Output[str]

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:platform:Observability", name, None, opts)
        if not 30 <= args.retention_in_days <= 730:
            raise ValueError(f"retention_in_days must be between 30 and 730 (got {args.retention_in_days})")
        child = pulumi.ResourceOptions(parent=self)
        workspace = operationalinsights.Workspace(
            f"{name}-logs",
            workspace_name=args.placement.naming.resource("logs"),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=args.retention_in_days,
            tags=args.placement.tag_map(),
            opts=child,
        )
        insights = applicationinsights.Component(
            f"{name}-insights",
            resource_name_=args.placement.naming.resource("insights"),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            kind="web",
            application_type="web",
            workspace_resource_id=workspace.id,
            # Telemetry is sent with Entra ID only; the connection string alone cannot write.
            disable_local_auth=True,
            tags=args.placement.tag_map(),
            opts=child,
        )
        self.workspace_id = workspace.id
        self.app_insights_id = insights.id
        self.app_insights_connection_string = insights.connection_string
        self.register_outputs(
            {
                "workspaceId": self.workspace_id,
                "appInsightsId": self.app_insights_id,
            }
        )
