"""The policy pack in `policies/`: every rule passes on what both stacks declare, fires on a broken copy of a real
resource, and runs the same way through pulumi-policy's own analyzer, as the engine starts it."""

from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from google.protobuf import empty_pb2, struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, serialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy
from ruamel.yaml import YAML

from offline.harness import RecordedResource
from offline.preview import StackRun
from policies.rules import (
    PACK_NAME,
    RULES,
    STACK_RULES,
    Rule,
    Subject,
    build_policies,
    plaintext_secret_reason,
)
from tests.conftest import run_variant

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
RULES_BY_NAME = {rule.name: rule for rule in RULES}

REGISTRY = "azure-native:containerregistry:Registry"
CLUSTER = "azure-native:containerservice:ManagedCluster"
AGENT_POOL = "azure-native:containerservice:AgentPool"
WORKSPACE = "azure-native:databricks:Workspace"
VAULT = "azure-native:keyvault:Vault"
VAULT_SECRET = "azure-native:keyvault:Secret"
STORAGE = "azure-native:storage:StorageAccount"
WEB_APP = "azure-native:web:WebApp"
FTP_ALLOWED = "azure-native:web:WebAppFtpAllowed"
SCM_ALLOWED = "azure-native:web:WebAppScmAllowed"
WEBHOOK = "databricks:index/mlflowWebhook:MlflowWebhook"
IMAGE = "docker-build:index:Image"
ACTION_GROUP = "azure-native:monitor:ActionGroup"
DEPLOYMENT = "kubernetes:argoproj.io/v1alpha1:Rollout"  # the model's pods
JOB = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"  # the smoke test's Job, one of the analysis' Job metrics
SMOKE = "model-smoke-template"
POD_SPEC = "spec.template.spec"
JOB_POD_SPEC = "spec.metrics[0].provider.job.spec.template.spec"
CONTAINER = f"{POD_SPEC}.containers[0]"
JOB_CONTAINER = f"{JOB_POD_SPEC}.containers[0]"


# --- Adapter: a recorded resource as a rule sees it ---------------------------------------------------------------


@dataclass
class Variant:
    """A mutable copy of a recorded resource, to break on purpose."""

    resource: RecordedResource
    inputs: dict[str, Any]
    secret_inputs: set[str]
    additional_secret_outputs: list[str]
    urn: str
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, resource: RecordedResource) -> Variant:
        return cls(
            resource=resource,
            inputs=copy.deepcopy(resource.inputs),
            secret_inputs=set(resource.secret_inputs),
            additional_secret_outputs=list(resource.additional_secret_outputs),
            urn=resource.urn,
        )

    def subject(self) -> Subject:
        return Subject(
            type=self.resource.type,
            name=self.resource.name,
            urn=self.urn,
            # The engine hands policies this very proxy: rules must read it as a Mapping, not a dict.
            props=unknown_checking_proxy(copy.deepcopy(self.inputs)),
            additional_secret_outputs=tuple(self.additional_secret_outputs),
            secret_inputs=frozenset(self.secret_inputs),
            config=self.config,
        )


def subject_of(resource: RecordedResource) -> Subject:
    return Variant.of(resource).subject()


def violations(subject: Subject) -> dict[str, list[str]]:
    """Every rule's messages for one resource, only the rules that fired."""
    found = {rule.name: rule.evaluate(subject) for rule in RULES}
    return {name: messages for name, messages in found.items() if messages}


def at(data: dict[str, Any], path: str) -> Any:
    """The container at a dotted path with `[i]` indexes, e.g. `spec.template.spec.containers[0]`."""
    node: Any = data
    for part in path.split("."):
        match = re.fullmatch(r"(\w+)((?:\[\d+\])*)", part)
        assert match is not None, part
        node = node[match.group(1)]
        for index in re.findall(r"\[(\d+)\]", match.group(2)):
            node = node[int(index)]
    return node


def put(data: dict[str, Any], path: str, value: Any) -> None:
    parent, _, key = path.rpartition(".")
    (at(data, parent) if parent else data)[key] = value


def drop(data: dict[str, Any], path: str) -> None:
    parent, _, key = path.rpartition(".")
    del (at(data, parent) if parent else data)[key]


# The shipped staging registers models in Unity Catalog (a job trigger, no registry webhook); the Workspace Model
# Registry, still an opt-in for existing workspaces, declares the MlflowWebhook whose URL the secrets rule guards.
LEGACY_STAGING = "staging-workspace-registry"


def _workspace_registry(values: dict[str, Any]) -> None:
    values["mlops-serving:modelRegistry"] = {"type": "workspace"}
    values["mlops-serving:model"].update(name="wine-quality", catalog="workspace")


@pytest.fixture(scope="module")
def recorded(staging: StackRun, prod: StackRun) -> dict[str, list[RecordedResource]]:
    legacy = run_variant("staging", _workspace_registry)
    return {"staging": staging.run.resources, "prod": prod.run.resources, LEGACY_STAGING: legacy.resources}


def all_resources(recorded: dict[str, list[RecordedResource]]) -> Iterator[RecordedResource]:
    for resources in recorded.values():
        yield from resources


def one(recorded: dict[str, list[RecordedResource]], stack: str, type_: str, name: str | None = None) -> Variant:
    found = [r for r in recorded[stack] if r.type == type_ and (name is None or r.name == name)]
    assert len(found) == 1, f"{stack}: expected one {type_} {name or ''}, found {[r.name for r in found]}"
    return Variant.of(found[0])


# --- The pack ------------------------------------------------------------------------------------------------------


ALL_RULE_NAMES = [*(rule.name for rule in RULES), *(rule.name for rule in STACK_RULES)]


def test_every_policy_in_the_pack_is_mandatory_and_named_once() -> None:
    policies = build_policies()
    assert [p.name for p in policies] == ALL_RULE_NAMES
    assert len(set(ALL_RULE_NAMES)) == len(ALL_RULE_NAMES)
    for policy in policies:
        assert isinstance(policy, ResourceValidationPolicy | StackValidationPolicy)
        assert policy.enforcement_level is EnforcementLevel.MANDATORY, policy.name
        assert policy.description
        assert policy.remediation_steps


def test_the_pack_runs_on_the_python_runtime_with_the_sdk_versions_it_was_tested_with() -> None:
    project = YAML(typ="safe").load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    pins = dict(line.split("==") for line in (PACK_DIR / "requirements.txt").read_text().split())
    assert pins == {"pulumi-policy": version("pulumi-policy"), "pulumi": version("pulumi")}


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_rule_applies_to_resources_of_both_stacks_taken_together(
    rule: Rule, recorded: dict[str, list[RecordedResource]]
) -> None:
    matched = [r.name for r in all_resources(recorded) if rule.applies_to(r.type)]
    assert matched, f"{rule.name} matches no resource either stack declares: it would be a silent no-op"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_every_resource_both_stacks_declare_passes_the_rule(
    rule: Rule, recorded: dict[str, list[RecordedResource]]
) -> None:
    failures = {
        f"{stack}:{r.type}::{r.name}": messages
        for stack, resources in recorded.items()
        for r in resources
        if (messages := rule.evaluate(subject_of(r)))
    }
    assert failures == {}


# --- A broken copy of a real resource fires exactly one rule, naming the property ----------------------------------

Mutation = Callable[[Variant], None]


@dataclass(frozen=True)
class Broken:
    case: str
    stack: str
    type: str
    name: str | None
    mutate: Mutation
    rule: str
    names: str
    """A fragment every message must contain: the property (and setting) at fault."""


def _set(path: str, value: Any) -> Mutation:
    return lambda v: put(v.inputs, path, value)


def _del(path: str) -> Mutation:
    return lambda v: drop(v.inputs, path)


def _not_secret(prop: str) -> Mutation:
    return lambda v: v.secret_inputs.discard(prop)


def _not_in_additional_secret_outputs(prop: str) -> Mutation:
    return lambda v: v.additional_secret_outputs.remove(prop)


def _in_stack(stack: str, then: Mutation) -> Mutation:
    def mutate(v: Variant) -> None:
        v.urn = re.sub(r"^urn:pulumi:[^:]+::", f"urn:pulumi:{stack}::", v.urn)
        then(v)

    return mutate


def _app_setting(name: str, value: str) -> Mutation:
    def mutate(v: Variant) -> None:
        settings = v.inputs["siteConfig"]["appSettings"]
        for setting in settings:
            if setting["name"] == name:
                setting["value"] = value
                return
        settings.append({"name": name, "value": value})

    return mutate


def _add_volume(volume: dict[str, Any]) -> Mutation:
    return lambda v: at(v.inputs, POD_SPEC)["volumes"].append(volume)


GITHUB_TOKEN = "ghp_" + "A1b2C3d4" * 4 + "E5f6"
ACCOUNT_KEY_CONNECTION = (
    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=bm90LWEta2V5;EndpointSuffix=core.windows.net"
)
ACR, AKS, AKS_IP = "acr-no-shared-credentials", "aks-entra-id-and-workload-identity", "aks-no-node-public-ip"
DBX, KV, SA = (
    "databricks-no-public-ip",
    "key-vault-rbac-soft-delete-purge-protection",
    "storage-account-no-keys-no-public-tls12",
)
WEB_TLS, WEB_SECRETS, SECRETS = "web-app-https-tls12-no-ftp", "web-app-secrets-from-key-vault", "secrets-marked-secret"
BASIC_AUTH = "web-app-no-basic-publishing-credentials"
K8S_SEC, K8S_RES, K8S_DIGEST = (
    "kubernetes-pod-security",
    "kubernetes-resource-requests-and-limits",
    "kubernetes-images-by-digest",
)

BROKEN = [
    Broken("registry-admin-user", "staging", REGISTRY, None, _set("adminUserEnabled", True), ACR, "adminUserEnabled"),
    Broken(
        "registry-anonymous-pull",
        "staging",
        REGISTRY,
        None,
        _set("anonymousPullEnabled", True),
        ACR,
        "anonymousPullEnabled",
    ),
    Broken(
        "aks-local-accounts", "prod", CLUSTER, None, _set("disableLocalAccounts", False), AKS, "disableLocalAccounts"
    ),
    Broken("aks-kubernetes-rbac-off", "prod", CLUSTER, None, _set("enableRBAC", False), AKS, "enableRBAC"),
    Broken(
        "aks-azure-rbac-off",
        "prod",
        CLUSTER,
        None,
        _set("aadProfile.enableAzureRBAC", False),
        AKS,
        "aadProfile.enableAzureRBAC",
    ),
    Broken("aks-legacy-aad", "staging", CLUSTER, None, _set("aadProfile.managed", False), AKS, "aadProfile.managed"),
    Broken(
        "aks-no-oidc-issuer",
        "staging",
        CLUSTER,
        None,
        _set("oidcIssuerProfile.enabled", False),
        AKS,
        "oidcIssuerProfile.enabled",
    ),
    Broken(
        "aks-no-workload-identity",
        "prod",
        CLUSTER,
        None,
        _del("securityProfile.workloadIdentity"),
        AKS,
        "securityProfile.workloadIdentity.enabled",
    ),
    Broken(
        "aks-no-network-policy",
        "prod",
        CLUSTER,
        None,
        _set("networkProfile.networkPolicy", "none"),
        AKS,
        "networkProfile.networkPolicy",
    ),
    Broken(
        "aks-system-pool-public-ip",
        "prod",
        CLUSTER,
        None,
        lambda v: v.inputs["agentPoolProfiles"][0].update(enableNodePublicIP=True),
        AKS_IP,
        "agentPoolProfiles[0].enableNodePublicIP",
    ),
    Broken(
        "aks-user-pool-public-ip",
        "staging",
        AGENT_POOL,
        None,
        _set("enableNodePublicIP", True),
        AKS_IP,
        "enableNodePublicIP",
    ),
    Broken(
        "databricks-public-ip",
        "staging",
        WORKSPACE,
        None,
        _set("parameters.enableNoPublicIp.value", False),
        DBX,
        "parameters.enableNoPublicIp.value",
    ),
    Broken("databricks-standard-sku", "staging", WORKSPACE, None, _set("sku.name", "standard"), DBX, "sku.name"),
    Broken(
        "vault-access-policies",
        "staging",
        VAULT,
        None,
        _set("properties.enableRbacAuthorization", False),
        KV,
        "properties.enableRbacAuthorization",
    ),
    Broken(
        "vault-soft-delete-off",
        "staging",
        VAULT,
        None,
        _set("properties.enableSoftDelete", False),
        KV,
        "properties.enableSoftDelete",
    ),
    Broken(
        "vault-no-purge-protection-in-staging",
        "staging",
        VAULT,
        None,
        _del("properties.enablePurgeProtection"),
        KV,
        "properties.enablePurgeProtection",
    ),
    Broken(
        "vault-no-purge-protection-in-prod",
        "staging",
        VAULT,
        None,
        _in_stack("prod", _del("properties.enablePurgeProtection")),
        KV,
        "properties.enablePurgeProtection",
    ),
    Broken(
        "storage-shared-key",
        "staging",
        STORAGE,
        "listener-storage",
        _set("allowSharedKeyAccess", True),
        SA,
        "allowSharedKeyAccess",
    ),
    Broken(
        "storage-public-blobs",
        "staging",
        STORAGE,
        "listener-storage",
        _set("allowBlobPublicAccess", True),
        SA,
        "allowBlobPublicAccess",
    ),
    Broken(
        "storage-tls10",
        "staging",
        STORAGE,
        "listener-package-storage",
        _set("minimumTlsVersion", "TLS1_0"),
        SA,
        "minimumTlsVersion",
    ),
    Broken(
        "storage-plain-http",
        "staging",
        STORAGE,
        "listener-storage",
        _set("enableHttpsTrafficOnly", False),
        SA,
        "enableHttpsTrafficOnly",
    ),
    Broken(
        "package-storage-shared-key",
        "staging",
        STORAGE,
        "listener-package-storage",
        _set("allowSharedKeyAccess", True),
        SA,
        "allowSharedKeyAccess",
    ),
    Broken("app-plain-http", "staging", WEB_APP, None, _set("httpsOnly", False), WEB_TLS, "httpsOnly"),
    Broken(
        "app-tls10",
        "staging",
        WEB_APP,
        None,
        _set("siteConfig.minTlsVersion", "1.0"),
        WEB_TLS,
        "siteConfig.minTlsVersion",
    ),
    Broken(
        "app-scm-tls11",
        "staging",
        WEB_APP,
        None,
        _set("siteConfig.scmMinTlsVersion", "1.1"),
        WEB_TLS,
        "siteConfig.scmMinTlsVersion",
    ),
    Broken(
        "app-ftp", "staging", WEB_APP, None, _set("siteConfig.ftpsState", "AllAllowed"), WEB_TLS, "siteConfig.ftpsState"
    ),
    # What other plans require is what a Flex Consumption site refuses (ARM BadRequest 51021).
    Broken(
        "flex-app-ftps-state-disabled",
        "staging",
        WEB_APP,
        None,
        _set("siteConfig.ftpsState", "Disabled"),
        WEB_TLS,
        "siteConfig.ftpsState must be unset on a Flex Consumption app",
    ),
    # The same app off Flex Consumption: FTP(S) must then be switched off explicitly.
    Broken(
        "non-flex-app-ftps-state-unset",
        "staging",
        WEB_APP,
        None,
        _del("functionAppConfig"),
        WEB_TLS,
        "siteConfig.ftpsState must be 'Disabled', not unset",
    ),
    Broken("app-scm-basic-auth", "staging", SCM_ALLOWED, None, _set("allow", True), BASIC_AUTH, "allow"),
    Broken(
        "app-remote-debugging",
        "staging",
        WEB_APP,
        None,
        _set("siteConfig.remoteDebuggingEnabled", True),
        WEB_TLS,
        "siteConfig.remoteDebuggingEnabled",
    ),
    Broken(
        "app-plain-webhook-secret",
        "staging",
        WEB_APP,
        None,
        _app_setting("LISTENER_WEBHOOK_SECRET", "s3cr3t-hmac-value"),
        WEB_SECRETS,
        "(LISTENER_WEBHOOK_SECRET)",
    ),
    Broken(
        "app-host-storage-account-key",
        "staging",
        WEB_APP,
        None,
        _app_setting("AzureWebJobsStorage", ACCOUNT_KEY_CONNECTION),
        WEB_SECRETS,
        "(AzureWebJobsStorage) is a connection string with an AccountKey",
    ),
    Broken(
        "app-token-in-innocent-setting",
        "staging",
        WEB_APP,
        None,
        _app_setting("LISTENER_GITHUB_API_URL", GITHUB_TOKEN),
        WEB_SECRETS,
        "(LISTENER_GITHUB_API_URL) looks like an access token",
    ),
    Broken("webhook-url-plain", LEGACY_STAGING, WEBHOOK, None, _not_secret("httpUrlSpec"), SECRETS, "httpUrlSpec"),
    Broken(
        "webhook-url-plain-in-state",
        LEGACY_STAGING,
        WEBHOOK,
        None,
        _not_in_additional_secret_outputs("httpUrlSpec"),
        SECRETS,
        "httpUrlSpec is not in additionalSecretOutputs",
    ),
    Broken(
        "vault-secret-value-plain",
        "staging",
        VAULT_SECRET,
        "key-vault-job-token-secret",
        _not_secret("properties"),
        SECRETS,
        "properties",
    ),
    Broken(
        "vault-secret-plain-in-state",
        "staging",
        VAULT_SECRET,
        "key-vault-webhook-hmac-secret",
        _not_in_additional_secret_outputs("properties"),
        SECRETS,
        "properties is not in additionalSecretOutputs",
    ),
    Broken(
        "image-build-secret-plain", "staging", IMAGE, "model-image-image", _not_secret("secrets"), SECRETS, "secrets"
    ),
    Broken("sbom-build-secret-plain", "staging", IMAGE, "model-image-sbom", _not_secret("secrets"), SECRETS, "secrets"),
    Broken(
        "alert-webhook-url-plain",
        "prod",
        ACTION_GROUP,
        None,
        _not_secret("webhookReceivers"),
        SECRETS,
        "webhookReceivers",
    ),
    Broken(
        "alert-webhook-url-plain-in-state",
        "staging",
        ACTION_GROUP,
        None,
        _not_in_additional_secret_outputs("webhookReceivers"),
        SECRETS,
        "webhookReceivers is not in additionalSecretOutputs",
    ),
    Broken(
        "container-runs-as-root",
        "prod",
        DEPLOYMENT,
        None,
        _set(f"{CONTAINER}.securityContext.runAsNonRoot", False),
        K8S_SEC,
        f"{CONTAINER}.securityContext.runAsNonRoot",
    ),
    Broken(
        "container-uid-0",
        "staging",
        JOB,
        SMOKE,
        _set(f"{JOB_CONTAINER}.securityContext.runAsUser", 0),
        K8S_SEC,
        f"{JOB_CONTAINER}.securityContext.runAsUser",
    ),
    Broken(
        "container-privilege-escalation",
        "prod",
        DEPLOYMENT,
        None,
        _set(f"{CONTAINER}.securityContext.allowPrivilegeEscalation", True),
        K8S_SEC,
        f"{CONTAINER}.securityContext.allowPrivilegeEscalation",
    ),
    Broken(
        "container-writable-root",
        "staging",
        DEPLOYMENT,
        None,
        _del(f"{CONTAINER}.securityContext.readOnlyRootFilesystem"),
        K8S_SEC,
        f"{CONTAINER}.securityContext.readOnlyRootFilesystem",
    ),
    Broken(
        "container-keeps-capabilities",
        "prod",
        JOB,
        SMOKE,
        _set(f"{JOB_CONTAINER}.securityContext.capabilities.drop", ["NET_RAW"]),
        K8S_SEC,
        f"{JOB_CONTAINER}.securityContext.capabilities.drop",
    ),
    Broken(
        "container-privileged",
        "prod",
        DEPLOYMENT,
        None,
        _set(f"{CONTAINER}.securityContext.privileged", True),
        K8S_SEC,
        f"{CONTAINER}.securityContext.privileged",
    ),
    Broken("pod-host-network", "prod", DEPLOYMENT, None, _set(f"{POD_SPEC}.hostNetwork", True), K8S_SEC, "hostNetwork"),
    Broken(
        "pod-host-path",
        "staging",
        DEPLOYMENT,
        None,
        _add_volume({"name": "node-root", "hostPath": {"path": "/"}}),
        K8S_SEC,
        f"{POD_SPEC}.volumes[1].hostPath",
    ),
    Broken(
        "container-no-memory-limit",
        "prod",
        JOB,
        SMOKE,
        _del(f"{JOB_CONTAINER}.resources.limits.memory"),
        K8S_RES,
        f"{JOB_CONTAINER}.resources.limits.memory",
    ),
    Broken(
        "container-no-cpu-request",
        "prod",
        DEPLOYMENT,
        None,
        _del(f"{CONTAINER}.resources.requests.cpu"),
        K8S_RES,
        f"{CONTAINER}.resources.requests.cpu",
    ),
    Broken(
        "container-image-by-tag",
        "prod",
        DEPLOYMENT,
        None,
        lambda v: put(v.inputs, f"{CONTAINER}.image", at(v.inputs, CONTAINER)["image"].split("@")[0]),
        K8S_DIGEST,
        f"{CONTAINER}.image",
    ),
]


@pytest.mark.parametrize("broken", BROKEN, ids=lambda b: b.case)
def test_a_broken_copy_of_a_real_resource_fires_exactly_that_rule(
    broken: Broken, recorded: dict[str, list[RecordedResource]]
) -> None:
    variant = one(recorded, broken.stack, broken.type, broken.name)
    assert violations(variant.subject()) == {}, "the unbroken resource must pass every rule"
    broken.mutate(variant)
    fired = violations(variant.subject())
    assert list(fired) == [broken.rule]
    assert len(fired[broken.rule]) == 1, fired
    assert broken.names in fired[broken.rule][0]


def test_every_rule_has_a_broken_case() -> None:
    assert {b.rule for b in BROKEN} == set(RULES_BY_NAME)


# --- Rule semantics worth pinning ------------------------------------------------------------------------------------


def test_purge_protection_is_required_only_in_the_configured_stacks(
    recorded: dict[str, list[RecordedResource]],
) -> None:
    vault = one(recorded, "staging", VAULT)
    drop(vault.inputs, "properties.enablePurgeProtection")
    vault.urn = vault.urn.replace("urn:pulumi:staging::", "urn:pulumi:dev::")
    assert violations(vault.subject()) == {}
    vault.urn = vault.urn.replace("urn:pulumi:dev::", "urn:pulumi:staging::")
    vault.config = {"purgeProtectionStacks": ["prod"]}
    assert violations(vault.subject()) == {}
    vault.config = {}
    assert list(violations(vault.subject())) == [KV]


def test_a_shared_key_exemption_is_by_logical_name_and_configurable(
    recorded: dict[str, list[RecordedResource]],
) -> None:
    package = one(recorded, "staging", STORAGE, "listener-package-storage")
    # No account of the program keeps keys (Pulumi uploads no blob), so none is exempt by default.
    assert package.inputs["allowSharedKeyAccess"] is False
    package.inputs["allowSharedKeyAccess"] = True
    fired = violations(package.subject())
    assert list(fired) == [SA]
    (message,) = fired[SA]
    assert message.startswith("allowSharedKeyAccess must be false")
    # An exemption is by logical name, and an exempt account must still have its keys flagged for rotation.
    package.config = {"sharedKeyAccessExemptions": ["listener-package-storage"]}
    (message,) = violations(package.subject())[SA]
    assert message.startswith("keyPolicy.keyExpirationPeriodInDays must be set")
    package.inputs["keyPolicy"] = {"keyExpirationPeriodInDays": 90}
    assert violations(package.subject()) == {}


def test_run_as_non_root_may_come_from_the_pod_but_a_container_cannot_opt_out(
    recorded: dict[str, list[RecordedResource]],
) -> None:
    deployment = one(recorded, "staging", DEPLOYMENT)
    drop(deployment.inputs, f"{CONTAINER}.securityContext.runAsNonRoot")
    assert violations(deployment.subject()) == {}
    drop(deployment.inputs, f"{POD_SPEC}.securityContext.runAsNonRoot")
    assert list(violations(deployment.subject())) == [K8S_SEC]


def test_init_containers_and_other_workload_kinds_are_checked(recorded: dict[str, list[RecordedResource]]) -> None:
    job = one(recorded, "prod", JOB, SMOKE)
    pod_spec = copy.deepcopy(at(job.inputs, JOB_POD_SPEC))
    init = copy.deepcopy(pod_spec["containers"][0])
    init["name"] = "warm-cache"
    init["image"] = "busybox:latest"
    pod_spec["initContainers"] = [init]
    kinds = {
        "kubernetes:core/v1:Pod": {"spec": pod_spec},
        "kubernetes:batch/v1:CronJob": {"spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}},
        "kubernetes:apps/v1:StatefulSet": {"spec": {"template": {"spec": pod_spec}}},
    }
    for kind, inputs in kinds.items():
        subject = Subject(
            type=kind, name="w", urn=f"urn:pulumi:prod::p::{kind}::w", props=unknown_checking_proxy(inputs)
        )
        (message,) = violations(subject)[K8S_DIGEST]
        assert ".initContainers[0].image must be referenced by digest" in message, kind


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LISTENER_WEBHOOK_SECRET", "@Microsoft.KeyVault(SecretUri=https://kv-1.vault.azure.net/secrets/hmac)"),
        ("LISTENER_JOB_TOKEN", "@Microsoft.KeyVault(VaultName=kv-1;SecretName=job-token;SecretVersion=0a1b)"),
        ("APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=0000;IngestionEndpoint=https://x.example/"),
        ("AzureWebJobsStorage__credential", "managedidentity"),
        ("LISTENER_QUEUE_ACCOUNT_URL", "https://acct.queue.core.windows.net"),
    ],
)
def test_settings_that_are_not_plaintext_secrets(name: str, value: str) -> None:
    assert plaintext_secret_reason(name, value) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LISTENER_WEBHOOK_SECRET", "@Microsoft.KeyVault(SecretUri=not-a-uri) and more"),
        ("SERVICE_API_KEY", "abc123"),
        ("databricksToken", "plain"),
        ("DOWNLOAD_URL", "https://acct.blob.core.windows.net/c/b?sv=2024&sig=c2lnbmF0dXJl"),
        ("DB", "Server=tcp:db;Password=hunter2;"),
        ("DATABRICKS_HOST", "dapi" + "0123456789abcdef" * 2),
    ],
)
def test_settings_that_are_plaintext_secrets(name: str, value: str) -> None:
    reason = plaintext_secret_reason(name, value)
    assert reason is not None
    assert value not in reason, "a violation message must never quote the secret"


def test_a_value_unknown_during_preview_defers_the_rule_to_pulumi_policy(
    recorded: dict[str, list[RecordedResource]],
) -> None:
    # An image built in this update has no digest during preview; pulumi-policy reports such a rule as "can't run
    # during preview" and runs it on `pulumi up`. The rule must let the proxy's error through, not judge the value.
    deployment = one(recorded, "staging", DEPLOYMENT)
    put(deployment.inputs, f"{CONTAINER}.image", UNKNOWN_STRING_VALUE)
    with pytest.raises(UnknownValueError):
        RULES_BY_NAME[K8S_DIGEST].evaluate(deployment.subject())


# --- Stack rules: what one resource cannot show ----------------------------------------------------------------------

BASIC_AUTH_DECLARED = "web-app-basic-publishing-policies-declared"
STACK_RULES_BY_NAME = {rule.name: rule for rule in STACK_RULES}


def stack_subjects(resources: list[RecordedResource]) -> list[Subject]:
    return [
        dataclasses.replace(subject_of(r), name_from=frozenset(r.property_dependencies.get("name", ())))
        for r in resources
    ]


@pytest.mark.parametrize("rule", STACK_RULES, ids=lambda rule: rule.name)
def test_every_stack_passes_the_stack_rule(rule: Any, recorded: dict[str, list[RecordedResource]]) -> None:
    assert {stack: rule.evaluate(stack_subjects(resources)) for stack, resources in recorded.items()} == {
        stack: [] for stack in recorded
    }


def test_a_flex_app_needs_only_its_scm_policy_and_any_other_app_its_ftp_policy_too(
    recorded: dict[str, list[RecordedResource]],
) -> None:
    subjects = stack_subjects(recorded["staging"])
    assert not [s for s in subjects if s.type == FTP_ALLOWED], "the Flex listener declares no FTP policy"
    assert STACK_RULES_BY_NAME[BASIC_AUTH_DECLARED].evaluate(subjects) == []
    not_flex = [
        dataclasses.replace(s, props={k: v for k, v in s.props.items() if k != "functionAppConfig"})
        if s.type == "azure-native:web:WebApp"
        else s
        for s in subjects
    ]
    [message] = STACK_RULES_BY_NAME[BASIC_AUTH_DECLARED].evaluate(not_flex)
    assert "no WebAppFtpAllowed with allow=false" in message


@pytest.mark.parametrize("policy", [SCM_ALLOWED])
def test_an_app_without_one_of_its_basic_publishing_policies_fires_the_stack_rule(
    policy: str, recorded: dict[str, list[RecordedResource]]
) -> None:
    kept = [r for r in recorded["staging"] if r.type != policy]
    [message] = STACK_RULES_BY_NAME[BASIC_AUTH_DECLARED].evaluate(stack_subjects(kept))
    assert f"no {policy.rsplit(':', 1)[-1]} with allow=false" in message
    allowed = [
        dataclasses.replace(s, props={**s.props, "allow": True}) if s.type == policy else s
        for s in stack_subjects(recorded["staging"])
    ]
    assert len(STACK_RULES_BY_NAME[BASIC_AUTH_DECLARED].evaluate(allowed)) == 1


PROGRESSIVE = "model-released-progressively"
ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"


def _with_canary(resources: list[RecordedResource], edit: Callable[[dict[str, Any]], None]) -> list[Subject]:
    def changed(resource: RecordedResource) -> RecordedResource:
        if resource.type != ROLLOUT:
            return resource
        inputs = copy.deepcopy(resource.inputs)
        edit(inputs["spec"]["strategy"]["canary"])
        return dataclasses.replace(resource, inputs=inputs)

    return stack_subjects([changed(r) for r in resources])


@pytest.mark.parametrize(
    ("edit", "fired"),
    [
        (lambda canary: canary.pop("analysis"), "no background analysis"),
        (
            lambda canary: canary.update(steps=[s for s in canary["steps"] if "setWeight" not in s]),
            "no setWeight step",
        ),
        (lambda canary: canary["analysis"]["templates"][0].update(templateName="other"), "does not declare"),
    ],
)
def test_a_prod_canary_without_steps_or_analysis_fires_the_stack_rule(
    edit: Callable[[dict[str, Any]], None], fired: str, recorded: dict[str, list[RecordedResource]]
) -> None:
    [message] = STACK_RULES_BY_NAME[PROGRESSIVE].evaluate(_with_canary(recorded["prod"], edit))
    assert fired in message
    # Staging may release as it likes: the rule holds prod.
    assert STACK_RULES_BY_NAME[PROGRESSIVE].evaluate(_with_canary(recorded["staging"], edit)) == []


def test_a_prod_model_served_by_a_deployment_fires_the_stack_rule(recorded: dict[str, list[RecordedResource]]) -> None:
    subjects = stack_subjects(recorded["prod"])
    rollout = next(s for s in subjects if s.type == ROLLOUT)
    deployment = dataclasses.replace(rollout, type="kubernetes:apps/v1:Deployment", name="model-deployment")
    messages = STACK_RULES_BY_NAME[PROGRESSIVE].evaluate([s for s in subjects if s.type != ROLLOUT] + [deployment])
    assert messages == [
        "model-deployment: a model Deployment rolls every pod over at once; serve the model from a Rollout"
    ]


# --- Through pulumi-policy, as the engine runs the pack --------------------------------------------------------------


def analyze_request(variant: Variant) -> analyzer_pb2.AnalyzeRequest:
    """The request the engine sends for a resource: inputs with secrets marked, options included."""
    properties = {
        key: Secret(value) if key in variant.secret_inputs else value for key, value in variant.inputs.items()
    }
    struct = struct_pb2.Struct()
    # pulumi-policy's own serializer writes the engine's wire signatures for secrets and assets.
    struct.update(serialize_properties(properties))
    resource = variant.resource
    return analyzer_pb2.AnalyzeRequest(
        urn=variant.urn,
        type=resource.type,
        name=resource.name,
        properties=struct,
        options=analyzer_pb2.AnalyzerResourceOptions(
            protect=resource.protect,
            additionalSecretOutputs=variant.additional_secret_outputs,
            parent=resource.parent,
        ),
    )


@pytest.fixture(scope="module")
def pack_server() -> Iterator[Any]:
    """The pack started the way the engine starts it: `python -m pulumi.policy <engine> .` in `policies/`."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=PACK_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            process.kill()
            _, err = process.communicate(timeout=10)
            pytest.fail(f"the policy pack did not start: {port!r} {err}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_the_engine_sees_every_rule_as_a_mandatory_policy(pack_server: Any) -> None:
    info = pack_server.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == PACK_NAME
    assert [p.name for p in info.policies] == ALL_RULE_NAMES
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}
    schemas = {p.name: dict(p.configSchema.properties) for p in info.policies if p.configSchema.properties}
    assert set(schemas) == {KV, SA}


def test_the_engine_gets_no_diagnostic_for_what_both_stacks_declare(
    pack_server: Any, recorded: dict[str, list[RecordedResource]]
) -> None:
    diagnostics = {
        f"{r.type}::{r.name}": [d.message for d in response.diagnostics]
        for r in all_resources(recorded)
        for response in [pack_server.Analyze(analyze_request(Variant.of(r)), timeout=30)]
        if response.diagnostics
    }
    assert diagnostics == {}


@pytest.mark.parametrize(
    "broken",
    [b for b in BROKEN if b.case in ("registry-admin-user", "app-plain-webhook-secret", "container-runs-as-root")],
    ids=lambda b: b.case,
)
def test_the_engine_gets_a_mandatory_diagnostic_for_a_broken_resource(
    broken: Broken, pack_server: Any, recorded: dict[str, list[RecordedResource]]
) -> None:
    variant = one(recorded, broken.stack, broken.type, broken.name)
    broken.mutate(variant)
    response = pack_server.Analyze(analyze_request(variant), timeout=30)
    assert [(d.policyName, d.enforcementLevel) for d in response.diagnostics] == [(broken.rule, analyzer_pb2.MANDATORY)]
    assert broken.names in response.diagnostics[0].message


def analyze_stack_request(resources: list[RecordedResource]) -> analyzer_pb2.AnalyzeStackRequest:
    """What the engine sends a stack policy: every resource, with the URNs each property came from."""
    analyzed = []
    for r in resources:
        single = analyze_request(Variant.of(r))
        analyzed.append(
            analyzer_pb2.AnalyzerResource(
                type=r.type,
                properties=single.properties,
                urn=r.urn,
                name=r.name,
                options=single.options,
                parent=r.parent,
                dependencies=list(r.dependencies),
                propertyDependencies={
                    k: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(v))
                    for k, v in r.property_dependencies.items()
                },
            )
        )
    return analyzer_pb2.AnalyzeStackRequest(resources=analyzed)


def test_the_engine_runs_the_stack_rule_over_the_whole_stack(
    pack_server: Any, recorded: dict[str, list[RecordedResource]]
) -> None:
    assert pack_server.AnalyzeStack(analyze_stack_request(recorded["staging"]), timeout=60).diagnostics == []
    without_scm = [r for r in recorded["staging"] if r.type != SCM_ALLOWED]
    (diagnostic,) = pack_server.AnalyzeStack(analyze_stack_request(without_scm), timeout=60).diagnostics
    assert (diagnostic.policyName, diagnostic.enforcementLevel) == (BASIC_AUTH_DECLARED, analyzer_pb2.MANDATORY)
    assert "no WebAppScmAllowed with allow=false" in diagnostic.message


def test_in_the_engine_only_additional_secret_outputs_show_that_a_secret_is_kept_secret(
    pack_server: Any, recorded: dict[str, list[RecordedResource]]
) -> None:
    # A plain (non-secret) webhook URL cannot be told from a secret one by a policy; the missing
    # additionalSecretOutputs entry can.
    plain_input = one(recorded, LEGACY_STAGING, WEBHOOK)
    plain_input.secret_inputs.clear()
    assert pack_server.Analyze(analyze_request(plain_input), timeout=30).diagnostics == []
    plain_state = one(recorded, LEGACY_STAGING, WEBHOOK)
    plain_state.additional_secret_outputs.clear()
    (diagnostic,) = pack_server.Analyze(analyze_request(plain_state), timeout=30).diagnostics
    assert diagnostic.policyName == SECRETS
    assert "httpUrlSpec is not in additionalSecretOutputs" in diagnostic.message


def test_pulumi_policy_hands_secret_inputs_to_policies_unmarked(recorded: dict[str, list[RecordedResource]]) -> None:
    # The finding the secrets rule is built around: the engine sends secrets marked (KeepSecrets), and pulumi-policy's
    # Analyze removes the marker before a policy runs. If this starts failing, policies can see secretness: tighten
    # `check_secrets_marked_secret` to check inputs in the engine too.
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    seen: list[Any] = []

    def probe(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        seen.append(args.props["httpUrlSpec"])

    servicer = _PolicyAnalyzerServicer(
        "probe", "0.0.1", [ResourceValidationPolicy("probe", "records props", probe)], EnforcementLevel.ADVISORY
    )
    webhook = one(recorded, LEGACY_STAGING, WEBHOOK)
    request = analyze_request(webhook)
    assert request.properties["httpUrlSpec"][SPECIAL_SIG_KEY] == SPECIAL_SECRET_SIG
    servicer.Analyze(request, None)  # type: ignore[no-untyped-call]
    (spec,) = seen
    assert dict(spec) == webhook.inputs["httpUrlSpec"]
    assert SPECIAL_SIG_KEY not in dict(spec)
