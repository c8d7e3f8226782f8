"""The Pulumi program: composes the platform and the release path from the stack's typed settings.

No resource logic lives here; each piece is a component in `components/`. Which pieces a stack declares depends on
one setting, `shared.owner`: the owner stack (staging) declares the shared services and builds the model image;
every other stack (prod) reads the owner's registry through a StackReference and runs the digest its stack file pins
(one the owner built). A stack that pins no model yet (day zero) declares the whole platform but no image and no
model deployment, and its `nextStep` output says how the first version gets there.
"""

import dataclasses
from pathlib import Path

import pulumi
from pulumi_azure_native import authorization, resources

from components.aks_cluster import AksCluster
from components.container_insights import ContainerInsights, ContainerInsightsArgs
from components.container_registry import ContainerRegistry
from components.databricks_workspace import DatabricksWorkspace
from components.key_vault import DEPLOYED_RETENTION_OUTPUT, PlatformKeyVault
from components.managed_grafana import ManagedGrafana, ManagedGrafanaArgs
from components.managed_prometheus import ManagedPrometheus, ManagedPrometheusArgs
from components.model_alerts import ModelAlerts, ModelAlertsArgs, listener_alert_url
from components.model_canary import CANARY_HASH_ARG, STABLE_HASH_ARG, hash_arg
from components.model_catalog import ModelCatalog, ModelCatalogArgs
from components.model_deployment import PORT_NAME, CanaryAnalysis, ModelDeployment, ModelDeploymentArgs
from components.model_image import DATABRICKS_RESOURCE, ModelImage, ModelImageArgs
from components.model_metrics_scrape import ControllerPods, ModelMetricsScrape, ModelMetricsScrapeArgs
from components.model_registry_webhook import ModelRegistryWebhook, ModelRegistryWebhookArgs
from components.naming import Naming
from components.observability import Observability, ObservabilityArgs
from components.placement import Placement
from components.rollout_controller import (
    CONTROLLER_POD_LABELS,
    METRICS_PORT_NAME,
    RolloutController,
    RolloutControllerArgs,
)
from components.rollout_controller import NAMESPACE as ROLLOUTS_NAMESPACE
from components.webhook_listener import WebhookListener, WebhookListenerArgs
from monitoring.analysis import canary_checks
from monitoring.rules import rule_groups
from program import stack_args
from stacks.engine import load_settings
from stacks.identifiers import kubernetes_name
from stacks.next_step import day_zero_next_step

ROOT = Path(__file__).resolve().parent

settings = load_settings()
stack = pulumi.get_stack()
naming = Naming(pulumi.get_project(), stack, settings.name_suffix)
tags = naming.tags(settings.tags)
location = settings.location
client = authorization.get_client_config_output()

group = resources.ResourceGroup(
    "resource-group", resource_group_name=naming.resource("rg"), location=location, tags=tags
)


# Where every component's Azure children go; the shared services (owner stack) are protected by their own setting.
placement = Placement(naming, group.name, location, tags, protect=settings.protect)
observability = Observability("observability", ObservabilityArgs(placement=placement))

model = settings.model
image_ref: pulumi.Output[str] | None = None
if settings.shared.owner:
    release = settings.release
    model_registry = settings.model_registry
    assert release is not None
    assert model_registry is not None
    shared_placement = dataclasses.replace(placement, protect=settings.shared.protect)
    vault = PlatformKeyVault(
        "key-vault",
        stack_args.key_vault_args(
            settings,
            placement=shared_placement,
            tenant_id=client.tenant_id,
            state_stack=f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}",
        ),
    )
    workspace = DatabricksWorkspace(
        "databricks",
        stack_args.databricks_workspace_args(
            model_registry, placement=shared_placement, subscription_id=client.subscription_id
        ),
    )
    trigger_needs: list[pulumi.Resource] = []
    schema = stack_args.model_schema(model_registry)
    if schema is not None:
        catalog = ModelCatalog(
            "model-catalog",
            ModelCatalogArgs(schema=schema),
            opts=pulumi.ResourceOptions(providers=[workspace.provider]),
        )
        # A schema-scoped trigger needs the schema to exist.
        trigger_needs.append(catalog)
        pulumi.export("modelSchema", catalog.schema_name)
    registry = ContainerRegistry(
        "registry",
        stack_args.container_registry_args(
            settings, placement=shared_placement, subscription_id=client.subscription_id
        ),
    )
    listener = WebhookListener(
        "listener",
        WebhookListenerArgs(
            placement=shared_placement,
            source_dir=ROOT / "listener",
            app_insights_connection_string=observability.app_insights_connection_string,
            app_insights_id=observability.app_insights_id,
            key_vault_id=vault.vault_id,
            webhook_secret_uri=vault.webhook_secret_uri,
            job_token_secret_uri=vault.job_token_uri,
            azure_monitor_token_secret_uri=vault.azure_monitor_token_uri,
            alertmanager_token_secret_uri=vault.alertmanager_token_uri,
            dispatch_token_secret_uri=vault.dispatch_token_uri,
            secrets=vault.secrets,
            release=stack_args.listener_release(release),
            model_names=stack_args.watched_models(release, model),
            target_stack=stack,
        ),
    )
    ModelRegistryWebhook(
        "registry-webhook",
        ModelRegistryWebhookArgs(
            signal=stack_args.promotion_signal(release, model_registry, model),
            listener_webhook_url=listener.databricks_webhook_url,
            listener_job_url=listener.job_webhook_url,
            hmac_secret=vault.webhook_secret,
            job_token=vault.job_token,
            scope_ready=trigger_needs,
        ),
        opts=pulumi.ResourceOptions(providers=[workspace.provider]),
    )
    registry_id = registry.registry_id
    login_server = registry.login_server
    if model is None:
        pass  # day zero: nothing registered, nothing to build
    elif model.image_digest is None:
        token = authorization.get_client_token_output(endpoint=DATABRICKS_RESOURCE)
        image = ModelImage(
            "model-image",
            ModelImageArgs(
                model=stack_args.registered_model(model),
                login_server=login_server,
                project_dir=ROOT,
                workspace_url=workspace.workspace_url,
                registry_token=pulumi.Output.secret(token.token),
                push_after=registry.push_ready,
            ),
        )
        image_ref = image.ref
        # Where this run wrote the image's SBOM (relative to the project): the deploy job attaches and keeps it.
        pulumi.export("modelImageSbomDir", image.sbom_dir)
    else:
        image_ref = stack_args.pinned_image(login_server, model)
    pulumi.export("registryId", registry_id)
    pulumi.export("registryLoginServer", login_server)
    pulumi.export("databricksWorkspaceUrl", workspace.workspace_url)
    pulumi.export("listenerHealthUrl", listener.health_url)
    pulumi.export("listenerAppName", listener.function_app.name)
    pulumi.export("listenerWebhookUrl", listener.databricks_webhook_url)
    pulumi.export("keyVaultUri", vault.vault_uri)
    # The vault's name and id, for the dispatch token's grant and `az keyvault secret set` (README, step 6).
    pulumi.export("keyVaultName", vault.vault_name)
    pulumi.export("keyVaultId", vault.vault_id)
    pulumi.export(DEPLOYED_RETENTION_OUTPUT, vault.soft_delete_retention_days)
    # Every stack's action group calls the listener's alert route; other stacks read it from here.
    alert_url: pulumi.Output[str] = listener_alert_url(listener.default_host_name, vault.azure_monitor_token)
    pulumi.export("listenerAlertUrl", alert_url)
else:
    assert settings.shared.stack is not None  # guaranteed by the settings model for non-owner stacks
    # Only the owner's registry: what runs here is the digest this stack file pins, never what the owner runs now.
    shared = pulumi.StackReference("shared-services", stack_name=settings.shared.stack)
    registry_id = shared.require_output("registryId").apply(str)
    login_server = shared.require_output("registryLoginServer").apply(str)
    if model is not None:
        image_ref = stack_args.pinned_image(login_server, model)  # the settings require imageDigest here
    alert_url = pulumi.Output.secret(shared.require_output("listenerAlertUrl").apply(str))

cluster = AksCluster(
    "cluster",
    stack_args.aks_cluster_args(
        settings, placement=placement, log_analytics_workspace_id=observability.workspace_id, registry_id=registry_id
    ),
)
# The controller that releases each new model version as a canary, on the cluster from day zero.
rollouts = RolloutController(
    "rollouts",
    RolloutControllerArgs(protect=settings.protect),
    opts=pulumi.ResourceOptions(providers=[cluster.provider]),
)
# --- Monitoring of the platform: managed Prometheus and Container Insights, from day zero ---------------------
monitoring = settings.monitoring
ContainerInsights(
    "container-insights",
    ContainerInsightsArgs(
        placement=placement, cluster_id=cluster.cluster.id, log_analytics_workspace_id=observability.workspace_id
    ),
)
prometheus = ManagedPrometheus(
    "prometheus",
    ManagedPrometheusArgs(placement=placement, cluster_id=cluster.cluster.id),
)
if monitoring.grafana:
    grafana = ManagedGrafana(
        "grafana",
        ManagedGrafanaArgs(
            placement=placement,
            subscription_id=client.subscription_id,
            azure_monitor_workspace_id=prometheus.workspace_id,
            admin_group_object_ids=settings.cluster.admin_group_object_ids,
        ),
    )
    pulumi.export("grafanaEndpoint", grafana.endpoint)
pulumi.export("azureMonitorWorkspaceId", prometheus.workspace_id)
pulumi.export("prometheusQueryEndpoint", prometheus.query_endpoint)


if model is not None and image_ref is not None:
    serving = settings.serving
    deployment = ModelDeployment(
        "model",
        ModelDeploymentArgs(
            placement=placement,
            model=stack_args.served_model(model, serving),
            image_ref=image_ref,
            oidc_issuer_url=cluster.oidc_issuer_url,
            size=stack_args.pod_size(serving),
            scale=stack_args.scale(serving),
            exposure=stack_args.exposure(serving),
            canary=stack_args.canary_release(serving.canary),
            # The canary is judged by the alert rules' own series, against this stack's thresholds.
            analysis=CanaryAnalysis(
                checks=canary_checks(
                    monitoring, kubernetes_name(model.name), hash_arg(CANARY_HASH_ARG), hash_arg(STABLE_HASH_ARG)
                ),
                prometheus_url=prometheus.query_endpoint,
                azure_monitor_workspace_id=prometheus.workspace_id,
                subscription_id=client.subscription_id,
            ),
        ),
        # The Rollout and its AnalysisTemplate are the controller's kinds: its CRDs must exist first.
        opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[rollouts]),
    )
    # The scrape job and the alert rules watch this model's pods: they come and go with the deployment, so they are
    # its children (the first promotion's diff adds them under `model`, beside the Rollout).
    ModelMetricsScrape(
        "model-metrics",
        ModelMetricsScrapeArgs(
            namespace=deployment.namespace,
            pod_selector=deployment.pod_selector,
            port_name=PORT_NAME,
            # The replicas alert reads each Rollout's replica counts from the release controller's own metrics.
            controller=ControllerPods(
                namespace=ROLLOUTS_NAMESPACE, pod_selector=CONTROLLER_POD_LABELS, port_name=METRICS_PORT_NAME
            ),
        ),
        opts=pulumi.ResourceOptions(parent=deployment, providers=[cluster.provider]),
    )
    ModelAlerts(
        "alerts",
        ModelAlertsArgs(
            placement=placement,
            groups=rule_groups(monitoring, kubernetes_name(model.name), naming.prefix),
            azure_monitor_workspace_id=prometheus.workspace_id,
            cluster_id=cluster.cluster.id,
            cluster_name=cluster.cluster_name,
            emails=monitoring.receivers.emails,
            listener_alert_url=alert_url if monitoring.receivers.listener else None,
        ),
        opts=pulumi.ResourceOptions(parent=deployment),
    )
    pulumi.export(
        "modelImage",
        {
            "model": model.name,
            "version": model.version,
            "ref": image_ref,
            "digest": image_ref.apply(lambda ref: ref.rsplit("@", 1)[-1]),
        },
    )
    pulumi.export("servingUrl", deployment.serving_url)
    # The Rollout whose release the deploy workflow waits for after `pulumi up` (release/await_rollout.py).
    pulumi.export("modelRollout", {"namespace": deployment.namespace, "name": deployment.rollout_name})
else:
    pulumi.export("nextStep", day_zero_next_step(settings, stack))
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("kubeconfig", pulumi.Output.secret(cluster.kubeconfig))
pulumi.export("resourceGroupName", group.name)
