"""What the mock cloud and its admission rules share: the tenant's fixed ids, the built-in roles, how the cloud
refuses a request, and how it remembers a registration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from offline.wire import unwrap_secrets

SUBSCRIPTION_ID = "00000000-0000-4000-8000-000000000001"
TENANT_ID = "00000000-0000-4000-8000-0000000000aa"
DEPLOYER_OBJECT_ID = "00000000-0000-4000-8000-0000000000d1"

PrincipalType = Literal["User", "ServicePrincipal"]
# When a token the cloud has just issued expires: far enough ahead for any run (2100-01-01T00:00:00Z).
FRESH_TOKEN_EXPIRY = 4102444800

# The built-in role definitions the cloud holds (the same in every tenant), as Azure's built-in roles table lists
# them (learn.microsoft.com/azure/role-based-access-control/built-in-roles). The cloud's own copy, never the
# program's: tests/components/test_azure_facts.py holds both to ../shared/reference/azure-built-in-roles.md.
BUILT_IN_ROLE_DEFINITIONS: dict[str, str] = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "Role Based Access Control Administrator": "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "AcrPush": "8311e382-0749-4cb8-b61a-304f252e45ec",
    "Azure Kubernetes Service RBAC Cluster Admin": "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",
    "Azure Kubernetes Service RBAC Admin": "3498e952-d568-435e-9b2c-8d77e338d7f7",
    "Azure Kubernetes Service RBAC Writer": "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb",
    "Azure Kubernetes Service Cluster User Role": "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Monitoring Data Reader": "b0d8363b-8ddd-447d-831f-62ca05bff136",
    "Monitoring Reader": "43d0d8ad-25c7-4714-9337-8ba259a9fe05",
    "Grafana Admin": "22926164-76b3-42b3-bc55-97df8dab3e41",
}
AKS_RBAC_CLUSTER_ADMIN = BUILT_IN_ROLE_DEFINITIONS["Azure Kubernetes Service RBAC Cluster Admin"]
ACR_PULL = BUILT_IN_ROLE_DEFINITIONS["AcrPull"]
ACR_PUSH = BUILT_IN_ROLE_DEFINITIONS["AcrPush"]
# "Azure Kubernetes Service AAD Server": the audience of the tokens every AKS-managed Entra ID API server accepts.
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
# "Azure Kubernetes Service AAD Client": the client kubelogin signs in as in the device-code kubeconfig AKS hands out.
AKS_AAD_CLIENT_APP_ID = "80faf920-1908-4b52-b5ef-a8e7bedfc67a"
APP_ROUTING_CLASS = "webapprouting.kubernetes.azure.com"


class CloudError(Exception):
    """What Azure (or the Kubernetes API server, or the registry) answers a request it refuses."""


@dataclass(frozen=True)
class Registered:
    """One resource the program registered in this run, as the cloud saw it."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    # Direct dependencies (dependsOn, property dependencies) and the provider, by URN.
    dependencies: frozenset[str]


def duration_seconds(text: object) -> float:
    """A Go duration as the time provider takes it, in seconds."""
    # Go durations as the time provider takes them ("5m", "90s", "1h30m").
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(text or ""))
    return sum(float(value) * units[unit] for value, unit in parts)


def plain(value: Any) -> Any:
    """`value` without Pulumi's secret wrappers (the mocks receive inputs still wrapped)."""
    return unwrap_secrets(value)
