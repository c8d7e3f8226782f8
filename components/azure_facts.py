"""Azure's fixed facts the program relies on: built-in role ids, first-party application ids, resource providers.

Each value is the same in every tenant and is copied from its source, named beside it; nothing here is derived.
`tests/components/test_azure_facts.py` holds every id to `../shared/reference/azure-built-in-roles.md` (copied from
Azure's built-in roles table), not to this module.
"""

from __future__ import annotations

# Built-in role definition ids, from learn.microsoft.com/azure/role-based-access-control/built-in-roles.
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
ACR_PUSH = "8311e382-0749-4cb8-b61a-304f252e45ec"
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
MONITORING_DATA_READER = "b0d8363b-8ddd-447d-831f-62ca05bff136"
GRAFANA_ADMIN = "22926164-76b3-42b3-bc55-97df8dab3e41"

# Each role id above under the name Azure's table gives it.
BUILT_IN_ROLES: dict[str, str] = {
    "AcrPull": ACR_PULL,
    "AcrPush": ACR_PUSH,
    "Azure Kubernetes Service RBAC Cluster Admin": AKS_RBAC_CLUSTER_ADMIN,
    "Storage Blob Data Owner": STORAGE_BLOB_DATA_OWNER,
    "Storage Blob Data Contributor": STORAGE_BLOB_DATA_CONTRIBUTOR,
    "Storage Queue Data Contributor": STORAGE_QUEUE_DATA_CONTRIBUTOR,
    "Storage Table Data Contributor": STORAGE_TABLE_DATA_CONTRIBUTOR,
    "Key Vault Secrets User": KEY_VAULT_SECRETS_USER,
    "Key Vault Secrets Officer": KEY_VAULT_SECRETS_OFFICER,
    "Monitoring Metrics Publisher": MONITORING_METRICS_PUBLISHER,
    "Monitoring Data Reader": MONITORING_DATA_READER,
    "Grafana Admin": GRAFANA_ADMIN,
}

# First-party application ids.
# "Azure Kubernetes Service AAD Server": the audience an AKS-managed Entra ID API server accepts (kubelogin's
# `--server-id`, learn.microsoft.com/azure/aks/kubelogin-authentication).
AKS_AAD_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
# "AzureDatabricks": the audience of an Entra token the Databricks REST API accepts
# (learn.microsoft.com/azure/databricks/dev-tools/auth/user-aad-token).
AZURE_DATABRICKS_APP_ID = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"

FIRST_PARTY_APPS: dict[str, str] = {
    "Azure Kubernetes Service AAD Server": AKS_AAD_SERVER_APP_ID,
    "AzureDatabricks": AZURE_DATABRICKS_APP_ID,
}

# The resource providers whose resource types the program declares (the `Microsoft.X` of each ARM type id), and those
# AKS creates in the cluster's node resource group (scale sets, load balancer, virtual network: Microsoft.Compute and
# Microsoft.Network; a new subscription without them fails with MissingSubscriptionRegistration, Azure/azure-cli#6327;
# `az aks create` registers them itself, Pulumi does not, pulumi/pulumi-azure-native#3479). A new subscription has
# only some registered; `az provider register` must run for the rest before the first `up`
# (learn.microsoft.com/azure/azure-resource-manager/management/resource-providers-and-types). Microsoft.Authorization
# and Microsoft.Resources are always registered.
# The providers of what AKS itself creates in the node resource group, not declared by the program.
AKS_NODE_RESOURCE_PROVIDERS: tuple[str, ...] = ("Microsoft.Compute", "Microsoft.Network")
RESOURCE_PROVIDERS: tuple[str, ...] = (
    "Microsoft.AlertsManagement",
    "Microsoft.Compute",
    "Microsoft.ContainerRegistry",
    "Microsoft.ContainerService",
    "Microsoft.Dashboard",
    "Microsoft.Databricks",
    "Microsoft.Insights",
    "Microsoft.KeyVault",
    "Microsoft.ManagedIdentity",
    "Microsoft.Monitor",
    "Microsoft.Network",
    "Microsoft.OperationalInsights",
    "Microsoft.Storage",
    "Microsoft.Web",
)

# vCPUs and regional quota family of each VM size the stack files' node pools use, from the Ddsv5-series size table
# (learn.microsoft.com/azure/virtual-machines/ddv5-ddsv5-series); the family is the quota row `az vm list-usage` names
# `standardDDSv5Family` (learn.microsoft.com/azure/virtual-machines/quotas). A pool at maxCount holds maxCount times
# its size's vCPUs of that family's quota and of the region's total (`cores`).
VM_SIZES: dict[str, tuple[int, str]] = {
    "Standard_D2ds_v5": (2, "standardDDSv5Family"),
    "Standard_D4ds_v5": (4, "standardDDSv5Family"),
    "Standard_D8ds_v5": (8, "standardDDSv5Family"),
}
