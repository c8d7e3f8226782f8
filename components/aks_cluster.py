"""AksCluster: one stack's AKS cluster, the identity that pulls its images, and a Kubernetes provider for it.

Owns: the `ManagedCluster` (system pool inline), the user node pool for models (a separate `AgentPool`), the
AcrPull role assignment of the kubelet identity on the registry, the deploying identity's Kubernetes data-plane
role on this cluster, a wait for both grants to take effect, and a `pulumi_kubernetes.Provider` that
authenticates with an Entra token (secret) obtained through the azure-native provider's own credentials.
Registered outputs: `clusterName`, `oidcIssuerUrl`, `kubeletObjectId`, `kubeconfig` (secret, for people); the same
as attributes, beside the `cluster` resource and the `provider` for the model deployment.

Secure by default: Entra ID with Azure RBAC and local accounts disabled (no static admin credential exists),
OIDC issuer and workload identity on, Azure CNI overlay with Cilium network policy, images pulled by the kubelet
identity through AcrPull (no image pull secret, no registry admin credential anywhere).
"""

from __future__ import annotations

import base64
import json
import time as time_
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
import pulumiverse_time as time
from pulumi_azure_native import authorization, containerservice
from ruamel.yaml import YAML

from components import azure_facts
from components.placement import Placement
from components.role_assignment import Principal, assign_role

ACR_PULL_ROLE_ID = azure_facts.ACR_PULL
# "Azure Kubernetes Service RBAC Cluster Admin". The deployer creates a Namespace, and of the built-in AKS data-plane
# roles only Cluster Admin may write namespaces ("RBAC Admin ... doesn't allow write access to resource quota or to
# the namespace itself", learn.microsoft.com/azure/aks/manage-azure-rbac); a custom role would need
# roleDefinitions/write, which "Role Based Access Control Administrator" (the README's deployer) does not have.
AKS_RBAC_CLUSTER_ADMIN_ROLE_ID = azure_facts.AKS_RBAC_CLUSTER_ADMIN
# The Entra server application of every AKS-managed Entra ID cluster: the audience its API server accepts
# (kubelogin's `--server-id`, learn.microsoft.com/azure/aks/kubelogin-authentication).
AKS_SERVER_APP_ID = azure_facts.AKS_AAD_SERVER_APP_ID
# "New role assignments can take up to five minutes to propagate and be updated by the authorization server"
# (learn.microsoft.com/azure/aks/manage-azure-rbac). Slept once, when a grant is created or replaced.
DATA_PLANE_PROPAGATION = "5m"
SYSTEM_POOL_TAINT = "CriticalAddonsOnly=true:NoSchedule"
# The label the user pool carries and ModelDeployment selects.
MODEL_POOL_LABEL = ("workload", "models")
SYSTEM_POOL_NAME = "system"
NODES_PER_POOL_MAX = 1000
USER_POOL_NAME = "models"

# Fields Azure changes by itself: the Kubernetes version under the auto-upgrade channel, node counts under the
# cluster autoscaler, each pool's orchestratorVersion as the cluster upgrades it. Ignoring them keeps a routine
# `pulumi up` from "correcting" them back, which would resize pools or try to downgrade the cluster.
CLUSTER_IGNORE_CHANGES = [
    "kubernetesVersion",
    "agentPoolProfiles[*].count",
    "agentPoolProfiles[*].orchestratorVersion",
]
AGENT_POOL_IGNORE_CHANGES = ["count", "orchestratorVersion"]


@dataclass(frozen=True)
class NodePool:
    """One autoscaled node pool: its VM size and the autoscaler's bounds."""

    vm_size: str
    """The VM size of every node (`Standard_D4ds_v5`)."""
    min_count: int
    """The fewest nodes the autoscaler keeps: at least 1. "System pools must contain at least one node, and user
    node pools may contain zero or more nodes" (learn.microsoft.com/azure/aks/manage-node-pools): for the models'
    pool one is a choice, so that a model scaled in never waits for a node to boot."""
    max_count: int
    """The most nodes the autoscaler adds (AKS: at most 1000 per pool)."""

    def __post_init__(self) -> None:
        if not self.vm_size:
            raise ValueError("vm_size: a VM size is required")
        # At most 1000 nodes per pool (hashicorp/terraform-provider-azurerm#9198, when AKS raised it from 100).
        if not 1 <= self.min_count <= self.max_count <= NODES_PER_POOL_MAX:
            raise ValueError(
                f"expected 1 <= min_count <= max_count <= {NODES_PER_POOL_MAX} "
                f"(got {self.min_count} and {self.max_count})"
            )


@dataclass(frozen=True)
class AksClusterArgs:
    """What an AksCluster needs: where to put it, its tier, upgrades, zones and pools, and what it connects to."""

    placement: Placement
    """Names (`<project>-<stack>-aks`, nodes in `<project>-<stack>-aks-nodes`), resource group, region (it must
    have availability zones if `availability_zones` lists some) and tags; `protect` protects the cluster and its
    user pool."""
    tier: Literal["Free", "Standard", "Premium"]
    """The AKS pricing tier (Standard and Premium carry the uptime SLA)."""
    upgrade_channel: Literal["patch", "stable", "rapid", "node-image"]
    """The cluster's automatic Kubernetes upgrade channel (node images follow the NodeImage channel always)."""
    availability_zones: Sequence[str]
    """Zones both pools span (`"1"`, `"2"`, `"3"`); empty for a region without zones."""
    system_pool: NodePool
    """VM size and autoscaler bounds of the system pool (critical add-ons only)."""
    user_pool: NodePool
    """VM size and autoscaler bounds of the user pool the models run on."""
    admin_group_object_ids: Sequence[str]
    """Entra groups made cluster admins through Azure RBAC."""
    log_analytics_workspace_id: pulumi.Input[str]
    """The Log Analytics workspace container insights sends to."""
    registry_id: pulumi.Input[str]
    """The container registry the kubelet pulls from (may belong to another stack): only its resource id."""
    enable_app_routing: bool = False
    """Turn on the application routing add-on (the `webapprouting.kubernetes.azure.com` ingress class), for
    stacks that expose the model through an Ingress."""
    deployers: Sequence[Principal] = ()
    """Who deploys workloads through `provider` (whoever runs `pulumi up`, or a group they are in): each gets the
    data-plane role that needs, on this cluster only. Fixed principals, never the caller: a grant that followed
    whoever runs `up` would be replaced by every run of another identity."""


def _validate(args: AksClusterArgs) -> None:
    problems: list[pulumi.InputPropertyErrorDetails] = []
    dns_prefix = args.placement.naming.resource("aks")
    if len(dns_prefix) > 54:
        problems.append(
            {
                "property_path": "naming",
                "reason": f"the cluster DNS prefix {dns_prefix!r} is longer than AKS allows (54 characters)",
            }
        )
    if problems:
        details = "; ".join(f"{p['property_path']}: {p['reason']}" for p in problems)
        raise pulumi.InputPropertiesError(f"AksClusterArgs: {details}", problems)


def _zones(zones: Sequence[str]) -> list[str] | None:
    # None, not []: a pool without zones must not send the field at all (an empty list is still a diff later).
    return list(zones) or None


def _system_pool(pool: NodePool, zones: Sequence[str]) -> containerservice.ManagedClusterAgentPoolProfileArgs:
    return containerservice.ManagedClusterAgentPoolProfileArgs(
        name=SYSTEM_POOL_NAME,
        mode=containerservice.AgentPoolMode.SYSTEM,
        type=containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
        vm_size=pool.vm_size,
        os_type=containerservice.OSType.LINUX,
        os_sku=containerservice.OSSKU.AZURE_LINUX,
        enable_auto_scaling=True,
        count=pool.min_count,
        min_count=pool.min_count,
        max_count=pool.max_count,
        availability_zones=_zones(zones),
        # Only critical add-ons (CoreDNS, metrics-server, ...) run here; models go to the user pool.
        node_taints=[SYSTEM_POOL_TAINT],
        enable_node_public_ip=False,
    )


class AksCluster(pulumi.ComponentResource):
    """One stack's AKS cluster, its model node pool, its AcrPull grant and a Kubernetes provider for it."""

    cluster: containerservice.ManagedCluster
    user_pool: containerservice.AgentPool
    acr_pull: authorization.RoleAssignment
    deployer_access: list[authorization.RoleAssignment]
    data_plane_ready: time.Sleep
    cluster_name: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    kubelet_object_id: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)
        super().__init__("mlops:platform:AksCluster", name, None, opts)
        tags = args.placement.tag_map()
        client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))

        cluster_name = args.placement.naming.resource("aks")
        self.cluster = containerservice.ManagedCluster(
            f"{name}-aks",
            resource_name_=cluster_name,
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            dns_prefix=cluster_name,
            node_resource_group=args.placement.naming.resource("aks-nodes"),
            sku=containerservice.ManagedClusterSKUArgs(
                name=containerservice.ManagedClusterSKUName.BASE,
                tier=args.tier,
            ),
            # The control plane's own identity is system-assigned; AKS creates the kubelet identity beside it.
            identity=containerservice.ManagedClusterIdentityArgs(
                type=containerservice.ResourceIdentityType.SYSTEM_ASSIGNED
            ),
            enable_rbac=True,
            disable_local_accounts=True,
            aad_profile=containerservice.ManagedClusterAADProfileArgs(
                managed=True,
                enable_azure_rbac=True,
                tenant_id=client.tenant_id,
                admin_group_object_ids=list(args.admin_group_object_ids),
            ),
            oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            security_profile=containerservice.ManagedClusterSecurityProfileArgs(
                workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(enabled=True),
                image_cleaner=containerservice.ManagedClusterSecurityProfileImageCleanerArgs(
                    enabled=True, interval_hours=168
                ),
            ),
            # The system pool must be inline (a cluster cannot be created without one). The user pool is a
            # separate AgentPool: its scale or VM size then changes through the agent-pool API alone, without a
            # PUT of the whole cluster (an inline change puts every pool of the cluster into "Scaling",
            # pulumi-azure-native#4264), and it can be rotated (new pool, drain, delete) without touching the
            # cluster resource.
            agent_pool_profiles=[_system_pool(args.system_pool, args.availability_zones)],
            network_profile=containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin=containerservice.NetworkPlugin.AZURE,
                network_plugin_mode=containerservice.NetworkPluginMode.OVERLAY,
                network_dataplane=containerservice.NetworkDataplane.CILIUM,
                network_policy=containerservice.NetworkPolicy.CILIUM,
                load_balancer_sku=containerservice.LoadBalancerSku.STANDARD,
            ),
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel=args.upgrade_channel,
                node_os_upgrade_channel=containerservice.NodeOSUpgradeChannel.NODE_IMAGE,
            ),
            # The app routing add-on creates the `webapprouting.kubernetes.azure.com` IngressClass and its managed
            # NGINX controller (learn.microsoft.com/azure/aks/app-routing); only stacks that serve through an
            # Ingress pay for it.
            ingress_profile=containerservice.ManagedClusterIngressProfileArgs(
                web_app_routing=containerservice.ManagedClusterIngressProfileWebAppRoutingArgs(enabled=True)
            )
            if args.enable_app_routing
            else None,
            # Managed Prometheus: AKS runs the ama-metrics agents; components/managed_prometheus.py associates
            # the data collection rule that sends their metrics to the stack's Azure Monitor workspace.
            azure_monitor_profile=containerservice.ManagedClusterAzureMonitorProfileArgs(
                metrics=containerservice.ManagedClusterAzureMonitorProfileMetricsArgs(enabled=True)
            ),
            # Container insights in managed-identity mode: it collects only once components/container_insights.py
            # associates its data collection rule with the cluster.
            addon_profiles={
                "omsagent": containerservice.ManagedClusterAddonProfileArgs(
                    enabled=True,
                    config={
                        "logAnalyticsWorkspaceResourceID": args.log_analytics_workspace_id,
                        "useAADAuth": "true",
                    },
                )
            },
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.placement.protect,
                ignore_changes=CLUSTER_IGNORE_CHANGES,
            ),
        )

        user = args.user_pool
        self.user_pool = containerservice.AgentPool(
            f"{name}-{USER_POOL_NAME}-pool",
            resource_group_name=args.placement.resource_group_name,
            resource_name_=self.cluster.name,
            agent_pool_name=USER_POOL_NAME,
            mode=containerservice.AgentPoolMode.USER,
            type=containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
            vm_size=user.vm_size,
            os_type=containerservice.OSType.LINUX,
            os_sku=containerservice.OSSKU.AZURE_LINUX,
            enable_auto_scaling=True,
            count=user.min_count,
            min_count=user.min_count,
            max_count=user.max_count,
            availability_zones=_zones(args.availability_zones),
            node_labels={MODEL_POOL_LABEL[0]: MODEL_POOL_LABEL[1]},
            enable_node_public_ip=False,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.placement.protect,
                ignore_changes=AGENT_POOL_IGNORE_CHANGES,
            ),
        )

        self.cluster_name = self.cluster.name
        self.oidc_issuer_url = self.cluster.oidc_issuer_profile.apply(_issuer_url)
        self.kubelet_object_id = self.cluster.identity_profile.apply(_kubelet_object_id)

        self.acr_pull = assign_role(
            f"{name}-kubelet-acr-pull",
            role_id=ACR_PULL_ROLE_ID,
            scope=args.registry_id,
            principal_id=self.kubelet_object_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            subscription_id=client.subscription_id,
            parent=self,
            description=pulumi.Output.concat("AKS ", self.cluster.name, " kubelet pulls model images"),
        )

        # With Azure RBAC for Kubernetes and local accounts off, Owner or Contributor on the cluster grant nothing
        # on the Kubernetes API: the deployer needs a data-plane role, here and nowhere else. Its principal type is
        # what the caller is (a person from a laptop, an Entra app in CI), never a constant.
        # Named by principal, so adding or removing one deployer leaves the others' grants as they are.
        self.deployer_access = [
            assign_role(
                f"{name}-cluster-admin-{deployer.object_id}",
                role_id=AKS_RBAC_CLUSTER_ADMIN_ROLE_ID,
                scope=self.cluster.id,
                principal_id=deployer.object_id,
                principal_type=deployer.type,
                subscription_id=client.subscription_id,
                parent=self,
                description=pulumi.Output.concat("deploys the model to AKS ", self.cluster.name),
            )
            for deployer in args.deployers
        ]
        # Nothing may reach the API server, and no pod may pull, before the grants are in effect. A grant that
        # exists is not yet one that is enforced (see DATA_PLANE_PROPAGATION), and a 403 fails `pulumi up`;
        # the sleep runs only when a grant is created or replaced (its triggers), never on a routine update.
        triggers: dict[str, pulumi.Input[str]] = {"kubelet": self.acr_pull.id}
        triggers |= {f"deployer-{d.object_id}": g.id for d, g in zip(args.deployers, self.deployer_access, strict=True)}
        self.data_plane_ready = time.Sleep(
            f"{name}-data-plane-propagation",
            create_duration=DATA_PLANE_PROPAGATION,
            triggers=triggers,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.deployer_access, self.acr_pull]),
        )

        # For people: the kubeconfig AKS hands out (kubelogin exec in device-code mode; convert it with
        # `kubelogin convert-kubeconfig -l azurecli`). It holds no credential but names the API server and the
        # tenant, so it stays secret.
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=args.placement.resource_group_name,
            resource_name=self.cluster.name,
            format="exec",
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        self.kubeconfig = pulumi.Output.secret(credentials.kubeconfigs.apply(_decode_kubeconfig))
        # For the provider: the same cluster and CA, with an Entra access token for the AKS server application as
        # a bearer token. Why not that exec kubeconfig: it runs `kubelogin --login devicecode`, which waits for a
        # person to type a code (pulumi-azure-native#2399, Azure/kubelogin#193), and GitHub's runners do not ship
        # kubelogin; its non-interactive `azurecli` mode would lean on the Azure CLI, whose OIDC login in CI
        # cannot mint new tokens after about ten minutes (azure-cli#28708). The token comes from the azure-native
        # provider's own credentials (get_client_token; in CI ARM_USE_OIDC fetches a fresh federated token, on a
        # laptop it is the az login), after the grants have taken effect, so it is fresh when the first
        # Kubernetes call is made and lives 60-90 minutes, longer than one `pulumi up`. It lands in the
        # provider's state as a secret and expires there: run `pulumi refresh` and `pulumi destroy` with
        # `--run-program` so the program fetches a new one.
        token = authorization.get_client_token_output(
            endpoint=AKS_SERVER_APP_ID,
            opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[self.data_plane_ready]),
        )
        with_token: pulumi.Output[str] = pulumi.Output.all(self.kubeconfig, token.token).apply(
            lambda v: bearer_kubeconfig(
                str(v[0]), str(v[1]) if pulumi.runtime.is_dry_run() else long_lived_enough(str(v[1]), time_.time())
            )
        )
        provider_kubeconfig: pulumi.Output[str] = pulumi.Output.secret(with_token)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=provider_kubeconfig,
            # The token in the kubeconfig is new every run, and unknown in a preview that waits on a new grant;
            # without a fixed identifier either change replaces the provider and every object it manages. With
            # one, "the provider will only be replaced when clusterIdentifier changes" (pulumi-kubernetes
            # Provider docs, `clusterIdentifier`). A cluster re-created under the same name keeps it: after one,
            # run `pulumi refresh` so the state forgets the objects the old cluster held.
            cluster_identifier=cluster_name,
            enable_server_side_apply=True,
            # Workloads land on the user pool, and the API server and the kubelet must accept us first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.user_pool, self.data_plane_ready]),
        )

        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "oidcIssuerUrl": self.oidc_issuer_url,
                "kubeletObjectId": self.kubelet_object_id,
                "kubeconfig": self.kubeconfig,
            }
        )


def _issuer_url(profile: containerservice.outputs.ManagedClusterOIDCIssuerProfileResponse | None) -> str:
    if profile is None or not profile.issuer_url:
        raise ValueError("the cluster reports no OIDC issuer URL although oidcIssuerProfile.enabled is true")
    return profile.issuer_url


def _kubelet_object_id(
    profile: Mapping[str, containerservice.outputs.UserAssignedIdentityManagedClusterResponse] | None,
) -> str:
    identity = (profile or {}).get("kubeletidentity")
    if identity is None or not identity.object_id:
        raise ValueError("the cluster reports no kubelet identity (identityProfile.kubeletidentity)")
    return identity.object_id


def _decode_kubeconfig(
    kubeconfigs: list[containerservice.outputs.CredentialResultResponse] | None,
) -> str:
    if not kubeconfigs or not kubeconfigs[0].value:
        raise ValueError("listManagedClusterUserCredentials returned no kubeconfig")
    return base64.b64decode(kubeconfigs[0].value).decode()


# What is left of `pulumi up` once the token is fetched (after the grants' wait): the image build and its push wait
# (10 minutes) and the Deployment's rollout (pulumi-kubernetes waits up to 10 minutes). The Azure CLI's tokens are
# "valid for at least 5 minutes with the maximum at 60 minutes" (`az account get-access-token --help`).
TOKEN_MIN_REMAINING_SECONDS = 30 * 60


def long_lived_enough(token: str, now: float) -> str:
    """`token`, if it stays valid for the rest of the run (TOKEN_MIN_REMAINING_SECONDS); otherwise a clear error.

    In CI the azure-native provider gets a new token from Entra for every run. On a laptop the token is the Azure
    CLI's, served from its cache while it has "at least 5 minutes" left (`az account get-access-token`); the
    provider cannot refresh it later, so a run that outlives it fails at its first Kubernetes call, halfway. A
    preview touches no cluster object, so it is not checked there.
    """
    parts = token.split(".")
    claims: Any = None
    if len(parts) == 3:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    expires = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(expires, int | float):
        raise ValueError("the Entra token for the AKS API server carries no expiry (exp claim); cannot use it")
    left = expires - now
    if left < TOKEN_MIN_REMAINING_SECONDS:
        raise ValueError(
            f"the Entra token for the AKS API server expires in {max(left, 0) / 60:.0f} minutes, and the rest of "
            f"this run may need {TOKEN_MIN_REMAINING_SECONDS // 60}: it is the Azure CLI's cached token, which "
            "the Kubernetes provider cannot renew. Sign in again for a new one (`az logout && az login`), then "
            "run `pulumi up` again; nothing was deployed to the cluster yet. (A tenant token-lifetime policy shorter "
            f"than {TOKEN_MIN_REMAINING_SECONDS // 60} minutes needs a run from CI instead.)"
        )
    return token


def bearer_kubeconfig(kubeconfig: str, token: str) -> str:
    """`kubeconfig` (as AKS returns it) with every user replaced by one that sends `token` as a bearer token.

    Clusters, contexts and the CA stay as AKS gave them; only how the client authenticates changes. The result is
    JSON, which every kubeconfig reader accepts (YAML is a superset).
    """
    loaded: Any = YAML(typ="safe").load(kubeconfig)
    if not isinstance(loaded, dict) or not loaded.get("users") or not loaded.get("clusters"):
        raise ValueError("listManagedClusterUserCredentials returned a kubeconfig without clusters or users")
    if not token:
        raise ValueError("get_client_token returned no token for the AKS server application")
    loaded["users"] = [{"name": user["name"], "user": {"token": token}} for user in loaded["users"]]
    return json.dumps(loaded, indent=2, sort_keys=True)
