"""The platform Key Vault and the secrets the program can make itself."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import keyvault

from components.placement import Placement

# The CI dispatch token is a credential of another system (a GitHub App token or an Azure DevOps PAT): the program
# cannot make it, and it never passes through Pulumi config or state. An operator sets it once (README, "Deploying for
# real", step 6: a Key Vault Secrets Officer grant for that step, `az keyvault secret set`, then the refresh of the
# listener's Key Vault references, which App Service otherwise caches for up to 24 hours); the listener reads it
# through a Key Vault reference to this name.
DISPATCH_TOKEN_SECRET = "dispatch-token"
# What the dispatch-token secret holds until the operator sets the token: a version that names the command, not a
# credential. `az keyvault secret set` adds a new version, which the versionless reference then resolves to.
DISPATCH_TOKEN_PLACEHOLDER = "unset: az keyvault secret set --name dispatch-token --file token.txt"
# The stack output holding the retention Azure reports for the vault, and the setting it must keep matching: a vault's
# retention is set when it is created and never changes ("Once set, the retention policy interval cannot be changed",
# learn.microsoft.com/azure/key-vault/general/soft-delete-overview).
DEPLOYED_RETENTION_OUTPUT = "keyVaultSoftDeleteRetentionDays"
RETENTION_KEY = "keyVault.softDeleteRetentionDays"
# Random characters appended to the vault name, kept in the stack's state (see PlatformKeyVault).
VAULT_NAME_SUFFIX_LENGTH = 5
_VAULT_NAME_MAX = 24


def vault_name(base: str, suffix: str) -> str:
    """`base` (a Naming global name: `<stem>-<fingerprint>`) with the random `suffix` in place of its fingerprint,
    still a valid vault name: 3-24 characters, letters, digits and single hyphens, starting with a letter and
    ending with a letter or digit. The suffix already makes the name unique; the fingerprint would only crowd it."""
    stem = base.rsplit("-", 1)[0][: _VAULT_NAME_MAX - len(suffix) - 1].rstrip("-")
    return f"{stem}-{suffix}"


def retention_unchanged(deployed: object, wanted: int, project: str) -> int:
    """`wanted`, if the vault does not exist yet (`deployed` is None) or already has that retention; otherwise a
    ValueError naming the setting, before Azure refuses the update."""
    if deployed is None:
        return wanted
    # Outputs come back from the state as JSON numbers (90.0).
    days = int(deployed) if isinstance(deployed, int | float) and float(deployed).is_integer() else deployed
    if days != wanted:
        raise ValueError(
            f"{project}:{RETENTION_KEY} is {wanted}, but the stack's Key Vault was created with {days} days: a "
            f"vault's soft-delete retention cannot be changed after it exists; set {RETENTION_KEY} back to {days}"
        )
    return wanted


@dataclass(frozen=True)
class PlatformKeyVaultArgs:
    """Where the vault lives, whose tenant it trusts, and how long a deleted vault is kept."""

    placement: Placement
    """Name (a global `keyvault` name with a random suffix), resource group, region and tags; `protect`
    protects the vault and its name suffix."""
    tenant_id: pulumi.Input[str]
    """The Entra tenant that authenticates requests to the vault."""
    soft_delete_retention_days: int = 7
    """Days a deleted vault and its secrets can be recovered (7 to 90); fixed once the vault exists."""
    state_stack: str | None = None
    """This stack's fully qualified name: its last outputs (`keyVaultSoftDeleteRetentionDays`) say what the existing
    vault was created with, and a different `soft_delete_retention_days` is refused. None: no check."""
    purge_protection: bool = False
    """Forbid purging a deleted vault before its retention ends; once on, Azure never lets it be turned off."""


class PlatformKeyVault(pulumi.ComponentResource):
    """Owns the Key Vault (RBAC authorization, soft delete, purge protection per config) and the generated secrets:
    the registry webhook's HMAC secret and the bearer token of the Unity Catalog job, both made by pulumi_random and
    kept only as Pulumi secrets and Key Vault secrets.

    Also declares the dispatch-token secret with a placeholder (the operator sets the real token; Pulumi never
    writes it again), so that every secret the listener is granted exists before its grant.

    Registered outputs: `vaultId`, `vaultUri`; attributes also hold the retention Azure reports (what the stack
    exports as `keyVaultSoftDeleteRetentionDays`, for the next run's check), the versionless URI of each secret
    (what Key Vault references point at), the secret resources (`secrets`, what grants scoped to them wait for), and the
    generated values as secret Outputs for the resources that must hold them (the Databricks webhook). The values
    are not registered: a component's outputs are one more copy in the state, and these need none.
    """

    vault_id: pulumi.Output[str]
    vault_uri: pulumi.Output[str]
    webhook_secret: pulumi.Output[str]
    webhook_secret_uri: pulumi.Output[str]
    job_token: pulumi.Output[str]
    job_token_uri: pulumi.Output[str]
    azure_monitor_token: pulumi.Output[str]
    azure_monitor_token_uri: pulumi.Output[str]
    alertmanager_token_uri: pulumi.Output[str]
    dispatch_token_uri: pulumi.Output[str]
    vault_name: pulumi.Output[str]
    soft_delete_retention_days: pulumi.Output[int | None]
    secrets: list[keyvault.Secret]

    def __init__(self, name: str, args: PlatformKeyVaultArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:platform:PlatformKeyVault", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # A deleted vault keeps its name for the soft-delete retention period, and with purge protection no one can
        # purge it sooner (learn.microsoft.com/azure/key-vault/general/soft-delete-overview): a stack destroyed and
        # created again would ask for a name that is still taken. A random suffix made when the stack is created
        # and kept in its state gives every incarnation of the stack its own name, and the same name for its life.
        suffix = random.RandomString(
            f"{name}-name-suffix",
            length=VAULT_NAME_SUFFIX_LENGTH,
            special=False,
            upper=False,
            opts=pulumi.ResourceOptions(parent=self, protect=args.placement.protect),
        )
        retention: pulumi.Input[int] = args.soft_delete_retention_days
        if args.state_stack is not None:
            # The stack's own last outputs: empty until its first update, so day zero checks nothing. The engine
            # reads them like any stack's (pulumi/pulumi pkg/resource/deploy/builtins.go readStackReference).
            deployed = pulumi.StackReference(f"{name}-deployed", stack_name=args.state_stack, opts=child)
            project, wanted = pulumi.get_project(), args.soft_delete_retention_days
            retention = deployed.get_output(DEPLOYED_RETENTION_OUTPUT).apply(
                lambda d: retention_unchanged(d, wanted, project)
            )
        base_name = args.placement.naming.global_name("keyvault", "kv")
        self.vault_name = suffix.result.apply(lambda s: vault_name(base_name, s))
        vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=self.vault_name,
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=args.tenant_id,
                sku=keyvault.SkuArgs(family="A", name=keyvault.SkuName.STANDARD),
                # Access by Azure RBAC roles only: no access policies that grant broad, unaudited rights.
                enable_rbac_authorization=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=retention,
                # Purge protection cannot be switched off once on, so it is only set (never sent as false).
                enable_purge_protection=True if args.purge_protection else None,
                enabled_for_deployment=False,
                enabled_for_disk_encryption=False,
                enabled_for_template_deployment=False,
            ),
            tags=args.placement.tag_map(),
            opts=pulumi.ResourceOptions(parent=self, protect=args.placement.protect),
        )
        uri = vault.properties.apply(lambda p: p.vault_uri or "")

        def generated(role: str, secret_name: str) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
            value = random.RandomPassword(
                f"{name}-{role}",
                length=48,
                special=False,
                opts=child,
            )
            secret = keyvault.Secret(
                f"{name}-{role}-secret",
                secret_name=secret_name,
                vault_name=vault.name,
                resource_group_name=args.placement.resource_group_name,
                # The random provider marks `result` secret in the engine; saying so here keeps it secret on every path.
                properties=keyvault.SecretPropertiesArgs(
                    value=pulumi.Output.secret(value.result), content_type="text/plain"
                ),
                tags=args.placement.tag_map(),
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["properties"]),
            )
            self.secrets.append(secret)
            secret_uri = secret.properties.apply(lambda p: p.secret_uri or "")
            return pulumi.Output.secret(value.result), secret_uri

        self.secrets = []
        self.webhook_secret, self.webhook_secret_uri = generated("webhook-hmac", "webhook-hmac-secret")
        self.job_token, self.job_token_uri = generated("job-token", "listener-job-token")
        # The listener's alert routes: the action group's URL carries the first; a team's Alertmanager reads the second.
        self.azure_monitor_token, self.azure_monitor_token_uri = generated(
            "alert-token", "listener-azure-monitor-token"
        )
        _, self.alertmanager_token_uri = generated("alertmanager-token", "listener-alertmanager-token")
        # The dispatch token's secret exists from the first run, so the listener's grant on it has a scope that
        # exists and its Key Vault reference resolves. Pulumi writes only the placeholder, once: no diff on
        # `properties` or `tags` ever sends a new version over the operator's token (ignore_changes), and the
        # secret is kept if the resource is ever removed from the program (retain_on_delete).
        dispatch = keyvault.Secret(
            f"{name}-dispatch-token-secret",
            secret_name=DISPATCH_TOKEN_SECRET,
            vault_name=vault.name,
            resource_group_name=args.placement.resource_group_name,
            properties=keyvault.SecretPropertiesArgs(
                value=pulumi.Output.secret(DISPATCH_TOKEN_PLACEHOLDER), content_type="text/plain"
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                additional_secret_outputs=["properties"],
                ignore_changes=["properties", "tags"],
                retain_on_delete=True,
            ),
        )
        self.secrets.append(dispatch)
        self.vault_id = vault.id
        self.soft_delete_retention_days = vault.properties.apply(lambda p: p.soft_delete_retention_in_days)
        self.vault_uri = uri
        self.dispatch_token_uri = dispatch.properties.apply(lambda p: p.secret_uri or "")
        self.register_outputs({"vaultId": self.vault_id, "vaultUri": self.vault_uri})
