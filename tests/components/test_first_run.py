"""The first `pulumi up` on an empty subscription, run by a person from a laptop or by CI's Entra app: the whole
program against a mock cloud that refuses what Azure refuses (device-code logins, missing or unpropagated grants,
mismatched principal types, codeless host keys, reused vault names, an ingress class nobody installed)."""

from __future__ import annotations

from typing import Any

import pytest

from offline.cloud_facts import DEPLOYER_OBJECT_ID, CloudError, PrincipalType
from offline.harness import ProgramOptions, ProgramRun, RecordedResource, preview_program, run_program
from offline.preview import registered_before
from stacks.settings import parse_settings
from tests.conftest import PROJECT, ROOT, STAGING_REF, stack_values

ROLE = "azure-native:authorization:RoleAssignment"
SLEEP = "time:index/sleep:Sleep"
IMAGE = "docker-build:index:Image"
VAULT = "azure-native:keyvault:Vault"
SECRET = "azure-native:keyvault:Secret"
ACR_PUSH = "8311e382-0749-4cb8-b61a-304f252e45ec"  # AcrPush, ../shared/reference/azure-built-in-roles.md
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"


def run(stack: str, edit: Any = None, **options: Any) -> ProgramRun:
    values = stack_values(stack)
    if edit is not None:
        edit(values)
    # A stack file that pins a version was written by promoting it, so the registry holds that version (day zero,
    # with nothing registered, is tests/test_day_zero.py).
    options.setdefault("registry_models", registered_before(parse_settings(values, f"Pulumi.{stack}.yaml")))
    return run_program(ROOT / "__main__.py", values, project=PROJECT, stack=stack, options=ProgramOptions(**options))


def closure(run_: ProgramRun, resource: RecordedResource) -> set[str]:
    """Everything `resource` waits for, directly or through what it waits for (its provider included)."""
    seen: set[str] = set()
    todo = [*resource.dependencies, *(u for v in resource.property_dependencies.values() for u in v)]
    if resource.provider:
        todo.append(resource.provider.rsplit("::", 1)[0])
    while todo:
        urn = todo.pop()
        if urn in seen:
            continue
        seen.add(urn)
        found = [r for r in run_.resources if r.urn == urn]
        if found:
            r = found[0]
            todo += [*r.dependencies, *(u for v in r.property_dependencies.values() for u in v)]
            if r.provider:
                todo.append(r.provider.rsplit("::", 1)[0])
    return seen


def deployer(stack: str, type_: str) -> str:
    """The object id of the stack file's deployer of that type."""
    return str(next(d["objectId"] for d in stack_values(stack)[f"{PROJECT}:deployers"] if d["type"] == type_))


def as_caller(stack: str, caller: PrincipalType) -> dict[str, Any]:
    """Who runs `up`: a person in the stack's platform group (from a laptop) or the stack's CI deploy identity."""
    if caller == "User":
        return {"caller_principal_type": "User"}
    return {"caller_principal_type": caller, "caller_object_id": deployer(stack, caller), "caller_groups": ()}


@pytest.mark.parametrize("caller", ["User", "ServicePrincipal"])
def test_staging_then_prod_come_up_for_a_person_and_for_ci(caller: PrincipalType) -> None:
    staging = run("staging", **as_caller("staging", caller))
    prod = run("prod", stack_outputs={STAGING_REF: staging.outputs}, **as_caller("prod", caller))
    for stack, stack_run in (("staging", staging), ("prod", prod)):
        granted = {(r.inputs["principalId"], r.inputs["principalType"]) for r in stack_run.all(ROLE)}
        listed = {(d["objectId"], d["type"]) for d in stack_values(stack)[f"{PROJECT}:deployers"]}
        assert listed <= granted, "every deployer the stack file lists is granted what it needs"
        assert DEPLOYER_OBJECT_ID not in {p for p, _ in granted}, "no grant follows whoever runs `up`"


def test_a_run_by_another_identity_changes_no_resource() -> None:
    person = run("staging")
    ci = run("staging", **as_caller("staging", "ServicePrincipal"))
    # The pull-request preview identity is no deployer: it only previews, and its preview declares the same.
    values = stack_values("staging")
    options = ProgramOptions(
        caller_principal_type="ServicePrincipal",
        caller_object_id="0f5b8c1e-4d2a-4e7b-9c3f-6a1d8e2b7c90",
        caller_groups=(),
        registry_models=registered_before(parse_settings(values, "Pulumi.staging.yaml")),
    )
    preview_identity = preview_program(ROOT / "__main__.py", values, project=PROJECT, stack="staging", options=options)
    assert person.preview is not None
    for other, base in ((ci, person), (preview_identity, person.preview)):
        assert declared(other) == declared(base)


def declared(run_: ProgramRun) -> dict[str, tuple[dict[str, Any], frozenset[str]]]:
    """Every resource's inputs and dependencies by URN, less the caller's own tokens, which change every run.

    The Kubernetes provider's bearer token: a secret update of the provider on every run, never a replacement (its
    clusterIdentifier stays, tests/components/test_aks_cluster.py). The image build's registry token: a build
    secret the provider leaves out of its diff (`ignoreSecretsInDiffCalculation`, pulumi-docker-build Image docs).
    """
    out: dict[str, tuple[dict[str, Any], frozenset[str]]] = {}
    for r in run_.resources:
        inputs = dict(r.inputs)
        if r.type == "pulumi:providers:kubernetes":
            inputs.pop("kubeconfig", None)
        if r.type == IMAGE:
            ignored = set(inputs.get("ignoreSecretsInDiffCalculation") or ())
            inputs["secrets"] = {k: v for k, v in (inputs.get("secrets") or {}).items() if k not in ignored}
        out[r.urn] = (inputs, frozenset(r.dependencies))
    return out


def test_a_caller_who_is_no_deployer_cannot_reach_the_cluster() -> None:
    with pytest.raises(CloudError, match=r"Forbidden.*cannot create resource"):
        run("staging", caller_principal_type="ServicePrincipal", caller_groups=())


def test_a_cached_cli_token_that_would_expire_mid_run_fails_before_anything_is_deployed() -> None:
    with pytest.raises(Exception, match=r"expires in 20 minutes.*az logout && az login.*nothing was deployed"):
        run("staging", caller_token_seconds_left=20 * 60)


def test_the_image_push_waits_for_the_acrpush_grant_to_take_effect() -> None:
    staging = run("staging")
    image = staging.one(IMAGE, "model-image-image")
    waits = [r for r in staging.all(SLEEP) if r.urn in closure(staging, image)]
    assert [w.inputs["createDuration"] for w in waits] == ["10m"]
    grants = [r for r in staging.all(ROLE) if r.name.startswith("registry-acrpush-")]
    assert {g.inputs["principalId"] for g in grants} == {
        d["objectId"] for d in stack_values("staging")[f"{PROJECT}:deployers"]
    }
    for grant in grants:
        assert grant.inputs["roleDefinitionId"].endswith(ACR_PUSH)
        assert grant.urn in waits[0].dependencies


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_pods_pull_only_after_the_kubelet_acrpull_grant(stack: str) -> None:
    staging = run("staging")
    run_ = staging if stack == "staging" else run("prod", stack_outputs={STAGING_REF: staging.outputs})
    pull = run_.one(ROLE, "cluster-kubelet-acr-pull")
    assert pull.inputs["roleDefinitionId"].endswith(ACR_PULL)
    pods = (
        run_.one("kubernetes:argoproj.io/v1alpha1:Rollout"),
        *run_.all("kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"),
    )
    assert len(pods) == 3  # the serving pods, and the Jobs of the smoke test and of the analysis
    for resource in pods:
        assert pull.urn in closure(run_, resource), resource.name


def test_every_kubernetes_object_waits_for_the_deployers_data_plane_role() -> None:
    staging = run("staging")
    grants = {r.urn for r in staging.all(ROLE) if r.name.startswith("cluster-cluster-admin-")}
    assert len(grants) == len(stack_values("staging")[f"{PROJECT}:deployers"])
    wait = staging.one(SLEEP, "cluster-data-plane-propagation")
    for resource in staging.resources:
        if resource.type.startswith("kubernetes:"):
            assert {*grants, wait.urn} <= closure(staging, resource), resource.name


def test_a_destroyed_staging_can_be_created_again_while_its_old_vault_is_soft_deleted() -> None:
    first = run("staging").one(VAULT).inputs["vaultName"]
    # Destroyed: the vault is soft-deleted (purge protection keeps its name 90 days) and the state is gone.
    second = run("staging", soft_deleted_key_vaults=(first,), random_seed="created-again").one(VAULT).inputs
    assert second["vaultName"] != first
    assert second["vaultName"].startswith("mlops-staging-kv-")
    # The same stack keeps its name from run to run (the suffix lives in its state).
    assert run("staging").one(VAULT).inputs["vaultName"] == first


def test_the_dispatch_token_secret_exists_before_its_grant_and_pulumi_never_overwrites_it() -> None:
    staging = run("staging")
    secret = staging.one(SECRET, "key-vault-dispatch-token-secret")
    assert secret.inputs["secretName"] == "dispatch-token"
    assert secret.inputs["properties"]["value"].startswith("unset: az keyvault secret set")
    assert "properties" in secret.secret_inputs
    assert set(secret.ignore_changes) == {"properties", "tags"}
    assert secret.retain_on_delete is True
    grant = staging.one(ROLE, "listener-kv-dispatch-token")
    assert secret.urn in grant.dependencies
    assert grant.inputs["scope"].endswith("/secrets/dispatch-token")


def test_no_host_key_is_read_from_the_new_function_app() -> None:
    staging = run("staging")
    assert "azure-native:web:listWebAppHostKeys" not in [token for token, _ in staging.invokes]


def serve_through_ingress(values: dict[str, Any]) -> None:
    serving = values["mlops-serving:serving"]
    serving.update(exposure="ingress", host="wine.models.example.com", tlsSecretName="wine-tls")


def test_ingress_exposure_turns_on_the_app_routing_add_on_its_ingress_class_needs() -> None:
    staging = run("staging", serve_through_ingress)
    cluster = staging.one("azure-native:containerservice:ManagedCluster")
    assert cluster.inputs["ingressProfile"] == {"webAppRouting": {"enabled": True}}
    ingress = staging.one("kubernetes:networking.k8s.io/v1:Ingress")
    assert ingress.inputs["spec"]["ingressClassName"] == "webapprouting.kubernetes.azure.com"


def test_a_preview_with_a_short_lived_cli_token_still_runs_it_touches_no_cluster_object() -> None:
    values = stack_values("staging")
    options = ProgramOptions(
        caller_token_seconds_left=20 * 60,
        registry_models=registered_before(parse_settings(values, "Pulumi.staging.yaml")),
    )
    assert preview_program(ROOT / "__main__.py", values, project=PROJECT, stack="staging", options=options).resources


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_role_assignment_is_deleted_before_it_is_replaced(stack: str) -> None:
    # ARM refuses a second assignment of the same role to the same principal at the same scope (409
    # RoleAssignmentExists), which a create-before-delete replacement would be.
    staging = run("staging")
    run_ = staging if stack == "staging" else run("prod", stack_outputs={STAGING_REF: staging.outputs})
    assignments = run_.all(ROLE)
    assert assignments
    assert [r.name for r in assignments if not r.delete_before_replace] == []
