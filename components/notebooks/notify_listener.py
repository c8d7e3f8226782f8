# Databricks notebook source
"""Tell the release listener which version a Unity Catalog model's promote alias names (ModelRegistryWebhook's job).

Unity Catalog models have no registry webhooks, so a scheduled job runs this notebook every few minutes. It reads the
alias `alias` of the model `securable` (catalog.schema.model), or of every model in the schema `securable`
(catalog.schema), and for each model whose alias names a version POSTs the listener's JobPromotion body to
`/api/webhooks/databricks-job` with the bearer token.

The delivery id names the model, version and alias, so every read of the same promotion carries the same id and the
listener (which keeps every delivery id it has seen) releases it once; a new version under the alias is a new id.
The listener URL (it carries the function key) and the token are read from the Databricks secret scope named in
`secret_scope`; neither is a job parameter, so neither shows in the job's UI, run history or API.
"""

import json
import re
import time
import urllib.request

from databricks.sdk import WorkspaceClient
from databricks.sdk.runtime import dbutils

TIMEOUT_SECONDS = 30


def delivery_id(model: str, version: str, alias: str) -> str:
    """The same for every read of one promotion; only the characters a Table storage row key allows."""
    return re.sub(r"[^A-Za-z0-9._:-]", "-", f"uc-{model}-{version}-{alias}")[:200]


def models_in(client: WorkspaceClient, securable: str) -> list[str]:
    """The model `securable` names, or every model in the schema it names."""
    parts = securable.split(".")
    if len(parts) == 3:
        return [securable]
    catalog, schema = parts
    return [str(m.full_name) for m in client.registered_models.list(catalog_name=catalog, schema_name=schema)]


def aliased_version(client: WorkspaceClient, model: str, alias: str) -> str | None:
    """The version `alias` names on `model`, or None when the alias is not set."""
    info = client.registered_models.get(model, include_aliases=True)
    for each in info.aliases or []:
        if each.alias_name == alias and each.version_num is not None:
            return str(each.version_num)
    return None


def main() -> None:
    securable = dbutils.widgets.get("securable")
    alias = dbutils.widgets.get("alias")
    scope = dbutils.widgets.get("secret_scope")
    url = dbutils.secrets.get(scope=scope, key="listener-job-url")
    token = dbutils.secrets.get(scope=scope, key="listener-job-token")
    if not url.startswith("https://"):
        raise ValueError("the listener URL in the secret scope is not https")
    client = WorkspaceClient()  # the job's identity, from the run's own context
    for model in models_in(client, securable):
        version = aliased_version(client, model, alias)
        if version is None:
            continue  # not promoted yet
        body = {
            "delivery_id": delivery_id(model, version, alias),
            "timestamp": int(time.time()),
            "model": model,
            "version": version,
            "alias": alias,
        }
        request = urllib.request.Request(  # noqa: S310 - https only, checked above; the URL is ours
            url,
            data=json.dumps(body).encode("utf-8"),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        # A non-2xx answer raises HTTPError (its message carries the status, not the URL): the task fails and the
        # job retries it; a promotion already handed off is answered 202 "duplicate".
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - as above
            print(f"{model} v{version} @{alias}: listener answered {response.status}")


main()
