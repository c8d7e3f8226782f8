"""ModelDeployment: one model served on one AKS cluster, rolled out by image digest and gated by a smoke test.

Owns, on the cluster (through the Kubernetes provider passed in `opts`): the Namespace, a ServiceAccount bound
by workload identity, the Deployment, its Service (internal load balancer or ClusterIP behind an ingress), the
Ingress with TLS (exposure `ingress`), a PodDisruptionBudget, a HorizontalPodAutoscaler, NetworkPolicies
(default deny, then the serving port only) and the post-deploy smoke-test Job. In Azure (default provider): the
user-assigned managed identity of the ServiceAccount and its federated credential for the cluster's OIDC issuer.
Exports: `namespace`, `service_name`, `serving_url`, `deployment`.

Only a new model version or a new image digest changes the Deployment's pod template: replicas belong to the
HPA, and nothing volatile (timestamps, run ids) is written anywhere, so an unrelated change never rolls pods.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import managedidentity

from components.aks_cluster import MODEL_POOL_LABEL
from components.contracts import server
from components.naming import Naming
from stacks.settings import ServingSettings

SERVING_PORT = server.PORT
SERVICE_PORT = 80
PORT_NAME = "http"
RUN_AS_USER = server.RUN_AS_USER
READY_PATH = "/health/ready"
LIVE_PATH = "/health/live"
INGRESS_CLASS = "webapprouting.kubernetes.azure.com"
INTERNAL_LB_ANNOTATION = "service.beta.kubernetes.io/azure-load-balancer-internal"
TOKEN_AUDIENCE = "api://AzureADTokenExchange"
WORKLOAD_IDENTITY_USE = "azure.workload.identity/use"
WORKLOAD_IDENTITY_CLIENT_ID = "azure.workload.identity/client-id"
SMOKE_BACKOFF_LIMIT = 2
SMOKE_TTL_SECONDS = 7 * 24 * 3600
SMOKE_DEADLINE_SECONDS = 600
_IMAGE_REF = re.compile(r"^[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}@sha256:[0-9a-f]{64}$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_DNS_MAX = 40  # leaves room for "-smoke-v<version>" in a 63-character Job name

# checkov reads `checkov.io/skipN: <check>=<reason>` annotations; each skip states why it does not apply here.
_SKIP_PULL_POLICY = (
    "CKV_K8S_15=the image is pinned by sha256 digest, so IfNotPresent can never run another image; Always would "
    "only make every pod start depend on the registry being reachable"
)


@dataclass(frozen=True)
class ModelDeploymentArgs:
    """What to serve, from which image, with which serving settings, trusted by which OIDC issuer."""

    naming: Naming
    """The stack's naming scheme (names the Azure identity)."""
    resource_group_name: pulumi.Input[str]
    """The resource group of the workload's managed identity."""
    location: str
    """The Azure region of the workload's managed identity."""
    model_name: str
    """The registered model name; also the Kubernetes name of the namespace, Deployment and Service (lowercased)."""
    model_version: int
    """The registered model version the image holds (a positive integer)."""
    image_ref: pulumi.Input[str]
    """The image to run, by digest: `<login server>/<repository>:<tag>@sha256:<64 hex>`."""
    settings: ServingSettings
    """Replicas, resources, HPA target, exposure (internal load balancer or ingress) and request limits."""
    oidc_issuer_url: pulumi.Input[str]
    """The cluster's OIDC issuer, trusted by the workload identity's federated credential."""
    tags: Mapping[str, str]
    """Azure tags on the managed identity."""


def kubernetes_name(model_name: str) -> str:
    """The DNS-1123 label a model's Kubernetes objects are named with (`Wine_Quality` -> `wine-quality`).

    A Unity Catalog name's catalog and schema are the platform's own (`mlops.models.wine_quality` ->
    `wine-quality`): the label names the model, and stays within Kubernetes' 63 characters.
    """
    if model_name.count(".") == 2:
        model_name = model_name.rsplit(".", 1)[1]
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", model_name.lower())).strip("-")


def _kubernetes_provider(opts: pulumi.ResourceOptions | None) -> pulumi.ProviderResource | None:
    # The provider may come as `provider=`, in `providers=` (list or map), or from the parent's providers.
    if opts is None:
        return None
    if opts.provider is not None and opts.provider.package == "kubernetes":
        return opts.provider
    providers = opts.providers
    if isinstance(providers, Mapping):
        found = providers.get("kubernetes")
        if found is not None:
            return found
    elif isinstance(providers, Sequence):
        for candidate in providers:
            if candidate.package == "kubernetes":
                return candidate
    if opts.parent is not None:
        return opts.parent.get_provider("kubernetes:core/v1:Namespace")
    return None


def _validate(args: ModelDeploymentArgs, provider: pulumi.ProviderResource | None) -> None:
    problems: list[pulumi.InputPropertyErrorDetails] = []

    def problem(path: str, reason: str) -> None:
        problems.append({"property_path": path, "reason": reason})

    name = kubernetes_name(args.model_name)
    if not name or len(name) > _DNS_MAX:
        problem("model_name", f"gives the Kubernetes name {name!r}; it must have 1 to {_DNS_MAX} characters")
    if not _LABEL_VALUE.match(args.model_name):
        problem("model_name", "must be a Kubernetes label value (at most 63 letters, digits, '-', '_', '.')")
    if isinstance(args.image_ref, str) and not _IMAGE_REF.match(args.image_ref):
        problem("image_ref", f"must be <login server>/<repository>:<tag>@sha256:<64 hex> (got {args.image_ref!r})")
    if provider is None:
        problem("opts.providers", "needs the cluster's pulumi_kubernetes.Provider (providers=[aks.provider])")
    if problems:
        details = "; ".join(f"{p['property_path']}: {p['reason']}" for p in problems)
        raise pulumi.InputPropertiesError(f"ModelDeploymentArgs: {details}", problems)


def _checked_image_ref(ref: str) -> str:
    # The same rule as at construction, for a ref only known at deploy time (another resource's output).
    if not _IMAGE_REF.match(ref):
        raise ValueError(f"image_ref must be <login server>/<repository>:<tag>@sha256:<64 hex> (got {ref!r})")
    return ref


def _metadata_name(meta: k8s.meta.v1.outputs.ObjectMeta) -> str:
    if not meta.name:
        raise ValueError("a Kubernetes object came back without metadata.name")
    return meta.name


def _load_balancer_url(status: k8s.core.v1.outputs.ServiceStatus | None) -> str:
    ingress = status.load_balancer.ingress if status and status.load_balancer else None
    if not ingress or not ingress[0].ip:
        raise ValueError("the internal load balancer Service has no IP address in status.loadBalancer.ingress")
    return f"http://{ingress[0].ip}/invocations"


def _container_security() -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_USER,
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def _pod_security() -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_USER,
        fs_group=RUN_AS_USER,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def _tmp_volume() -> tuple[k8s.core.v1.VolumeArgs, k8s.core.v1.VolumeMountArgs]:
    # The root filesystem is read-only; /tmp is the one writable place (Python, MLflow and numpy expect one).
    return (
        k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="1Gi")),
        k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),  # noqa: S108 (a per-pod emptyDir)
    )


def _http_probe(path: str, *, period: int, failures: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=PORT_NAME),
        period_seconds=period,
        timeout_seconds=2,
        failure_threshold=failures,
    )


class ModelDeployment(pulumi.ComponentResource):
    """One model served on one cluster: workload identity, Deployment by digest, Service, autoscaling,
    disruption budget, network policy, optional ingress, and a smoke-test Job that gates `pulumi up`."""

    identity: managedidentity.UserAssignedIdentity
    federated_credential: managedidentity.FederatedIdentityCredential
    namespace_resource: k8s.core.v1.Namespace
    service_account: k8s.core.v1.ServiceAccount
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    ingress: k8s.networking.v1.Ingress | None
    pod_disruption_budget: k8s.policy.v1.PodDisruptionBudget
    autoscaler: k8s.autoscaling.v2.HorizontalPodAutoscaler
    default_deny: k8s.networking.v1.NetworkPolicy
    allow_serving_port: k8s.networking.v1.NetworkPolicy
    smoke_test: k8s.batch.v1.Job
    namespace: pulumi.Output[str]
    service_name: pulumi.Output[str]
    serving_url: pulumi.Output[str]
    pod_selector: dict[str, str]

    def __init__(self, name: str, args: ModelDeploymentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        provider = _kubernetes_provider(opts)
        _validate(args, provider)
        super().__init__("mlops:serving:ModelDeployment", name, None, opts)
        settings = args.settings
        app = kubernetes_name(args.model_name)
        version = str(args.model_version)
        # Kubernetes children get the cluster's provider explicitly; Azure children get none, so they use the
        # azure-native provider they inherit (never the Kubernetes one).
        kube = pulumi.ResourceOptions(parent=self, provider=provider)

        # Labels shared by every object; none of them carries the version, so a new version changes nothing
        # but the pod template and the Job.
        common = {
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/part-of": args.naming.project,
            "app.kubernetes.io/managed-by": "pulumi",
            "mlops/model": args.model_name,
        }
        selector = {"app.kubernetes.io/name": app, "app.kubernetes.io/component": "server"}
        # The serving pods' labels, for whatever selects them from outside (the metrics scrape config).
        self.pod_selector = dict(selector)

        # --- Workload identity (Azure) ---------------------------------------------------------------------
        self.identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=args.naming.resource(f"{app}-workload"),
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.federated_credential = managedidentity.FederatedIdentityCredential(
            f"{name}-federated-credential",
            resource_group_name=args.resource_group_name,
            resource_name_=self.identity.name,
            federated_identity_credential_resource_name=f"kubernetes-{app}-{app}",
            issuer=args.oidc_issuer_url,
            subject=f"system:serviceaccount:{app}:{app}",
            audiences=[TOKEN_AUDIENCE],
            opts=pulumi.ResourceOptions(parent=self),
        )

        # --- Namespace and service account ---------------------------------------------------------------
        self.namespace_resource = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=app,
                labels={
                    **common,
                    # Every pod here meets the restricted Pod Security Standard; the API server enforces it.
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            ),
            opts=kube,
        )
        self.namespace = self.namespace_resource.metadata.apply(_metadata_name)
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=app,
                namespace=self.namespace,
                labels=common,
                annotations={WORKLOAD_IDENTITY_CLIENT_ID: self.identity.client_id},
            ),
            # The workload identity webhook projects its own token for the Entra exchange; the Kubernetes API
            # token is not needed by the server.
            automount_service_account_token=False,
            opts=kube,
        )

        # --- Deployment ------------------------------------------------------------------------------------
        image = pulumi.Output.from_input(args.image_ref).apply(_checked_image_ref)
        tmp_volume, tmp_mount = _tmp_volume()
        # CPU request = limit: the server is one process with OMP_NUM_THREADS=1; whole cores, no throttling.
        resources = k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": settings.cpu, "memory": settings.memory},
            limits={"cpu": settings.cpu, "memory": settings.memory},
        )
        spread = [
            # ScheduleAnyway: a pool spanning zones is one scale set, so the autoscaler cannot add a node in a
            # chosen zone; a hard constraint could leave a surge pod Pending and fail the rollout.
            k8s.core.v1.TopologySpreadConstraintArgs(
                max_skew=1,
                topology_key=key,
                when_unsatisfiable="ScheduleAnyway",
                label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                match_label_keys=["pod-template-hash"],
            )
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ]
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=app,
                namespace=self.namespace,
                labels=common,
                annotations={"checkov.io/skip1": _SKIP_PULL_POLICY},
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # No `replicas`: the HPA owns the count. Declaring it here would reset the HPA's choice on every
                # `pulumi up` (the Deployment starts at 1 and the HPA raises it to minReplicas at once).
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1),
                ),
                revision_history_limit=5,
                progress_deadline_seconds=600,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels={
                            **common,
                            **selector,
                            "app.kubernetes.io/version": version,
                            WORKLOAD_IDENTITY_USE: "true",
                        },
                        annotations={"mlops/model-version": version, "mlops/image-ref": image},
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=app,
                        automount_service_account_token=False,
                        enable_service_links=False,
                        security_context=_pod_security(),
                        # The user pool; the system pool is tainted CriticalAddonsOnly, so no toleration is needed
                        # and none is given.
                        node_selector={MODEL_POOL_LABEL[0]: MODEL_POOL_LABEL[1]},
                        topology_spread_constraints=spread,
                        termination_grace_period_seconds=30,
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="server",
                                image=image,
                                image_pull_policy="IfNotPresent",
                                ports=[
                                    k8s.core.v1.ContainerPortArgs(
                                        name=PORT_NAME, container_port=SERVING_PORT, protocol="TCP"
                                    )
                                ],
                                env=[
                                    k8s.core.v1.EnvVarArgs(name="OMP_NUM_THREADS", value="1"),
                                    k8s.core.v1.EnvVarArgs(name=server.Env.MODEL_NAME, value=args.model_name),
                                    k8s.core.v1.EnvVarArgs(name=server.Env.MODEL_VERSION, value=version),
                                    k8s.core.v1.EnvVarArgs(
                                        name=server.Env.MAX_REQUEST_ROWS, value=str(settings.max_rows)
                                    ),
                                ],
                                resources=resources,
                                # Ready only once the model is loaded and warmed up: up to 5 minutes to start.
                                startup_probe=_http_probe(READY_PATH, period=5, failures=60),
                                readiness_probe=_http_probe(READY_PATH, period=5, failures=3),
                                liveness_probe=_http_probe(LIVE_PATH, period=10, failures=3),
                                # Let the endpoints controller and load balancer stop sending before SIGTERM.
                                lifecycle=k8s.core.v1.LifecycleArgs(
                                    pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                                        sleep=k8s.core.v1.SleepActionArgs(seconds=5)
                                    )
                                ),
                                security_context=_container_security(),
                                volume_mounts=[tmp_mount],
                            )
                        ],
                        volumes=[tmp_volume],
                    ),
                ),
            ),
            # pulumi-kubernetes waits until the rollout is Available and fails `pulumi up` otherwise: no
            # `pulumi.com/skipAwait` here, on purpose.
            opts=pulumi.ResourceOptions.merge(kube, pulumi.ResourceOptions(depends_on=[self.service_account])),
        )

        # --- Service and exposure ----------------------------------------------------------------------------
        internal_lb = settings.exposure == "internal-load-balancer"
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=app,
                namespace=self.namespace,
                labels=common,
                annotations={INTERNAL_LB_ANNOTATION: "true"} if internal_lb else None,
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="LoadBalancer" if internal_lb else "ClusterIP",
                selector=selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name=PORT_NAME, port=SERVICE_PORT, target_port=PORT_NAME, protocol="TCP"
                    )
                ],
            ),
            opts=kube,
        )
        self.service_name = self.service.metadata.apply(_metadata_name)

        self.ingress = None
        host, tls_secret = settings.host, settings.tls_secret_name
        if settings.exposure == "ingress" and host is not None and tls_secret is not None:
            self.ingress = k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=app, namespace=self.namespace, labels=common),
                spec=k8s.networking.v1.IngressSpecArgs(
                    ingress_class_name=INGRESS_CLASS,
                    tls=[k8s.networking.v1.IngressTLSArgs(hosts=[host], secret_name=tls_secret)],
                    rules=[
                        k8s.networking.v1.IngressRuleArgs(
                            host=host,
                            http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                                paths=[
                                    k8s.networking.v1.HTTPIngressPathArgs(
                                        path="/",
                                        path_type="Prefix",
                                        backend=k8s.networking.v1.IngressBackendArgs(
                                            service=k8s.networking.v1.IngressServiceBackendArgs(
                                                name=app,
                                                port=k8s.networking.v1.ServiceBackendPortArgs(name=PORT_NAME),
                                            )
                                        ),
                                    )
                                ]
                            ),
                        )
                    ],
                ),
                opts=pulumi.ResourceOptions.merge(kube, pulumi.ResourceOptions(depends_on=[self.service])),
            )
            self.serving_url = pulumi.Output.from_input(f"https://{host}/invocations")
        else:
            self.serving_url = self.service.status.apply(_load_balancer_url)

        # --- Availability: disruption budget and autoscaler ------------------------------------------------
        self.pod_disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=app, namespace=self.namespace, labels=common),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                # maxUnavailable, not minAvailable: with one replica (staging) minAvailable: 1 would block every
                # node drain, and with it AKS node-image and Kubernetes upgrades.
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                # A pod that is not Ready protects nothing; let drains evict it.
                unhealthy_pod_eviction_policy="AlwaysAllow",
            ),
            opts=kube,
        )
        self.autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=app, namespace=self.namespace, labels=common),
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=app
                ),
                min_replicas=settings.min_replicas,
                max_replicas=settings.max_replicas,
                metrics=[
                    k8s.autoscaling.v2.MetricSpecArgs(
                        type="Resource",
                        resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                            name="cpu",
                            target=k8s.autoscaling.v2.MetricTargetArgs(
                                type="Utilization", average_utilization=settings.target_cpu_utilization
                            ),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions.merge(kube, pulumi.ResourceOptions(depends_on=[self.deployment])),
        )

        # --- Network policy: nothing reaches a pod of this namespace but the serving port --------------------
        self.default_deny = k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="default-deny-ingress", namespace=self.namespace, labels=common),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Ingress"],
            ),
            opts=kube,
        )
        self.allow_serving_port = k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-serving-port",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{app}-allow-http", namespace=self.namespace, labels=common),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                policy_types=["Ingress"],
                # From anywhere (load balancer, ingress controller, the smoke test), on the serving port only.
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=SERVING_PORT, protocol="TCP")]
                    )
                ],
            ),
            opts=kube,
        )

        # --- Smoke test: gates `pulumi up` on a real prediction through the Service --------------------------
        smoke_url = f"http://{app}.{app}.svc.cluster.local/invocations"
        smoke_labels = {
            **common,
            "app.kubernetes.io/component": "smoke-test",
            "app.kubernetes.io/version": version,
        }
        smoke_tmp_volume, smoke_tmp_mount = _tmp_volume()
        self.smoke_test = k8s.batch.v1.Job(
            f"{name}-smoke-test",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                # Named by version: a new version is a new Job, and so a new smoke run.
                name=f"{app}-smoke-v{version}",
                namespace=self.namespace,
                labels=smoke_labels,
                annotations={
                    # A failed smoke test is replaced (run again) on the next `pulumi up` instead of awaited.
                    "pulumi.com/replaceUnready": "true",
                    "checkov.io/skip1": _SKIP_PULL_POLICY,
                },
            ),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=SMOKE_BACKOFF_LIMIT,
                active_deadline_seconds=SMOKE_DEADLINE_SECONDS,
                # Kept a week for its logs; when the TTL controller removes it, nothing is lost but the record.
                ttl_seconds_after_finished=SMOKE_TTL_SECONDS,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=smoke_labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        restart_policy="Never",
                        service_account_name=app,
                        automount_service_account_token=False,
                        enable_service_links=False,
                        security_context=_pod_security(),
                        node_selector={MODEL_POOL_LABEL[0]: MODEL_POOL_LABEL[1]},
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="smoke",
                                image=image,
                                image_pull_policy="IfNotPresent",
                                command=["python", "-m", "model_server", "smoke", "--url", smoke_url],
                                env=[k8s.core.v1.EnvVarArgs(name="OMP_NUM_THREADS", value="1")],
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": "500m", "memory": "512Mi"},
                                    limits={"cpu": "500m", "memory": "512Mi"},
                                ),
                                security_context=_container_security(),
                                volume_mounts=[smoke_tmp_mount],
                            )
                        ],
                        volumes=[smoke_tmp_volume],
                    ),
                ),
            ),
            # After the Deployment is Available (its await) and the Service and policy let the request through.
            # Jobs are immutable: any spec change (a new digest for the same version) must replace the Job, and
            # as its name stays the same within a version, the old one is deleted first.
            opts=pulumi.ResourceOptions.merge(
                kube,
                pulumi.ResourceOptions(
                    depends_on=[self.deployment, self.service, self.allow_serving_port],
                    replace_on_changes=["spec"],
                    delete_before_replace=True,
                ),
            ),
        )

        self.register_outputs(
            {
                "namespace": self.namespace,
                "serviceName": self.service_name,
                "servingUrl": self.serving_url,
            }
        )
