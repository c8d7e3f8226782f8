# Databricks notebook source
"""Tell the release listener which version a Unity Catalog model's promote alias names (ModelRegistryWebhook's job).

Unity Catalog models have no registry webhooks, so a scheduled job runs this notebook every few minutes. It reads the
alias `alias` of the model `securable` (catalog.schema.model), or of every model in the schema `securable`
(catalog.schema), and for each model whose alias names a version POSTs the listener's JobPromotion body to
`/api/webhooks/databricks-job` with the bearer token.

The listener keeps every delivery id it has seen and acts on each once, so the id must change with every move of the
alias and with nothing else. The version alone repeats on a rollback (v3 -> v2 -> v3), so each model carries a tag
`mlops_release_<alias>` = `<version>_<generation>`: the version last handed to the listener and how many moves came
before it. An unchanged alias sends the same id on every read (the listener answers "duplicate"); a move to any
other version counts one more generation and sends a new id. The tag is written only after the listener answered
2xx, so a failed POST is retried with the same id. The first read of a model (no tag yet) sends the plain
`uc-<model>-<version>-<alias>`, the id this job sent before it kept a tag.

The job's identity writes that tag: it needs APPLY TAG on the model and USE SCHEMA, USE CATALOG above it
(learn.microsoft.com/azure/databricks/database-objects/tags, "Requirements") besides what reading aliases needs.
The listener URL and the token are read from the Databricks secret scope named in `secret_scope`; neither is a job
parameter, so neither shows in the job's UI, run history or API.
"""

import json
import re
import time
import urllib.request
from typing import NamedTuple

from databricks.sdk import WorkspaceClient
from databricks.sdk.runtime import dbutils

# Serverless compute ships MLflow (environment version 4: 2.22.0, version 5: 3.8.1; learn.microsoft.com/azure/
# databricks/release-notes/serverless/environment-version/five, "MLflow 3.8.1 support").
from mlflow import MlflowClient

TIMEOUT_SECONDS = 30
MAX_DELIVERY_ID = 200  # the listener's DELIVERY_ID_PATTERN
# Unity Catalog tag keys and values may not hold . , - = / :
# (learn.microsoft.com/azure/databricks/database-objects/tags, "Constraints"): ours are letters, digits and _ only.
_NOT_TAG_CHARACTER = re.compile(r"[^A-Za-z0-9_]")
_TAG_VALUE = re.compile(r"^(\d+)_(\d+)$")


class Notified(NamedTuple):
    """What the model's tag records: the version last handed to the listener and its generation."""

    version: str
    generation: int


def tag_key(alias: str) -> str:
    return "mlops_release_" + _NOT_TAG_CHARACTER.sub("_", alias)


def tag_value(notified: Notified) -> str:
    return f"{notified.version}_{notified.generation}"


def parse_tag(value: str | None) -> Notified | None:
    """The tag's record, or None when there is none (or it is not one this notebook wrote)."""
    match = _TAG_VALUE.match(value or "")
    return Notified(match.group(1), int(match.group(2))) if match else None


def next_notified(last: Notified | None, version: str) -> Notified:
    """The same record while the alias stays put; one generation more for every move, back to an old version too."""
    if last is None:
        return Notified(version, 0)
    if last.version == version:
        return last
    return Notified(version, last.generation + 1)


def delivery_id(model: str, alias: str, notified: Notified) -> str:
    """The same for every read of one alias position; only the characters a Table storage row key allows."""
    suffix = f"-g{notified.generation}" if notified.generation else ""
    # Truncate the model's part, never the generation: a cut suffix would repeat an id.
    base = re.sub(r"[^A-Za-z0-9._:-]", "-", f"uc-{model}-{notified.version}-{alias}")
    return base[: MAX_DELIVERY_ID - len(suffix)] + suffix


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
    # The Databricks SDK has no tag API for registered models (its entity tag API covers catalogs, schemas, tables,
    # columns, volumes); MLflow's client does, against Unity Catalog (mlflow/mlflow mlflow/protos/
    # databricks_uc_registry_service.proto, SetRegisteredModelTag), as the same identity.
    registry = MlflowClient(registry_uri="databricks-uc")
    key = tag_key(alias)
    for model in models_in(client, securable):
        version = aliased_version(client, model, alias)
        if version is None:
            continue  # not promoted yet
        recorded = registry.get_registered_model(model).tags.get(key)
        notified = next_notified(parse_tag(recorded), version)
        body = {
            "delivery_id": delivery_id(model, alias, notified),
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
        # A non-2xx answer raises HTTPError (its message carries the status, not the URL): the task fails before the
        # tag moves and the job retries with the same id; a promotion already handed off is answered 202 "duplicate".
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - as above
            print(f"{model} v{version} @{alias}: listener answered {response.status} to {body['delivery_id']}")
        if recorded != tag_value(notified):
            registry.set_registered_model_tag(model, key, tag_value(notified))


main()
