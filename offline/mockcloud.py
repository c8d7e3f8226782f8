"""A stand-in for the cloud APIs the program talks to (Azure, Databricks, the registry, Kubernetes), for the mocks.

It answers each resource registration with the outputs the real provider would compute (login servers, workspace
URLs, kubelet identities, OIDC issuer, digests, ...), in wire (camelCase) names, deterministically: the same
inputs give the same outputs, so two runs of the same stack compare equal and a diff shows only real changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pulumi.output import Unknown
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks
from pulumi.runtime.rpc import UNKNOWN
from ruamel.yaml import YAML

from offline.wire import unwrap_secrets

SUBSCRIPTION_ID = "00000000-0000-4000-8000-000000000001"
TENANT_ID = "00000000-0000-4000-8000-0000000000aa"
DEPLOYER_OBJECT_ID = "00000000-0000-4000-8000-0000000000d1"

PrincipalType = Literal["User", "ServicePrincipal"]
# When a token the cloud has just issued expires: far enough ahead for any run (2100-01-01T00:00:00Z).
_FRESH_TOKEN_EXPIRY = 4102444800

# The built-in role definitions the cloud holds (the same in every tenant), as Azure's built-in roles table lists
# them (learn.microsoft.com/azure/role-based-access-control/built-in-roles). The cloud's own copy, never the
# program's: tests/components/test_azure_facts.py holds both to ../shared/reference/azure-built-in-roles.md.
BUILT_IN_ROLE_DEFINITIONS: dict[str, str] = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "Role Based Access Control Administrator": "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "AcrPush": "8311e382-0749-4cb8-b61a-304f252e45ec",
    "Azure Kubernetes Service RBAC Cluster Admin": "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",
    "Azure Kubernetes Service RBAC Admin": "3498e952-d568-435e-9b2c-8d77e338d7f7",
    "Azure Kubernetes Service RBAC Writer": "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb",
    "Azure Kubernetes Service Cluster User Role": "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Monitoring Data Reader": "b0d8363b-8ddd-447d-831f-62ca05bff136",
    "Monitoring Reader": "43d0d8ad-25c7-4714-9337-8ba259a9fe05",
    "Grafana Admin": "22926164-76b3-42b3-bc55-97df8dab3e41",
}
_AKS_RBAC_CLUSTER_ADMIN = BUILT_IN_ROLE_DEFINITIONS["Azure Kubernetes Service RBAC Cluster Admin"]
_ACR_PULL = BUILT_IN_ROLE_DEFINITIONS["AcrPull"]
_ACR_PUSH = BUILT_IN_ROLE_DEFINITIONS["AcrPush"]
# "Azure Kubernetes Service AAD Server": the audience of the tokens every AKS-managed Entra ID API server accepts.
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
# "Azure Kubernetes Service AAD Client": the client kubelogin signs in as in the device-code kubeconfig AKS hands out.
_AKS_AAD_CLIENT_APP_ID = "80faf920-1908-4b52-b5ef-a8e7bedfc67a"
_APP_ROUTING_CLASS = "webapprouting.kubernetes.azure.com"


class CloudError(Exception):
    """What Azure (or the Kubernetes API server, or the registry) answers a request it refuses."""


@dataclass(frozen=True)
class _Registered:
    """One resource the program registered in this run, as the cloud saw it."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    # Direct dependencies (dependsOn, property dependencies) and the provider, by URN.
    dependencies: frozenset[str]


def _duration_seconds(text: object) -> float:
    # Go durations as the time provider takes them ("5m", "90s", "1h30m").
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(text or ""))
    return sum(float(value) * units[unit] for value, unit in parts)


# Azure resource types by Pulumi type token, for realistic resource ids.
_ARM_TYPES = {
    "azure-native:resources:ResourceGroup": None,
    "azure-native:containerregistry:Registry": "Microsoft.ContainerRegistry/registries",
    "azure-native:containerservice:ManagedCluster": "Microsoft.ContainerService/managedClusters",
    "azure-native:containerservice:AgentPool": "Microsoft.ContainerService/managedClusters/{cluster}/agentPools",
    "azure-native:databricks:Workspace": "Microsoft.Databricks/workspaces",
    "azure-native:databricks:AccessConnector": "Microsoft.Databricks/accessConnectors",
    "azure-native:keyvault:Vault": "Microsoft.KeyVault/vaults",
    "azure-native:keyvault:Secret": "Microsoft.KeyVault/vaults/{vault}/secrets",
    "azure-native:managedidentity:UserAssignedIdentity": "Microsoft.ManagedIdentity/userAssignedIdentities",
    "azure-native:managedidentity:FederatedIdentityCredential": (
        "Microsoft.ManagedIdentity/userAssignedIdentities/{identity}/federatedIdentityCredentials"
    ),
    "azure-native:operationalinsights:Workspace": "Microsoft.OperationalInsights/workspaces",
    "azure-native:applicationinsights:Component": "Microsoft.Insights/components",
    "azure-native:storage:StorageAccount": "Microsoft.Storage/storageAccounts",
    "azure-native:storage:BlobContainer": "Microsoft.Storage/storageAccounts/{account}/blobServices/default/containers",
    "azure-native:storage:Queue": "Microsoft.Storage/storageAccounts/{account}/queueServices/default/queues",
    "azure-native:storage:Table": "Microsoft.Storage/storageAccounts/{account}/tableServices/default/tables",
    "azure-native:web:AppServicePlan": "Microsoft.Web/serverfarms",
    "azure-native:web:WebApp": "Microsoft.Web/sites",
    "azure-native:containerregistry:Task": "Microsoft.ContainerRegistry/registries/{registry}/tasks",
    # Azure Monitor workspaces are `Microsoft.Monitor/accounts` (learn.microsoft.com/azure/templates/).
    "azure-native:monitor:AzureMonitorWorkspace": "Microsoft.Monitor/accounts",
    "azure-native:monitor:DataCollectionEndpoint": "Microsoft.Insights/dataCollectionEndpoints",
    "azure-native:monitor:DataCollectionRule": "Microsoft.Insights/dataCollectionRules",
    "azure-native:monitor:ActionGroup": "Microsoft.Insights/actionGroups",
    "azure-native:alertsmanagement:PrometheusRuleGroup": "Microsoft.AlertsManagement/prometheusRuleGroups",
    "azure-native:dashboard:Grafana": "Microsoft.Dashboard/grafana",
    # learn.microsoft.com/azure/templates/ (Microsoft.Authorization/roleAssignments, Microsoft.Insights/
    # dataCollectionRuleAssociations, Microsoft.Web/sites/basicPublishingCredentialsPolicies).
    "azure-native:authorization:RoleAssignment": "Microsoft.Authorization/roleAssignments",
    "azure-native:monitor:DataCollectionRuleAssociation": "Microsoft.Insights/dataCollectionRuleAssociations",
    "azure-native:web:WebAppFtpAllowed": "Microsoft.Web/sites/{site}/basicPublishingCredentialsPolicies",
    "azure-native:web:WebAppScmAllowed": "Microsoft.Web/sites/{site}/basicPublishingCredentialsPolicies",
}

# Azure modules whose computed outputs `_monitoring_outputs` makes up.
_MONITORING_MODULES = ("monitor", "alertsmanagement", "dashboard")

# Inputs that name the Azure resource, by type; otherwise the logical name is used.
_NAME_INPUTS = (
    "resourceGroupName",
    "registryName",
    "resourceName",
    "workspaceName",
    "connectorName",
    "vaultName",
    "secretName",
    "accountName",
    "containerName",
    "queueName",
    "tableName",
    "name",
    "federatedIdentityCredentialResourceName",
    "agentPoolName",
)
OWN_NAME_INPUT = {
    "azure-native:resources:ResourceGroup": "resourceGroupName",
    "azure-native:containerregistry:Registry": "registryName",
    "azure-native:containerservice:ManagedCluster": "resourceName",
    "azure-native:containerservice:AgentPool": "agentPoolName",
    "azure-native:databricks:Workspace": "workspaceName",
    "azure-native:databricks:AccessConnector": "connectorName",
    "azure-native:keyvault:Vault": "vaultName",
    "azure-native:keyvault:Secret": "secretName",
    "azure-native:managedidentity:UserAssignedIdentity": "resourceName",
    "azure-native:managedidentity:FederatedIdentityCredential": "federatedIdentityCredentialResourceName",
    "azure-native:operationalinsights:Workspace": "workspaceName",
    "azure-native:applicationinsights:Component": "resourceName",
    "azure-native:storage:StorageAccount": "accountName",
    "azure-native:storage:BlobContainer": "containerName",
    "azure-native:storage:Queue": "queueName",
    "azure-native:storage:Table": "tableName",
    "azure-native:web:AppServicePlan": "name",
    "azure-native:web:WebApp": "name",
    "azure-native:monitor:AzureMonitorWorkspace": "azureMonitorWorkspaceName",
    "azure-native:monitor:DataCollectionEndpoint": "dataCollectionEndpointName",
    "azure-native:monitor:DataCollectionRule": "dataCollectionRuleName",
    "azure-native:monitor:DataCollectionRuleAssociation": "associationName",
    "azure-native:monitor:ActionGroup": "actionGroupName",
    "azure-native:alertsmanagement:PrometheusRuleGroup": "ruleGroupName",
    "azure-native:dashboard:Grafana": "workspaceName",
}


def _h(*parts: object, n: int = 12) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:n]


def _guid(*parts: object) -> str:
    h = _h(*parts, n=32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def plain(value: Any) -> Any:
    """`value` without Pulumi's secret wrappers (the mocks receive inputs still wrapped)."""
    return unwrap_secrets(value)


class MockCloud(Mocks):
    """Deterministic provider outputs for every resource type and invoke the program uses."""

    def __init__(
        self,
        *,
        project: str,
        stack: str,
        stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
        secret_marker: str = "mocksecret",
        caller_principal_type: PrincipalType = "User",
        caller_object_id: str = DEPLOYER_OBJECT_ID,
        caller_groups: Iterable[str] = (),
        caller_token_seconds_left: float | None = None,
        soft_deleted_key_vaults: Iterable[str] = (),
        existing_key_vaults: Mapping[str, Mapping[str, Any]] | None = None,
        random_seed: str = "",
        registry_models: Mapping[str, Collection[int]] | None = None,
        dry_run: bool = False,
    ) -> None:
        self.project = project
        # The engine's preview of a stack that does not exist yet (../shared/reference/pulumi-preview-semantics.md):
        # nothing is created, so no cloud rule runs; every resource is new, so its id and every output its provider
        # computes are unknown (pulumi-azure-native's `PreviewOutputs` knows only inputs mapped onto outputs);
        # and an invoke through a provider whose configuration is unknown answers with an empty
        # map (pulumi/pulumi sdk/go/common/resource/plugin/provider_plugin.go Invoke; pulumi/pulumi#24169).
        self.dry_run = dry_run
        self.stack = stack
        # Every secret value this cloud makes up starts with the marker, so a test can plant its own marker and
        # then search everything the program exposed for it.
        self.secret_marker = secret_marker
        self.stack_outputs = dict(stack_outputs or {})
        self.invokes: list[tuple[str, dict[str, Any]]] = []
        # Who runs `pulumi up`: a person from a laptop (User) or CI's Entra app (ServicePrincipal).
        self.caller_principal_type = caller_principal_type
        self.caller_object_id = caller_object_id
        # How long the caller's tokens stay valid: a token Entra has just issued lives 60-90 minutes
        # (learn.microsoft.com/entra/identity-platform/configurable-token-lifetimes); the Azure CLI serves a cached
        # one while it has "at least 5 minutes" left (learn.microsoft.com/cli/azure/account, get-access-token).
        # None: a token Entra has just issued.
        self.caller_token_seconds_left = caller_token_seconds_left
        # A grant to a group is a grant to its members (learn.microsoft.com/azure/role-based-access-control/overview,
        # "Security principal"): what the caller is authorized as.
        self.caller_identities = frozenset({caller_object_id, *caller_groups})
        # Vault names held by soft-deleted vaults (what `az keyvault list-deleted` shows).
        self.soft_deleted_key_vaults = frozenset(soft_deleted_key_vaults)
        # Vaults an earlier update of this stack created: name -> the properties Azure holds for it.
        self.existing_key_vaults = dict(existing_key_vaults or {})
        # The random provider makes its values when a resource is created and keeps them in state: a stack
        # destroyed and created again gets new ones. The seed stands for that state.
        self.random_seed = random_seed
        # What this run registered, by URN, and the facts the rules below look up.
        self.registered: dict[str, _Registered] = {}
        self.principal_types: dict[str, str] = {caller_object_id: caller_principal_type}
        self.principals_created: set[str] = set()
        self.clusters: dict[str, dict[str, Any]] = {}
        self.sites_created: set[str] = set()
        self.issued_tokens: dict[str, str] = {}
        # What the Databricks workspace's registry holds when the run starts: model name -> versions. Empty by
        # default, as a workspace created in this run is: nothing can be registered in it before it exists.
        self.registry_models = {name: set(versions) for name, versions in (registry_models or {}).items()}
        # Unity Catalog grants admitted in this run, (securable, principal) -> resource name.
        self.uc_grants: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    # Resources -------------------------------------------------------------------------------------------

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs: dict[str, Any] = plain(dict(args.inputs))
        typ = args.typ
        # StackReferences are read, not registered; reads carry no `custom` flag.
        if typ == "pulumi:pulumi:StackReference":
            return self._stack_reference(args.name, inputs)
        if args.custom is False:
            return "", {}
        if typ.startswith("pulumi:providers:"):
            # A provider configured from unknown values has no id until it is (what its resources and invokes name).
            # The engine gives every new provider an unknown id in a preview (pkg/resource/deploy/providers/
            # registry.go Create) but still finds a configured one under it; a known id here stands for that.
            return ("" if self.dry_run and _has_unknowns(inputs) else f"{args.name}-provider-id"), inputs
        if self.dry_run:
            # Stricter than a real preview, which maps inputs onto the output shape: an input and its output
            # differ in shape (userAssignedIdentities: a list in, a map out), and only the provider's schema knows
            # how, so here every output of a new resource is unknown.
            return "", {}
        if typ.split(":")[1] in _MONITORING_MODULES:
            return self._azure_monitoring(typ, args.name, inputs)
        if typ.startswith("azure-native:"):
            return self._azure(typ, args.name, inputs)
        if typ.startswith("random:"):
            return self._random(typ, args.name, inputs)
        if typ == "docker-build:index:Image":
            self._fetch_model(args.name, inputs)
            return self._image(args.name, inputs)
        if typ.startswith("databricks:"):
            self._registry_object_must_exist(typ, args.name, inputs)
            return f"dbx-{_h(typ, args.name)}", {**inputs, **self._databricks(typ, args.name, inputs)}
        if typ.startswith("kubernetes:"):
            return self._kubernetes(typ, args.name, inputs)
        return f"{args.name}-id", inputs

    def _access_token(self, audience: str) -> str:
        # An Entra access token (a JWT) as the caller gets it: delegated tokens of a person carry `scp`, app-only
        # tokens of an Entra app carry `idtyp: app` and no `scp`
        # (learn.microsoft.com/entra/identity-platform/access-token-claims-reference). The signature part carries
        # the secret marker, so tests can find a token wherever it leaks.
        # Every Entra access token carries `exp` (seconds since the epoch, same reference). A real token, and with
        # it the provider's kubeconfig, changes every run (a secret update of the provider, never a replacement:
        # aks_cluster.py sets clusterIdentifier); here a fresh token's expiry is fixed, so two runs compare equal.
        seconds_left = self.caller_token_seconds_left
        expires = _FRESH_TOKEN_EXPIRY if seconds_left is None else int(time.time() + seconds_left)
        claims: dict[str, Any] = {"aud": audience, "tid": TENANT_ID, "oid": self.caller_object_id, "exp": expires}
        if self.caller_principal_type == "User":
            claims |= {"scp": "user_impersonation", "upn": "deployer@example.com"}
        else:
            claims |= {"idtyp": "app", "roles": [], "sub": self.caller_object_id}

        def segment(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value, sort_keys=True).encode()).decode().rstrip("=")

        return f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment(claims)}.{self.secret_marker}-{_h(audience, n=16)}"

    # Registration rules ---------------------------------------------------------------------------------
    # The harness calls `admit` with what a registration request carries (inputs, dependencies, provider)
    # before the resource is created, and `record` after. `admit` raises CloudError where the real service
    # would refuse the request.

    def admit(self, typ: str, name: str, inputs: dict[str, Any], dependencies: Iterable[str], provider: str) -> None:
        """Refuses a registration the way the real service would (see each rule's source)."""
        if self.dry_run:
            return
        inputs = plain(inputs)
        deps = frozenset(dependencies) | ({provider} if provider else frozenset())
        if typ == "azure-native:authorization:RoleAssignment":
            self._admit_role_assignment(name, inputs)
        elif typ == "azure-native:keyvault:Vault":
            vault = str(inputs.get("vaultName", ""))
            if vault in self.soft_deleted_key_vaults:
                # Soft delete keeps a deleted vault's name reserved until it is purged, and purge protection
                # forbids the purge until the retention period ends
                # (learn.microsoft.com/azure/key-vault/general/soft-delete-overview).
                raise CloudError(
                    f"ConflictError: A vault with the same name already exists in deleted state. You need to either "
                    f"recover or purge existing key vault. (vault {vault!r})"
                )
            self._admit_vault_update(vault, inputs)
        elif typ == "azure-native:web:WebApp":
            self._admit_site(name, inputs)
        elif typ == "pulumi:providers:kubernetes":
            self._admit_kubernetes_provider(name, inputs)
        elif typ.startswith("kubernetes:"):
            self._admit_kubernetes_object(typ, name, inputs, deps)
        elif typ == "docker-build:index:Image" and inputs.get("push"):
            self._admit_image_push(name, inputs, deps)
        elif typ == "databricks:index/grant:Grant":
            self._admit_uc_grant(name, inputs)
        elif typ == "databricks:index/job:Job":
            self._admit_job_trigger(name, inputs)

    def record(
        self,
        urn: str,
        *,
        typ: str,
        name: str,
        inputs: dict[str, Any],
        outputs: dict[str, Any],
        dependencies: Iterable[str],
        provider: str,
    ) -> None:
        """Remembers a registration the cloud accepted, for the rules of later ones."""
        deps = frozenset(dependencies) | ({provider} if provider else frozenset())
        self.registered[urn] = _Registered(typ, name, plain(inputs), plain(outputs), deps)

    def _closure(self, deps: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(deps)
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            found = self.registered.get(urn)
            if found is not None:
                todo.extend(found.dependencies)
        return seen

    def _grants(self, urns: Iterable[str], role: str) -> list[_Registered]:
        return [
            r
            for u in urns
            if (r := self.registered.get(u)) is not None
            and r.type == "azure-native:authorization:RoleAssignment"
            and str(r.inputs.get("roleDefinitionId", "")).endswith("/" + role)
        ]

    def _propagated_grants(self, deps: Iterable[str], role: str, minimum_wait_seconds: float) -> list[_Registered]:
        """Grants of `role` made in this run that a request can rely on: reached through a wait long enough for
        the grant to propagate (a grant the request merely depends on may not be in effect yet)."""
        closure = self._closure(deps)
        waits = [
            u
            for u in closure
            if (r := self.registered.get(u)) is not None
            and r.type == "time:index/sleep:Sleep"
            and _duration_seconds(r.inputs.get("createDuration")) >= minimum_wait_seconds
        ]
        return [g for w in waits for g in self._grants(self._closure(self.registered[w].dependencies), role)]

    def _admit_role_assignment(self, name: str, inputs: dict[str, Any]) -> None:
        definition = str(inputs.get("roleDefinitionId", ""))
        role = definition.rsplit("/", 1)[-1]
        if definition and role not in BUILT_IN_ROLE_DEFINITIONS.values():
            # An assignment must name an existing role definition; the program makes no custom roles, so every id
            # it names must be a built-in one (error code as ARM returns it: JulianHayward/AzAPICall#23).
            raise CloudError(
                f"RoleDefinitionDoesNotExist: The specified role definition with ID '{role}' does not exist. "
                f"(role assignment {name})"
            )
        principal = str(inputs.get("principalId", ""))
        same = [
            r.name
            for r in list(self.registered.values())
            if r.type == "azure-native:authorization:RoleAssignment"
            and (r.inputs.get("scope"), r.inputs.get("roleDefinitionId"), r.inputs.get("principalId"))
            == (inputs.get("scope"), definition, principal)
        ]
        if same:
            # One assignment per (scope, role, principal): a second one, under another name, is refused with 409
            # (learn.microsoft.com/azure/role-based-access-control/troubleshooting, "RoleAssignmentExists").
            raise CloudError(
                f"RoleAssignmentExists: The role assignment already exists. (role assignment {name}; {same[0]} "
                "grants the same role to the same principal at the same scope)"
            )
        given = inputs.get("principalType")
        actual = self.principal_types.get(principal)
        if given is not None and actual is not None and given != actual:
            # ARM checks a given principalType against the directory (Azure/modern-web-app-pattern-dotnet#129).
            raise CloudError(
                f"UnmatchedPrincipalType: The PrincipalId '{principal}' has type '{actual}' , which is different "
                f"from specified PrincipalType '{given}'. (role assignment {name})"
            )
        if given is None and principal in self.principals_created:
            # Without principalType, ARM looks the principal up in the directory, which may not have replicated
            # a principal created moments ago (learn.microsoft.com/azure/role-based-access-control/troubleshooting,
            # "Assigning a role to a new principal sometimes fails").
            raise CloudError(
                f"PrincipalNotFound: Principal {principal} does not exist in the directory {TENANT_ID}. If you are "
                "creating this principal and then immediately assigning a role, this error might be related to a "
                f"replication delay. In this case, set the role assignment principalType property. (role assignment "
                f"{name})"
            )

    def _kubeconfig_of(self, provider_urn: str) -> dict[str, Any]:
        provider = self.registered.get(provider_urn)
        text = (provider.inputs.get("kubeconfig") if provider else None) or ""
        loaded = YAML(typ="safe").load(str(text)) if text else None
        return loaded if isinstance(loaded, dict) else {}

    def _admit_kubernetes_provider(self, name: str, inputs: dict[str, Any]) -> None:
        text = inputs.get("kubeconfig")
        loaded = YAML(typ="safe").load(str(text)) if text else None
        for user in (loaded or {}).get("users") or []:
            exec_ = (user.get("user") or {}).get("exec") or {}
            args = [str(a) for a in exec_.get("args") or []]
            login = args[args.index("--login") + 1] if "--login" in args[:-1] else "devicecode"
            if exec_.get("command") == "kubelogin" and login == "devicecode":
                # kubelogin's device code flow prints a code and waits for a person to type it in a browser
                # (pulumi-azure-native#2399, Azure/kubelogin#193); CI has no person, so the provider never connects.
                raise CloudError(
                    f"kubernetes provider {name}: kubelogin get-token --login devicecode: To sign in, use a web "
                    "browser to open the page https://microsoft.com/devicelogin and enter the code to authenticate. "
                    "(no one does; the login times out)"
                )

    def _target_cluster(self, provider_urn: str) -> tuple[dict[str, Any] | None, str]:
        kubeconfig = self._kubeconfig_of(provider_urn)
        servers = [str((c.get("cluster") or {}).get("server", "")) for c in kubeconfig.get("clusters") or []]
        tokens = [str((u.get("user") or {}).get("token", "")) for u in kubeconfig.get("users") or []]
        for server in servers:
            host = server.removeprefix("https://").split(":")[0]
            if host in self.clusters:
                return self.clusters[host], (tokens[0] if tokens else "")
        return None, ""

    def _admit_kubernetes_object(self, typ: str, name: str, inputs: dict[str, Any], deps: frozenset[str]) -> None:
        providers = [u for u in deps if u.split("::")[2].endswith("pulumi:providers:kubernetes")]
        if not providers:
            return  # the default provider: nothing of this run to check against
        cluster, token = self._target_cluster(providers[0])
        if cluster is None:
            return  # a cluster this run did not create: its API server and grants are not this run's to model
        if self.issued_tokens.get(token) != AKS_SERVER_APP_ID:
            # The AKS API server accepts Entra tokens for its server application only
            # (learn.microsoft.com/azure/aks/kubelogin-authentication).
            raise CloudError(f"{typ} {name}: error: You must be logged in to the server (Unauthorized)")
        kind = typ.rsplit(":", maxsplit=1)[-1].rsplit("/", maxsplit=1)[-1]
        admin_grants = [
            g
            for g in self._propagated_grants(deps, _AKS_RBAC_CLUSTER_ADMIN, 5 * 60)
            if g.inputs.get("principalId") in self.caller_identities and g.inputs.get("scope") == cluster["id"]
        ]
        if not admin_grants:
            # With Azure RBAC for Kubernetes and local accounts off, only data-plane role assignments authorize
            # Kubernetes calls, and "new role assignments can take up to five minutes to propagate"
            # (learn.microsoft.com/azure/aks/manage-azure-rbac).
            raise CloudError(
                f"{typ} {name}: Error from server (Forbidden): {kind.lower()}s is forbidden: User "
                f'"{self.caller_object_id}" cannot create resource "{kind.lower()}s": User does not have access to '
                "the resource in Azure. Update role assignment to allow access."
            )
        if kind in ("Deployment", "Job"):
            pulls = [
                g
                for g in self._grants(self._closure(deps), _ACR_PULL)
                if g.inputs.get("principalId") == cluster["kubelet"]
            ]
            if not pulls:
                # Without AcrPull the kubelet's pull is refused and the pods never start; pulumi-kubernetes' await
                # then fails the update (learn.microsoft.com/troubleshoot/azure/azure-kubernetes/connectivity/
                # cannot-pull-image-from-acr-to-aks-cluster).
                raise CloudError(
                    f"{typ} {name}: Failed to pull image: failed to authorize: failed to fetch anonymous token: "
                    "unexpected status: 401 Unauthorized (ImagePullBackOff)"
                )
        ingress_class = (inputs.get("spec") or {}).get("ingressClassName")
        if kind == "Ingress" and ingress_class == _APP_ROUTING_CLASS and not cluster["app_routing"]:
            # The app routing add-on is what creates this IngressClass and its controller
            # (learn.microsoft.com/azure/aks/app-routing); without it the Ingress never gets an address and
            # pulumi-kubernetes' Ingress await times out.
            raise CloudError(
                f"{typ} {name}: ingressClassName {_APP_ROUTING_CLASS!r} does not exist in the cluster (the "
                "app routing add-on is off): the Ingress never gets an address; await timed out"
            )

    def _admit_image_push(self, name: str, inputs: dict[str, Any], deps: frozenset[str]) -> None:
        tags = [str(t) for t in inputs.get("tags") or []]
        hosts = {t.split("/")[0] for t in tags}
        registries = {
            str(r.outputs.get("id"))
            for r in list(self.registered.values())
            if r.type == "azure-native:containerregistry:Registry" and r.outputs.get("loginServer") in hosts
        }
        if not registries:
            return  # a registry of another stack: its grants are not this run's to check
        pushers = [
            g
            for g in self._propagated_grants(deps, _ACR_PUSH, 10 * 60)
            if g.inputs.get("principalId") in self.caller_identities and g.inputs.get("scope") in registries
        ]
        if not pushers:
            # A push needs AcrPush (or a role with push) on the registry, and "it can take up to 10 minutes for
            # [role assignment] changes to take effect" (learn.microsoft.com/azure/role-based-access-control/
            # troubleshooting). The modelled deployer holds no push right but the grant this program makes.
            raise CloudError(
                f"docker-build Image {name}: push {tags}: denied: requested access to the resource is denied"
            )

    def _is_flex_site(self, inputs: dict[str, Any]) -> bool:
        # A Flex Consumption site carries functionAppConfig, or runs on an FC1 plan this run registered.
        if inputs.get("functionAppConfig"):
            return True
        plans = [
            r
            for r in list(self.registered.values())
            if r.type == "azure-native:web:AppServicePlan" and r.outputs.get("id") == inputs.get("serverFarmId")
        ]
        return any((p.inputs.get("sku") or {}).get("name") == "FC1" for p in plans)

    def _admit_site(self, name: str, inputs: dict[str, Any]) -> None:
        site_config = inputs.get("siteConfig") or {}
        if self._is_flex_site(inputs) and site_config.get("ftpsState") is not None:
            # Flex Consumption has no FTP(S): `ftpsState` is a deprecated site property there
            # (learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations),
            # and ARM refuses it (microsoft/azure-pipelines-tasks#21032, West Europe).
            raise CloudError(
                f"BadRequest (51021): The following site configuration property (Site.SiteConfig.FtpsState) for Flex "
                f"Consumption sites is invalid.  Please remove or rename it before retrying. (site {name})"
            )

    def _admit_vault_update(self, vault: str, inputs: dict[str, Any]) -> None:
        existing = self.existing_key_vaults.get(vault)
        if existing is None:
            return
        before = existing.get("softDeleteRetentionInDays")
        after = (inputs.get("properties") or {}).get("softDeleteRetentionInDays")
        if before is not None and after is not None and float(before) != float(after):
            # "Once set, the retention policy interval cannot be changed"
            # (learn.microsoft.com/azure/key-vault/general/soft-delete-overview). Azure's exact wording is not
            # documented; this is the mock's.
            raise CloudError(
                f"BadRequest: softDeleteRetentionInDays of the existing vault {vault!r} is {float(before):g} and "
                f"cannot be changed (asked for {float(after):g})"
            )

    def _admit_uc_grant(self, name: str, inputs: dict[str, Any]) -> None:
        # databricks_grant is authoritative for one principal on one securable: a second one for the same pair
        # overwrites the first's privileges on every apply (terraform-provider-databricks docs/resources/grant.md).
        # Kept at admission, not at record: registrations run concurrently.
        key = _grant_key(inputs)
        with self._lock:
            other = self.uc_grants.setdefault(key, name)
        if other != name:
            raise CloudError(
                f"databricks:index/grant:Grant {name}: {other} already holds the privileges of "
                f"{key[1]!r} on {key[0]}: two authoritative grants for one principal overwrite each other"
            )

    def _admit_job_trigger(self, name: str, inputs: dict[str, Any]) -> None:
        # The provider's Check: trigger's file_arrival, table_update and periodic are ExactlyOneOf, so a trigger of
        # another kind alone (model, ...) is refused (terraform-provider-databricks jobs/resource_job.go
        # JobSettingsResource.CustomizeSchema, every version to v1.128.0; terraform-plugin-sdk helper/schema/schema.go
        # validateExactlyOneAttribute). Check is skipped while the provider is unconfigured, so `up` is where it fails.
        trigger = inputs.get("trigger")
        if not isinstance(trigger, dict):
            return
        kinds = ("fileArrival", "periodic", "tableUpdate")
        given = [k for k in kinds if trigger.get(k) is not None]
        if len(given) != 1:
            listed = ",".join(f"trigger.0.{_snake(k)}" for k in kinds)
            raise CloudError(
                f'databricks:index/job:Job {name}: Invalid combination of arguments: "trigger.0.file_arrival": '
                + (f"one of `{listed}` must be specified" if not given else f"only one of `{listed}` can be specified")
            )

    def _stack_reference(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ref = str(inputs.get("name") or name)
        if ref not in self.stack_outputs and ref.split("/")[-2:] == [self.project, self.stack]:
            # A stack reading its own outputs gets what its last update left (the engine reads any stack's outputs
            # from the backend: pulumi/pulumi pkg/resource/deploy/builtins.go readStackReference); a stack no update
            # has run on yet has none. Matched on project/stack: the mocks run without an organization.
            own = [v for k, v in self.stack_outputs.items() if k.split("/")[-2:] == [self.project, self.stack]]
            return ref, {"name": ref, "outputs": dict(own[0]) if own else {}, "secretOutputNames": []}
        if ref not in self.stack_outputs:
            raise LookupError(
                f"stack reference {ref!r}: no outputs for that stack in this run "
                f"(known: {sorted(self.stack_outputs) or 'none'})"
            )
        return ref, {"name": ref, "outputs": dict(self.stack_outputs[ref]), "secretOutputNames": []}

    def _azure_id(self, typ: str, name: str, inputs: dict[str, Any]) -> str:
        rg = inputs.get("resourceGroupName", f"{self.project}-{self.stack}-rg")
        base = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{rg}"
        if typ == "azure-native:resources:ResourceGroup":
            return base
        arm = _ARM_TYPES.get(typ)
        if arm is None:
            ns = typ.split(":")[1]
            arm = f"Microsoft.{ns.capitalize()}/{typ.split(':')[2].lower()}s"
        arm = arm.format(
            cluster=inputs.get("resourceName", "cluster"),
            vault=inputs.get("vaultName", "vault"),
            identity=inputs.get("resourceName", "identity"),
            account=inputs.get("accountName", "account"),
            registry=inputs.get("registryName", "registry"),
            site=inputs.get("name", "site"),
        )
        return f"{base}/providers/{arm}/{name}"

    def _azure(self, typ: str, logical: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        own = OWN_NAME_INPUT.get(typ)
        name = str(inputs.get(own) if own and inputs.get(own) else f"{logical}{_h(logical, n=7)}")
        rid = self._azure_id(typ, name, inputs)
        out: dict[str, Any] = {**inputs, "name": name, "id": rid}
        location = inputs.get("location", "westeurope")
        match typ.split(":")[1:]:
            case ["containerregistry", "Registry"]:
                out["loginServer"] = f"{name}.azurecr.io"
            case ["databricks", "Workspace"]:
                wid = str(int(_h(name, n=12), 16) % 10**16)
                out["workspaceId"] = wid
                out["workspaceUrl"] = f"adb-{wid}.{int(_h(name, n=2), 16) % 20}.azuredatabricks.net"
            case ["containerservice", "ManagedCluster"]:
                out.update(self._managed_cluster(name, rid, location, inputs))
            case ["managedidentity", "UserAssignedIdentity"]:
                out["principalId"] = _guid(name, "principal")
                self.principals_created.add(out["principalId"])
                self.principal_types[out["principalId"]] = "ServicePrincipal"
                out["clientId"] = _guid(name, "client")
                out["tenantId"] = TENANT_ID
            case ["keyvault", "Vault"]:
                out["properties"] = {**inputs.get("properties", {}), "vaultUri": f"https://{name}.vault.azure.net/"}
            case ["keyvault", "Secret"]:
                vault = inputs.get("vaultName", "vault")
                uri = f"https://{vault}.vault.azure.net/secrets/{name}"
                props = dict(inputs.get("properties", {}))
                props.pop("value", None)  # Azure never returns a secret's value from the management plane
                out["properties"] = {**props, "secretUri": uri, "secretUriWithVersion": f"{uri}/{_h(name, n=32)}"}
            case ["operationalinsights", "Workspace"]:
                out["customerId"] = _guid(name, "customer")
            case ["applicationinsights", "Component"]:
                ikey = _guid(name, "ikey")
                out["instrumentationKey"] = ikey
                out["connectionString"] = (
                    f"InstrumentationKey={ikey};IngestionEndpoint=https://{location}-5.in.applicationinsights.azure.com/"
                )
            case ["storage", "StorageAccount"]:
                out["primaryEndpoints"] = {
                    svc: f"https://{name}.{svc}.core.windows.net/" for svc in ("blob", "queue", "table", "file")
                }
            case ["web", "WebApp"]:
                out["defaultHostName"] = f"{name}.azurewebsites.net"
                self.sites_created.add(name)
                identity = inputs.get("identity")
                if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
                    # Input is a list of ids, output a map keyed by id (azure-native v3).
                    out["identity"] = {
                        **identity,
                        "userAssignedIdentities": {i: {} for i in identity["userAssignedIdentities"]},
                    }
            case ["databricks", "AccessConnector"]:
                out["identity"] = {**inputs.get("identity", {}), "principalId": _guid(name, "principal")}
                self.principals_created.add(out["identity"]["principalId"])
                self.principal_types[out["identity"]["principalId"]] = "ServicePrincipal"
            case _:
                pass
        return rid, out

    def _azure_monitoring(self, typ: str, logical: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _, out = self._azure(typ, logical, inputs)
        out.update(_monitoring_outputs(typ, out["name"], inputs.get("location", "westeurope"), inputs))
        return out["id"], out

    def _managed_cluster(self, name: str, rid: str, location: str, inputs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        kubelet = f"{name}-agentpool"
        out["identity"] = {**inputs.get("identity", {}), "principalId": _guid(name, "principal")}
        out["identityProfile"] = {
            "kubeletidentity": {
                "objectId": _guid(name, "kubelet-object"),
                "clientId": _guid(name, "kubelet-client"),
                "resourceId": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/MC_{name}/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/{kubelet}",
            }
        }
        out["oidcIssuerProfile"] = {
            **inputs.get("oidcIssuerProfile", {}),
            "issuerURL": f"https://{location}.oic.prod-aks.azure.com/{TENANT_ID}/{_guid(name, 'oidc')}/",
        }
        out["fqdn"] = f"{inputs.get('dnsPrefix', name)}-{_h(name, n=8)}.hcp.{location}.azmk8s.io"
        out["nodeResourceGroup"] = inputs.get("nodeResourceGroup", f"MC_{name}")
        out["currentKubernetesVersion"] = "1.33.2"
        # The control plane's identity and the kubelet identity are new managed identities (service principals).
        for principal in (out["identity"]["principalId"], out["identityProfile"]["kubeletidentity"]["objectId"]):
            self.principals_created.add(principal)
            self.principal_types[principal] = "ServicePrincipal"
        routing = ((inputs.get("ingressProfile") or {}).get("webAppRouting") or {}).get("enabled") is True
        self.clusters[out["fqdn"]] = {
            "name": name,
            "id": rid,
            "kubelet": out["identityProfile"]["kubeletidentity"]["objectId"],
            "app_routing": routing,
        }
        return out

    def _random(self, typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        length = int(inputs.get("length", 32))
        seed = f"{self.stack}|{name}" + (f"|{self.random_seed}" if self.random_seed else "")
        if typ == "random:index/randomUuid:RandomUuid":
            return name, {**inputs, "result": _guid(seed)}
        if typ == "random:index/randomString:RandomString":
            # Not a secret (names are made of these), so no marker; only the characters the inputs allow.
            alphabet = "abcdefghijklmnopqrstuvwxyz" * bool(inputs.get("lower", True)) + "0123456789" * bool(
                inputs.get("numeric", True)
            )
            digest = hashlib.sha256(seed.encode()).digest()
            return name, {**inputs, "result": "".join(alphabet[b % len(alphabet)] for b in digest[:length])}
        value = (self.secret_marker + hashlib.sha256(seed.encode()).hexdigest() * 4)[:length]
        return name, {**inputs, "result": value}

    def _image(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        # What BuildKit would produce depends on exactly what goes into the build: tags, args, context, Dockerfile.
        build = {k: inputs.get(k) for k in ("tags", "buildArgs", "context", "dockerfile", "labels", "target")}
        digest = "sha256:" + hashlib.sha256(json.dumps(build, sort_keys=True).encode()).hexdigest()
        tags = inputs.get("tags") or []
        ref = f"{tags[0]}@{digest}" if tags else ""
        return name, {**inputs, "digest": digest, "ref": ref, "contextHash": _h(build, n=64)}

    def _has(self, model: str, version: int | None = None) -> bool:
        versions = self.registry_models.get(model)
        return versions is not None and (version is None or version in versions)

    def _fetch_model(self, name: str, inputs: dict[str, Any]) -> None:
        # The Dockerfile's fetch step (model_server fetch models:/<name>/<version>) runs in the build: a version the
        # registry does not hold fails it, and with it the build and `pulumi up` (model_image/Dockerfile, fetch.py).
        args = inputs.get("buildArgs") or {}
        model, version = args.get("MODEL_NAME"), args.get("MODEL_VERSION")
        if not model or not str(version).isdigit() or self._has(str(model), int(str(version))):
            return
        uc = str(args.get("MLFLOW_TRACKING_URI", "")).startswith("databricks-uc")
        # MLflow's registry errors (RESOURCE_DOES_NOT_EXIST, HTTP 404): "Registered Model with name=... not found" /
        # "Model Version (name=..., version=...) not found" (mlflow/store/model_registry/sqlalchemy_store.py).
        missing = (
            f"Model Version (name={model}, version={version}) not found"
            if self._has(str(model))
            else f"Registered Model with name={model} not found"
        )
        raise RuntimeError(
            f'docker-build:index:Image {name}: failed to solve: process "/bin/sh -c python -m model_server fetch '
            f'--model-uri models:/{model}/{version} ..." did not complete successfully: exit code: 1: the registry at '
            f"{'databricks-uc' if uc else 'databricks'} has no models:/{model}/{version}: RESOURCE_DOES_NOT_EXIST: "
            f"{missing}"
        )

    def _registry_object_must_exist(self, typ: str, name: str, inputs: dict[str, Any]) -> None:
        # A model-specific webhook needs CAN MANAGE on the registered model, so the model must exist; only a
        # registry-wide one (no model_name) can be made before it does
        # (https://learn.microsoft.com/azure/databricks/mlflow/model-registry-webhooks, "Webhook types").
        if typ == "databricks:index/mlflowWebhook:MlflowWebhook" and inputs.get("modelName"):
            model = str(inputs["modelName"])
            if not self._has(model):
                raise RuntimeError(
                    f"databricks:index/mlflowWebhook:MlflowWebhook {name}: cannot create mlflow webhook: "
                    f"RESOURCE_DOES_NOT_EXIST: Registered Model with name={model} not found"
                )
        # A model update trigger needs EXECUTE on the model or schema it watches, so a model-level one needs the
        # model to exist (https://learn.microsoft.com/azure/databricks/jobs/model-update-triggers, "Before you begin").
        if typ == "databricks:index/job:Job":
            securable = str(((inputs.get("trigger") or {}).get("model") or {}).get("securableName") or "")
            if securable.count(".") == 2 and not self._has(securable):
                raise RuntimeError(
                    f"databricks:index/job:Job {name}: cannot create job: RESOURCE_DOES_NOT_EXIST: "
                    f"Routine or Model '{securable}' does not exist."
                )

    def _databricks(self, typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        if typ == "databricks:index/job:Job":
            return {"url": f"https://adb.example/#job/{int(_h(name, n=8), 16)}"}
        if typ == "databricks:index/registeredModel:RegisteredModel":
            # A declared model exists, with no versions, for every later request of the run.
            full_name = f"{inputs.get('catalogName')}.{inputs.get('schemaName')}.{inputs.get('name')}"
            self.registry_models.setdefault(full_name, set())
            return {"fullName": full_name}
        return {}

    def _kubernetes(self, typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        metadata = dict(inputs.get("metadata") or {})
        metadata.setdefault("name", name)
        ns = metadata.get("namespace", "default")
        out: dict[str, Any] = {**inputs, "metadata": metadata}
        if typ == "kubernetes:core/v1:Service":
            out["status"] = {"loadBalancer": {"ingress": [{"ip": f"10.224.{int(_h(name, n=2), 16)}.10"}]}}
        return f"{ns}/{metadata['name']}", out

    # Invokes ---------------------------------------------------------------------------------------------

    def _unconfigured(self, provider_ref: str) -> bool:
        """Whether the explicit provider `provider_ref` (`urn::id`) names has configuration not known yet."""
        if not provider_ref:
            return False  # a default provider: configured from the stack's config, always known
        urn, _, provider_id = provider_ref.rpartition("::")
        provider = self.registered.get(urn)
        return provider_id in ("", UNKNOWN) or (provider is not None and _has_unknowns(provider.inputs))

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        token = args.token
        call_args: dict[str, Any] = plain(dict(args.args))
        self.invokes.append((token, call_args))
        if self.dry_run and self._unconfigured(args.provider):
            return {}
        if token == "azure-native:authorization:getClientConfig":
            return {
                "subscriptionId": SUBSCRIPTION_ID,
                "tenantId": TENANT_ID,
                "objectId": self.caller_object_id,
                "clientId": _guid("deployer-client"),
            }
        if token == "azure-native:authorization:getClientToken":
            audience = str(call_args.get("endpoint") or "https://management.azure.com/")
            issued = self._access_token(audience)
            self.issued_tokens[issued] = audience
            return {"token": issued}
        if token == "azure-native:containerservice:listManagedClusterUserCredentials":
            cluster = str(call_args.get("resourceName", "cluster"))
            fqdns = [fqdn for fqdn, c in self.clusters.items() if c["name"] == cluster]
            fqdn = fqdns[0] if fqdns else f"{cluster}-{_h(cluster, n=8)}.hcp.westeurope.azmk8s.io"
            kubeconfig = _kubeconfig(cluster, fqdn)
            return {"kubeconfigs": [{"name": "clusterUser", "value": base64.b64encode(kubeconfig.encode()).decode()}]}
        if token == "azure-native:web:listWebAppHostKeys":
            site = call_args.get("name", "site")
            if site in self.sites_created:
                # A Function App created in this run holds no code yet (Pulumi does not deploy it), so its host
                # runtime is not running and the keys API fails (Azure/azure-functions-host#5722,
                # Azure/azure-cli#20892).
                raise CloudError(
                    f"listWebAppHostKeys {site}: BadRequest: Encountered an error (ServiceUnavailable) from host "
                    "runtime."
                )
            return {
                "masterKey": f"{self.secret_marker}-master-" + _h(site, "master", n=40),
                "functionKeys": {"default": f"{self.secret_marker}-fnkey-" + _h(site, "default", n=40)},
                "systemKeys": {},
            }
        if token == "databricks:index/getCurrentUser:getCurrentUser":
            return {
                "id": "4242",
                "userName": "deployer@example.com",
                "home": "/Users/deployer@example.com",
                "repos": "/Repos/deployer@example.com",
                "alphanumeric": "deployer_example_com",
                "externalId": DEPLOYER_OBJECT_ID,
                "aclPrincipalId": "users/deployer@example.com",
                "workspaceUrl": "https://adb-1234567890123456.7.azuredatabricks.net",
            }
        raise NotImplementedError(f"the mock cloud does not answer {token}; add it to offline/mockcloud.py")


def _has_unknowns(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_unknowns(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknowns(v) for v in value)
    # Deserialized inputs carry an unknown as `pulumi.output.Unknown`; state returned by a mock, as the sentinel.
    return isinstance(value, Unknown) or value == UNKNOWN


def _grant_key(inputs: Mapping[str, Any]) -> tuple[str, str]:
    """(securable, principal) of a databricks_grant: its one securable argument, and its principal."""
    securable = sorted(f"{k}:{v}" for k, v in inputs.items() if k not in ("principal", "privileges", "providerConfig"))
    return ",".join(securable), str(inputs.get("principal"))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _monitoring_outputs(typ: str, name: str, location: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What Azure computes for the monitoring resources (Azure Monitor workspace, data collection, Grafana)."""
    out: dict[str, Any] = {}
    kind = typ.split(":")[2]
    if kind == "AzureMonitorWorkspace":
        # Azure creates a managed resource group with a default DCE and DCR for every workspace
        # (learn.microsoft.com/azure/azure-monitor/metrics/azure-monitor-workspace-overview).
        managed = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/MA_{name}_{location}_managed/providers"
        query = f"https://{name}-{_h(name, n=4)}.{location}.prometheus.monitor.azure.com"
        out["accountId"] = _guid(name, "account")
        out["metrics"] = {"internalId": f"mac_{_guid(name, 'account')}", "prometheusQueryEndpoint": query}
        out["defaultIngestionSettings"] = {
            "dataCollectionEndpointResourceId": f"{managed}/Microsoft.Insights/dataCollectionEndpoints/{name}",
            "dataCollectionRuleResourceId": f"{managed}/Microsoft.Insights/dataCollectionRules/{name}",
        }
        out["provisioningState"] = "Succeeded"
    elif kind == "DataCollectionEndpoint":
        host = f"{name}-{_h(name, n=4)}.{location}-1"
        out["immutableId"] = f"dce-{_h(name, 'dce', n=32)}"
        out["configurationAccess"] = {"endpoint": f"https://{host}.handler.control.monitor.azure.com"}
        out["logsIngestion"] = {"endpoint": f"https://{host}.ingest.monitor.azure.com"}
        out["metricsIngestion"] = {"endpoint": f"https://{host}.metrics.ingest.monitor.azure.com"}
    elif kind == "DataCollectionRule":
        out["immutableId"] = f"dcr-{_h(name, 'dcr', n=32)}"
    elif kind == "DataCollectionRuleAssociation":
        # An extension resource: its id hangs off the resource it is associated with.
        out["id"] = f"{inputs.get('resourceUri')}/providers/Microsoft.Insights/dataCollectionRuleAssociations/{name}"
    elif kind == "Grafana":
        out["identity"] = {**inputs.get("identity", {}), "principalId": _guid(name, "principal")}
        endpoint = f"https://{name}-{_h(name, n=8)}.{location[:3]}.grafana.azure.com"
        out["properties"] = {**inputs.get("properties", {}), "endpoint": endpoint}
    return out


def _kubeconfig(cluster: str, fqdn: str) -> str:
    # What listClusterUserCredential returns for an AKS-managed Entra ID cluster with format=exec: kubelogin in
    # device code mode, its default (pulumi-azure-native#2399, Azure/kubelogin#193).
    server = f"https://{fqdn}:443"
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n"
        f"    certificate-authority-data: {base64.b64encode(b'mock-ca').decode()}\n"
        f"contexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: clusterUser_{cluster}\n"
        f"current-context: {cluster}\n"
        f"users:\n- name: clusterUser_{cluster}\n  user:\n    exec:\n"
        "      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n"
        "      args: [get-token, --environment, AzurePublicCloud, --server-id, "
        f"{AKS_SERVER_APP_ID}, --client-id, {_AKS_AAD_CLIENT_APP_ID}, --tenant-id, {TENANT_ID}, --login, devicecode]\n"
        "      env: null\n      provideClusterInfo: false\n"
    )
