"""ModelDeployment: one model served on one AKS cluster, by image digest, each new version released as a canary.

Owns, on the cluster (through the Kubernetes provider passed in `opts`; built in components/model_workload.py and
components/model_canary.py): the Namespace, a ServiceAccount bound by workload identity, the Rollout (Argo
Rollouts: the serving pods and their canary steps), its Service (internal load balancer or ClusterIP behind an
ingress) and the canary Service, the Ingress with TLS (exposure `ingress`), a PodDisruptionBudget, a
HorizontalPodAutoscaler, NetworkPolicies (default deny, then the serving port only) and the smoke test the release
runs on the canary before it takes traffic (an AnalysisTemplate). In Azure (default provider; built in
components/model_identity.py): the user-assigned managed identity of the ServiceAccount and its federated
credential for the cluster's OIDC issuer.

Registered outputs: `namespace`, `rolloutName`, `serviceName`, `servingUrl`; `pod_selector` is a plain attribute
(the serving pods' labels, for what selects them from outside).

Only a new model version or a new image digest changes the Rollout's pod template: replicas belong to the HPA,
and nothing volatile (timestamps, run ids) is written anywhere, so an unrelated change never starts a release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import managedidentity

from components import azure_facts
from components.model_canary import (
    CanaryAnalysis,
    CanaryRelease,
    build_analysis_service_account,
    build_analysis_template,
    build_canary_service,
    build_smoke_template,
    canary_strategy,
)
from components.model_identity import build_analysis_identity, build_workload_identity
from components.model_workload import (
    IMAGE_REF,
    PORT_NAME,
    Exposure,
    IngressHost,
    InternalLoadBalancer,
    PodSize,
    Scale,
    ServedModel,
    Workload,
    build_availability,
    build_exposure,
    build_namespace,
    build_network_policies,
    build_rollout,
    build_service_account,
    checked_image,
    metadata_name,
)
from components.placement import Placement
from components.role_assignment import assign_role
from stacks.identifiers import kubernetes_name

__all__ = [
    "PORT_NAME",
    "CanaryAnalysis",
    "CanaryRelease",
    "Exposure",
    "IngressHost",
    "InternalLoadBalancer",
    "ModelDeployment",
    "ModelDeploymentArgs",
    "PodSize",
    "Scale",
    "ServedModel",
]


@dataclass(frozen=True)
class ModelDeploymentArgs:
    """What to serve, from which image, with which resources, scale and exposure, trusted by which OIDC issuer."""

    placement: Placement
    """Name (`<project>-<stack>-<app>-workload`), resource group, region and tags of the workload's managed
    identity; nothing is protected (the program makes every child again)."""
    model: ServedModel
    """The registered model and version the image holds; its name (lowercased) is also the Kubernetes name of the
    namespace, Rollout and Service."""
    image_ref: pulumi.Input[str]
    """The image to run, by digest: `<login server>/<repository>:<tag>@sha256:<64 hex>`."""
    oidc_issuer_url: pulumi.Input[str]
    """The cluster's OIDC issuer, trusted by the workload identity's federated credential."""
    size: PodSize
    """CPU and memory of one serving pod."""
    scale: Scale
    """The autoscaler's bounds and target."""
    canary: CanaryRelease
    """How each new version takes traffic (steps, pauses, failed measurements that abort)."""
    analysis: CanaryAnalysis | None = None
    """How the canary is judged while it takes traffic; None releases on the smoke test and the steps alone."""
    exposure: Exposure = field(default_factory=InternalLoadBalancer)
    """How the model is reached: an internal load balancer, or `IngressHost(host, tls_secret_name)`."""


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


def _dependencies(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    depends_on = opts.depends_on if opts is not None else None
    if isinstance(depends_on, pulumi.Resource):
        return [depends_on]
    if isinstance(depends_on, Sequence):
        return [d for d in depends_on if isinstance(d, pulumi.Resource)]
    return []


def _validate(args: ModelDeploymentArgs, provider: pulumi.ProviderResource | None) -> None:
    problems: list[pulumi.InputPropertyErrorDetails] = []

    def problem(path: str, reason: str) -> None:
        problems.append({"property_path": path, "reason": reason})

    if isinstance(args.image_ref, str) and not IMAGE_REF.match(args.image_ref):
        problem("image_ref", f"must be <login server>/<repository>:<tag>@sha256:<64 hex> (got {args.image_ref!r})")
    if provider is None:
        problem("opts.providers", "needs the cluster's pulumi_kubernetes.Provider (providers=[aks.provider])")
    if problems:
        details = "; ".join(f"{p['property_path']}: {p['reason']}" for p in problems)
        raise pulumi.InputPropertiesError(f"ModelDeploymentArgs: {details}", problems)


class ModelDeployment(pulumi.ComponentResource):
    """One model served on one cluster: workload identity, a Rollout by digest whose new versions are canaries,
    Services, autoscaling, disruption budget, network policy, optional ingress, and the canary's smoke test."""

    identity: managedidentity.UserAssignedIdentity
    federated_credential: managedidentity.FederatedIdentityCredential
    namespace_resource: k8s.core.v1.Namespace
    service_account: k8s.core.v1.ServiceAccount
    rollout: k8s.apiextensions.CustomResource
    smoke_template: k8s.apiextensions.CustomResource
    analysis_template: k8s.apiextensions.CustomResource | None
    service: k8s.core.v1.Service
    canary_service: k8s.core.v1.Service
    ingress: k8s.networking.v1.Ingress | None
    pod_disruption_budget: k8s.policy.v1.PodDisruptionBudget
    autoscaler: k8s.autoscaling.v2.HorizontalPodAutoscaler
    default_deny: k8s.networking.v1.NetworkPolicy
    allow_serving_port: k8s.networking.v1.NetworkPolicy
    namespace: pulumi.Output[str]
    rollout_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    serving_url: pulumi.Output[str]
    pod_selector: dict[str, str]

    def __init__(self, name: str, args: ModelDeploymentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        provider = _kubernetes_provider(opts)
        _validate(args, provider)
        super().__init__("mlops:serving:ModelDeployment", name, None, opts)
        app = kubernetes_name(args.model.name)
        selector = {"app.kubernetes.io/name": app, "app.kubernetes.io/component": "server"}
        workload = Workload(
            name=name,
            app=app,
            version=str(args.model.version),
            common={
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/part-of": args.placement.naming.project,
                "app.kubernetes.io/managed-by": "pulumi",
                "mlops/model": args.model.name,
            },
            selector=selector,
            # Kubernetes children get the cluster's provider explicitly; Azure children get none, so they use the
            # azure-native provider they inherit (never the Kubernetes one). They also depend, explicitly and so
            # in the state's graph, on what the component depends on: the release controller, whose CRDs the
            # Rollout and its AnalysisTemplate need.
            kube=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=_dependencies(opts)),
        )
        self.pod_selector = dict(selector)

        self.identity, self.federated_credential = build_workload_identity(
            name, args.placement, args.oidc_issuer_url, app, self
        )
        self.namespace_resource = build_namespace(workload)
        self.namespace = self.namespace_resource.metadata.apply(metadata_name)
        self.service_account = build_service_account(workload, self.namespace, self.identity.client_id)
        image = checked_image(args.image_ref)
        exposure = build_exposure(workload, args.exposure, self.namespace)
        self.service, self.ingress = exposure.service, exposure.ingress
        self.service_name, self.serving_url = exposure.service_name, exposure.serving_url
        self.canary_service = build_canary_service(workload, self.namespace)
        self.default_deny, self.allow_serving_port = build_network_policies(workload, self.namespace)
        self.smoke_template = build_smoke_template(workload, self.namespace, image, after=[self.service_account])
        self.analysis_template = None
        if args.analysis is not None:
            self.analysis_template = self._analysis(name, args, args.analysis, workload, image)
        routed = self.ingress is not None
        strategy = canary_strategy(
            app,
            args.canary,
            routed=routed,
            stable_ingress=app if routed else None,
            analysed=self.analysis_template is not None,
        )
        self.rollout = build_rollout(
            workload,
            args.model,
            args.size,
            self.namespace,
            image,
            strategy=strategy,
            # The controller reads the Services, the Ingress and the smoke template when the release starts.
            after=[
                self.service_account,
                self.service,
                self.canary_service,
                *([self.ingress] if self.ingress is not None else []),
                self.allow_serving_port,
                self.smoke_template,
                *([self.analysis_template] if self.analysis_template is not None else []),
            ],
        )
        # What the deploy workflow waits on after `pulumi up` (release/await_rollout.py): the name the Rollout was
        # given, known once it exists.
        self.rollout_name = self.rollout.id.apply(lambda _: app)
        self.pod_disruption_budget, self.autoscaler = build_availability(
            workload, args.scale, self.namespace, self.rollout
        )

        self.register_outputs(
            {
                "namespace": self.namespace,
                "rolloutName": self.rollout_name,
                "serviceName": self.service_name,
                "servingUrl": self.serving_url,
            }
        )

    def _analysis(
        self,
        name: str,
        args: ModelDeploymentArgs,
        analysis: CanaryAnalysis,
        workload: Workload,
        image: pulumi.Output[str],
    ) -> k8s.apiextensions.CustomResource:
        """The analysis identity (Monitoring Data Reader on the workspace), its ServiceAccount and the template."""
        app = workload.app
        identity, _ = build_analysis_identity(
            name, args.placement, args.oidc_issuer_url, app, service_account=f"{app}-analysis", parent=self
        )
        assign_role(
            f"{name}-analysis-reads-prometheus",
            role_id=azure_facts.MONITORING_DATA_READER,
            scope=analysis.azure_monitor_workspace_id,
            principal_id=identity.principal_id,
            principal_type="ServicePrincipal",
            subscription_id=analysis.subscription_id,
            parent=self,
            description="The canary analysis queries the stack's managed Prometheus",
        )
        service_account = build_analysis_service_account(workload, self.namespace, identity.client_id)
        return build_analysis_template(
            workload, self.namespace, image, release=args.canary, analysis=analysis, service_account=service_account
        )
