"""The Azure side of ModelDeployment: the workload identities its pods run as (builder functions).

A user-assigned managed identity and its federated credential, which trusts the cluster's OIDC issuer for the
model's ServiceAccount (`system:serviceaccount:<app>:<app>`) and nothing else; and the same pair for the canary
analysis Jobs' ServiceAccount (`<app>-analysis`), the only one that may read the stack's Prometheus. All are
children of the component on the azure-native provider it inherits, never the Kubernetes one.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import managedidentity

from components.placement import Placement

TOKEN_AUDIENCE = "api://AzureADTokenExchange"


def build_workload_identity(
    name: str, placement: Placement, issuer: pulumi.Input[str], app: str, parent: pulumi.Resource
) -> tuple[managedidentity.UserAssignedIdentity, managedidentity.FederatedIdentityCredential]:
    """The identity `<project>-<stack>-<app>-workload` and its federated credential for the model's ServiceAccount."""
    return _federated_identity(name, placement, issuer, app, service_account=app, role="workload", parent=parent)


def build_analysis_identity(
    name: str,
    placement: Placement,
    issuer: pulumi.Input[str],
    app: str,
    *,
    service_account: str,
    parent: pulumi.Resource,
) -> tuple[managedidentity.UserAssignedIdentity, managedidentity.FederatedIdentityCredential]:
    """The identity `<project>-<stack>-<app>-analysis` the canary's analysis Jobs query Prometheus as, trusted for
    their own ServiceAccount only: the serving pods never hold a right to read the workspace."""
    return _federated_identity(
        f"{name}-analysis", placement, issuer, app, service_account=service_account, role="analysis", parent=parent
    )


def _federated_identity(
    name: str,
    placement: Placement,
    issuer: pulumi.Input[str],
    app: str,
    *,
    service_account: str,
    role: str,
    parent: pulumi.Resource,
) -> tuple[managedidentity.UserAssignedIdentity, managedidentity.FederatedIdentityCredential]:
    identity = managedidentity.UserAssignedIdentity(
        f"{name}-identity",
        resource_name_=placement.naming.resource(f"{app}-{role}"),
        resource_group_name=placement.resource_group_name,
        location=placement.location,
        tags=placement.tag_map(),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    federated_credential = managedidentity.FederatedIdentityCredential(
        f"{name}-federated-credential",
        resource_group_name=placement.resource_group_name,
        resource_name_=identity.name,
        federated_identity_credential_resource_name=f"kubernetes-{app}-{service_account}",
        issuer=issuer,
        subject=f"system:serviceaccount:{app}:{service_account}",
        audiences=[TOKEN_AUDIENCE],
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return identity, federated_credential
