"""The stack file's sections as the components take them.

Each function maps one section of the validated stack settings onto a component's value type or Args. The
settings have already refused what a stack file must not say (stacks/settings.py names the key); the value types
refuse what a component cannot be built from. `__main__.py` composes the components from these, and the tests
build components from a stack's settings through the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.aks_cluster import AksClusterArgs, NodePool
from components.container_registry import ContainerRegistryArgs
from components.databricks_workspace import DatabricksWorkspaceArgs
from components.key_vault import PlatformKeyVaultArgs
from components.listener_app import AzureDevOpsDispatch, Dispatch, GitHubDispatch, ListenerRelease
from components.model_canary import CanaryRelease
from components.model_catalog import ModelSchema
from components.model_image import RegisteredModel, pinned_image_ref
from components.model_registry_webhook import AliasJob, PromotionSignal, RegistryWebhook
from components.model_workload import Exposure, IngressHost, InternalLoadBalancer, PodSize, Scale, ServedModel
from components.placement import Placement
from components.role_assignment import Principal
from monitoring.rules import duration_seconds
from stacks import settings as s


def deployers(settings: s.StackSettings) -> list[Principal]:
    """`deployers`: who runs `pulumi up` for the stack, as the grants take them.

    From the stack file, never the caller: grants that followed the caller would be replaced by every run of another
    identity (a person on day zero, CI, the pull-request preview).
    """
    return [Principal(object_id=d.object_id, type=d.type) for d in settings.deployers]


def key_vault_args(
    settings: s.StackSettings, *, placement: Placement, tenant_id: pulumi.Input[str], state_stack: str
) -> PlatformKeyVaultArgs:
    """`keyVault` (defaults filled in) of the owner stack."""
    vault = s.key_vault_settings(settings)
    return PlatformKeyVaultArgs(
        placement=placement,
        tenant_id=tenant_id,
        soft_delete_retention_days=vault.soft_delete_retention_days,
        state_stack=state_stack,
        purge_protection=vault.purge_protection,
    )


def container_registry_args(
    settings: s.StackSettings, *, placement: Placement, subscription_id: pulumi.Input[str]
) -> ContainerRegistryArgs:
    """`registry` (defaults filled in) of the owner stack; the stack's deployers push."""
    acr = s.registry_settings(settings)
    return ContainerRegistryArgs(
        placement=placement,
        subscription_id=subscription_id,
        sku=acr.sku,
        zone_redundancy=acr.zone_redundancy,
        untagged_retention_days=acr.untagged_retention_days,
        pushers=deployers(settings),
    )


def databricks_workspace_args(
    registry: s.ModelRegistrySettings, *, placement: Placement, subscription_id: pulumi.Input[str]
) -> DatabricksWorkspaceArgs:
    """`modelRegistry`: the workspace's default catalog (Unity Catalog) and every principal it names, assigned to
    the workspace (its admins as admins)."""
    return DatabricksWorkspaceArgs(
        placement=placement,
        subscription_id=subscription_id,
        default_catalog=registry.catalog if registry.type == "unity-catalog" else None,
        users=[*registry.registerers, *registry.releasers],
        admins=registry.workspace_admins,
    )


def node_pool(pool: s.NodePool) -> NodePool:
    """`cluster.systemPool` or `cluster.userPool`."""
    return NodePool(vm_size=pool.vm_size, min_count=pool.min_count, max_count=pool.max_count)


def aks_cluster_args(
    settings: s.StackSettings,
    *,
    placement: Placement,
    log_analytics_workspace_id: pulumi.Input[str],
    registry_id: pulumi.Input[str],
) -> AksClusterArgs:
    """`cluster`, the stack's deployers, and whether `serving.exposure` needs the ingress add-on."""
    cluster = settings.cluster
    return AksClusterArgs(
        placement=placement,
        tier=cluster.tier,
        upgrade_channel=cluster.upgrade_channel,
        availability_zones=cluster.availability_zones,
        system_pool=node_pool(cluster.system_pool),
        user_pool=node_pool(cluster.user_pool),
        admin_group_object_ids=cluster.admin_group_object_ids,
        log_analytics_workspace_id=log_analytics_workspace_id,
        registry_id=registry_id,
        enable_app_routing=settings.serving.exposure == "ingress",
        deployers=deployers(settings),
    )


def canary_release(canary: s.CanarySettings) -> CanaryRelease:
    """`serving.canary`: the steps, their pause and the analysis' pace, in seconds."""
    return CanaryRelease(
        steps=tuple(canary.steps),
        pause_seconds=duration_seconds(canary.pause),
        measurement_interval_seconds=duration_seconds(canary.measurement_interval),
        max_failed_measurements=canary.max_failed_measurements,
        synthetic_rps=canary.synthetic_rps,
    )


def served_model(model: s.ModelSettings, serving: s.ServingSettings) -> ServedModel:
    """`model` and the rows one request may carry (`serving.maxRows`)."""
    return ServedModel(model.name, model.version, serving.max_rows)


def pod_size(serving: s.ServingSettings) -> PodSize:
    """`serving.cpu` and `serving.memory`."""
    return PodSize(serving.cpu, serving.memory)


def scale(serving: s.ServingSettings) -> Scale:
    """`serving.minReplicas`, `maxReplicas` and `targetCpuUtilization`."""
    return Scale(serving.min_replicas, serving.max_replicas, serving.target_cpu_utilization)


def exposure(serving: s.ServingSettings) -> Exposure:
    """`serving.exposure`, with its host and TLS secret for an ingress (the settings require both there)."""
    if serving.exposure == "ingress":
        if serving.host is None or serving.tls_secret_name is None:
            raise ValueError("serving.exposure ingress needs serving.host and serving.tlsSecretName")
        return IngressHost(serving.host, serving.tls_secret_name)
    return InternalLoadBalancer()


def dispatch(target: s.DispatchSettings) -> Dispatch:
    """`release.dispatch`: a GitHub repository or an Azure DevOps pipeline (the settings require each one's keys)."""
    if target.target == "github":
        if target.repository is None:
            raise ValueError("release.dispatch: target github needs repository")
        return GitHubDispatch(repository=target.repository, event_type=target.event_type, api_url=target.api_url)
    if target.organization_url is None or target.project is None or target.pipeline_id is None:
        raise ValueError("release.dispatch: target azure-devops needs organizationUrl, project and pipelineId")
    return AzureDevOpsDispatch(
        organization_url=target.organization_url, project=target.project, pipeline_id=target.pipeline_id
    )


def listener_release(release: s.ReleaseSettings) -> ListenerRelease:
    """`release`: what the listener counts as a promotion and where it dispatches."""
    return ListenerRelease(
        dispatch=dispatch(release.dispatch),
        promote_alias=release.promote_alias,
        promote_stages=tuple(release.promote_stages),
        max_dispatch_attempts=release.max_dispatch_attempts,
    )


def watched_models(release: s.ReleaseSettings, model: s.ModelSettings | None) -> Sequence[str]:
    """The models the listener acts on: the pinned one when `release.webhookScope` is model, else any (empty).

    Never the pinned version, so the first pin and every later one leave the listener as it is.
    """
    return [model.name] if model is not None and release.webhook_scope == "model" else []


def promotion_signal(
    release: s.ReleaseSettings, registry: s.ModelRegistrySettings, model: s.ModelSettings | None
) -> PromotionSignal:
    """`release` and `modelRegistry`: a registry webhook (workspace registry) or an alias job (Unity Catalog), for
    the pinned model (`webhookScope: model`) or every model of the registry or of the schema."""
    if release.webhook_scope == "model" and model is None:
        # The settings refuse this (a model-scoped signal names a model that does not exist yet); never widened.
        raise ValueError("release.webhookScope: model needs a pinned model")
    one_model = model.name if model is not None and release.webhook_scope == "model" else None
    if registry.type == "unity-catalog":
        return AliasJob(
            securable=one_model or registry.schema_full_name,
            alias=release.promote_alias,
            status=release.webhook_status,
        )
    return RegistryWebhook(events=tuple(release.events), model_name=one_model, status=release.webhook_status)


def model_schema(registry: s.ModelRegistrySettings) -> ModelSchema | None:
    """`modelRegistry`'s Unity Catalog schema and who may use it; None for the workspace registry."""
    if registry.type != "unity-catalog" or registry.catalog is None or registry.schema_name is None:
        return None
    return ModelSchema(
        catalog=registry.catalog,
        schema=registry.schema_name,
        registerers=tuple(registry.registerers),
        releasers=tuple(registry.releasers),
        models=tuple(registry.models),
        model_owner=registry.model_owner,
    )


def registered_model(model: s.ModelSettings) -> RegisteredModel:
    """`model`: the registered name and version, and the registry they are in (`model.catalog`)."""
    return RegisteredModel(name=model.name, version=model.version, registry=model.catalog)


def pinned_image(login_server: pulumi.Input[str], model: s.ModelSettings) -> pulumi.Output[str]:
    """The image `model.imageDigest` pins, in the registry at `login_server`."""
    if model.image_digest is None:
        raise ValueError("model.imageDigest: no digest pinned")
    return pinned_image_ref(login_server, registered_model(model), model.image_digest)
