"""Observability: the stack's Log Analytics workspace and a workspace-based Application Insights."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, operationalinsights

from components.naming import Naming


@dataclass(frozen=True)
class ObservabilityArgs:
    """Where the workspace lives and how long it keeps logs."""

    naming: Naming
    resource_group_name: pulumi.Input[str]
    location: str
    tags: Mapping[str, str]
    retention_in_days: int = 30


class Observability(pulumi.ComponentResource):
    """Owns the Log Analytics workspace (container insights, function logs) and Application Insights on top of it.

    Exports `workspace_id` (for the AKS monitoring add-on), `app_insights_id` and `app_insights_connection_string`
    (the listener's telemetry; an endpoint and ingestion key, not a credential that can read data).
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
            workspace_name=args.naming.resource("logs"),
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=args.retention_in_days,
            tags=dict(args.tags),
            opts=child,
        )
        insights = applicationinsights.Component(
            f"{name}-insights",
            resource_name_=args.naming.resource("insights"),
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="web",
            application_type="web",
            workspace_resource_id=workspace.id,
            # Telemetry is sent with Entra ID only; the connection string alone cannot write.
            disable_local_auth=True,
            tags=dict(args.tags),
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
