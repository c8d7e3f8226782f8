"""The mock cloud's admission rules: each refuses a registration the way the real service would (its source beside
it). The harness calls `admit` with what a registration request carries (inputs, dependencies, provider) before the
resource is created, and `record` after; `admit` raises CloudError where the real service would refuse the request.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ruamel.yaml import YAML

from offline.cloud_facts import (
    ACR_PULL,
    ACR_PUSH,
    AKS_RBAC_CLUSTER_ADMIN,
    AKS_SERVER_APP_ID,
    APP_ROUTING_CLASS,
    BUILT_IN_ROLE_DEFINITIONS,
    TENANT_ID,
    CloudError,
    Registered,
    duration_seconds,
    plain,
)


class AdmissionRules:
    """Owns the rules that refuse a registration, and what they remember of the run's earlier ones; the state they
    read is the cloud's (`MockCloud` sets it)."""

    dry_run: bool
    registered: dict[str, Registered]
    principal_types: dict[str, str]
    principals_created: set[str]
    clusters: dict[str, dict[str, Any]]
    issued_tokens: dict[str, str]
    caller_object_id: str
    caller_identities: frozenset[str]
    soft_deleted_key_vaults: frozenset[str]
    existing_key_vaults: dict[str, Mapping[str, Any]]
    uc_grants: dict[tuple[str, str], str]
    _lock: threading.Lock

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
        self.registered[urn] = Registered(typ, name, plain(inputs), plain(outputs), deps)

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

    def _grants(self, urns: Iterable[str], role: str) -> list[Registered]:
        return [
            r
            for u in urns
            if (r := self.registered.get(u)) is not None
            and r.type == "azure-native:authorization:RoleAssignment"
            and str(r.inputs.get("roleDefinitionId", "")).endswith("/" + role)
        ]

    def _propagated_grants(self, deps: Iterable[str], role: str, minimum_wait_seconds: float) -> list[Registered]:
        """Grants of `role` made in this run that a request can rely on: reached through a wait long enough for
        the grant to propagate (a grant the request merely depends on may not be in effect yet)."""
        closure = self._closure(deps)
        waits = [
            u
            for u in closure
            if (r := self.registered.get(u)) is not None
            and r.type == "time:index/sleep:Sleep"
            and duration_seconds(r.inputs.get("createDuration")) >= minimum_wait_seconds
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
            for g in self._propagated_grants(deps, AKS_RBAC_CLUSTER_ADMIN, 5 * 60)
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
        # A Rollout's pods start when it is created, and `pulumi up` waits for it to be Healthy when it carries
        # `pulumi.com/waitFor` (pulumi-kubernetes docs, "waitFor" annotation): its pulls are as much the update's.
        waits = "pulumi.com/waitFor" in ((inputs.get("metadata") or {}).get("annotations") or {})
        if kind in ("Deployment", "Job") or (kind == "Rollout" and waits):
            pulls = [
                g
                for g in self._grants(self._closure(deps), ACR_PULL)
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
        if kind == "Ingress" and ingress_class == APP_ROUTING_CLASS and not cluster["app_routing"]:
            # The app routing add-on is what creates this IngressClass and its controller
            # (learn.microsoft.com/azure/aks/app-routing); without it the Ingress never gets an address and
            # pulumi-kubernetes' Ingress await times out.
            raise CloudError(
                f"{typ} {name}: ingressClassName {APP_ROUTING_CLASS!r} does not exist in the cluster (the "
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
            for g in self._propagated_grants(deps, ACR_PUSH, 10 * 60)
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


def _grant_key(inputs: Mapping[str, Any]) -> tuple[str, str]:
    """(securable, principal) of a databricks_grant: its one securable argument, and its principal."""
    securable = sorted(f"{k}:{v}" for k, v in inputs.items() if k not in ("principal", "privileges", "providerConfig"))
    return ",".join(securable), str(inputs.get("principal"))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
