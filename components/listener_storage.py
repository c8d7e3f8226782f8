"""The listener's storage (a builder function the WebhookListener component calls): the host account with the
hand-off queue, the poison queue and the dedupe table, and a separate code-package account with the deployment
container the app runs its package from. Both accounts are hardened the same way (components/storage_account.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import storage

from components.contracts import listener
from components.placement import Placement
from components.storage_account import hardened_storage_account

# The listener's names (listener/webhook_listener/contract.py, which its settings class reads too).
QUEUE_NAME = listener.QUEUE_NAME
POISON_QUEUE_NAME = listener.POISON_QUEUE_NAME
DEDUPE_TABLE_NAME = listener.DEDUPE_TABLE_NAME
# The queue trigger binds to the host storage connection; with identity-based host storage that is the
# `AzureWebJobsStorage__*` app settings (listener_app.py), so the trigger and the listener's own clients use the
# same account.
QUEUE_TRIGGER_CONNECTION = listener.QUEUE_TRIGGER_CONNECTION

# Flex Consumption keeps the code in a blob container of its own ("deployment container"); one deploy writes the
# package there under this exact name (functions-infrastructure-as-code.md, "Deployment package").
DEPLOYMENT_CONTAINER = "app-package"
PACKAGE_BLOB_NAME = "released-package.zip"


@dataclass(frozen=True)
class ListenerStorage:
    """The accounts, queues, table and container `build_listener_storage` makes."""

    account: storage.StorageAccount
    """Host storage: the Functions host's own state, the queues and the dedupe table."""
    queue: storage.Queue
    """The hand-off queue between the HTTP route and the dispatching worker."""
    poison_queue: storage.Queue
    """Where the queue trigger moves a message that failed every attempt."""
    table: storage.Table
    """The dedupe table: one row per delivery acted on."""
    package_account: storage.StorageAccount
    """The account that holds nothing but the code package."""
    container: storage.BlobContainer
    """The deployment container the app runs its package from."""


def build_listener_storage(name: str, placement: Placement, parent: pulumi.Resource) -> ListenerStorage:
    """The listener's two storage accounts and what lives in them; the host's side is protected as `placement`
    says, the package's is not (the deploy workflow publishes the package again)."""
    naming = placement.naming
    rg = placement.resource_group_name
    stateful = pulumi.ResourceOptions(parent=parent, protect=placement.protect)
    child = pulumi.ResourceOptions(parent=parent)
    # Host storage, the hand-off queue, the poison queue and the dedupe table. Shared keys are off: every
    # client (Functions host, queue trigger, the listener's own clients) authenticates as the identity.
    account = hardened_storage_account(
        f"{name}-storage",
        account_name=naming.global_name("storage", "listener"),
        placement=placement,
        parent=parent,
        protect=placement.protect,
    )
    queue = storage.Queue(
        f"{name}-queue", account_name=account.name, resource_group_name=rg, queue_name=QUEUE_NAME, opts=stateful
    )
    poison_queue = storage.Queue(
        f"{name}-poison-queue",
        account_name=account.name,
        resource_group_name=rg,
        queue_name=POISON_QUEUE_NAME,
        opts=stateful,
    )
    table = storage.Table(
        f"{name}-dedupe-table",
        account_name=account.name,
        resource_group_name=rg,
        table_name=DEDUPE_TABLE_NAME,
        opts=stateful,
    )
    # The deployment container lives in an account of its own, holding nothing but the package, so the only
    # writer there (one deploy, as the app's identity) can touch nothing of the host's. Shared keys off: nothing
    # uploads with a key (Pulumi does not upload the package).
    package_account = hardened_storage_account(
        f"{name}-package-storage",
        account_name=naming.global_name("storage", "pkg"),
        placement=placement,
        parent=parent,
        protect=False,
    )
    container = storage.BlobContainer(
        f"{name}-package-container",
        account_name=package_account.name,
        resource_group_name=rg,
        container_name=DEPLOYMENT_CONTAINER,
        public_access=storage.PublicAccess.NONE,
        opts=child,
    )
    return ListenerStorage(
        account=account,
        queue=queue,
        poison_queue=poison_queue,
        table=table,
        package_account=package_account,
        container=container,
    )
