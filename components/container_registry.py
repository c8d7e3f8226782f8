"""The Azure Container Registry that holds every model image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumiverse_time as time
from pulumi_azure_native import containerregistry

from components import azure_facts
from components.placement import Placement
from components.role_assignment import Principal, assign_role

# "When you assign roles ..., it can take up to 10 minutes for changes to take effect"
# (learn.microsoft.com/azure/role-based-access-control/troubleshooting). Slept once, when the grant is created.
PUSH_GRANT_PROPAGATION = "10m"


@dataclass(frozen=True)
class ContainerRegistryArgs:
    """The registry's SKU and features, and who may push to it."""

    placement: Placement
    """Name (a global `registry` name), resource group, region and tags; `protect` protects the registry."""
    subscription_id: pulumi.Input[str]
    """The subscription whose built-in AcrPush role definition the push grant names."""
    sku: Literal["Basic", "Standard", "Premium"]
    """The registry SKU; zone redundancy and retention need Premium."""
    zone_redundancy: bool = False
    """Replicate the registry across availability zones (Premium only)."""
    untagged_retention_days: int = 7
    """Days untagged manifests are kept before they are deleted (Premium only; 0 turns retention off)."""
    pushers: Sequence[Principal] = ()
    """The identities that build and push images (the stack's deployers: whoever runs `pulumi up`); each gets
    AcrPush, nothing more. Empty: no push grant."""


class ContainerRegistry(pulumi.ComponentResource):
    """Owns the registry: admin user off (no shared password exists to leak), anonymous pull off, SKU per config,
    zone redundancy and untagged-manifest retention where the SKU allows; AcrPush for the deploy identity.

    Registered outputs: `registryId` (the scope each cluster's AcrPull is granted on), `loginServer`; the attribute
    `push_ready` lists what a push must depend on (the AcrPush grant, once in effect).
    """

    registry_id: pulumi.Output[str]
    login_server: pulumi.Output[str]
    push_ready: list[pulumi.Resource]

    def __init__(self, name: str, args: ContainerRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:platform:ContainerRegistry", name, None, opts)
        premium = args.sku == "Premium"
        registry = containerregistry.Registry(
            f"{name}-registry",
            registry_name=args.placement.naming.global_name("registry", "acr"),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            sku=containerregistry.SkuArgs(name=args.sku),
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            zone_redundancy=(
                containerregistry.ZoneRedundancy.ENABLED
                if args.zone_redundancy
                else containerregistry.ZoneRedundancy.DISABLED
            ),
            # Untagged manifests are what a re-pushed tag leaves behind; tagged model images are never touched,
            # so every version stays available for rollback.
            policies=containerregistry.PoliciesArgs(
                retention_policy=containerregistry.RetentionPolicyArgs(
                    days=args.untagged_retention_days,
                    status="enabled" if args.untagged_retention_days > 0 else "disabled",
                )
            )
            if premium
            else None,
            tags=args.placement.tag_map(),
            opts=pulumi.ResourceOptions(parent=self, protect=args.placement.protect),
        )
        # Named by principal, so adding or removing one pusher leaves the others' grants as they are.
        pushes = [
            assign_role(
                f"{name}-acrpush-{pusher.object_id}",
                role_id=azure_facts.ACR_PUSH,
                scope=registry.id,
                principal_id=pusher.object_id,
                principal_type=pusher.type,
                subscription_id=args.subscription_id,
                parent=self,
            )
            for pusher in args.pushers
        ]
        # A push right after the grant may be refused while the grant propagates, and a refused push fails
        # `pulumi up`; the sleep runs only when a grant is created or replaced.
        self.push_ready = (
            [
                time.Sleep(
                    f"{name}-acrpush-propagation",
                    create_duration=PUSH_GRANT_PROPAGATION,
                    triggers={p.object_id: g.id for p, g in zip(args.pushers, pushes, strict=True)},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=pushes),
                )
            ]
            if pushes
            else []
        )
        self.registry_id = registry.id
        self.login_server = registry.login_server
        self.register_outputs({"registryId": self.registry_id, "loginServer": self.login_server})
