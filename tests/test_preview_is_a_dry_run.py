"""The offline preview runs the program as the engine's preview does, and every kind of stack survives it.

The engine's first preview of an empty subscription (../shared/reference/pulumi-preview-semantics.md): a dry run,
every resource new, its id and computed outputs unknown, every invoke through a provider whose configuration is
unknown (Databricks configured from the new workspace, Kubernetes from the new cluster) answered with an empty map.
Code that reads such a value as if it were known crashes here as it would in `pulumi preview`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from offline.harness import ProgramOptions, ProgramRun, preview_program
from tests.conftest import PROJECT, ROOT, STAGING_REF, run_variant, stack_values

Edit = Callable[[dict[str, Any]], None]


def day_zero(values: dict[str, Any]) -> None:
    values.pop(f"{PROJECT}:model", None)


def another_region(values: dict[str, Any]) -> None:
    values[f"{PROJECT}:location"] = "swedencentral"


def azure_devops_dispatch(values: dict[str, Any]) -> None:
    values[f"{PROJECT}:release"]["dispatch"] = {
        "target": "azure-devops",
        "organizationUrl": "https://dev.azure.com/acme-ml",
        "project": "mlops",
        "pipelineId": 42,
    }


def ingress(values: dict[str, Any]) -> None:
    values[f"{PROJECT}:serving"].update(exposure="ingress", host="wine.models.example.com", tlsSecretName="wine-tls")


def pinned_by_digest(values: dict[str, Any]) -> None:
    values[f"{PROJECT}:model"]["imageDigest"] = "sha256:" + "ab" * 32


def model_scoped_webhook(values: dict[str, Any]) -> None:
    values[f"{PROJECT}:release"]["webhookScope"] = "model"


STAGING_VARIANTS: dict[str, Edit | None] = {
    "shipped": None,
    "day zero": day_zero,
    "another region": another_region,
    "Azure DevOps dispatch": azure_devops_dispatch,
    "ingress": ingress,
    "a consumer pinned by digest": pinned_by_digest,
    "a model-scoped webhook": model_scoped_webhook,
}


def dry_run(stack: str, edit: Edit | None = None, **options: Any) -> ProgramRun:
    values = stack_values(stack)
    if edit is not None:
        edit(values)
    return preview_program(
        ROOT / "__main__.py", values, project=PROJECT, stack=stack, options=ProgramOptions(**options)
    )


@pytest.fixture(scope="module")
def staging_outputs() -> dict[str, Any]:
    return run_variant("staging").outputs


@pytest.mark.parametrize("variant", STAGING_VARIANTS, ids=list(STAGING_VARIANTS))
def test_every_kind_of_staging_stack_survives_the_engines_first_preview(variant: str) -> None:
    run = dry_run("staging", STAGING_VARIANTS[variant])
    assert any(r.type == "azure-native:databricks:Workspace" for r in run.resources)
    assert any(r.type == "azure-native:containerservice:ManagedCluster" for r in run.resources)


@pytest.mark.parametrize("edit", [None, ingress, day_zero], ids=["shipped", "ingress", "day zero"])
def test_prod_survives_its_first_preview_once_staging_is_deployed(
    staging_outputs: dict[str, Any], edit: Edit | None
) -> None:
    run = dry_run("prod", edit, stack_outputs={STAGING_REF: staging_outputs})
    assert any(r.type == "azure-native:containerservice:ManagedCluster" for r in run.resources)


def test_in_the_preview_a_new_resource_has_no_id_and_no_computed_output() -> None:
    run = run_variant("staging")
    assert run.preview is not None
    # What the update knows, the preview does not: the workspace URL the Databricks provider is configured with.
    provider = next(r for r in run.preview.resources if r.type == "pulumi:providers:databricks")
    known = next(r for r in run.resources if r.type == "pulumi:providers:databricks")
    assert str(known.inputs["host"]).startswith("https://")
    assert not str(provider.inputs.get("host", "")).startswith("https://")
