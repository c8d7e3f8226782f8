"""AksCluster, built from the real staging and prod stack files, asserted input by input through the harness."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest
from ruamel.yaml import YAML

from components.aks_cluster import AksCluster, AksClusterArgs
from components.naming import Naming
from components.placement import Placement
from components.role_assignment import Principal
from offline.cloud_facts import DEPLOYER_OBJECT_ID, SUBSCRIPTION_ID, TENANT_ID, CloudError, PrincipalType
from offline.harness import ProgramOptions, ProgramRun, RecordedResource, run_program
from stacks.files import load_stack_config
from stacks.settings import ClusterSettings, StackSettings
from tests.components.stack_fields import cluster_fields

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "mlops-serving"
CLUSTER = "azure-native:containerservice:ManagedCluster"
AGENT_POOL = "azure-native:containerservice:AgentPool"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
K8S_PROVIDER = "pulumi:providers:kubernetes"
SLEEP = "time:index/sleep:Sleep"
USER_CREDENTIALS = "azure-native:containerservice:listManagedClusterUserCredentials"
CLIENT_TOKEN = "azure-native:authorization:getClientToken"
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
CLUSTER_ADMIN_ROLE = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
# A registry in another stack: the cluster only ever sees its resource id.
REGISTRY_ID = (
    f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/mlops-serving-staging-rg/providers/"
    "Microsoft.ContainerRegistry/registries/mlopsservingstagingacr1a2b3c"
)
WORKSPACE_ID = (
    f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/law"
)
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class AksRun:
    stack: str
    settings: StackSettings
    run: ProgramRun

    @property
    def component(self) -> RecordedResource:
        return self.run.one("mlops:platform:AksCluster")

    @property
    def cluster(self) -> RecordedResource:
        return self.run.one(CLUSTER)

    @property
    def pool(self) -> RecordedResource:
        return self.run.one(AGENT_POOL)


def stack_settings(stack: str) -> StackSettings:
    return load_stack_config(ROOT, stack).settings()


def run_aks(
    stack: str,
    *,
    cluster: ClusterSettings | None = None,
    protect: bool | None = None,
    enable_app_routing: bool = False,
    caller: PrincipalType = "User",
) -> AksRun:
    settings = stack_settings(stack)
    naming = Naming(PROJECT, stack, settings.name_suffix)

    def program() -> None:
        aks = AksCluster(
            stack,
            AksClusterArgs(
                placement=Placement(
                    naming,
                    naming.resource("rg"),
                    settings.location,
                    naming.tags(settings.tags),
                    protect=settings.protect if protect is None else protect,
                ),
                **cluster_fields(cluster or settings.cluster),
                log_analytics_workspace_id=WORKSPACE_ID,
                registry_id=REGISTRY_ID,
                enable_app_routing=enable_app_routing,
                deployers=[Principal(d.object_id, d.type) for d in settings.deployers],
            ),
        )
        pulumi.export("clusterName", aks.cluster_name)
        pulumi.export("oidcIssuerUrl", aks.oidc_issuer_url)
        pulumi.export("kubeletObjectId", aks.kubelet_object_id)
        pulumi.export("kubeconfig", aks.kubeconfig)
        # One object through the provider, as a deployment would make: the cloud answers it only if the provider
        # authenticates without a person and the deployer's grant is in effect.
        k8s.core.v1.Namespace(
            f"{stack}-probe",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="probe"),
            opts=pulumi.ResourceOptions(provider=aks.provider),
        )

    # A person in the stack's platform group, or the stack's CI deploy identity.
    groups = tuple(d.object_id for d in settings.deployers if d.type == "Group")
    ci = next(d.object_id for d in settings.deployers if d.type == "ServicePrincipal")
    options = (
        ProgramOptions(caller_principal_type=caller, caller_groups=groups)
        if caller == "User"
        else ProgramOptions(caller_principal_type=caller, caller_object_id=ci, caller_groups=())
    )
    return AksRun(stack, settings, run_program(program, {}, project=PROJECT, stack=stack, options=options))


@pytest.fixture(scope="module", params=["staging", "prod"])
def aks_run(request: pytest.FixtureRequest) -> AksRun:
    return run_aks(request.param)


@pytest.fixture(scope="module")
def aks_staging_run() -> AksRun:
    return run_aks("staging")


@pytest.fixture(scope="module")
def aks_prod_run() -> AksRun:
    return run_aks("prod")


def test_component_owns_cluster_pool_grant_and_provider_as_children(aks_run: AksRun) -> None:
    component = aks_run.component
    assert component.type == "mlops:platform:AksCluster"
    assert component.name == aks_run.stack
    children = aks_run.run.children(component)
    assert sorted((c.type, c.name) for c in children) == sorted(
        [
            (CLUSTER, f"{aks_run.stack}-aks"),
            (AGENT_POOL, f"{aks_run.stack}-models-pool"),
            (ROLE_ASSIGNMENT, f"{aks_run.stack}-kubelet-acr-pull"),
            *((ROLE_ASSIGNMENT, f"{aks_run.stack}-cluster-admin-{d.object_id}") for d in aks_run.settings.deployers),
            (SLEEP, f"{aks_run.stack}-data-plane-propagation"),
            (K8S_PROVIDER, f"{aks_run.stack}-k8s"),
        ]
    )
    # Nothing else is declared (besides the test's probe): no registry (it belongs to its own stack), no secret,
    # no pull secret.
    assert len(aks_run.run.resources) == 7 + len(aks_run.settings.deployers)


def test_cluster_is_named_by_the_stack_in_its_resource_group(aks_run: AksRun) -> None:
    inputs = aks_run.cluster.inputs
    assert inputs["resourceName"] == f"mlops-serving-{aks_run.stack}-aks"
    assert inputs["dnsPrefix"] == f"mlops-serving-{aks_run.stack}-aks"
    assert inputs["nodeResourceGroup"] == f"mlops-serving-{aks_run.stack}-aks-nodes"
    assert inputs["resourceGroupName"] == f"mlops-serving-{aks_run.stack}-rg"
    assert inputs["location"] == aks_run.settings.location == "westeurope"
    assert inputs["tags"] == {
        **aks_run.settings.tags,
        "project": PROJECT,
        "stack": aks_run.stack,
        "managed-by": "pulumi",
    }
    assert aks_run.run.outputs["clusterName"] == inputs["resourceName"]


def test_cluster_uses_a_managed_identity_and_entra_id_with_azure_rbac_and_no_local_accounts(aks_run: AksRun) -> None:
    inputs = aks_run.cluster.inputs
    assert inputs["identity"] == {"type": "SystemAssigned"}
    assert "servicePrincipalProfile" not in inputs
    assert inputs["enableRBAC"] is True
    assert inputs["disableLocalAccounts"] is True
    assert inputs["aadProfile"] == {
        "managed": True,
        "enableAzureRBAC": True,
        "tenantID": TENANT_ID,
        "adminGroupObjectIDs": aks_run.settings.cluster.admin_group_object_ids,
    }
    assert aks_run.settings.cluster.admin_group_object_ids == ["2f1c9a7e-5d1b-4c3e-9a8f-0b6d4e2c1a90"]


def test_oidc_issuer_and_workload_identity_are_enabled_and_exported(aks_run: AksRun) -> None:
    inputs = aks_run.cluster.inputs
    assert inputs["oidcIssuerProfile"] == {"enabled": True}
    assert inputs["securityProfile"]["workloadIdentity"] == {"enabled": True}
    issuer = aks_run.run.outputs["oidcIssuerUrl"]
    assert issuer.startswith(f"https://westeurope.oic.prod-aks.azure.com/{TENANT_ID}/")


def test_tier_comes_from_config(aks_staging_run: AksRun, aks_prod_run: AksRun) -> None:
    assert aks_staging_run.cluster.inputs["sku"] == {"name": "Base", "tier": "Free"}
    assert aks_prod_run.cluster.inputs["sku"] == {"name": "Base", "tier": "Standard"}


def test_system_pool_is_tainted_critical_addons_only_and_autoscaled_from_config(aks_run: AksRun) -> None:
    (system,) = aks_run.cluster.inputs["agentPoolProfiles"]
    pool = aks_run.settings.cluster.system_pool
    assert system["name"] == "system"
    assert system["mode"] == "System"
    assert system["nodeTaints"] == ["CriticalAddonsOnly=true:NoSchedule"]
    assert "nodeLabels" not in system
    assert system["vmSize"] == pool.vm_size
    assert system["enableAutoScaling"] is True
    assert (system["minCount"], system["maxCount"], system["count"]) == (
        pool.min_count,
        pool.max_count,
        pool.min_count,
    )
    assert system["osType"] == "Linux"
    assert system["osSKU"] == "AzureLinux"
    assert system["type"] == "VirtualMachineScaleSets"
    assert system["enableNodePublicIP"] is False


def test_user_pool_is_a_separate_agent_pool_labelled_for_models(aks_run: AksRun) -> None:
    pool = aks_run.pool
    inputs = pool.inputs
    user = aks_run.settings.cluster.user_pool
    assert inputs["resourceName"] == aks_run.cluster.inputs["resourceName"]
    assert aks_run.cluster.urn in pool.property_dependencies["resourceName"]
    assert inputs["resourceGroupName"] == aks_run.cluster.inputs["resourceGroupName"]
    assert inputs["agentPoolName"] == "models"
    assert inputs["mode"] == "User"
    assert inputs["nodeLabels"] == {"workload": "models"}
    assert "nodeTaints" not in inputs
    assert inputs["vmSize"] == user.vm_size
    assert inputs["enableAutoScaling"] is True
    assert (inputs["minCount"], inputs["maxCount"], inputs["count"]) == (user.min_count, user.max_count, user.min_count)
    assert inputs["osType"] == "Linux"
    assert inputs["osSKU"] == "AzureLinux"
    assert inputs["enableNodePublicIP"] is False
    assert inputs["tags"] == aks_run.cluster.inputs["tags"]


def test_node_counts_follow_each_stack_file(aks_staging_run: AksRun, aks_prod_run: AksRun) -> None:
    def counts(r: AksRun) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
        (system,) = r.cluster.inputs["agentPoolProfiles"]
        user = r.pool.inputs
        return (
            (system["vmSize"], system["minCount"], system["maxCount"]),
            (user["vmSize"], user["minCount"], user["maxCount"]),
        )

    assert counts(aks_staging_run) == (("Standard_D2ds_v5", 1, 2), ("Standard_D4ds_v5", 1, 3))
    assert counts(aks_prod_run) == (("Standard_D4ds_v5", 2, 3), ("Standard_D8ds_v5", 3, 10))


def test_availability_zones_only_where_the_config_lists_them(aks_staging_run: AksRun, aks_prod_run: AksRun) -> None:
    (staging_system,) = aks_staging_run.cluster.inputs["agentPoolProfiles"]
    assert "availabilityZones" not in staging_system
    assert "availabilityZones" not in aks_staging_run.pool.inputs
    (prod_system,) = aks_prod_run.cluster.inputs["agentPoolProfiles"]
    assert prod_system["availabilityZones"] == ["1", "2", "3"]
    assert aks_prod_run.pool.inputs["availabilityZones"] == ["1", "2", "3"]


def test_network_is_azure_cni_overlay_with_cilium_dataplane_and_policy(aks_run: AksRun) -> None:
    network = aks_run.cluster.inputs["networkProfile"]
    assert network["networkPlugin"] == "azure"
    assert network["networkPluginMode"] == "overlay"
    assert network["networkDataplane"] == "cilium"
    assert network["networkPolicy"] == "cilium"
    assert network["loadBalancerSku"] == "standard"


def test_upgrade_channels_come_from_config(aks_run: AksRun) -> None:
    assert aks_run.cluster.inputs["autoUpgradeProfile"] == {
        "upgradeChannel": aks_run.settings.cluster.upgrade_channel,
        "nodeOSUpgradeChannel": "NodeImage",
    }


def test_other_upgrade_channel_and_tier_in_config_reach_the_cluster() -> None:
    settings = stack_settings("prod")
    changed = settings.cluster.model_copy(update={"upgrade_channel": "rapid", "tier": "Premium"})
    run = run_aks("prod", cluster=changed)
    assert run.cluster.inputs["autoUpgradeProfile"]["upgradeChannel"] == "rapid"
    assert run.cluster.inputs["sku"]["tier"] == "Premium"


def test_container_insights_sends_to_log_analytics_with_aad_auth(aks_run: AksRun) -> None:
    assert aks_run.cluster.inputs["addonProfiles"] == {
        "omsagent": {
            "enabled": True,
            "config": {"logAnalyticsWorkspaceResourceID": WORKSPACE_ID, "useAADAuth": "true"},
        }
    }


def test_kubelet_identity_gets_acrpull_on_the_registry(aks_run: AksRun) -> None:
    grant = aks_run.run.one(ROLE_ASSIGNMENT, f"{aks_run.stack}-kubelet-acr-pull")
    kubelet = aks_run.run.outputs["kubeletObjectId"]
    assert GUID.match(kubelet)
    assert grant.inputs["principalId"] == kubelet
    assert aks_run.cluster.urn in grant.property_dependencies["principalId"]
    assert grant.inputs["principalType"] == "ServicePrincipal"
    assert grant.inputs["scope"] == REGISTRY_ID
    assert grant.inputs["roleDefinitionId"] == (
        f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/"
        "7f951dda-4ed3-4680-a7ca-43fe172d538d"
    )
    # The subscription comes from the deployer's client config, not from a setting.
    assert ("azure-native:authorization:getClientConfig", {}) in aks_run.run.invokes


def test_no_image_pull_secret_and_no_registry_admin_credential_anywhere(aks_run: AksRun) -> None:
    tokens = [token for token, _ in aks_run.run.invokes]
    assert not [t for t in tokens if "listRegistryCredentials" in t or "RegistryCredential" in t]
    assert not [r for r in aks_run.run.resources if r.type.startswith("azure-native:containerregistry:")]
    assert not [r for r in aks_run.run.resources if r.type == "kubernetes:core/v1:Secret"]
    text = repr([r.inputs for r in aks_run.run.resources])
    assert "imagePullSecrets" not in text
    assert "adminUser" not in text


def test_people_get_the_kubeconfig_aks_hands_out_as_a_secret(aks_run: AksRun) -> None:
    kubeconfig = aks_run.run.outputs["kubeconfig"]
    assert kubeconfig.startswith("apiVersion: v1\nkind: Config\n")  # base64-decoded
    assert "command: kubelogin" in kubeconfig
    assert f"name: mlops-serving-{aks_run.stack}-aks" in kubeconfig
    (call,) = [args for token, args in aks_run.run.invokes if token == USER_CREDENTIALS]
    assert call == {
        "resourceGroupName": f"mlops-serving-{aks_run.stack}-rg",
        "resourceName": f"mlops-serving-{aks_run.stack}-aks",
        "format": "exec",
    }
    assert "kubeconfig" in aks_run.run.secret_outputs


def test_provider_authenticates_with_an_entra_token_for_the_aks_server_app_not_a_device_code(
    aks_run: AksRun,
) -> None:
    provider = aks_run.run.one(K8S_PROVIDER)
    assert provider.secret_inputs == ("kubeconfig",)
    config = json.loads(provider.inputs["kubeconfig"])
    (user,) = config["users"]
    assert set(user["user"]) == {"token"}
    assert "exec" not in provider.inputs["kubeconfig"]
    assert "devicecode" not in provider.inputs["kubeconfig"]
    # The token comes from the azure-native provider's own credentials, for the AKS server application.
    assert (CLIENT_TOKEN, {"endpoint": AKS_SERVER_APP_ID}) in aks_run.run.invokes
    # Same cluster, CA and context as the credentials AKS returned.
    people = YAML(typ="safe").load(aks_run.run.outputs["kubeconfig"])
    assert config["clusters"] == people["clusters"]
    assert config["contexts"] == people["contexts"]
    assert config["current-context"] == people["current-context"]


def test_each_deployer_of_the_stack_file_gets_cluster_admin_on_this_cluster_only(aks_run: AksRun) -> None:
    for deployer in aks_run.settings.deployers:
        grant = aks_run.run.one(ROLE_ASSIGNMENT, f"{aks_run.stack}-cluster-admin-{deployer.object_id}")
        assert grant.inputs["principalId"] == deployer.object_id
        assert grant.inputs["principalType"] == deployer.type
        assert grant.inputs["roleDefinitionId"] == (
            f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/{CLUSTER_ADMIN_ROLE}"
        )
        assert grant.inputs["scope"] == (
            f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/mlops-serving-{aks_run.stack}-rg/providers/"
            f"Microsoft.ContainerService/managedClusters/mlops-serving-{aks_run.stack}-aks"
        )
        assert aks_run.cluster.urn in grant.property_dependencies["scope"]
    # No grant follows whoever runs `up`.
    assert DEPLOYER_OBJECT_ID not in {r.inputs["principalId"] for r in aks_run.run.all(ROLE_ASSIGNMENT)}


def test_kubernetes_calls_wait_for_every_grant_to_propagate(aks_run: AksRun) -> None:
    wait = aks_run.run.one(SLEEP)
    grants = {r.urn for r in aks_run.run.all(ROLE_ASSIGNMENT)}
    assert wait.inputs["createDuration"] == "5m"
    assert grants <= set(wait.dependencies)
    # A new or replaced grant waits again; nothing else does.
    assert set(wait.inputs["triggers"]) == {"kubelet", *(f"deployer-{d.object_id}" for d in aks_run.settings.deployers)}
    assert wait.urn in aks_run.run.one(K8S_PROVIDER).dependencies


def test_a_new_token_or_an_unknown_kubeconfig_updates_the_provider_but_never_replaces_it(aks_run: AksRun) -> None:
    # pulumi-kubernetes replaces a provider, and every object it manages, when its kubeconfig changes or is
    # unknown, unless `clusterIdentifier` is set: then "only ... when clusterIdentifier changes" (its Provider docs).
    provider = aks_run.run.one(K8S_PROVIDER)
    assert provider.inputs["clusterIdentifier"] == f"mlops-serving-{aks_run.stack}-aks"
    assert aks_run.run.preview is not None
    assert aks_run.run.preview.one(K8S_PROVIDER).inputs["clusterIdentifier"] == provider.inputs["clusterIdentifier"]


@pytest.mark.parametrize("caller", ["User", "ServicePrincipal"])
def test_a_person_in_the_platform_group_and_ci_can_both_deploy_to_the_cluster(caller: PrincipalType) -> None:
    run = run_aks("staging", caller=caller)
    assert run.run.one("kubernetes:core/v1:Namespace").inputs["metadata"]["name"] == "probe"


def test_app_routing_is_on_only_where_a_stack_serves_through_an_ingress() -> None:
    assert "ingressProfile" not in run_aks("prod").cluster.inputs
    assert run_aks("prod", enable_app_routing=True).cluster.inputs["ingressProfile"] == {
        "webAppRouting": {"enabled": True}
    }


def test_the_kubeconfig_aks_returns_would_wait_for_a_device_code() -> None:
    # The cloud answers as AKS does: kubelogin in device-code mode. A provider given that kubeconfig never connects.
    def program() -> None:
        k8s.Provider(
            "device-code",
            kubeconfig=(
                "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    exec:\n      command: kubelogin\n"
                "      args: [get-token, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630, --login, devicecode]\n"
            ),
        )

    with pytest.raises(CloudError, match="devicelogin"):
        run_program(program, {}, project=PROJECT, stack="staging")


def test_provider_waits_for_the_user_pool_the_workloads_run_on(aks_run: AksRun) -> None:
    provider = aks_run.run.one(K8S_PROVIDER)
    assert aks_run.pool.urn in provider.dependencies
    assert provider.parent == aks_run.component.urn


def test_protect_comes_from_the_stack(aks_staging_run: AksRun, aks_prod_run: AksRun) -> None:
    assert aks_staging_run.settings.protect is False
    assert aks_staging_run.cluster.protect is False
    assert aks_staging_run.pool.protect is False
    assert aks_prod_run.settings.protect is True
    assert aks_prod_run.cluster.protect is True
    assert aks_prod_run.pool.protect is True
    # The grants and the provider are cheap to recreate; only stateful resources are protected.
    assert not any(r.protect for r in aks_prod_run.run.all(ROLE_ASSIGNMENT))
    assert aks_prod_run.component.protect is False


def test_fields_azure_moves_by_itself_are_ignored(aks_run: AksRun) -> None:
    assert set(aks_run.cluster.ignore_changes) == {
        "kubernetesVersion",
        "agentPoolProfiles[*].count",
        "agentPoolProfiles[*].orchestratorVersion",
    }
    assert set(aks_run.pool.ignore_changes) == {"count", "orchestratorVersion"}
    # The ignored paths name inputs that exist (a typo would silently ignore nothing).
    assert "count" in aks_run.pool.inputs
    assert all("count" in p for p in aks_run.cluster.inputs["agentPoolProfiles"])
    # Nothing here forces a replacement of the cluster on a routine update.
    assert aks_run.cluster.replace_on_changes == ()
    assert aks_run.cluster.delete_before_replace is False


def test_the_same_config_twice_declares_identical_inputs() -> None:
    first, second = run_aks("prod"), run_aks("prod")
    # Registration order is asynchronous; what matters is each resource's inputs.
    assert {(r.type, r.name): r.inputs for r in first.run.resources} == {
        (r.type, r.name): r.inputs for r in second.run.resources
    }
    assert len(first.run.resources) == len(second.run.resources)
