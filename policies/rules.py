"""The platform's mandatory policies: pure rule functions, and the pulumi-policy objects that run them.

Each rule is a plain function `check(subject, report)`: it reads one resource's wire (camelCase) input properties
and calls `report(message)` once per violation, naming the property. Nothing here touches the engine, so the same
code runs under `pulumi preview --policy-pack policies` (through `policy_for`) and in the tests (on the resources the
harness records). Importing this module starts nothing; `__main__.py` is what serves the pack to the engine.

What a rule can see differs in one respect between the two: whether an input is a Pulumi secret. The engine sends
secrets to the policy pack marked as such, but pulumi-policy (1.21) removes the marker before a policy sees the
properties (pulumi/pulumi-policy#241). `Subject.secret_inputs` is therefore None in the engine and known in the tests;
see `check_secrets_marked_secret` and the README.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

PACK_NAME = "mlops-serving-security"

Report = Callable[[str], None]


@dataclass(frozen=True)
class Subject:
    """What a rule sees of one resource, the same in the engine and in tests."""

    type: str
    name: str
    """The logical name (the last URN segment)."""
    urn: str
    props: Mapping[str, Any]
    """Input properties by wire name, secret markers removed (a read-only proxy in the engine)."""
    additional_secret_outputs: tuple[str, ...] = ()
    secret_inputs: frozenset[str] | None = None
    """Top-level inputs that are secrets, or None where that cannot be seen (the engine, see the module docstring)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """This policy's configuration (`--policy-pack-config`); keys left out take the schema's defaults."""
    name_from: frozenset[str] = frozenset()
    """URNs of the resources the `name` input was taken from (its property dependencies); stack rules read it."""

    @property
    def stack(self) -> str:
        """The stack, from the URN the engine built (`urn:pulumi:<stack>::<project>::<type>::<name>`)."""
        head = self.urn.split("::", 1)[0]
        return head.removeprefix("urn:pulumi:")

    def setting(self, key: str, schema: Mapping[str, Mapping[str, Any]]) -> Any:
        """A config value, or its schema default when the pack runs unconfigured."""
        if key in self.config:
            return self.config[key]
        return schema[key]["default"]


Check = Callable[[Subject, Report], None]


@dataclass(frozen=True)
class Rule:
    """One mandatory policy: its name, what it is for, the resource types it reads and its check."""

    name: str
    description: str
    resource_types: frozenset[str]
    check: Check
    remediation: str
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def applies_to(self, resource_type: str) -> bool:
        return resource_type in self.resource_types

    def evaluate(self, subject: Subject) -> list[str]:
        """The violation messages for `subject` (none if the rule does not apply to its type)."""
        messages: list[str] = []
        if self.applies_to(subject.type):
            self.check(subject, messages.append)
        return messages


# --- Reading wire properties ---------------------------------------------------------------------------------------


def _at(value: Any, path: str) -> Any:
    """The value at a dotted path (`aadProfile.enableAzureRBAC`), None if any step is missing."""
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _items(value: Any) -> Iterator[tuple[int, Any]]:
    """The elements of a list property (the engine's proxies are Sequences, not lists); nothing for anything else."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        yield from enumerate(value)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, Mapping | Sequence) and not isinstance(value, str) and len(value) == 0)


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _require_true(props: Mapping[str, Any], path: str, report: Report, why: str, *, prefix: str = "") -> None:
    value = _at(props, path)
    if value is not True:
        report(f"{prefix}{path} must be true, not {_shown(value)}: {why}")


def _require_false(props: Mapping[str, Any], path: str, report: Report, why: str, *, prefix: str = "") -> None:
    value = _at(props, path)
    if value is not False:
        report(f"{prefix}{path} must be false, not {_shown(value)}: {why}")


def _forbid_true(props: Mapping[str, Any], path: str, report: Report, why: str, *, prefix: str = "") -> None:
    value = _at(props, path)
    if value is True:
        report(f"{prefix}{path} must not be true: {why}")


# --- Container registry --------------------------------------------------------------------------------------------

REGISTRY = "azure-native:containerregistry:Registry"


def check_registry(subject: Subject, report: Report) -> None:
    """No shared credential and no anonymous access: every pull and push is an Entra identity with an ACR role."""
    props = subject.props
    _require_false(props, "adminUserEnabled", report, "the admin user is a shared password with push rights")
    _require_false(props, "anonymousPullEnabled", report, "anyone on the internet could pull the model images")


# --- AKS -----------------------------------------------------------------------------------------------------------

MANAGED_CLUSTER = "azure-native:containerservice:ManagedCluster"
AGENT_POOL = "azure-native:containerservice:AgentPool"


def check_aks_cluster(subject: Subject, report: Report) -> None:
    """Entra ID with Azure RBAC is the only way in; workloads authenticate with workload identity; pods are
    isolated by network policy."""
    props = subject.props
    _require_true(props, "disableLocalAccounts", report, "local accounts are a static cluster-admin credential")
    _require_true(props, "enableRBAC", report, "Kubernetes RBAC must be on")
    _require_true(props, "aadProfile.managed", report, "the cluster must use managed Entra ID integration")
    _require_true(props, "aadProfile.enableAzureRBAC", report, "access is granted with Azure role assignments")
    _require_true(props, "oidcIssuerProfile.enabled", report, "workload identity needs the cluster's OIDC issuer")
    _require_true(
        props, "securityProfile.workloadIdentity.enabled", report, "pods get Azure tokens without stored secrets"
    )
    policy = _at(props, "networkProfile.networkPolicy")
    if not isinstance(policy, str) or policy.lower() in ("", "none"):
        report(
            f"networkProfile.networkPolicy must name a network policy engine (cilium, azure, calico), not "
            f"{_shown(policy)}: without one, NetworkPolicy objects are silently ignored"
        )


def check_aks_node_public_ip(subject: Subject, report: Report) -> None:
    """No node gets a public IP address, in the cluster's inline pools or in separate agent pools."""
    why = "nodes are reached through the cluster's load balancer and private network only"
    if subject.type == AGENT_POOL:
        _forbid_true(subject.props, "enableNodePublicIP", report, why)
        return
    for i, pool in _items(subject.props.get("agentPoolProfiles")):
        _forbid_true(pool, "enableNodePublicIP", report, why, prefix=f"agentPoolProfiles[{i}].")


# --- Databricks ----------------------------------------------------------------------------------------------------

DATABRICKS_WORKSPACE = "azure-native:databricks:Workspace"


def check_databricks_workspace(subject: Subject, report: Report) -> None:
    """Secure cluster connectivity (no public IP on cluster nodes) on the premium SKU."""
    props = subject.props
    _require_true(
        props,
        "parameters.enableNoPublicIp.value",
        report,
        "cluster nodes must have no public IP address (secure cluster connectivity)",
    )
    sku = _at(props, "sku.name")
    if not isinstance(sku, str) or sku.lower() != "premium":
        report(
            f"sku.name must be 'premium', not {_shown(sku)}: registry webhooks, access control and audit logs "
            "need the premium tier"
        )


# --- Key Vault -----------------------------------------------------------------------------------------------------

KEY_VAULT = "azure-native:keyvault:Vault"

KEY_VAULT_SCHEMA: Mapping[str, Mapping[str, Any]] = {
    "purgeProtectionStacks": {
        "type": "array",
        "items": {"type": "string"},
        "description": (
            "Stacks whose vaults need purge protection: prod, and staging, which owns the shared vault holding "
            "the secrets prod's release path depends on."
        ),
        "default": ["prod", "staging"],
    }
}


def check_key_vault(subject: Subject, report: Report) -> None:
    """Access by Azure RBAC only; deleted secrets recoverable; purge protection in the stacks that serve prod."""
    props = subject.props
    _require_true(
        props,
        "properties.enableRbacAuthorization",
        report,
        "access policies grant broad, unaudited rights; use Azure role assignments",
    )
    _require_true(props, "properties.enableSoftDelete", report, "deleted secrets must stay recoverable")
    stacks: Collection[str] = subject.setting("purgeProtectionStacks", KEY_VAULT_SCHEMA)
    if subject.stack in stacks:
        _require_true(
            props,
            "properties.enablePurgeProtection",
            report,
            f"stack {subject.stack!r} needs purge protection, so no one can destroy a deleted secret before "
            "its retention ends",
        )


# --- Storage -------------------------------------------------------------------------------------------------------

STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"

STORAGE_SCHEMA: Mapping[str, Mapping[str, Any]] = {
    "sharedKeyAccessExemptions": {
        "type": "array",
        "items": {"type": "string"},
        "description": (
            "Logical names of storage accounts allowed to keep shared keys on, each with a key expiration policy. "
            "None by default: no account of this program needs keys (Pulumi uploads no blob; the listener's "
            "package is published by one deploy as the app's identity)."
        ),
        "default": [],
    }
}
_TLS_STORAGE = ("TLS1_2", "TLS1_3")


def check_storage_account(subject: Subject, report: Report) -> None:
    """Entra ID only (no account keys), no public blobs, HTTPS with TLS 1.2 or later."""
    props = subject.props
    exempt: Collection[str] = subject.setting("sharedKeyAccessExemptions", STORAGE_SCHEMA)
    if subject.name in exempt:
        if _at(props, "keyPolicy.keyExpirationPeriodInDays") is None:
            report(
                "keyPolicy.keyExpirationPeriodInDays must be set: an account exempt from the shared-key rule "
                "must at least have its keys flagged for rotation"
            )
    else:
        _require_false(props, "allowSharedKeyAccess", report, "account keys bypass Entra ID and RBAC")
    _require_false(props, "allowBlobPublicAccess", report, "no container may be made public")
    _require_true(props, "enableHttpsTrafficOnly", report, "plain HTTP must be refused")
    tls = _at(props, "minimumTlsVersion")
    if tls not in _TLS_STORAGE:
        report(f"minimumTlsVersion must be TLS1_2 or later, not {_shown(tls)}")


# --- Function App / Web App ----------------------------------------------------------------------------------------

WEB_APP = "azure-native:web:WebApp"


def _tls_at_least_1_2(version: Any) -> bool:
    if not isinstance(version, str) or not re.fullmatch(r"\d+\.\d+", version):
        return False
    major, minor = (int(part) for part in version.split("."))
    return (major, minor) >= (1, 2)


def _is_flex_consumption(props: Mapping[str, Any]) -> bool:
    # Only Flex Consumption apps carry functionAppConfig (runtime, scale and deployment of that plan).
    return _at(props, "functionAppConfig") is not None


def check_web_app_transport(subject: Subject, report: Report) -> None:
    """HTTPS only, TLS 1.2 or later on the app and its SCM site, FTP(S) off (on Flex Consumption: not set at all),
    remote debugging off."""
    props = subject.props
    _require_true(props, "httpsOnly", report, "plain HTTP must redirect to HTTPS")
    tls = _at(props, "siteConfig.minTlsVersion")
    if not _tls_at_least_1_2(tls):
        report(f"siteConfig.minTlsVersion must be 1.2 or later, not {_shown(tls)}")
    scm_tls = _at(props, "siteConfig.scmMinTlsVersion")
    if scm_tls is not None and not _tls_at_least_1_2(scm_tls):
        report(f"siteConfig.scmMinTlsVersion must be 1.2 or later, not {_shown(scm_tls)}")
    ftps = _at(props, "siteConfig.ftpsState")
    if _is_flex_consumption(props):
        # Flex has no FTP(S) and ARM refuses the property there
        # (learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations).
        if ftps is not None:
            report(
                f"siteConfig.ftpsState must be unset on a Flex Consumption app, not {_shown(ftps)}: Flex has no FTP(S) "
                "and Azure refuses the property; turn basic publishing off with WebAppScmAllowed"
            )
    elif ftps != "Disabled":
        report(f"siteConfig.ftpsState must be 'Disabled', not {_shown(ftps)}: deployments do not use FTP")
    _forbid_true(props, "siteConfig.remoteDebuggingEnabled", report, "remote debugging opens a debugger port")


WEB_APP_FTP_ALLOWED = "azure-native:web:WebAppFtpAllowed"
WEB_APP_SCM_ALLOWED = "azure-native:web:WebAppScmAllowed"


def check_every_app_has_basic_publishing_off(subjects: Sequence[Subject], report: Report) -> None:
    """Every web or function app has its basic publishing policies declared with allow=false: SCM always, FTP unless
    the app is Flex Consumption, which has no FTP(S) at all (functions-app-settings, "Flex Consumption plan
    deprecations") and whose azurerm resource sets only the SCM one (terraform-provider-azurerm
    function_app_flex_consumption_resource.go). Read through the policies' `name` dependency on the app, since in the
    state a policy's own `name` is `ftp`/`scm`."""
    off = {
        (s.type, urn)
        for s in subjects
        if s.type in (WEB_APP_FTP_ALLOWED, WEB_APP_SCM_ALLOWED) and _at(s.props, "allow") is False
        for urn in s.name_from
    }
    for app in (s for s in subjects if s.type == WEB_APP):
        needed = (
            (WEB_APP_SCM_ALLOWED,) if _is_flex_consumption(app.props) else (WEB_APP_FTP_ALLOWED, WEB_APP_SCM_ALLOWED)
        )
        for type_ in needed:
            if (type_, app.urn) not in off:
                kind = type_.rsplit(":", 1)[-1]
                report(
                    f"{app.name}: no {kind} with allow=false for this app: its basic publishing credentials stay on "
                    "(on Flex Consumption, which has no siteConfig.ftpsState, the SCM policy is the only switch)"
                )


def check_model_released_progressively(subjects: Sequence[Subject], report: Report) -> None:
    """In prod, the model is served by an Argo Rollout whose canary shifts traffic in steps and is judged by a
    background analysis whose AnalysisTemplates the stack declares; never by a Deployment, which rolls over at once."""
    stacks = {s.urn.split("::")[0].removeprefix("urn:pulumi:") for s in subjects}
    if not stacks & PROGRESSIVE_STACKS:
        return
    for deployment in (s for s in subjects if s.type == "kubernetes:apps/v1:Deployment"):
        if _at(deployment.props, "metadata.labels.mlops/model") is not None:
            report(
                f"{deployment.name}: a model Deployment rolls every pod over at once; serve the model from a Rollout"
            )
    templates = {str(_at(s.props, "metadata.name")) for s in subjects if s.type == ANALYSIS_TEMPLATE_TYPE}
    for rollout in (s for s in subjects if s.type == ROLLOUT_TYPE):
        canary = _at(rollout.props, "spec.strategy.canary")
        if not isinstance(canary, Mapping):
            report(f"{rollout.name}: no canary strategy (spec.strategy.canary)")
            continue
        weights = [_at(step, "setWeight") for _, step in _items(canary.get("steps"))]
        if not [w for w in weights if w is not None]:
            report(f"{rollout.name}: the canary has no setWeight step: the new version would take all traffic at once")
        named = [str(_at(t, "templateName")) for _, t in _items(_at(canary, "analysis.templates"))]
        if not named:
            report(f"{rollout.name}: the canary has no background analysis (spec.strategy.canary.analysis)")
        for name in named:
            if name not in templates:
                report(
                    f"{rollout.name}: its analysis names AnalysisTemplate {name!r}, which this stack does not declare"
                )


def check_basic_publishing_off(subject: Subject, report: Report) -> None:
    """Basic (user/password) publishing credentials off for FTP and the SCM site: deployments use Entra ID. On Flex
    Consumption these policies, not siteConfig.ftpsState, are what keeps publishing credential-free."""
    _require_false(subject.props, "allow", report, "basic publishing credentials bypass Entra ID")


# A Key Vault reference the platform resolves with the app's identity; never the secret itself.
_KEY_VAULT_REFERENCE = re.compile(
    r"^@Microsoft\.KeyVault\((SecretUri=https://[^)\s]+|VaultName=[^;)\s]+;SecretName=[^;)\s]+(;SecretVersion=[^)\s]+)?)\)$"
)
# Words that make a setting's name say it holds a secret (after splitting on `_`, `-`, `.` and camelCase).
_SECRET_WORDS = frozenset(
    {"secret", "secrets", "token", "tokens", "password", "passwd", "pwd", "apikey", "key", "keys", "sas", "passphrase"}
)
# Connection-string keys that carry a credential.
_CREDENTIAL_KEYS = re.compile(
    r"(?:^|;)\s*(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|ClientSecret)\s*=", re.IGNORECASE
)
# Well-known token formats, whatever the setting is called.
_TOKEN_FORMATS = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{20,}|dapi[0-9a-f]{32}|eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+)"
)
_SAS_QUERY = re.compile(r"[?&]sig=[^&]+", re.IGNORECASE)


def _name_words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {word.lower() for word in re.split(r"[^A-Za-z0-9]+", spaced) if word}


def is_key_vault_reference(value: Any) -> bool:
    return isinstance(value, str) and _KEY_VAULT_REFERENCE.match(value.strip()) is not None


def plaintext_secret_reason(name: str, value: Any) -> str | None:
    """Why a setting holds a secret in plain text, or None. The reason never quotes the value."""
    if not isinstance(value, str) or not value or is_key_vault_reference(value):
        return None
    credential = _CREDENTIAL_KEYS.search(value)
    if name.lower() == "azurewebjobsstorage" and credential is not None:
        return (
            f"is a connection string with an {credential.group(1)}: use identity-based host storage "
            "(AzureWebJobsStorage__accountName, __credential=managedidentity, __clientId)"
        )
    if credential is not None:
        return f"is a connection string carrying a credential ({credential.group(1)})"
    if _SAS_QUERY.search(value):
        return "carries a SAS signature (sig=)"
    if _TOKEN_FORMATS.search(value):
        return "looks like an access token"
    if _name_words(name) & _SECRET_WORDS:
        return "is named like a secret but is not a Key Vault reference"
    return None


def check_web_app_settings(subject: Subject, report: Report) -> None:
    """Every secret in the app's settings and connection strings is a `@Microsoft.KeyVault(...)` reference."""
    fix = "store it in Key Vault and set @Microsoft.KeyVault(SecretUri=...)"
    for i, setting in _items(_at(subject.props, "siteConfig.appSettings")):
        name = str(_at(setting, "name") or "")
        reason = plaintext_secret_reason(name, _at(setting, "value"))
        if reason is not None:
            report(f"siteConfig.appSettings[{i}] ({name}) {reason}; {fix}")
    for i, entry in _items(_at(subject.props, "siteConfig.connectionStrings")):
        name = str(_at(entry, "name") or "")
        value = _at(entry, "connectionString")
        # Judged like a setting: by what it carries (a credential key, a SAS signature, a token) and its name.
        reason = plaintext_secret_reason(name, value)
        if reason is not None:
            report(f"siteConfig.connectionStrings[{i}] ({name}) {reason}; {fix}")


# --- Secrets marked secret -----------------------------------------------------------------------------------------

# Inputs that hold a credential, by resource type. Secret by the SDK's own schema or not, each must reach the engine
# as a secret and stay one in the state.
SECRET_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "databricks:index/mlflowWebhook:MlflowWebhook": ("httpUrlSpec", "jobSpec"),
    "azure-native:keyvault:Secret": ("properties",),
    "docker-build:index:Image": ("secrets",),
    "databricks:index/secret:Secret": ("stringValue",),
    # The webhook receiver's serviceUri carries the listener alert route's token.
    "azure-native:monitor:ActionGroup": ("webhookReceivers",),
}


def check_secrets_marked_secret(subject: Subject, report: Report) -> None:
    """Credential-bearing inputs are Pulumi secrets, and their outputs are kept secret in the state.

    Two checks: the resource lists the property in `additionalSecretOutputs` (the engine shows resource options to
    policies, so this runs everywhere); and, where secretness of inputs is visible (`secret_inputs` is not None: the
    harness), the input itself is a secret. The second cannot run in the engine (see the module docstring).
    """
    for prop in SECRET_PROPERTIES.get(subject.type, ()):
        if _is_empty(subject.props.get(prop)):
            continue
        if subject.secret_inputs is not None and prop not in subject.secret_inputs:
            report(f"{prop} is not a secret input: wrap it in pulumi.Output.secret(...)")
        if prop not in subject.additional_secret_outputs:
            report(
                f"{prop} is not in additionalSecretOutputs: the provider would return it in plain text into the "
                "state; add ResourceOptions(additional_secret_outputs=[...])"
            )


# --- Kubernetes workloads ------------------------------------------------------------------------------------------

ROLLOUT_TYPE = "kubernetes:argoproj.io/v1alpha1:Rollout"
ANALYSIS_TEMPLATE_TYPE = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
# The stack whose model workloads must be released progressively, with analysis (its name in the URN).
PROGRESSIVE_STACKS = frozenset({"prod"})

# Where each workload kind keeps its pod spec.
POD_SPEC_PATHS: Mapping[str, str] = {
    "kubernetes:core/v1:Pod": "spec",
    "kubernetes:apps/v1:Deployment": "spec.template.spec",
    "kubernetes:apps/v1:StatefulSet": "spec.template.spec",
    "kubernetes:apps/v1:DaemonSet": "spec.template.spec",
    "kubernetes:apps/v1:ReplicaSet": "spec.template.spec",
    "kubernetes:batch/v1:Job": "spec.template.spec",
    "kubernetes:batch/v1:CronJob": "spec.jobTemplate.spec.template.spec",
    # Argo Rollouts (argoproj/argo-rollouts v1.9.0 CRDs): a Rollout's pods, and the Jobs an analysis runs.
    ROLLOUT_TYPE: "spec.template.spec",
    ANALYSIS_TEMPLATE_TYPE: "spec.metrics[].provider.job.spec.template.spec",
}
# The pack is installed and run on its own (its own requirements, no project packages on its path), so it keeps
# its copy of stacks.identifiers.DIGEST_PATTERN; tests/contracts/test_identifiers.py holds the two equal.
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _pod_specs(subject: Subject) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(path, pod spec) for every pod spec of the workload: one, or one per Job metric of an AnalysisTemplate."""
    head, _, tail = POD_SPEC_PATHS[subject.type].partition("[].")
    if not tail:
        pod = _at(subject.props, head)
        if isinstance(pod, Mapping):
            yield head, pod
        return
    for i, item in _items(_at(subject.props, head)):
        pod = _at(item, tail)
        if isinstance(pod, Mapping):
            yield f"{head}[{i}].{tail}", pod


def _containers(subject: Subject) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(path, container, pod spec) for every container and init container of the workload's pod specs."""
    for pod_path, pod in _pod_specs(subject):
        for kind in ("initContainers", "containers"):
            for i, container in _items(pod.get(kind)):
                if isinstance(container, Mapping):
                    yield f"{pod_path}.{kind}[{i}].", container, pod


def check_kubernetes_pod_security(subject: Subject, report: Report) -> None:
    """The restricted Pod Security Standard, and then some: non-root, no privilege escalation, read-only root
    filesystem, every capability dropped; no host namespaces or host paths."""
    for pod_path, pod in _pod_specs(subject):
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            _forbid_true(pod, flag, report, "pods must not share the node's namespaces", prefix=f"{pod_path}.")
        for i, volume in _items(pod.get("volumes")):
            if _at(volume, "hostPath") is not None:
                report(f"{pod_path}.volumes[{i}].hostPath must not be used: it exposes the node's filesystem")
    for path, container, pod_spec in _containers(subject):
        context = f"{path}securityContext."
        non_root = _at(container, "securityContext.runAsNonRoot")
        if non_root is None:
            non_root = _at(pod_spec, "securityContext.runAsNonRoot")
        if non_root is not True:
            report(f"{context}runAsNonRoot must be true (here or in the pod's securityContext), not {_shown(non_root)}")
        user = _at(container, "securityContext.runAsUser")
        if user is None:
            user = _at(pod_spec, "securityContext.runAsUser")
        if user == 0:
            report(f"{context}runAsUser must not be 0 (root)")
        _require_false(
            container, "securityContext.allowPrivilegeEscalation", report, "no setuid escalation", prefix=path
        )
        _forbid_true(container, "securityContext.privileged", report, "privileged containers own the node", prefix=path)
        _require_true(
            container, "securityContext.readOnlyRootFilesystem", report, "write only to mounted volumes", prefix=path
        )
        drop = [str(c) for _, c in _items(_at(container, "securityContext.capabilities.drop"))]
        if "ALL" not in drop:
            report(f"{context}capabilities.drop must include ALL, not {drop or 'unset'}")


def check_kubernetes_resources(subject: Subject, report: Report) -> None:
    """Every container requests and is limited in CPU and memory, so the scheduler and the HPA work and one pod
    cannot starve its node."""
    for path, container, _ in _containers(subject):
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                value = _at(container, f"resources.{bound}.{resource}")
                if value in (None, ""):
                    report(f"{path}resources.{bound}.{resource} must be set")


def check_kubernetes_image_digest(subject: Subject, report: Report) -> None:
    """Every container runs an image by digest (`...@sha256:<64 hex>`): what was tested is what runs."""
    for path, container, _ in _containers(subject):
        image = _at(container, "image")
        if not isinstance(image, str) or not _DIGEST.search(image):
            report(f"{path}image must be referenced by digest (@sha256:<64 hex>), not {_shown(image)}")


# --- The pack ------------------------------------------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    Rule(
        name="acr-no-shared-credentials",
        description="Container registries have the admin user and anonymous pull off.",
        resource_types=frozenset({REGISTRY}),
        check=check_registry,
        remediation="Set admin_user_enabled=False and anonymous_pull_enabled=False; grant AcrPull/AcrPush roles.",
    ),
    Rule(
        name="aks-entra-id-and-workload-identity",
        description=(
            "AKS clusters have local accounts off, Entra ID with Azure RBAC on, the OIDC issuer and workload "
            "identity on, and a network policy engine."
        ),
        resource_types=frozenset({MANAGED_CLUSTER}),
        check=check_aks_cluster,
        remediation=(
            "Set disable_local_accounts=True, enable_rbac=True, aad_profile(managed=True, enable_azure_rbac=True), "
            "oidc_issuer_profile(enabled=True), security_profile.workload_identity(enabled=True) and "
            "network_profile.network_policy."
        ),
    ),
    Rule(
        name="aks-no-node-public-ip",
        description="AKS node pools give no node a public IP address.",
        resource_types=frozenset({MANAGED_CLUSTER, AGENT_POOL}),
        check=check_aks_node_public_ip,
        remediation="Set enable_node_public_ip=False (or leave it unset) on every pool.",
    ),
    Rule(
        name="databricks-no-public-ip",
        description="Databricks workspaces use secure cluster connectivity (no public IP) on the premium SKU.",
        resource_types=frozenset({DATABRICKS_WORKSPACE}),
        check=check_databricks_workspace,
        remediation="Set parameters.enable_no_public_ip.value=True and sku.name='premium'.",
    ),
    Rule(
        name="key-vault-rbac-soft-delete-purge-protection",
        description=(
            "Key Vaults use Azure RBAC, keep soft delete on, and have purge protection on in the stacks that "
            "serve production."
        ),
        resource_types=frozenset({KEY_VAULT}),
        check=check_key_vault,
        remediation=(
            "Set properties.enable_rbac_authorization=True, enable_soft_delete=True and, in the listed stacks, "
            "enable_purge_protection=True (it cannot be switched off again)."
        ),
        config_schema=KEY_VAULT_SCHEMA,
    ),
    Rule(
        name="storage-account-no-keys-no-public-tls12",
        description=(
            "Storage accounts refuse shared keys (unless exempted), public blob access and plain HTTP, and "
            "require TLS 1.2 or later."
        ),
        resource_types=frozenset({STORAGE_ACCOUNT}),
        check=check_storage_account,
        remediation=(
            "Set allow_shared_key_access=False, allow_blob_public_access=False, enable_https_traffic_only=True and "
            "minimum_tls_version='TLS1_2'; use identity-based access."
        ),
        config_schema=STORAGE_SCHEMA,
    ),
    Rule(
        name="web-app-https-tls12-no-ftp",
        description=(
            "Function and web apps are HTTPS only with TLS 1.2 or later, FTP(S) disabled (unset on Flex Consumption) "
            "and remote debugging off."
        ),
        resource_types=frozenset({WEB_APP}),
        check=check_web_app_transport,
        remediation=(
            "Set https_only=True and site_config(min_tls_version='1.2', ftps_state='Disabled'); on Flex Consumption "
            "leave ftps_state unset."
        ),
    ),
    Rule(
        name="web-app-no-basic-publishing-credentials",
        description="Function and web apps allow no basic (user/password) publishing credentials, for FTP or SCM.",
        resource_types=frozenset({WEB_APP_FTP_ALLOWED, WEB_APP_SCM_ALLOWED}),
        check=check_basic_publishing_off,
        remediation="Declare web.WebAppFtpAllowed and web.WebAppScmAllowed with allow=False for every app.",
    ),
    Rule(
        name="web-app-secrets-from-key-vault",
        description=(
            "Function and web app settings hold no secret in plain text: every secret is a Key Vault reference, "
            "and host storage uses the app's identity, not an account key."
        ),
        resource_types=frozenset({WEB_APP}),
        check=check_web_app_settings,
        remediation=(
            "Put the secret in Key Vault and set the value to @Microsoft.KeyVault(SecretUri=...), resolved with "
            "key_vault_reference_identity; use AzureWebJobsStorage__accountName/__credential/__clientId."
        ),
    ),
    Rule(
        name="secrets-marked-secret",
        description=(
            "Credential-bearing inputs (webhook URL and HMAC secret, Key Vault secret values, image build secrets, "
            "Databricks secrets) are Pulumi secrets and stay secret in the state."
        ),
        resource_types=frozenset(SECRET_PROPERTIES),
        check=check_secrets_marked_secret,
        remediation=(
            "Pass the value as pulumi.Output.secret(...) and list the property in "
            "ResourceOptions(additional_secret_outputs=[...])."
        ),
    ),
    Rule(
        name="kubernetes-pod-security",
        description=(
            "Kubernetes workload containers run as non-root without privilege escalation, with a read-only root "
            "filesystem and all capabilities dropped; pods use no host namespaces or host paths."
        ),
        resource_types=frozenset(POD_SPEC_PATHS),
        check=check_kubernetes_pod_security,
        remediation=(
            "Set securityContext(run_as_non_root=True, allow_privilege_escalation=False, "
            "read_only_root_filesystem=True, capabilities.drop=['ALL']) on every container."
        ),
    ),
    Rule(
        name="kubernetes-resource-requests-and-limits",
        description="Kubernetes workload containers set CPU and memory requests and limits.",
        resource_types=frozenset(POD_SPEC_PATHS),
        check=check_kubernetes_resources,
        remediation="Set resources.requests and resources.limits for cpu and memory on every container.",
    ),
    Rule(
        name="kubernetes-images-by-digest",
        description="Kubernetes workload containers reference their image by digest (@sha256:...).",
        resource_types=frozenset(POD_SPEC_PATHS),
        check=check_kubernetes_image_digest,
        remediation="Deploy `<repository>:<tag>@sha256:<digest>`, the digest the image build returned.",
    ),
)


@dataclass(frozen=True)
class StackRule:
    """A mandatory policy over a whole stack: what one resource alone cannot show (that another one exists)."""

    name: str
    description: str
    check: Callable[[Sequence[Subject], Report], None]
    remediation: str

    def evaluate(self, subjects: Sequence[Subject]) -> list[str]:
        messages: list[str] = []
        self.check(subjects, messages.append)
        return messages


STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        name="model-released-progressively",
        description="In prod, the model is served by an Argo Rollout whose canary takes traffic in steps, judged "
        "by a background analysis on AnalysisTemplates the stack declares.",
        check=check_model_released_progressively,
        remediation="Give ModelDeploymentArgs a CanaryRelease with steps and a CanaryAnalysis "
        "(components/model_canary.py).",
    ),
    StackRule(
        name="web-app-basic-publishing-policies-declared",
        description="Every function and web app declares its SCM (and, off Flex Consumption, FTP) basic publishing "
        "policies with allow=false.",
        check=check_every_app_has_basic_publishing_off,
        remediation="Declare web.WebAppFtpAllowed and web.WebAppScmAllowed(name=app.name, allow=False) for each app.",
    ),
)


def subject_from_policy_resource(resource: PolicyResource) -> Subject:
    """A resource of a stack validation, as a stack rule reads it."""
    return Subject(
        type=resource.resource_type,
        name=resource.name,
        urn=resource.urn,
        props=resource.props,
        additional_secret_outputs=tuple(resource.opts.additional_secret_outputs),
        secret_inputs=None,
        name_from=frozenset(d.urn for d in resource.property_dependencies.get("name", [])),
    )


def stack_policy_for(rule: StackRule) -> StackValidationPolicy:
    """The pulumi-policy form of a stack rule: mandatory, over every resource of the stack."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        subjects = [subject_from_policy_resource(r) for r in args.resources]
        rule.check(subjects, lambda message: report_violation(message, None))

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        remediation_steps=rule.remediation,
    )


def subject_from_args(args: ResourceValidationArgs) -> Subject:
    """The engine's view of a resource, as a rule reads it (secretness of inputs cannot be seen here)."""
    return Subject(
        type=args.resource_type,
        name=args.name,
        urn=args.urn,
        props=args.props,
        additional_secret_outputs=tuple(args.opts.additional_secret_outputs),
        secret_inputs=None,
        config=args.get_config(),
    )


def policy_for(rule: Rule) -> ResourceValidationPolicy:
    """The pulumi-policy form of a rule: mandatory, validating only the resource types the rule reads."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not rule.applies_to(args.resource_type):
            return
        rule.check(subject_from_args(args), lambda message: report_violation(message, None))

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties={k: dict(v) for k, v in rule.config_schema.items()})
        if rule.config_schema
        else None,
        remediation_steps=rule.remediation,
    )


def build_policies() -> list[Policy]:
    """Every rule as a mandatory pulumi-policy policy, in pack order: the resource rules, then the stack rules."""
    return [*(policy_for(rule) for rule in RULES), *(stack_policy_for(rule) for rule in STACK_RULES)]
