"""A stand-in for the cloud APIs the program talks to (Azure, Databricks, the registry, Kubernetes), for the mocks.

It answers each resource registration with the outputs the real provider would compute (login servers, workspace
URLs, kubelet identities, OIDC issuer, digests, ...), in wire (camelCase) names, deterministically: the same
inputs give the same outputs, so two runs of the same stack compare equal and a diff shows only real changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks
from pulumi.runtime.rpc import UNKNOWN

from offline.admission import AdmissionRules
from offline.cloud_facts import (
    AKS_AAD_CLIENT_APP_ID,
    AKS_SERVER_APP_ID,
    DEPLOYER_OBJECT_ID,
    FRESH_TOKEN_EXPIRY,
    SUBSCRIPTION_ID,
    TENANT_ID,
    CloudError,
    PrincipalType,
    Registered,
    plain,
)

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


class MockCloud(AdmissionRules, Mocks):
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
        self.registered: dict[str, Registered] = {}
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
        expires = FRESH_TOKEN_EXPIRY if seconds_left is None else int(time.time() + seconds_left)
        claims: dict[str, Any] = {"aud": audience, "tid": TENANT_ID, "oid": self.caller_object_id, "exp": expires}
        if self.caller_principal_type == "User":
            claims |= {"scp": "user_impersonation", "upn": "deployer@example.com"}
        else:
            claims |= {"idtyp": "app", "roles": [], "sub": self.caller_object_id}

        def segment(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value, sort_keys=True).encode()).decode().rstrip("=")

        return f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment(claims)}.{self.secret_marker}-{_h(audience, n=16)}"

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
        f"{AKS_SERVER_APP_ID}, --client-id, {AKS_AAD_CLIENT_APP_ID}, --tenant-id, {TENANT_ID}, --login, devicecode]\n"
        "      env: null\n      provideClusterInfo: false\n"
    )
