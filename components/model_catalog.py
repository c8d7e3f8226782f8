"""Where the platform's models live in Unity Catalog: the schema, and who may register and release them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_databricks as databricks

# Unity Catalog privileges (https://learn.microsoft.com/azure/databricks/data-governance/unity-catalog/manage-privileges/privileges).
# Registering: CREATE MODEL on the schema; the creator owns the model, and only a model's owner creates versions and
# sets aliases (https://docs.databricks.com/machine-learning/manage-model-lifecycle/upgrade-workflows.html).
REGISTER_PRIVILEGES = ("USE_SCHEMA", "CREATE_MODEL")
# Releasing: read versions and aliases and download artifacts (EXECUTE on the model, inherited from the schema),
# tag the deployed version (APPLY_TAG).
RELEASE_PRIVILEGES = ("USE_SCHEMA", "EXECUTE", "APPLY_TAG")


@dataclass(frozen=True)
class ModelSchema:
    """A Unity Catalog schema the models are registered in, who registers and who releases them there, and the
    models declared in it with their owner."""

    catalog: str
    """The workspace's default catalog, created with the workspace."""
    schema: str
    """The schema, declared by the component."""
    registerers: Sequence[str] = ()
    """Principals that register models and set the promote alias."""
    releasers: Sequence[str] = ()
    """Principals that read versions and aliases, download artifacts and tag deployed versions."""
    models: Sequence[str] = ()
    """Model names in the schema, declared so that they exist from day zero."""
    model_owner: str | None = None
    """The group that owns `models`; one of `registerers` (only a model's owner registers versions)."""

    def __post_init__(self) -> None:
        if not self.catalog or not self.schema:
            raise ValueError("catalog and schema are required")
        if self.models and self.model_owner is None:
            raise ValueError("models need a model_owner (the group that owns them and sets their aliases)")
        if self.model_owner is not None and self.model_owner not in self.registerers:
            raise ValueError(f"model_owner {self.model_owner!r} must be one of registerers (it registers the models)")

    @property
    def full_name(self) -> str:
        """`catalog.schema`."""
        return f"{self.catalog}.{self.schema}"


@dataclass(frozen=True)
class ModelCatalogArgs:
    """The schema to declare (Unity Catalog)."""

    schema: ModelSchema
    """Its catalog and name, who registers (`registerers`) and who releases (`releasers`) models there, and the
    declared `models` with their owner."""


class ModelCatalog(pulumi.ComponentResource):
    """Owns the schema the models are registered in (`catalog`.`schema`), created by and
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
        spec = args.schema
        child = pulumi.ResourceOptions(parent=self)
        schema = databricks.Schema(
            f"{name}-schema",
            catalog_name=spec.catalog,
            name=spec.schema,
            comment="Models served by mlops-serving; released when the promote alias is set.",
            properties={"managed-by": "pulumi"},
            opts=child,
        )
        self.schema_name = pulumi.Output.concat(schema.catalog_name, ".", schema.name)
        for principal, (first_role, privileges) in schema_privileges(spec).items():
            # Named per principal; the alias keeps the URN of the grant its first role made before grants merged.
            catalog_grant_name, schema_grant_name = f"{name}-{principal}-catalog", f"{name}-{principal}-schema"
            old = f"{name}-{first_role}-{principal}"
            databricks.Grant(
                catalog_grant_name,
                catalog=spec.catalog,
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
                owner=spec.model_owner,
                comment="Served by mlops-serving; released when the promote alias is set.",
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            for model in spec.models
        ]
        self.register_outputs({"schemaName": self.schema_name})


def schema_privileges(spec: ModelSchema) -> dict[str, tuple[str, list[str]]]:
    """Each principal's privileges on the schema, the union over its roles, with the first role it has."""
    merged: dict[str, tuple[str, list[str]]] = {}
    for role, principals, privileges in (
        ("register", spec.registerers, REGISTER_PRIVILEGES),
        ("release", spec.releasers, RELEASE_PRIVILEGES),
    ):
        for principal in principals:
            first, held = merged.get(principal, (role, []))
            merged[principal] = (first, held + [p for p in privileges if p not in held])
    return merged
