"""The Azure side of ModelDeployment: the workload identity its pods run as (a builder function).

A user-assigned managed identity and its federated credential, which trusts the cluster's OIDC issuer for the
model's ServiceAccount (`system:serviceaccount:<app>:<app>`) and nothing else. Both are children of the component on
the azure-native provider it inherits, never the Kubernetes one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
from pulumi_azure_native import managedidentity

if TYPE_CHECKING:
    from components.model_deployment import ModelDeploymentArgs

TOKEN_AUDIENCE = "api://AzureADTokenExchange"


def build_workload_identity(
    name: str, args: ModelDeploymentArgs, app: str, parent: pulumi.Resource
) -> tuple[managedidentity.UserAssignedIdentity, managedidentity.FederatedIdentityCredential]:
    """The identity `<project>-<stack>-<app>-workload` and its federated credential for the model's ServiceAccount."""
    identity = managedidentity.UserAssignedIdentity(
        f"{name}-identity",
        resource_name_=args.placement.naming.resource(f"{app}-workload"),
        resource_group_name=args.placement.resource_group_name,
        location=args.placement.location,
        tags=args.placement.tag_map(),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    federated_credential = managedidentity.FederatedIdentityCredential(
        f"{name}-federated-credential",
        resource_group_name=args.placement.resource_group_name,
        resource_name_=identity.name,
        federated_identity_credential_resource_name=f"kubernetes-{app}-{app}",
        issuer=args.oidc_issuer_url,
        subject=f"system:serviceaccount:{app}:{app}",
        audiences=[TOKEN_AUDIENCE],
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return identity, federated_credential
