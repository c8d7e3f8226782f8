"""One hardened storage account: the settings every account of the platform shares, written once.

Entra ID only (shared keys off, OAuth by default in the portal), no anonymous blob access, no cross-tenant
replication, HTTPS with TLS 1.2 at least; StorageV2, locally redundant (what each account holds can be made again:
the listener's queue and dedupe state, or a package the deploy workflow publishes again).
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import storage

from components.placement import Placement


def hardened_storage_account(
    name: str, *, account_name: str, placement: Placement, parent: pulumi.Resource, protect: bool
) -> storage.StorageAccount:
    """A storage account named `name` (Azure name `account_name`, globally unique), a child of `parent`."""
    return storage.StorageAccount(
        name,
        account_name=account_name,
        resource_group_name=placement.resource_group_name,
        location=placement.location,
        kind=storage.Kind.STORAGE_V2,
        sku=storage.SkuArgs(name=storage.SkuName.STANDARD_LRS),
        allow_shared_key_access=False,
        allow_blob_public_access=False,
        allow_cross_tenant_replication=False,
        default_to_o_auth_authentication=True,
        enable_https_traffic_only=True,
        minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
        tags=placement.tag_map(),
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
