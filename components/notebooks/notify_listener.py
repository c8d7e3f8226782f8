# Databricks notebook source
"""Tell the release listener that a Unity Catalog model alias was set (the job task of ModelRegistryWebhook).

Unity Catalog models have no registry webhooks; a job with a model-update trigger (MODEL_ALIAS_SET) runs this
notebook with the batched updates in the `model_updates` parameter (`{{job.trigger.model.updates}}`:
`[{"full_name": "cat.schema.model", "version": 3, "alias_name": "champion"}, ...]`). For each update it POSTs the
listener's JobPromotion body to `/api/webhooks/databricks-job` with the bearer token.

The listener URL (it carries the function key) and the token are read from the Databricks secret scope named in
`secret_scope`; neither is a job parameter, so neither shows in the job's UI, run history or API. The delivery id
is built from the job run id, so the task's own retries are recognised by the listener as redeliveries.
"""

import json
import re
import time
import urllib.request

from databricks.sdk.runtime import dbutils

TIMEOUT_SECONDS = 30


def delivery_id(run_id: str, model: str, version: str, alias: str) -> str:
    """Stable across this run's retries; only the characters a Table storage row key allows."""
    return re.sub(r"[^A-Za-z0-9._:-]", "-", f"uc-{run_id}-{model}-{version}-{alias}")[:200]


def main() -> None:
    updates = json.loads(dbutils.widgets.get("model_updates") or "[]")
    run_id = dbutils.widgets.get("job_run_id")
    scope = dbutils.widgets.get("secret_scope")
    url = dbutils.secrets.get(scope=scope, key="listener-job-url")
    token = dbutils.secrets.get(scope=scope, key="listener-job-token")
    if not url.startswith("https://"):
        raise ValueError("the listener URL in the secret scope is not https")
    for update in updates:
        alias = update.get("alias_name")
        if not alias or update.get("version") is None:
            continue  # not an alias update (the trigger's condition is MODEL_ALIAS_SET, so this is defensive)
        model, version = str(update["full_name"]), str(update["version"])
        body = {
            "delivery_id": delivery_id(run_id, model, version, alias),
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
        # job retries it.
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - as above
            print(f"{model} v{version} @{alias}: listener answered {response.status}")


main()
