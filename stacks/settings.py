"""Typed stack settings: every key a stack file may hold, its type, its default and its limits.

The Pulumi program and the offline tools read settings only through `parse_settings`, which checks a whole
stack's config at once and reports every problem in one line each (key, file, what is expected), before any
resource is declared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from stacks.identifiers import DIGEST, MODEL_NAME, REPOSITORY, kubernetes_name
from stacks.model_version import ModelVersion
from stacks.regions import AZURE_REGIONS, ZONE_REGIONS
from stacks.settings_errors import NAMED_PROBLEM, SettingsError, describe, key_path

PROJECT = "mlops-serving"

# Kubernetes quantities as the API server accepts them ("500m", "1", "2Gi").
_CPU = re.compile(r"^(\d+m|\d+(\.\d+)?)$")
_MEMORY = re.compile(r"^\d+(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$")
_STACK_REF = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# A Unity Catalog object name the program declares (catalog, schema): lowercase letters, digits, underscores.
_UC_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,254}$")
# A Unity Catalog model's full name: catalog.schema.model.
# A Kubernetes label value (kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set).
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
# Leaves room for "-smoke-v<version>" in a 63-character Job name.
KUBERNETES_NAME_MAX = 40
_UC_MODEL_NAME = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
# A principal in a Unity Catalog grant: a user's e-mail, a group's name or a service principal's application id.
_PRINCIPAL = re.compile(r"^[^,\s][^,]{0,254}$")


def _region(value: str) -> str:
    if value not in AZURE_REGIONS:
        close = [r for r in sorted(AZURE_REGIONS) if r.startswith(value[:4].lower())][:3]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"an Azure region name such as westeurope or eastus2{hint}")
    return value


def _matches(pattern: re.Pattern[str], expected: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(expected)
        return value

    return AfterValidator(check)


Region = Annotated[str, AfterValidator(_region)]
Cpu = Annotated[str, _matches(_CPU, 'a Kubernetes CPU quantity such as "500m" or "1"')]
Memory = Annotated[str, _matches(_MEMORY, 'a Kubernetes memory quantity such as "512Mi" or "2Gi"')]
Guid = Annotated[str, _matches(_GUID, "an Entra object id (a GUID)")]
VmSize = Annotated[str, _matches(_VM_SIZE, "an Azure VM size such as Standard_D4ds_v5")]
ModelName = Annotated[str, _matches(MODEL_NAME, "a registered model name: letters, digits, '.', '_', '-'")]
Digest = Annotated[str, _matches(DIGEST, "an image digest: sha256: and 64 hex digits")]
StackRef = Annotated[str, _matches(_STACK_REF, "a fully qualified stack name: <org>/<project>/<stack>")]
Repository = Annotated[str, _matches(REPOSITORY, "a GitHub repository: <owner>/<name>")]
UcIdentifier = Annotated[str, _matches(_UC_IDENTIFIER, "a Unity Catalog name: lowercase letters, digits, '_'")]
Principal = Annotated[
    str, _matches(_PRINCIPAL, "a Databricks principal: a user's e-mail, a group name or an application id")
]


class Section(BaseModel):
    """Base for every settings object: camelCase keys in the file, unknown keys rejected, frozen."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class SharedServices(Section):
    """Which stack owns the pieces there is one of (Databricks workspace, registry, listener, Key Vault).

    The owner stack declares them; every other stack reads them from the owner through a StackReference.
    """

    owner: bool = Field(description="This stack declares the shared services.")
    stack: StackRef | None = Field(
        default=None, description="The owner stack, <org>/<project>/<stack>; required when owner is false."
    )
    protect: bool = Field(
        default=True, description="Protect the shared services from deletion (every stack's releases depend on them)."
    )

    @model_validator(mode="after")
    def _owner_xor_reference(self) -> Self:
        if self.owner and self.stack is not None:
            raise ValueError("owner: true and a stack reference exclude each other; drop `stack`")
        if not self.owner and self.stack is None:
            raise ValueError("a stack that does not own the shared services needs `stack: <org>/<project>/<stack>`")
        return self


class RegistrySettings(Section):
    """The Azure Container Registry (owner stacks only)."""

    sku: Literal["Basic", "Standard", "Premium"] = "Standard"
    zone_redundancy: bool = Field(default=False, description="Premium only; replicas across availability zones.")
    untagged_retention_days: int = Field(default=7, ge=0, le=365, description="Premium only; 0 disables.")

    @model_validator(mode="after")
    def _premium_features(self) -> Self:
        if self.sku != "Premium" and self.zone_redundancy:
            raise ValueError("zoneRedundancy needs sku: Premium")
        return self


class KeyVaultSettings(Section):
    """The platform Key Vault (owner stacks only)."""

    purge_protection: bool = False
    soft_delete_retention_days: int = Field(
        default=7,
        ge=7,
        le=90,
        description=(
            "Days a deleted vault and its secrets stay recoverable. Fixed when the vault is created: Azure never "
            "changes it afterwards (learn.microsoft.com/azure/key-vault/general/soft-delete-overview), and the "
            "program refuses a change once the stack has its vault."
        ),
    )


class NodePool(Section):
    """One AKS node pool, autoscaled between minCount and maxCount."""

    vm_size: VmSize
    min_count: int = Field(ge=1, le=1000)
    max_count: int = Field(ge=1, le=1000)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min_count > self.max_count:
            raise ValueError(f"minCount ({self.min_count}) must not exceed maxCount ({self.max_count})")
        return self


class ClusterSettings(Section):
    """The stack's AKS cluster."""

    tier: Literal["Free", "Standard", "Premium"] = "Standard"
    upgrade_channel: Literal["patch", "stable", "rapid", "node-image"] = "stable"
    availability_zones: list[Literal["1", "2", "3"]] = Field(default_factory=list)
    system_pool: NodePool
    user_pool: NodePool
    admin_group_object_ids: list[Guid] = Field(
        default_factory=list, description="Entra groups made cluster admins through Azure RBAC."
    )


class Deployer(Section):
    """A principal that runs `pulumi up` for this stack (CI's deploy identity, or a group of platform engineers)."""

    object_id: Guid = Field(description="Its Entra object id (a service principal's object id, not its app id).")
    type: Literal["User", "Group", "ServicePrincipal"] = Field(
        description="What the object id is: ARM refuses a role assignment whose principalType does not match."
    )


class ModelSettings(Section):
    """The pinned model: what the stack serves. A pin bump is the only change a release makes."""

    name: ModelName
    version: ModelVersion
    image_digest: Digest | None = Field(
        default=None,
        description="Serve this digest of the model image instead of building (rollback to an image already built).",
    )
    catalog: Literal["workspace", "unity-catalog"] = Field(
        default="unity-catalog",
        description="Where the model is registered: Unity Catalog (catalog.schema.model, aliases, job model-update "
        "trigger; the default, and the only registry of workspaces in new Databricks accounts) or the legacy "
        "workspace registry (stages, webhooks; an opt-in for existing workspaces).",
    )

    @model_validator(mode="after")
    def _three_part_name_in_unity_catalog(self) -> Self:
        if self.catalog == "unity-catalog" and not _UC_MODEL_NAME.match(self.name):
            raise ValueError(
                f"name: a Unity Catalog model is named catalog.schema.model (three parts), not {self.name!r}; "
                "set catalog: workspace for the legacy workspace registry"
            )
        return self

    @model_validator(mode="after")
    def _name_fits_kubernetes(self) -> Self:
        # The name is a label value on every Kubernetes object of the model, and its Kubernetes form names them.
        if not _LABEL_VALUE.match(self.name):
            raise ValueError(
                f"name: {self.name!r} must also be a Kubernetes label value (at most 63 letters, digits, "
                "'-', '_', '.', starting and ending with a letter or digit)"
            )
        k8s_name = kubernetes_name(self.name)
        if not k8s_name or len(k8s_name) > KUBERNETES_NAME_MAX:
            raise ValueError(
                f"name: {self.name!r} gives the Kubernetes name {k8s_name!r}; it must have 1 to "
                f"{KUBERNETES_NAME_MAX} characters"
            )
        return self


class ModelRegistrySettings(Section):
    """Where the models are registered (owner stacks only), and who may register, read and build them.

    Unity Catalog (the default): the workspace is created with its default catalog in Unity Catalog under `catalog`
    (Azure creates it with the workspace; workspace admins, the deployer among them, own it); this stack declares
    `schema` in it, owned by the deployer, grants `registerers` and `releasers` what they need there, declares
    `models` owned by `modelOwner`, and assigns every principal named here to the workspace.
    `workspace`: the legacy Workspace Model Registry of an existing workspace; nothing is declared for it.
    """

    type: Literal["unity-catalog", "workspace"] = "unity-catalog"
    catalog: UcIdentifier | None = Field(
        default=None, description="Unity Catalog: the workspace's default catalog, created with the workspace."
    )
    schema_name: UcIdentifier | None = Field(
        default=None, alias="schema", description="Unity Catalog: the schema the models live in; declared here."
    )
    registerers: list[Principal] = Field(
        default_factory=list,
        description="Unity Catalog: principals that register models and set the promote alias (USE CATALOG, "
        "USE SCHEMA, CREATE MODEL; a model's creator owns it, and only owners create versions and set aliases).",
    )
    releasers: list[Principal] = Field(
        default_factory=list,
        description="Unity Catalog: principals that read versions and aliases, download artifacts and tag deployed "
        "versions (USE CATALOG, USE SCHEMA, EXECUTE, APPLY TAG): CI's identities and an image builder that is not "
        "the deployer.",
    )
    models: list[UcIdentifier] = Field(
        default_factory=list,
        description="Unity Catalog: the models (names in `schema`) this stack declares, so they exist from day zero "
        "and are owned by `modelOwner` rather than by whoever registers first.",
    )
    model_owner: Principal | None = Field(
        default=None,
        description="Unity Catalog: the group that owns `models` (only a model's owner registers versions and sets "
        "aliases); one of `registerers`.",
    )
    workspace_admins: list[Principal] = Field(
        default_factory=list,
        description="Unity Catalog: account principals made admins of the new workspace (CI's deploy identities: "
        "signing in with github-oidc-azure does not make them admins).",
    )

    @model_validator(mode="after")
    def _unity_catalog_names(self) -> Self:
        if self.type == "unity-catalog" and (self.catalog is None or self.schema_name is None):
            raise ValueError("type unity-catalog needs `catalog` and `schema` (where the models are registered)")
        uc_only = (self.catalog, self.schema_name, self.registerers, self.releasers, self.models, self.model_owner)
        if self.type == "workspace" and (any(uc_only) or self.workspace_admins):
            raise ValueError(
                "catalog, schema, registerers, releasers, models, modelOwner and workspaceAdmins are Unity Catalog "
                "settings; drop them"
            )
        if self.models and self.model_owner is None:
            raise ValueError("models needs `modelOwner` (the group that owns them and sets their aliases)")
        if self.model_owner is not None and self.model_owner not in self.registerers:
            raise ValueError(f"modelOwner {self.model_owner!r} must be one of registerers (it registers the models)")
        return self

    @property
    def schema_full_name(self) -> str:
        """`catalog.schema`, where every model of the platform is registered (Unity Catalog)."""
        return f"{self.catalog}.{self.schema_name}"


DATABRICKS_PROMOTE_EVENTS = (
    "MODEL_VERSION_TRANSITIONED_TO_STAGING",
    "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION",
    "TRANSITION_REQUEST_TO_STAGING_CREATED",
    "TRANSITION_REQUEST_TO_PRODUCTION_CREATED",
    "MODEL_VERSION_TRANSITIONED_STAGE",
)


class DispatchSettings(Section):
    """Where the listener starts the release."""

    target: Literal["github", "azure-devops"] = "github"
    repository: Repository | None = Field(default=None, description="GitHub <owner>/<name> (target github).")
    api_url: str = Field(default="https://api.github.com", pattern=r"^https://")
    event_type: str = Field(default="model-promoted", pattern=r"^[a-z0-9-]{1,100}$")
    organization_url: str | None = Field(default=None, pattern=r"^https://", description="Azure DevOps org URL.")
    project: str | None = Field(default=None, description="Azure DevOps project.")
    pipeline_id: int | None = Field(default=None, ge=1, description="Azure DevOps pipeline id.")

    @model_validator(mode="after")
    def _target_fields(self) -> Self:
        if self.target == "github" and self.repository is None:
            raise ValueError("target github needs `repository: <owner>/<name>`")
        if self.target == "azure-devops" and None in (self.organization_url, self.project, self.pipeline_id):
            raise ValueError("target azure-devops needs organizationUrl, project and pipelineId")
        return self


def _both_stages() -> list[Literal["Staging", "Production"]]:
    return ["Staging", "Production"]


class ReleaseSettings(Section):
    """The registry webhook and the listener it calls (owner stacks only)."""

    webhook_status: Literal["ACTIVE", "TEST_MODE", "DISABLED"] = "ACTIVE"
    webhook_scope: Literal["model", "registry"] = Field(
        default="model", description="model: fires for the pinned model only; registry: for every model."
    )
    events: list[Literal[DATABRICKS_PROMOTE_EVENTS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["MODEL_VERSION_TRANSITIONED_TO_STAGING", "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION"],
        min_length=1,
    )
    promote_stages: list[Literal["Staging", "Production"]] = Field(default_factory=_both_stages, min_length=1)
    promote_alias: str = Field(default="champion", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    dispatch: DispatchSettings
    max_dispatch_attempts: int = Field(default=5, ge=1, le=20)


_DURATION = re.compile(r"^[1-9][0-9]{0,3}[smh]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Duration = Annotated[str, _matches(_DURATION, 'a duration such as "30s", "5m" or "1h"')]
Email = Annotated[str, _matches(_EMAIL, "an email address such as oncall@example.com")]


class CanarySettings(Section):
    """How a new model version earns its traffic: the share it gets at each step, how long each step is watched,
    and how many failed measurements abort it (Argo Rollouts' canary steps and analysis failureLimit)."""

    steps: list[int] = Field(
        default_factory=lambda: [10, 50],
        min_length=1,
        max_length=6,
        description="The canary's share of traffic, in percent, at each step before it takes all of it.",
    )
    pause: Duration = Field(default="5m", description="How long each step holds while the analysis measures.")
    measurement_interval: Duration = Field(default="1m", description="Time between two analysis measurements.")
    max_failed_measurements: int = Field(
        default=2, ge=1, le=10, description="Failed measurements (errors and empty results count) that abort."
    )
    synthetic_rps: float = Field(
        default=0,
        ge=0,
        le=50,
        description="Requests per second the release sends the canary itself while it is judged, for a stack whose "
        "real traffic is too little to judge on (0: real traffic only).",
    )

    @field_validator("steps")
    @classmethod
    def _rising_shares(cls, steps: list[int]) -> list[int]:
        if any(not 1 <= step <= 99 for step in steps) or steps != sorted(set(steps)):
            raise ValueError(f"expected rising percentages between 1 and 99, such as [10, 50] (got {steps})")
        return steps


class ServingSettings(Section):
    """The model's serving pods (an Argo Rollout) on the stack's cluster."""

    min_replicas: int = Field(ge=1, le=100)
    max_replicas: int = Field(ge=1, le=500)
    cpu: Cpu = "1"
    memory: Memory = "2Gi"
    target_cpu_utilization: int = Field(default=70, ge=10, le=95)
    exposure: Literal["internal-load-balancer", "ingress"] = "internal-load-balancer"
    host: str | None = Field(default=None, description="The ingress host name (exposure: ingress).")
    tls_secret_name: str | None = Field(default=None, description="The TLS secret for the ingress host.")
    max_rows: int = Field(default=10_000, ge=1, description="Rows one request may carry.")
    canary: CanarySettings = Field(default_factory=CanarySettings)

    @model_validator(mode="after")
    def _replicas_and_exposure(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})")
        if self.exposure == "ingress" and (self.host is None or self.tls_secret_name is None):
            raise ValueError("exposure ingress needs host and tlsSecretName")
        return self


class ServingSloSettings(Section):
    """The serving SLOs the alert rules hold the model server to (see monitoring/rules.py)."""

    error_ratio: float = Field(default=0.01, gt=0, lt=1, description="Share of /invocations answered 5xx.")
    # Below 5 s: the server's latency histogram tops out at a 10 s bucket (model_server/metrics.py), and
    # histogram_quantile never reports more than the highest finite bucket, so a higher target could never fire.
    latency_p99_ms: int = Field(default=250, ge=1, le=5_000, description="p99 of scoring requests, milliseconds.")
    sustained_for: Duration = Field(default="5m", description="How long a breach lasts before it alerts.")
    replicas_not_ready_for: Duration = Field(default="10m", description="Fewer ready replicas than wanted, for.")


class DriftAlertSettings(Section):
    """When the drift score of the served data alerts (and so starts a retrain)."""

    threshold: float = Field(default=0.2, gt=0, le=10, description="PSI of one feature above which it has drifted.")
    sustained_for: Duration = Field(default="30m", description="How long the score stays above the threshold.")
    min_window_rows: int = Field(default=200, ge=1, description="Rows a pod's window holds before its score counts.")


class AlertReceivers(Section):
    """Who an alert reaches: email addresses and the listener's alert route (Azure Monitor common alert schema)."""

    emails: list[Email] = Field(default_factory=list)
    listener: bool = Field(default=True, description="Send alerts to the webhook listener's alert route.")

    @model_validator(mode="after")
    def _someone_listens(self) -> Self:
        if not self.emails and not self.listener:
            raise ValueError("no receiver: list emails or set listener: true")
        return self


class MonitoringSettings(Section):
    """Managed Prometheus, Container Insights, the alert rules' thresholds and receivers, optional Grafana."""

    slo: ServingSloSettings = Field(default_factory=ServingSloSettings)
    drift: DriftAlertSettings = Field(default_factory=DriftAlertSettings)
    receivers: AlertReceivers = Field(default_factory=AlertReceivers)
    grafana: bool = Field(default=False, description="Declare Azure Managed Grafana with the serving/drift dashboard.")


class StackSettings(Section):
    """Everything one stack file says, validated as a whole."""

    location: Region
    protect: bool = Field(default=False, description="Protect this stack's own stateful resources (its cluster).")
    tags: dict[str, str] = Field(default_factory=dict)
    name_suffix: str = Field(
        default="", pattern=r"^[a-z0-9]{0,6}$", description="Appended to globally unique names to avoid clashes."
    )
    shared: SharedServices
    registry: RegistrySettings | None = None
    key_vault: KeyVaultSettings | None = None
    release: ReleaseSettings | None = None
    model_registry: ModelRegistrySettings | None = None
    cluster: ClusterSettings
    deployers: list[Deployer] = Field(
        min_length=1,
        description="Who runs `pulumi up` for this stack: each gets the Kubernetes data-plane role on the cluster "
        "and, in the stack that owns the registry, AcrPush. Fixed in the stack file so that a run by another "
        "identity (a person on day zero, CI, the pull-request preview) changes no grant.",
    )
    model: ModelSettings | None = Field(
        default=None,
        description="The pinned model. Absent on day zero: the platform comes up without an image or a deployment, "
        "and the first promotion adds it.",
    )
    serving: ServingSettings
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    @model_validator(mode="after")
    def _ownership_and_zones(self) -> Self:
        owner_only = {
            "registry": self.registry,
            "keyVault": self.key_vault,
            "release": self.release,
            "modelRegistry": self.model_registry,
        }
        if self.shared.owner:
            if self.release is None:
                raise ValueError("the shared-services owner needs `release` (the webhook and the listener)")
            if self.model_registry is None:
                raise ValueError(
                    "the shared-services owner needs `modelRegistry` (where models are registered: "
                    "{type: unity-catalog, catalog, schema} or {type: workspace})"
                )
            self._owner_model_fits_registry(self.model_registry, self.release)
        else:
            extra = [k for k, v in owner_only.items() if v is not None]
            if extra:
                raise ValueError(
                    f"{', '.join(extra)} belong to the shared-services owner ({self.shared.stack}); remove them here"
                )
            if self.model is not None and self.model.image_digest is None:
                # Prod runs only bytes staging built and tested: the digest is in the stack file, for review.
                raise ValueError(
                    f"model.imageDigest: is required in a stack that does not build images: pin the digest "
                    f"{self.shared.stack} built for {self.model.name} version {self.model.version} "
                    f"(python -m stacks pin <stack> --model {self.model.name} --version {self.model.version} "
                    "--digest sha256:<64 hex>)"
                )
        if self.cluster.availability_zones and self.location not in ZONE_REGIONS:
            raise ValueError(f"cluster.availabilityZones: {self.location} has no availability zones; use []")
        return self

    def _owner_model_fits_registry(self, registry: ModelRegistrySettings, release: ReleaseSettings) -> None:
        if self.model is None:
            # Day zero: nothing is registered yet. A model-scoped webhook or trigger names a model that does not
            # exist, which the registry refuses; only a registry- (schema-) wide one fires for the first version.
            if release.webhook_scope == "model":
                raise ValueError(
                    "release.webhookScope: model needs a pinned model (the registry refuses a webhook or trigger for "
                    "a model that does not exist yet); use webhookScope: registry until the first promotion"
                )
            return
        if self.model.catalog != registry.type:
            raise ValueError(f"model.catalog: {self.model.catalog} does not match modelRegistry.type ({registry.type})")
        if registry.type == "unity-catalog" and not self.model.name.startswith(registry.schema_full_name + "."):
            raise ValueError(
                f"model.name: {self.model.name!r} is not in {registry.schema_full_name}, the schema of "
                "modelRegistry; name it <catalog>.<schema>.<model>"
            )
        declared = [f"{registry.schema_full_name}.{m}" for m in registry.models]
        if registry.type == "unity-catalog" and declared and self.model.name not in declared:
            raise ValueError(
                f"model.name: {self.model.name!r} is not one of modelRegistry.models ({', '.join(declared)}); "
                "declare it there so the owner group owns it"
            )


def parse_settings(config: Mapping[str, Any], source: str, project: str = PROJECT) -> StackSettings:
    """Validates a stack's config (keys `<project>:<key>`, values decoded) and returns typed settings.

    Keys of other namespaces (`azure-native:location`, ...) belong to providers and are left to them.
    Raises SettingsError with every problem found, one line each.
    """
    prefix = f"{project}:"
    ours = {k.removeprefix(prefix): _decode(v) for k, v in config.items() if k.startswith(prefix)}
    try:
        return StackSettings.model_validate(ours)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            value = ""
            if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
                shown = err["input"]
                if not isinstance(shown, dict | list):
                    value = f" (got {json.dumps(shown)})"
            described = describe(err)
            named = NAMED_PROBLEM.match(described) if err["type"] == "value_error" else None
            if named:
                # A rule spanning several keys names the one it is about: report it under that key.
                loc, described = (*loc, *named["key"].split(".")), named["rest"]
            problems.append(f"{source}: {key_path(project, loc)}: {described}{value}")
        raise SettingsError(source, problems) from None


def _decode(value: Any) -> Any:
    # The engine hands structured values over as JSON text; files read with YAML give them as objects.
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def pinned_model(settings: StackSettings, source: str = "the stack file") -> ModelSettings:
    """The pinned model of a stack that must pin one (a release tool acting on it); a SettingsError otherwise."""
    if settings.model is None:
        raise SettingsError(
            source, [f"{source}: {PROJECT}:model: no model pinned yet (day zero); the first promotion pins one"]
        )
    return settings.model


def registry_settings(settings: StackSettings) -> RegistrySettings:
    """The owner's registry settings, defaults filled in."""
    return settings.registry or RegistrySettings()


def key_vault_settings(settings: StackSettings) -> KeyVaultSettings:
    """The owner's Key Vault settings, defaults filled in."""
    return settings.key_vault or KeyVaultSettings()
