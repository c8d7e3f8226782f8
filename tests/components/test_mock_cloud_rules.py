"""The mock cloud's first-run rules, each on a minimal program: it refuses what Azure refuses (a principal type that
is not the caller's, Kubernetes calls before a data-plane grant has propagated, an ingress class nobody installed,
a vault name a soft-deleted vault still holds), and accepts the same request once it is right."""

from __future__ import annotations

import base64

import pulumi
import pulumi_kubernetes as k8s
import pulumiverse_time as time
import pytest
from pulumi_azure_native import authorization, containerservice

from components.aks_cluster import AKS_RBAC_CLUSTER_ADMIN_ROLE_ID, AKS_SERVER_APP_ID, bearer_kubeconfig
from offline.cloud_facts import DEPLOYER_OBJECT_ID, CloudError
from offline.harness import ProgramOptions, run_program
from tests.components.test_first_run import ACR_PUSH, VAULT, run
from tests.conftest import PROJECT


def test_the_cloud_refuses_a_principal_type_that_is_not_the_callers() -> None:
    def program() -> None:
        authorization.RoleAssignment(
            "wrong-type",
            principal_id=DEPLOYER_OBJECT_ID,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id="/providers/Microsoft.Authorization/roleDefinitions/" + ACR_PUSH,
            scope="/subscriptions/s/resourceGroups/rg",
        )

    with pytest.raises(CloudError, match="UnmatchedPrincipalType"):
        run_program(program, {}, project=PROJECT, stack="staging", options=ProgramOptions(caller_principal_type="User"))


def _cluster_program(grant: bool, wait: str | None, *, ingress: bool = False, rollout: str | None = None) -> None:
    # A bare cluster (no app routing add-on) and one object through a bearer-token provider, with or without the
    # deployer's grant and a wait for it: what the cloud answers depends only on those.
    cluster = containerservice.ManagedCluster(
        "c", resource_name_="c", resource_group_name="rg", dns_prefix="c", location="westeurope"
    )
    depends: list[pulumi.Resource] = []
    if grant:
        admin = authorization.RoleAssignment(
            "admin",
            principal_id=DEPLOYER_OBJECT_ID,
            principal_type="User",
            role_definition_id="/providers/Microsoft.Authorization/roleDefinitions/" + AKS_RBAC_CLUSTER_ADMIN_ROLE_ID,
            scope=cluster.id,
        )
        depends = [admin]
        if wait is not None:
            depends = [time.Sleep("wait", create_duration=wait, opts=pulumi.ResourceOptions(depends_on=[admin]))]
    credentials = containerservice.list_managed_cluster_user_credentials_output(
        resource_group_name="rg", resource_name=cluster.name, format="exec"
    )
    token = authorization.get_client_token_output(endpoint=AKS_SERVER_APP_ID)
    people = credentials.kubeconfigs.apply(lambda k: base64.b64decode(k[0].value).decode())
    kubeconfig = pulumi.Output.all(people, token.token).apply(lambda v: bearer_kubeconfig(v[0], v[1]))
    provider = k8s.Provider("k", kubeconfig=kubeconfig, opts=pulumi.ResourceOptions(depends_on=depends))
    if rollout is not None:
        # A Rollout `pulumi up` waits on (its pods pull when it is created), or one it does not wait on.
        annotations = {"pulumi.com/waitFor": "jsonpath={.status.phase}=Healthy"} if rollout == "awaited" else {}
        k8s.apiextensions.CustomResource(
            "model",
            api_version="argoproj.io/v1alpha1",
            kind="Rollout",
            metadata=k8s.meta.v1.ObjectMetaArgs(annotations=annotations),
            opts=pulumi.ResourceOptions(provider=provider),
        )
    elif ingress:
        k8s.networking.v1.Ingress(
            "ing",
            spec=k8s.networking.v1.IngressSpecArgs(ingress_class_name="webapprouting.kubernetes.azure.com"),
            opts=pulumi.ResourceOptions(provider=provider),
        )
    else:
        k8s.core.v1.Namespace("ns", opts=pulumi.ResourceOptions(provider=provider))


@pytest.mark.parametrize(("grant", "wait"), [(False, None), (True, None), (True, "30s")])
def test_the_cloud_refuses_kubernetes_calls_until_a_data_plane_grant_has_propagated(
    grant: bool, wait: str | None
) -> None:
    with pytest.raises(CloudError, match="Forbidden"):
        run_program(lambda: _cluster_program(grant, wait), {}, project=PROJECT, stack="staging")


def test_the_cloud_accepts_kubernetes_calls_once_the_grant_has_had_five_minutes() -> None:
    done = run_program(lambda: _cluster_program(True, "5m"), {}, project=PROJECT, stack="staging")
    assert done.one("kubernetes:core/v1:Namespace")


def test_the_cloud_refuses_an_app_routing_ingress_on_a_cluster_without_the_add_on() -> None:
    with pytest.raises(CloudError, match="app routing add-on is off"):
        run_program(lambda: _cluster_program(True, "5m", ingress=True), {}, project=PROJECT, stack="staging")


def test_the_cloud_keeps_a_soft_deleted_vault_name() -> None:
    first = run("staging").one(VAULT).inputs["vaultName"]
    with pytest.raises(CloudError, match="already exists in deleted state"):
        run("staging", soft_deleted_key_vaults=(first,))


def test_the_cloud_fails_an_awaited_rollout_whose_pods_cannot_pull() -> None:
    # No AcrPull grant for the kubelet here: the pods never start, and the wait for Healthy times out.
    with pytest.raises(CloudError, match="ImagePullBackOff"):
        run_program(lambda: _cluster_program(True, "5m", rollout="awaited"), {}, project=PROJECT, stack="staging")
    done = run_program(
        lambda: _cluster_program(True, "5m", rollout="not awaited"), {}, project=PROJECT, stack="staging"
    )
    assert done.one("kubernetes:argoproj.io/v1alpha1:Rollout")
