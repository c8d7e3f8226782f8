"""Unity Catalog by default: the shipped staging stack creates the workspace with its default catalog in Unity Catalog,
declares the models' schema in it and grants the principals that register and release models what they need."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_databricks as databricks
import pytest

from components.model_catalog import REGISTER_PRIVILEGES, RELEASE_PRIVILEGES
from offline.cloud_facts import CloudError
from offline.harness import run_program
from offline.preview import StackRun
from stacks.settings import parse_settings
from stacks.settings_errors import SettingsError
from tests.conftest import PROJECT, run_variant, stack_values

SCHEMA = "databricks:index/schema:Schema"
GRANT = "databricks:index/grant:Grant"
WORKSPACE = "azure-native:databricks:Workspace"
ASSIGNMENT = "databricks:index/permissionAssignment:PermissionAssignment"
CI_DEPLOYER = "3b8f2d6e-9c1a-4f7b-8e2d-5a6c7b8d9e0f"
REGISTERER = "ml-engineers"
RELEASER = "7c3e9b1d-2a4f-4e6b-9d8c-1f0a2b3c4d5e"


def grants_of(run: Any, principal: str) -> dict[str, list[str]]:
    """The privileges `principal` is granted, by securable ("catalog:<name>" or "schema:<name>")."""
    found: dict[str, list[str]] = {}
    for grant in run.all(GRANT):
        if grant.inputs["principal"] != principal:
            continue
        securable = (
            f"catalog:{grant.inputs['catalog']}" if "catalog" in grant.inputs else f"schema:{grant.inputs['schema']}"
        )
        found[securable] = grant.inputs["privileges"]
    return found


def test_the_workspace_is_created_with_its_default_catalog_in_unity_catalog(staging: StackRun) -> None:
    workspace = staging.run.one(WORKSPACE)
    assert workspace.inputs["defaultCatalog"] == {"initialType": "UnityCatalog", "initialName": "mlops"}
    # Read at creation only: an existing workspace is never replaced over it.
    assert "defaultCatalog" in workspace.ignore_changes


def test_the_models_schema_is_declared_in_that_catalog_through_the_workspace_provider(staging: StackRun) -> None:
    schema = staging.run.one(SCHEMA)
    assert (schema.inputs["catalogName"], schema.inputs["name"]) == ("mlops", "models")
    provider = staging.run.one("pulumi:providers:databricks")
    assert schema.provider.startswith(provider.urn + "::")
    assert staging.run.outputs["modelSchema"] == "mlops.models"


def test_registerers_may_create_models_and_releasers_may_read_download_and_tag(staging: StackRun) -> None:
    assert grants_of(staging.run, REGISTERER) == {
        "catalog:mlops": ["USE_CATALOG"],
        "schema:mlops.models": list(REGISTER_PRIVILEGES),
    }
    assert grants_of(staging.run, RELEASER) == {
        "catalog:mlops": ["USE_CATALOG"],
        "schema:mlops.models": list(RELEASE_PRIVILEGES),
    }
    assert set(REGISTER_PRIVILEGES) == {"USE_SCHEMA", "CREATE_MODEL"}
    assert set(RELEASE_PRIVILEGES) == {"USE_SCHEMA", "EXECUTE", "APPLY_TAG"}


def test_grants_are_per_principal_never_authoritative(staging: StackRun) -> None:
    # databricks.Grants would revoke every grant on the shared workspace catalog that this stack did not make.
    assert staging.run.all("databricks:index/grants:Grants") == []


def test_schema_grants_wait_for_the_schema(staging: StackRun) -> None:
    schema = staging.run.one(SCHEMA)
    for grant in staging.run.all(GRANT):
        if "schema" in grant.inputs:
            assert schema.urn in grant.dependencies, grant.name


def test_the_image_fetches_the_three_part_name_from_unity_catalog(staging: StackRun) -> None:
    args = staging.run.one("docker-build:index:Image", "model-image-image").inputs["buildArgs"]
    assert args["MODEL_NAME"] == "mlops.models.wine_quality"
    assert args["MLFLOW_TRACKING_URI"] == "databricks-uc"
    assert args["DATABRICKS_HOST"].startswith("https://adb-")


def test_the_legacy_workspace_registry_stays_an_opt_in() -> None:
    def legacy(values: dict[str, Any]) -> None:
        values["mlops-serving:modelRegistry"] = {"type": "workspace"}
        values["mlops-serving:model"].update(name="wine-quality", catalog="workspace")

    run = run_variant("staging", legacy)
    assert run.all(SCHEMA) == []
    assert run.all(GRANT) == []
    assert "defaultCatalog" not in run.one(WORKSPACE).inputs
    webhook = run.one("databricks:index/mlflowWebhook:MlflowWebhook")
    assert "modelName" not in webhook.inputs  # registry-wide, as the stack file says
    assert (
        run.one("docker-build:index:Image", "model-image-image").inputs["buildArgs"]["MLFLOW_TRACKING_URI"]
        == "databricks"
    )


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ({"type": "unity-catalog", "catalog": "mlops"}, "type unity-catalog needs `catalog` and `schema`"),
        ({"type": "workspace", "catalog": "mlops"}, "are Unity Catalog settings"),
        ({"type": "workspace", "workspaceAdmins": [CI_DEPLOYER]}, "are Unity Catalog settings"),
        ({"type": "unity-catalog", "catalog": "ML-Ops", "schema": "models"}, "a Unity Catalog name"),
    ],
)
def test_bad_registry_settings_name_the_key(registry: dict[str, Any], expected: str) -> None:
    values = stack_values("staging")
    values["mlops-serving:modelRegistry"] = registry
    with pytest.raises(SettingsError) as caught:
        parse_settings(values, "Pulumi.staging.yaml")
    assert any(
        p.startswith("Pulumi.staging.yaml: mlops-serving:modelRegistry") and expected in p
        for p in caught.value.problems
    )


def test_the_pinned_model_must_live_in_the_declared_schema() -> None:
    values = stack_values("staging")
    values["mlops-serving:model"]["name"] = "main.default.wine_quality"
    with pytest.raises(SettingsError) as caught:
        parse_settings(values, "Pulumi.staging.yaml")
    [problem] = caught.value.problems
    assert problem.startswith("Pulumi.staging.yaml: mlops-serving:model.name: 'main.default.wine_quality' is not in")


def test_a_principal_in_both_roles_gets_one_grant_per_securable_with_every_privilege() -> None:
    def both(values: dict[str, Any]) -> None:
        values["mlops-serving:modelRegistry"]["releasers"].append(REGISTERER)

    run = run_variant("staging", both)
    mine = [g for g in run.all(GRANT) if g.inputs["principal"] == REGISTERER]
    assert len(mine) == 2  # one on the catalog, one on the schema
    assert grants_of(run, REGISTERER) == {
        "catalog:mlops": ["USE_CATALOG"],
        "schema:mlops.models": ["USE_SCHEMA", "CREATE_MODEL", "EXECUTE", "APPLY_TAG"],
    }


def test_grant_urns_survive_the_merge(staging: StackRun) -> None:
    # Each grant keeps the name its first role gave it before grants were merged, as an alias: no delete-and-create.
    for grant in staging.run.all(GRANT):
        assert grant.aliases, grant.name


def test_the_cloud_refuses_two_grants_for_one_principal_on_one_securable() -> None:
    def program() -> None:
        provider = databricks.Provider("w", host="https://adb-1.1.azuredatabricks.net")
        opts = pulumi.ResourceOptions(provider=provider)
        databricks.Grant("a", schema="mlops.models", principal="g", privileges=["USE_SCHEMA"], opts=opts)
        databricks.Grant("b", schema="mlops.models", principal="g", privileges=["EXECUTE"], opts=opts)

    with pytest.raises(CloudError, match="two authoritative grants for one principal"):
        run_program(program, {}, project=PROJECT, stack="staging")


def test_every_principal_named_is_assigned_to_the_workspace(staging: StackRun) -> None:
    provider = staging.run.one("pulumi:providers:databricks")
    assignments = {}
    for a in staging.run.all(ASSIGNMENT):
        assert a.provider.startswith(provider.urn + "::")
        principal = {k: v for k, v in a.inputs.items() if k != "permissions"}
        assignments[next(iter(principal.values()))] = (principal, a.inputs["permissions"])
    assert assignments == {
        REGISTERER: ({"groupName": REGISTERER}, ["USER"]),
        RELEASER: ({"servicePrincipalName": RELEASER}, ["USER"]),
        # CI's deploy identity: signing in with github-oidc-azure does not make it a workspace admin.
        CI_DEPLOYER: ({"servicePrincipalName": CI_DEPLOYER}, ["ADMIN"]),
    }


def test_a_principal_that_is_admin_and_user_is_assigned_once_as_admin() -> None:
    def admin_too(values: dict[str, Any]) -> None:
        values["mlops-serving:modelRegistry"]["workspaceAdmins"].append(RELEASER)

    run = run_variant("staging", admin_too)
    mine = [a for a in run.all(ASSIGNMENT) if a.inputs.get("servicePrincipalName") == RELEASER]
    assert [a.inputs["permissions"] for a in mine] == [["ADMIN"]]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"models": ["wine_quality"], "modelOwner": None}, "models needs `modelOwner`"),
        ({"modelOwner": "someone-else"}, "must be one of registerers"),
        ({"models": ["other_model"]}, "is not one of modelRegistry.models"),
    ],
)
def test_bad_model_declarations_name_the_key(edit: dict[str, Any], expected: str) -> None:
    values = stack_values("staging")
    values["mlops-serving:modelRegistry"].update(edit)
    values["mlops-serving:modelRegistry"] = {k: v for k, v in values["mlops-serving:modelRegistry"].items() if v}
    with pytest.raises(SettingsError) as caught:
        parse_settings(values, "Pulumi.staging.yaml")
    assert any(expected in p for p in caught.value.problems), caught.value.problems
