"""The listener identity's role assignments (a builder function the WebhookListener component calls): exactly what
the identity uses, each at the narrowest scope that works, built with the one role-assignment helper.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pulumi
from pulumi_azure_native import authorization, managedidentity

from components.azure_facts import (
    KEY_VAULT_SECRETS_USER,
    MONITORING_METRICS_PUBLISHER,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    STORAGE_BLOB_DATA_OWNER,
    STORAGE_QUEUE_DATA_CONTRIBUTOR,
    STORAGE_TABLE_DATA_CONTRIBUTOR,
)
from components.listener_storage import ListenerStorage
from components.role_assignment import assign_role


class AccessInputs(Protocol):
    """What the grants read (WebhookListenerArgs has it): the vault, the secrets the app settings reference and
    the resources that hold them, and the Application Insights component."""

    @property
    def key_vault_id(self) -> pulumi.Input[str]: ...
    @property
    def secrets(self) -> Sequence[pulumi.Resource]: ...
    @property
    def webhook_secret_uri(self) -> pulumi.Input[str]: ...
    @property
    def job_token_secret_uri(self) -> pulumi.Input[str]: ...
    @property
    def dispatch_token_secret_uri(self) -> pulumi.Input[str]: ...
    @property
    def azure_monitor_token_secret_uri(self) -> pulumi.Input[str] | None: ...
    @property
    def alertmanager_token_secret_uri(self) -> pulumi.Input[str] | None: ...
    @property
    def app_insights_id(self) -> pulumi.Input[str]: ...


SECRET_URI = re.compile(r"^https://(?P<vault>[A-Za-z0-9-]+)\.vault\.azure\.net/secrets/(?P<name>[A-Za-z0-9-]+)/?$")


def secret_resource_id(key_vault_id: pulumi.Input[str], secret_uri: pulumi.Input[str]) -> pulumi.Output[str]:
    """The ARM id of the secret a URI names: the scope of a role assignment on that one secret."""

    def build(vault_id: str, uri: str) -> str:
        match = SECRET_URI.match(uri)
        if match is None:
            raise ValueError(f"{uri!r} is not a versionless Key Vault secret URI")
        return f"{vault_id}/secrets/{match['name']}"

    return pulumi.Output.all(key_vault_id, secret_uri).apply(lambda v: build(str(v[0]), str(v[1])))


@dataclass(frozen=True)
class ListenerAccess:
    """The grants the Function App must wait for: it reads its storage, package and secrets from its first start."""

    host_storage: authorization.RoleAssignment
    """Storage Blob Data Owner on the host account."""
    package_access: authorization.RoleAssignment
    """Storage Blob Data Contributor on the deployment container."""
    secret_readers: list[authorization.RoleAssignment]
    """Key Vault Secrets User on each secret the app settings reference."""


def grant_listener_access(
    name: str,
    args: AccessInputs,
    *,
    identity: managedidentity.UserAssignedIdentity,
    stores: ListenerStorage,
    parent: pulumi.Resource,
) -> ListenerAccess:
    """Every role the listener's identity holds, each a child of `parent` named `<name>-<what it grants>`."""
    client_config = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=parent))

    def grant(
        role: str, suffix: str, scope: pulumi.Input[str], depends_on: list[pulumi.Resource] | None = None
    ) -> authorization.RoleAssignment:
        return assign_role(
            f"{name}-{suffix}",
            role_id=role,
            scope=scope,
            principal_id=identity.principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            subscription_id=client_config.subscription_id,
            parent=parent,
            depends_on=depends_on or [],
        )

    # Host storage: the host creates its own containers (keys, leases) at start, hence Owner on the account.
    host_storage = grant(STORAGE_BLOB_DATA_OWNER, "host-storage-blob-owner", stores.account.id)
    # The package container only: the platform reads the package and one deploy writes it, as the identity.
    package_access = grant(STORAGE_BLOB_DATA_CONTRIBUTOR, "package-blob-contributor", stores.container.id)
    grant(STORAGE_QUEUE_DATA_CONTRIBUTOR, "queue-contributor", stores.queue.id)
    grant(STORAGE_QUEUE_DATA_CONTRIBUTOR, "poison-queue-contributor", stores.poison_queue.id)
    grant(STORAGE_TABLE_DATA_CONTRIBUTOR, "dedupe-table-contributor", stores.table.id)
    # One secret each rather than the whole vault: the vault holds other secrets the listener has no use for.
    # Each grant is made after the secrets exist: a role assignment names its scope, and the scope must be a
    # secret the vault holds, not one an operator will set later.
    secret_readers = [
        grant(
            KEY_VAULT_SECRETS_USER,
            f"kv-{role}",
            secret_resource_id(args.key_vault_id, uri),
            depends_on=list(args.secrets),
        )
        for role, uri in (
            ("webhook-secret", args.webhook_secret_uri),
            ("job-token", args.job_token_secret_uri),
            ("dispatch-token", args.dispatch_token_secret_uri),
            ("azure-monitor-token", args.azure_monitor_token_secret_uri),
            ("alertmanager-token", args.alertmanager_token_secret_uri),
        )
        if uri is not None
    ]
    grant(MONITORING_METRICS_PUBLISHER, "app-insights-publisher", args.app_insights_id)
    return ListenerAccess(host_storage=host_storage, package_access=package_access, secret_readers=secret_readers)
