"""The Kubernetes side of ModelDeployment: one builder function per group of objects, each a child of the component.

Builders (as pulumi-eks builds a node group's children in plain functions the component calls): `build_namespace`,
`build_service_account`, `build_rollout` (the serving pods, `pod_template`, released by Argo Rollouts; the canary
strategy and smoke test are in model_canary.py), `build_exposure` (Service, and Ingress with TLS for exposure
`ingress`), `build_availability` (PodDisruptionBudget, HorizontalPodAutoscaler) and `build_network_policies`
(default deny, then the serving port only). Every object gets the cluster's provider explicitly (`Workload.kube`),
never the azure-native one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.aks_cluster import MODEL_POOL_LABEL
from components.contracts import server
from monitoring.analysis import POD_TEMPLATE_HASH_LABEL
from stacks.identifiers import DIGEST_PATTERN

SERVING_PORT = server.PORT
SERVICE_PORT = 80
PORT_NAME = "http"
RUN_AS_USER = server.RUN_AS_USER
READY_PATH = server.Routes.HEALTH_READY
LIVE_PATH = server.Routes.HEALTH_LIVE
# The image's one-thread setting for OpenMP, stated on the pod too (the image's ENV holds the whole set), so that a
# pod spec read alone says the server runs one thread.
POD_THREAD_ENV = {"OMP_NUM_THREADS": server.ONE_THREAD_ENV["OMP_NUM_THREADS"]}
INGRESS_CLASS = "webapprouting.kubernetes.azure.com"
INTERNAL_LB_ANNOTATION = "service.beta.kubernetes.io/azure-load-balancer-internal"
WORKLOAD_IDENTITY_USE = "azure.workload.identity/use"
WORKLOAD_IDENTITY_CLIENT_ID = "azure.workload.identity/client-id"
ROLLOUT_API_VERSION = "argoproj.io/v1alpha1"
# The label Argo Rollouts puts on each version's pods; the Deployment controller's `pod-template-hash` is not set.
ROLLOUT_HASH_LABEL = POD_TEMPLATE_HASH_LABEL
IMAGE_REF = re.compile(rf"^[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}@{DIGEST_PATTERN}$")

# checkov reads `checkov.io/skipN: <check>=<reason>` annotations; each skip states why it does not apply here.
SKIP_PULL_POLICY = (
    "CKV_K8S_15=the image is pinned by sha256 digest, so IfNotPresent can never run another image; Always would "
    "only make every pod start depend on the registry being reachable"
)


@dataclass(frozen=True)
class ServedModel:
    """The model the pods serve: its registered name and version, and the rows one request may carry."""

    name: str
    version: int
    max_rows: int


@dataclass(frozen=True)
class PodSize:
    """CPU and memory of one serving pod, request and limit alike (e.g. `"1"`, `"2Gi"`)."""

    cpu: str
    memory: str


@dataclass(frozen=True)
class Scale:
    """How many serving pods the autoscaler may run, and the average CPU (percent of the request) it aims for."""

    min_replicas: int
    max_replicas: int
    target_cpu_utilization: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"Scale: expected 1 <= min_replicas <= max_replicas, got {self}")
        if not 1 <= self.target_cpu_utilization <= 100:
            raise ValueError(f"Scale: expected target_cpu_utilization in 1..100, got {self.target_cpu_utilization}")


@dataclass(frozen=True)
class InternalLoadBalancer:
    """The model is reached through a Service on an internal load balancer (an address in the cluster's VNet)."""


@dataclass(frozen=True)
class IngressHost:
    """The model is reached at `https://<host>/` through the app-routing Ingress, with the TLS certificate in the
    Kubernetes secret `tls_secret_name`."""

    host: str
    tls_secret_name: str


Exposure = InternalLoadBalancer | IngressHost


@dataclass(frozen=True)
class Workload:
    """What every builder shares: the component's name (children are named from it), the Kubernetes name, the
    version, the labels, and the options that make an object the component's child on the cluster's provider."""

    name: str
    """The component's name; every child is `<name>-<role>`."""
    app: str
    """The model's Kubernetes name (namespace, Rollout, Service, ServiceAccount)."""
    version: str
    """The model version, as a label value."""
    common: dict[str, str]
    """Labels on every object; none carries the version, so a new version changes only the pod template and Job."""
    selector: dict[str, str]
    """The serving pods' selector labels."""
    kube: pulumi.ResourceOptions
    """`parent=` the component, `provider=` the cluster's Kubernetes provider."""


def _checked_image_ref(ref: str) -> str:
    # The same rule as at construction, for a ref only known at deploy time (another resource's output).
    if not IMAGE_REF.match(ref):
        raise ValueError(f"image_ref must be <login server>/<repository>:<tag>@sha256:<64 hex> (got {ref!r})")
    return ref


def metadata_name(meta: k8s.meta.v1.outputs.ObjectMeta) -> str:
    if not meta.name:
        raise ValueError("a Kubernetes object came back without metadata.name")
    return meta.name


def _load_balancer_url(status: k8s.core.v1.outputs.ServiceStatus | None) -> str:
    ingress = status.load_balancer.ingress if status and status.load_balancer else None
    if not ingress or not ingress[0].ip:
        raise ValueError("the internal load balancer Service has no IP address in status.loadBalancer.ingress")
    return f"http://{ingress[0].ip}/invocations"


def container_security() -> k8s.core.v1.SecurityContextArgs:
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


def pod_security() -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_USER,
        fs_group=RUN_AS_USER,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def tmp_volume() -> tuple[k8s.core.v1.VolumeArgs, k8s.core.v1.VolumeMountArgs]:
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


def build_namespace(w: Workload) -> k8s.core.v1.Namespace:
    """The model's namespace, where the restricted Pod Security Standard is enforced."""
    name, app, common, kube = w.name, w.app, w.common, w.kube
    return k8s.core.v1.Namespace(
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


def build_service_account(
    w: Workload, namespace: pulumi.Input[str], identity_client_id: pulumi.Input[str]
) -> k8s.core.v1.ServiceAccount:
    """The pods' ServiceAccount, bound to the workload identity by its client id."""
    name, app, common, kube = w.name, w.app, w.common, w.kube
    return k8s.core.v1.ServiceAccount(
        f"{name}-service-account",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=app,
            namespace=namespace,
            labels=common,
            annotations={WORKLOAD_IDENTITY_CLIENT_ID: identity_client_id},
        ),
        # The workload identity webhook projects its own token for the Entra exchange; the Kubernetes API
        # token is not needed by the server.
        automount_service_account_token=False,
        opts=kube,
    )


def checked_image(image_ref: pulumi.Input[str]) -> pulumi.Output[str]:
    """The image ref, checked at deploy time too (a ref that is another resource's output is unknown before)."""
    return pulumi.Output.from_input(image_ref).apply(_checked_image_ref)


def pod_template(
    w: Workload, model: ServedModel, size: PodSize, image: pulumi.Input[str]
) -> k8s.core.v1.PodTemplateSpecArgs:
    """The serving pods: the image by digest, probes, restricted security, spread across zones and nodes."""
    app, version, common, selector = w.app, w.version, w.common, w.selector
    volume, mount = tmp_volume()
    # CPU request = limit: the server is one process with OMP_NUM_THREADS=1; whole cores, no throttling.
    resources = k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": size.cpu, "memory": size.memory},
        limits={"cpu": size.cpu, "memory": size.memory},
    )
    spread = [
        # ScheduleAnyway: a pool spanning zones is one scale set, so the autoscaler cannot add a node in a
        # chosen zone; a hard constraint could leave a surge pod Pending and stall the release. Spread per
        # version: the controller labels each version's pods with its own hash.
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            match_label_keys=[ROLLOUT_HASH_LABEL],
        )
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]
    return k8s.core.v1.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(
            labels={**common, **selector, "app.kubernetes.io/version": version, WORKLOAD_IDENTITY_USE: "true"},
            annotations={"mlops/model-version": version, "mlops/image-ref": image},
        ),
        spec=k8s.core.v1.PodSpecArgs(
            service_account_name=app,
            automount_service_account_token=False,
            enable_service_links=False,
            security_context=pod_security(),
            # The user pool; the system pool is tainted CriticalAddonsOnly, so no toleration is needed and none
            # is given.
            node_selector={MODEL_POOL_LABEL[0]: MODEL_POOL_LABEL[1]},
            topology_spread_constraints=spread,
            termination_grace_period_seconds=30,
            containers=[
                k8s.core.v1.ContainerArgs(
                    name="server",
                    image=image,
                    image_pull_policy="IfNotPresent",
                    ports=[k8s.core.v1.ContainerPortArgs(name=PORT_NAME, container_port=SERVING_PORT, protocol="TCP")],
                    env=[
                        *(k8s.core.v1.EnvVarArgs(name=name, value=value) for name, value in POD_THREAD_ENV.items()),
                        k8s.core.v1.EnvVarArgs(name=server.Env.MODEL_NAME, value=model.name),
                        k8s.core.v1.EnvVarArgs(name=server.Env.MODEL_VERSION, value=version),
                        # The name model_server reads (its settings.py); a test holds the two together.
                        k8s.core.v1.EnvVarArgs(name=server.Env.MAX_REQUEST_ROWS, value=str(model.max_rows)),
                    ],
                    resources=resources,
                    # Ready only once the model is loaded and warmed up: up to 5 minutes to start.
                    startup_probe=_http_probe(READY_PATH, period=5, failures=60),
                    readiness_probe=_http_probe(READY_PATH, period=5, failures=3),
                    liveness_probe=_http_probe(LIVE_PATH, period=10, failures=3),
                    # Let the endpoints controller and load balancer stop sending before SIGTERM.
                    lifecycle=k8s.core.v1.LifecycleArgs(
                        pre_stop=k8s.core.v1.LifecycleHandlerArgs(sleep=k8s.core.v1.SleepActionArgs(seconds=5))
                    ),
                    security_context=container_security(),
                    volume_mounts=[mount],
                )
            ],
            volumes=[volume],
        ),
    )


def build_rollout(
    w: Workload,
    model: ServedModel,
    size: PodSize,
    namespace: pulumi.Input[str],
    image: pulumi.Input[str],
    *,
    strategy: dict[str, Any],
    after: list[pulumi.Resource],
) -> k8s.apiextensions.CustomResource:
    """The serving Rollout: the pod template, released by the canary `strategy` (components/model_canary.py)."""
    return k8s.apiextensions.CustomResource(
        f"{w.name}-rollout",
        api_version=ROLLOUT_API_VERSION,
        kind="Rollout",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=w.app,
            namespace=namespace,
            labels=w.common,
            annotations={
                "checkov.io/skip1": SKIP_PULL_POLICY,
                # `pulumi up` does not wait for the release: the deploy workflow does (release/await_rollout.py, the
                # rules of Argo's own client), for a first Rollout as for an update. A wait here would end at once on
                # an update (Argo writes status.observedGeneration as a string, the provider's guard reads an
                # integer: pulumi-kubernetes await/condition/jsonpath.go), and after an aborted release it would
                # block `up` through the next canary and fail it before the workflow can act on an abort.
                "pulumi.com/skipAwait": "true",
            },
        ),
        spec={
            # No `replicas`: the HPA owns the count through the Rollout's scale subresource (argo-rollouts
            # docs/features/hpa-support.md); declaring it would reset the HPA's choice on every `pulumi up`.
            "selector": k8s.meta.v1.LabelSelectorArgs(match_labels=w.selector),
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 600,
            # A version whose pods never become ready is aborted, not left half-released.
            "progressDeadlineAbort": True,
            "template": pod_template(w, model, size, image),
            "strategy": {"canary": strategy},
        },
        opts=pulumi.ResourceOptions.merge(w.kube, pulumi.ResourceOptions(depends_on=after)),
    )


@dataclass(frozen=True)
class ExposedService:
    """How the model is reached: its Service, the Ingress (exposure `ingress` only) and the serving URL."""

    service: k8s.core.v1.Service
    ingress: k8s.networking.v1.Ingress | None
    service_name: pulumi.Output[str]
    serving_url: pulumi.Output[str]


def build_exposure(w: Workload, exposure: Exposure, namespace: pulumi.Input[str]) -> ExposedService:
    """An internal load balancer Service, or a ClusterIP Service behind an Ingress with TLS."""
    name, app, common, selector, kube = w.name, w.app, w.common, w.selector, w.kube
    internal_lb = isinstance(exposure, InternalLoadBalancer)
    service = k8s.core.v1.Service(
        f"{name}-service",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=app,
            namespace=namespace,
            labels=common,
            annotations={INTERNAL_LB_ANNOTATION: "true"} if internal_lb else None,
        ),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="LoadBalancer" if internal_lb else "ClusterIP",
            selector=selector,
            ports=[
                k8s.core.v1.ServicePortArgs(name=PORT_NAME, port=SERVICE_PORT, target_port=PORT_NAME, protocol="TCP")
            ],
        ),
        opts=kube,
    )
    service_name = service.metadata.apply(metadata_name)

    ingress: k8s.networking.v1.Ingress | None = None
    if isinstance(exposure, IngressHost):
        host, tls_secret = exposure.host, exposure.tls_secret_name
        ingress = k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=app, namespace=namespace, labels=common),
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
            opts=pulumi.ResourceOptions.merge(kube, pulumi.ResourceOptions(depends_on=[service])),
        )
        serving_url = pulumi.Output.from_input(f"https://{host}/invocations")
    else:
        serving_url = service.status.apply(_load_balancer_url)
    return ExposedService(service=service, ingress=ingress, service_name=service_name, serving_url=serving_url)


def build_availability(
    w: Workload, scale: Scale, namespace: pulumi.Input[str], rollout: k8s.apiextensions.CustomResource
) -> tuple[k8s.policy.v1.PodDisruptionBudget, k8s.autoscaling.v2.HorizontalPodAutoscaler]:
    """The disruption budget and the autoscaler (which owns the replica count)."""
    name, app, common, selector, kube = w.name, w.app, w.common, w.selector, w.kube
    pod_disruption_budget = k8s.policy.v1.PodDisruptionBudget(
        f"{name}-pdb",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=app, namespace=namespace, labels=common),
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
    autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{name}-hpa",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=app, namespace=namespace, labels=common),
        spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
            scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                api_version=ROLLOUT_API_VERSION, kind="Rollout", name=app
            ),
            min_replicas=scale.min_replicas,
            max_replicas=scale.max_replicas,
            metrics=[
                k8s.autoscaling.v2.MetricSpecArgs(
                    type="Resource",
                    resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                        name="cpu",
                        target=k8s.autoscaling.v2.MetricTargetArgs(
                            type="Utilization", average_utilization=scale.target_cpu_utilization
                        ),
                    ),
                )
            ],
        ),
        opts=pulumi.ResourceOptions.merge(kube, pulumi.ResourceOptions(depends_on=[rollout])),
    )
    return pod_disruption_budget, autoscaler


def build_network_policies(
    w: Workload, namespace: pulumi.Input[str]
) -> tuple[k8s.networking.v1.NetworkPolicy, k8s.networking.v1.NetworkPolicy]:
    """Default deny for the namespace, then the serving port from anywhere: nothing else reaches a pod here."""
    name, app, common, selector, kube = w.name, w.app, w.common, w.selector, w.kube
    default_deny = k8s.networking.v1.NetworkPolicy(
        f"{name}-default-deny",
        metadata=k8s.meta.v1.ObjectMetaArgs(name="default-deny-ingress", namespace=namespace, labels=common),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(),
            policy_types=["Ingress"],
        ),
        opts=kube,
    )
    allow_serving_port = k8s.networking.v1.NetworkPolicy(
        f"{name}-allow-serving-port",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{app}-allow-http", namespace=namespace, labels=common),
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
    return default_deny, allow_serving_port
