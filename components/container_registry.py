"""The Azure Container Registry that holds every model image."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumiverse_time as time
from pulumi_azure_native import authorization, containerregistry

from components.caller import caller_principal_type
from components.naming import Naming
from stacks.settings import RegistrySettings

ACR_PUSH_ROLE = "8311e382-0749-4cb8-b61a-fd4c4ba34a4d"
# "When you assign roles ..., it can take up to 10 minutes for changes to take effect"
# (learn.microsoft.com/azure/role-based-access-control/troubleshooting). Slept once, when the grant is created.
PUSH_GRANT_PROPAGATION = "10m"


@dataclass(frozen=True)
class ContainerRegistryArgs:
    """The registry's settings and who may push to it."""

    naming: Naming
    resource_group_name: pulumi.Input[str]
    location: str
    subscription_id: pulumi.Input[str]
    settings: RegistrySettings
    tags: Mapping[str, str]
    protect: bool
    # The identity that builds and pushes images (whoever runs `pulumi up`); gets AcrPush, nothing more.
    pusher_object_id: pulumi.Input[str] | None = None
    # `User` or `ServicePrincipal`; defaults to what the caller is (the pusher is the caller unless told otherwise).
    pusher_principal_type: pulumi.Input[str] | None = None


class ContainerRegistry(pulumi.ComponentResource):
    """Owns the registry: admin user off (no shared password exists to leak), anonymous pull off, SKU per config,
    zone redundancy and untagged-manifest retention where the SKU allows; AcrPush for the deploy identity.

    Exports `registry_id` (the scope each cluster's AcrPull is granted on), `login_server` and `push_ready`
    (what a push must depend on: the AcrPush grant, once in effect).
    """

    registry_id: pulumi.Output[str]
    login_server: pulumi.Output[str]
    push_ready: list[pulumi.Resource]

    def __init__(self, name: str, args: ContainerRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:platform:ContainerRegistry", name, None, opts)
        premium = args.settings.sku == "Premium"
        registry = containerregistry.Registry(
            f"{name}-registry",
            registry_name=args.naming.global_name("registry", "acr"),
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=containerregistry.SkuArgs(name=args.settings.sku),
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            zone_redundancy=(
                containerregistry.ZoneRedundancy.ENABLED
                if args.settings.zone_redundancy
                else containerregistry.ZoneRedundancy.DISABLED
            ),
            # Untagged manifests are what a re-pushed tag leaves behind; tagged model images are never touched,
            # so every version stays available for rollback.
            policies=containerregistry.PoliciesArgs(
                retention_policy=containerregistry.RetentionPolicyArgs(
                    days=args.settings.untagged_retention_days,
                    status="enabled" if args.settings.untagged_retention_days > 0 else "disabled",
                )
            )
            if premium
            else None,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.push_ready = []
        if args.pusher_object_id is not None:
            # The pusher is whoever runs `pulumi up`, a person from a laptop or CI's Entra app: a fixed
            # "ServicePrincipal" fails for a person with UnmatchedPrincipalType, and azure-native sends "User"
            # when none is given, which fails for CI. The type is read from the caller itself.
            push = authorization.RoleAssignment(
                f"{name}-acrpush",
                scope=registry.id,
                principal_id=args.pusher_object_id,
                principal_type=args.pusher_principal_type
                if args.pusher_principal_type is not None
                else caller_principal_type(pulumi.InvokeOutputOptions(parent=self)),
                role_definition_id=pulumi.Output.concat(
                    "/subscriptions/",
                    args.subscription_id,
                    "/providers/Microsoft.Authorization/roleDefinitions/",
                    ACR_PUSH_ROLE,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            # A push right after the grant may be refused while the grant propagates, and a refused push fails
            # `pulumi up`; the sleep runs only when the grant is created or replaced.
            self.push_ready = [
                time.Sleep(
                    f"{name}-acrpush-propagation",
                    create_duration=PUSH_GRANT_PROPAGATION,
                    triggers={"grant": push.id},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[push]),
                )
            ]
        self.registry_id = registry.id
        self.login_server = registry.login_server
        self.register_outputs({"registryId": self.registry_id, "loginServer": self.login_server})
