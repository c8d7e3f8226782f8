"""A stand-in for the cloud APIs the program talks to (Azure, Databricks, the registry, Kubernetes), for the mocks.

It answers each resource registration with the outputs the real provider would compute (login servers, workspace
URLs, kubelet identities, OIDC issuer, digests, ...), in wire (camelCase) names, deterministically: the same
inputs give the same outputs, so two runs of the same stack compare equal and a diff shows only real changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Collection, Mapping
from typing import Any

from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

SUBSCRIPTION_ID = "00000000-0000-4000-8000-000000000001"
TENANT_ID = "00000000-0000-4000-8000-0000000000aa"
DEPLOYER_OBJECT_ID = "00000000-0000-4000-8000-0000000000d1"

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
}

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
_OWN_NAME_INPUT = {
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
}


def _h(*parts: object, n: int = 12) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:n]


def _guid(*parts: object) -> str:
    h = _h(*parts, n=32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def plain(value: Any) -> Any:
    """`value` without Pulumi's secret wrappers (the mocks receive inputs still wrapped)."""
    from stacks.harness import unwrap_secrets

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
        registry_models: Mapping[str, Collection[int]] | None = None,
    ) -> None:
        self.project = project
        self.stack = stack
        # Every secret value this cloud makes up starts with the marker, so a test can plant its own marker and
        # then search everything the program exposed for it.
        self.secret_marker = secret_marker
        self.stack_outputs = dict(stack_outputs or {})
        self.invokes: list[tuple[str, dict[str, Any]]] = []
        # What the Databricks workspace's registry holds when the run starts: model name -> versions. Empty by
        # default, as a workspace created in this run is: nothing can be registered in it before it exists.
        self.registry_models = {name: set(versions) for name, versions in (registry_models or {}).items()}

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
            return f"{args.name}-provider-id", inputs
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

    def _stack_reference(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ref = str(inputs.get("name") or name)
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
        )
        return f"{base}/providers/{arm}/{name}"

    def _azure(self, typ: str, logical: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        own = _OWN_NAME_INPUT.get(typ)
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
            case ["managedidentity", "UserAssignedIdentity"]:
                out["principalId"] = _guid(name, "principal")
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
                identity = inputs.get("identity")
                if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
                    # Input is a list of ids, output a map keyed by id (azure-native v3).
                    out["identity"] = {
                        **identity,
                        "userAssignedIdentities": {i: {} for i in identity["userAssignedIdentities"]},
                    }
            case ["databricks", "AccessConnector"]:
                out["identity"] = {**inputs.get("identity", {}), "principalId": _guid(name, "principal")}
            case _:
                pass
        return rid, out

    def _random(self, typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        length = int(inputs.get("length", 32))
        value = (self.secret_marker + hashlib.sha256(f"{self.stack}|{name}".encode()).hexdigest() * 4)[:length]
        if typ == "random:index/randomUuid:RandomUuid":
            return name, {**inputs, "result": _guid(self.stack, name)}
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

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        token = args.token
        call_args: dict[str, Any] = plain(dict(args.args))
        self.invokes.append((token, call_args))
        if token == "azure-native:authorization:getClientConfig":
            return {
                "subscriptionId": SUBSCRIPTION_ID,
                "tenantId": TENANT_ID,
                "objectId": DEPLOYER_OBJECT_ID,
                "clientId": _guid("deployer-client"),
            }
        if token == "azure-native:authorization:getClientToken":
            return {"token": f"{self.secret_marker}-entra-token-" + _h(call_args.get("endpoint"), n=16)}
        if token == "azure-native:containerservice:listManagedClusterUserCredentials":
            cluster = call_args.get("resourceName", "cluster")
            kubeconfig = _kubeconfig(cluster)
            return {"kubeconfigs": [{"name": "clusterUser", "value": base64.b64encode(kubeconfig.encode()).decode()}]}
        if token == "azure-native:web:listWebAppHostKeys":
            site = call_args.get("name", "site")
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
        raise NotImplementedError(f"the mock cloud does not answer {token}; add it to stacks/mockcloud.py")


def _kubeconfig(cluster: str) -> str:
    server = f"https://{cluster}-{_h(cluster, n=8)}.hcp.westeurope.azmk8s.io:443"
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n"
        f"    certificate-authority-data: {base64.b64encode(b'mock-ca').decode()}\n"
        f"contexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: clusterUser_{cluster}\n"
        f"current-context: {cluster}\n"
        f"users:\n- name: clusterUser_{cluster}\n  user:\n    exec:\n"
        "      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n"
        "      args: [get-token, --login, azurecli, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]\n"
    )
