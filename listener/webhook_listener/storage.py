"""Azure Storage clients (async) for the queue, the poison queue and the dedupe table.

Two ways in, chosen by the settings: a connection string (Azurite locally, or a key-based account), or account
URLs with `DefaultAzureCredential` (managed identity in Azure; `AZURE_CLIENT_ID` selects the user-assigned one).
Retries are short and timeouts tight: the webhook path has to answer within `accept_timeout_seconds`, and a
sender whose request fails with 503 simply delivers again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.data.tables.aio import TableClient
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from webhook_listener.settings import ListenerSettings

CONNECTION_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5
# No proxy or netrc from the environment: storage is reached directly (and aiohttp would otherwise read ~/.netrc
# on a worker thread for every request).
_TRANSPORT_KWARGS: dict[str, Any] = {
    "connection_timeout": CONNECTION_TIMEOUT_SECONDS,
    "read_timeout": READ_TIMEOUT_SECONDS,
    "use_env_settings": False,
}


@dataclass
class StorageClients:
    queue: QueueClient
    poison_queue: QueueClient
    table: TableClient
    credential: AsyncTokenCredential | None

    async def aclose(self) -> None:
        await self.queue.close()
        await self.poison_queue.close()
        await self.table.close()
        if self.credential is not None:
            await self.credential.close()


def _queue_kwargs() -> dict[str, Any]:
    # Base64 text messages: what the Functions queue trigger decodes by default (host.json messageEncoding).
    return {
        **_TRANSPORT_KWARGS,
        "message_encode_policy": TextBase64EncodePolicy(),
        "message_decode_policy": TextBase64DecodePolicy(),
        # The client's own ExponentialRetry, read from these keywords: two retries about a second apart.
        "retry_total": 2,
        "initial_backoff": 0,
        "increment_base": 1,
        "random_jitter_range": 0,
    }


def _table_kwargs() -> dict[str, Any]:
    return {
        **_TRANSPORT_KWARGS,
        "retry_total": 2,
        "retry_backoff_factor": 0.2,
    }


def build_storage_clients(settings: ListenerSettings) -> StorageClients:
    if settings.storage_connection_string is not None:
        conn = settings.storage_connection_string.get_secret_value()
        return StorageClients(
            queue=QueueClient.from_connection_string(conn, settings.queue_name, **_queue_kwargs()),
            poison_queue=QueueClient.from_connection_string(conn, settings.poison_queue_name, **_queue_kwargs()),
            table=TableClient.from_connection_string(conn, table_name=settings.dedupe_table_name, **_table_kwargs()),
            credential=None,
        )
    from azure.identity.aio import DefaultAzureCredential

    # The settings validator guarantees both URLs when there is no connection string.
    assert settings.queue_account_url is not None
    assert settings.table_account_url is not None
    credential = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)
    return StorageClients(
        queue=QueueClient(settings.queue_account_url, settings.queue_name, credential=credential, **_queue_kwargs()),
        poison_queue=QueueClient(
            settings.queue_account_url, settings.poison_queue_name, credential=credential, **_queue_kwargs()
        ),
        table=TableClient(
            settings.table_account_url, settings.dedupe_table_name, credential=credential, **_table_kwargs()
        ),
        credential=credential,
    )
