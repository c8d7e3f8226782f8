"""Where the platform's models live in Unity Catalog: the schema, and who may register and release them."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_databricks as databricks

from stacks.settings import ModelRegistrySettings

# Unity Catalog privileges (https://learn.microsoft.com/azure/databricks/data-governance/unity-catalog/manage-privileges/privileges).
# Registering: CREATE MODEL on the schema; the creator owns the model, and only a model's owner creates versions and
# sets aliases (https://docs.databricks.com/machine-learning/manage-model-lifecycle/upgrade-workflows.html).
REGISTER_PRIVILEGES = ("USE_SCHEMA", "CREATE_MODEL")
# Releasing: read versions and aliases and download artifacts (EXECUTE on the model, inherited from the schema),
# tag the deployed version (APPLY_TAG).
RELEASE_PRIVILEGES = ("USE_SCHEMA", "EXECUTE", "APPLY_TAG")


@dataclass(frozen=True)
class ModelCatalogArgs:
    """The registry settings (Unity Catalog)."""

    registry: ModelRegistrySettings
    """The Unity Catalog registry: its catalog and schema, and who registers (`registerers`) and who releases
    (`releasers`) models there."""


class ModelCatalog(pulumi.ComponentResource):
    """Owns the schema the models are registered in (`modelRegistry.catalog`.`modelRegistry.schema`), created by and
    so owned by the deployer, the grants of `registerers` and `releasers` on it and on its catalog, and the declared
    `models`, owned by `modelOwner`.

    The catalog is the workspace's default catalog, which Azure creates with the workspace
    (`DatabricksWorkspace(default_catalog=...)`); workspace admins own it, so the deployer (a workspace admin as the
    workspace's creator) can create the schema and grant on it. Each grant is a `databricks.Grant`, one principal's
    privileges, never the authoritative `databricks.Grants`: the catalog is shared with every workspace user, and this
    stack must not revoke what it did not grant. A `Grant` is authoritative for its principal on its securable, so
    there is one per (securable, principal), holding every privilege that principal's roles need. The Databricks
    provider comes in through `opts`. Registered outputs: `schemaName` (`catalog.schema`, once the schema exists).
    """

    schema_name: pulumi.Output[str]
    models: list[databricks.RegisteredModel]

    def __init__(self, name: str, args: ModelCatalogArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:release:ModelCatalog", name, None, opts)
        registry = args.registry
        if registry.type != "unity-catalog" or registry.catalog is None or registry.schema_name is None:
            raise ValueError("ModelCatalog is for a Unity Catalog registry (modelRegistry.type: unity-catalog)")
        child = pulumi.ResourceOptions(parent=self)
        schema = databricks.Schema(
            f"{name}-schema",
            catalog_name=registry.catalog,
            name=registry.schema_name,
            comment="Models served by mlops-serving; released when the promote alias is set.",
            properties={"managed-by": "pulumi"},
            opts=child,
        )
        self.schema_name = pulumi.Output.concat(schema.catalog_name, ".", schema.name)
        for principal, (first_role, privileges) in schema_privileges(registry).items():
            # Named per principal; the alias keeps the URN of the grant its first role made before grants merged.
            catalog_grant_name, schema_grant_name = f"{name}-{principal}-catalog", f"{name}-{principal}-schema"
            old = f"{name}-{first_role}-{principal}"
            databricks.Grant(
                catalog_grant_name,
                catalog=registry.catalog,
                principal=principal,
                privileges=["USE_CATALOG"],
                opts=pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(name=f"{old}-catalog")]),
            )
            databricks.Grant(
                schema_grant_name,
                schema=self.schema_name,
                principal=principal,
                privileges=privileges,
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[schema], aliases=[pulumi.Alias(name=f"{old}-schema")]
                ),
            )
        # Only a model's owner (or a metastore admin) sets its aliases, and a model's creator owns it
        # (https://docs.databricks.com/api/workspace/registeredmodels/setalias): declared here and handed to the owner
        # group, every registerer in it can promote, from day zero. Handing a model to a group is restricted to
        # prevent privilege escalation (learn.microsoft.com/azure/databricks/data-governance/unity-catalog/
        # manage-privileges/ownership, "Transfer ownership"): the deployer is a member of the group or a metastore
        # admin. Kept on delete: deleting a registered model deletes every version in it.
        self.models = [
            databricks.RegisteredModel(
                f"{name}-model-{model}",
                catalog_name=schema.catalog_name,
                schema_name=schema.name,
                name=model,
                owner=registry.model_owner,
                comment="Served by mlops-serving; released when the promote alias is set.",
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            for model in registry.models
        ]
        self.register_outputs({"schemaName": self.schema_name})


def schema_privileges(registry: ModelRegistrySettings) -> dict[str, tuple[str, list[str]]]:
    """Each principal's privileges on the schema, the union over its roles, with the first role it has."""
    merged: dict[str, tuple[str, list[str]]] = {}
    for role, principals, privileges in (
        ("register", registry.registerers, REGISTER_PRIVILEGES),
        ("release", registry.releasers, RELEASE_PRIVILEGES),
    ):
        for principal in principals:
            first, held = merged.get(principal, (role, []))
            merged[principal] = (first, held + [p for p in privileges if p not in held])
    return merged
