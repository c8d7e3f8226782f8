"""The Azure Databricks workspace whose MLflow registry holds the models, and a provider to manage it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_databricks
from pulumi_azure_native import databricks

from components.placement import Placement


@dataclass(frozen=True)
class DatabricksWorkspaceArgs:
    """Where the workspace lives."""

    placement: Placement
    """Names (`<project>-<stack>-databricks`, its managed resource group `-databricks-managed-rg`), resource
    group, region and tags; `protect` protects the workspace."""
    subscription_id: pulumi.Input[str]
    """The subscription the workspace's managed resource group is created in."""
    default_catalog: str | None = None
    """Unity Catalog: the name of the workspace's default catalog, created with the workspace (models live there).
    None leaves it to Azure (an existing workspace, or the legacy workspace registry)."""
    users: Sequence[str] = ()
    """Account principals (a user's e-mail, a group name or an application id) assigned to the workspace as users."""
    admins: Sequence[str] = ()
    """Account principals assigned to the workspace as admins (CI's deploy identities)."""


_APPLICATION_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def assignment_args(principal: str, admin: bool) -> pulumi_databricks.PermissionAssignmentArgs:
    """The PermissionAssignment inputs for one account principal: its kind read from how it is written."""
    permissions = ["ADMIN"] if admin else ["USER"]
    if _APPLICATION_ID.match(principal):
        return pulumi_databricks.PermissionAssignmentArgs(permissions=permissions, service_principal_name=principal)
    if "@" in principal:
        return pulumi_databricks.PermissionAssignmentArgs(permissions=permissions, user_name=principal)
    return pulumi_databricks.PermissionAssignmentArgs(permissions=permissions, group_name=principal)


class DatabricksWorkspace(pulumi.ComponentResource):
    """Owns the Databricks workspace (premium SKU: registry webhooks and access control need it; secure cluster
    connectivity, so no public IP on cluster nodes; its own managed resource group) and a `pulumi_databricks`
    Provider authenticated against it with the deployer's Azure identity (no personal access token anywhere), and the
    assignment of the account principals that use the workspace (`users`, `admins`).

    Registered outputs: `workspaceUrl`, `workspaceId`; attributes also hold the ARM `resource_id` and the `provider`
    (for the registry webhook and the model catalog).
    """

    workspace_url: pulumi.Output[str]
    workspace_id: pulumi.Output[str]
    resource_id: pulumi.Output[str]
    provider: pulumi_databricks.Provider

    def __init__(self, name: str, args: DatabricksWorkspaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:platform:DatabricksWorkspace", name, None, opts)
        managed_rg = args.placement.naming.resource("databricks-managed-rg")
        workspace = databricks.Workspace(
            f"{name}-workspace",
            workspace_name=args.placement.naming.resource("databricks"),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            sku=databricks.SkuArgs(name="premium"),
            # Azure creates and locks this group itself; it must not exist beforehand.
            managed_resource_group_id=pulumi.Output.concat(
                "/subscriptions/", args.subscription_id, "/resourceGroups/", managed_rg
            ),
            parameters=databricks.WorkspaceCustomParametersArgs(
                enable_no_public_ip=databricks.WorkspaceNoPublicIPBooleanParameterArgs(value=True),
            ),
            # Azure creates the workspace's default catalog in Unity Catalog under this name, owned by the workspace
            # admins (https://learn.microsoft.com/azure/databricks/data-governance/unity-catalog/manage-privileges).
            # The SDK defaults initialType to HiveMetastore, so it is set explicitly.
            default_catalog=(
                databricks.DefaultCatalogPropertiesArgs(initial_type="UnityCatalog", initial_name=args.default_catalog)
                if args.default_catalog
                else None
            ),
            tags=args.placement.tag_map(),
            # defaultCatalog is read at creation only ("initial"): an existing workspace is never replaced over it.
            opts=pulumi.ResourceOptions(parent=self, protect=args.placement.protect, ignore_changes=["defaultCatalog"]),
        )
        self.workspace_url = workspace.workspace_url.apply(lambda u: f"https://{u}")
        self.workspace_id = workspace.workspace_id
        self.resource_id = workspace.id
        # Authenticates with whatever Azure identity runs `pulumi up` (OIDC in CI, `az login` on a laptop).
        self.provider = pulumi_databricks.Provider(
            f"{name}-provider",
            host=self.workspace_url,
            azure_workspace_resource_id=workspace.id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Account principals reach a workspace only once assigned to it. New accounts' workspaces are identity
        # federated (learn.microsoft.com/azure/databricks/admin/users-groups/service-principals), so the workspace
        # provider assigns them (terraform-provider-databricks docs/resources/permission_assignment.md). One
        # assignment per principal: it holds the principal's whole set of workspace permissions.
        admins = list(dict.fromkeys(args.admins))
        for principal in dict.fromkeys([*admins, *args.users]):
            pulumi_databricks.PermissionAssignment(
                f"{name}-assign-{principal}",
                assignment_args(principal, admin=principal in admins),
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
            )
        self.register_outputs({"workspaceUrl": self.workspace_url, "workspaceId": self.workspace_id})
