"""How ModelDeployment releases a new version as a canary (builder functions and the canary's value type).

The Rollout's canary strategy (`canary_strategy`), the canary Service the controller points at the new pods
(`build_canary_service`) and the smoke test run as an analysis step before the canary takes traffic
(`build_smoke_template`). Argo Rollouts' fields, as its v1.9.0 CRDs define them (tests/reference/argo-rollouts/,
which the tests validate the objects against); the reasons for each choice are in docs/decisions/0001-canary-release.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.aks_cluster import MODEL_POOL_LABEL
from components.contracts import server
from components.model_workload import (
    POD_THREAD_ENV,
    PORT_NAME,
    SERVICE_PORT,
    SKIP_PULL_POLICY,
    WORKLOAD_IDENTITY_CLIENT_ID,
    WORKLOAD_IDENTITY_USE,
    Workload,
    container_security,
    pod_security,
    tmp_volume,
)
from monitoring.analysis import CanaryCheck
from monitoring.rules import prometheus_duration

ANALYSIS_API_VERSION = "argoproj.io/v1alpha1"
# The arguments the canary's checks take, filled by the controller with each version's pod-template hash
# (argo-rollouts docs/features/analysis.md, `valueFrom.podTemplateHashValue`).
CANARY_HASH_ARG = "canary-hash"
STABLE_HASH_ARG = "stable-hash"
# No measurement before the canary has served and been scraped twice (30 s scrapes): a rate needs two samples.
ANALYSIS_INITIAL_DELAY = "2m"
JUDGE_DEADLINE_SECONDS = 120
SMOKE_DEADLINE_SECONDS = 600
SMOKE_BACKOFF_LIMIT = 2


@dataclass(frozen=True)
class CanaryRelease:
    """How a new version takes traffic: its share at each step, how long each step holds, how often the analysis
    measures and how many failed measurements abort the release."""

    steps: tuple[int, ...]
    """The canary's share of traffic at each step, in percent, rising, each 1-99 (100 follows the last step)."""
    pause_seconds: int
    """How long each step holds while the analysis measures."""
    measurement_interval_seconds: int
    """Time between two analysis measurements."""
    max_failed_measurements: int
    """Failed measurements that abort the release (Argo's failureLimit is one less: it counts those allowed)."""
    synthetic_rps: float = 0
    """Requests per second sent to the canary itself while it is judged (0: real traffic only)."""

    def __post_init__(self) -> None:
        if (
            not self.steps
            or list(self.steps) != sorted(set(self.steps))
            or not 1 <= min(self.steps) <= max(self.steps) <= 99
        ):
            raise ValueError(f"steps: expected rising percentages between 1 and 99 (got {list(self.steps)})")
        if self.pause_seconds < 1 or self.measurement_interval_seconds < 1 or self.max_failed_measurements < 1:
            raise ValueError("pause_seconds, measurement_interval_seconds and max_failed_measurements must be >= 1")

    @property
    def shares(self) -> str:
        """`10% -> 50% -> 100%`: how a reviewer reads the release."""
        return " -> ".join(f"{step}%" for step in (*self.steps, 100))


@dataclass(frozen=True)
class CanaryAnalysis:
    """How the canary is judged while it takes traffic: the checks (monitoring/analysis.py, on the alert rules'
    series), the Prometheus query endpoint they run against, and the workspace the analysis may read."""

    checks: tuple[CanaryCheck, ...]
    """Built with the `{{args.canary-hash}}` and `{{args.stable-hash}}` placeholders as the two hashes."""
    prometheus_url: pulumi.Input[str]
    """The Azure Monitor workspace's Prometheus query endpoint."""
    azure_monitor_workspace_id: pulumi.Input[str]
    """The workspace, where the analysis identity gets Monitoring Data Reader."""
    subscription_id: pulumi.Input[str]
    """The subscription of the role definition."""

    def __post_init__(self) -> None:
        if not self.checks:
            raise ValueError("checks: an analysis needs at least one check (an empty one would pass anything)")


def hash_arg(name: str) -> str:
    """The placeholder the controller replaces with an argument's value in the whole metric
    (argo-rollouts utils/analysis/factory.go `ResolveMetricArgs`)."""
    return "{{args." + name + "}}"


def canary_service_name(app: str) -> str:
    return f"{app}-canary"


def smoke_template_name(app: str) -> str:
    return f"{app}-smoke"


def analysis_template_name(app: str) -> str:
    return f"{app}-canary"


def analysis_service_account_name(app: str) -> str:
    return f"{app}-analysis"


def canary_strategy(
    app: str, release: CanaryRelease, *, routed: bool, stable_ingress: str | None, analysed: bool
) -> dict[str, Any]:
    """The Rollout's `spec.strategy.canary`.

    With a router (the app-routing add-on's nginx, exposure `ingress`) the share is set by weight on a canary
    Ingress the controller makes, and one canary pod is smoke-tested before it gets any traffic. Without one,
    the controller gives the canary the share of replicas closest to each step's weight; a pod that exists then
    takes traffic, so the smoke test runs on the first step's pods (argo-rollouts docs/features/canary/index.md).
    """
    smoke = {"analysis": {"templates": [{"templateName": smoke_template_name(app)}]}}
    pause = {"pause": {"duration": prometheus_duration(release.pause_seconds)}}
    weights = [step for share in release.steps for step in ({"setWeight": share}, pause)]
    strategy: dict[str, Any] = {
        "canaryService": canary_service_name(app),
        # One pod more than wanted while the canary starts, none fewer: the same budget the Deployment had.
        "maxSurge": 1,
        "maxUnavailable": 0,
    }
    if analysed:
        # The checks run in the background from the first pause with traffic on a smoke-tested canary (its pods
        # exist and answer) to the end; a failed or errored analysis aborts the release (argo-rollouts
        # rollout/analysis.go, AddAbort). The index is the step's in `steps` below.
        strategy["analysis"] = {
            "templates": [{"templateName": analysis_template_name(app)}],
            "startingStep": 4 if routed else 2,
            "args": [
                {"name": CANARY_HASH_ARG, "valueFrom": {"podTemplateHashValue": "Latest"}},
                {"name": STABLE_HASH_ARG, "valueFrom": {"podTemplateHashValue": "Stable"}},
            ],
        }
    if routed:
        if stable_ingress is None:
            raise ValueError("a routed canary needs the stable Ingress's name")
        strategy["stableService"] = app
        strategy["trafficRouting"] = {"nginx": {"stableIngress": stable_ingress}}
        # setCanaryScale needs a router (it decouples pods from weight): one pod, no traffic, smoke-tested, then
        # back to pods matching the weight.
        strategy["steps"] = [
            {"setCanaryScale": {"replicas": 1}},
            smoke,
            {"setCanaryScale": {"matchTrafficWeight": True}},
            *weights,
        ]
    else:
        strategy["steps"] = [weights[0], smoke, *weights[1:]]
    return strategy


def rollout_timeout_seconds(release: CanaryRelease) -> int:
    """How long a release may take before the deploy workflow stops waiting for it (release/await_rollout.py): the
    smoke test, every step, and the pods' start."""
    start_and_settle = 600
    return SMOKE_DEADLINE_SECONDS + len(release.steps) * release.pause_seconds + start_and_settle


def build_canary_service(w: Workload, namespace: pulumi.Input[str]) -> k8s.core.v1.Service:
    """The canary Service: the controller adds the new version's pod-template hash to its selector."""
    name, app, common, selector, kube = w.name, w.app, w.common, w.selector, w.kube
    return k8s.core.v1.Service(
        f"{name}-canary-service",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=canary_service_name(app), namespace=namespace, labels=common),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=selector,
            ports=[
                k8s.core.v1.ServicePortArgs(name=PORT_NAME, port=SERVICE_PORT, target_port=PORT_NAME, protocol="TCP")
            ],
        ),
        opts=kube,
    )


def smoke_command(app: str) -> list[str]:
    """The smoke test's command: a real prediction through the canary Service, with the model's input example."""
    return [
        *server.Commands.SMOKE,
        "--url",
        f"http://{canary_service_name(app)}.{app}.svc.cluster.local{server.Routes.INVOCATIONS}",
    ]


def job_provider(
    w: Workload,
    image: pulumi.Input[str],
    *,
    labels: dict[str, str],
    container: tuple[str, list[str]],
    service_account: str,
    resources: tuple[str, str],
    deadline_seconds: int,
    backoff_limit: int = 0,
    env: dict[str, str] | None = None,
    workload_identity: bool = False,
) -> dict[str, Any]:
    """An Argo Job metric provider (argo-rollouts docs/analysis/job.md): one pod from the model image on the model
    pool, restricted like the server's, with `container` (name, command), `resources` (cpu, memory: requests equal
    limits) and a deadline; `workload_identity` labels the pod for the webhook that injects the Entra token."""
    name, command = container
    cpu, memory = resources
    volume, mount = tmp_volume()
    pod_labels = {**labels, WORKLOAD_IDENTITY_USE: "true"} if workload_identity else labels
    spec = k8s.batch.v1.JobSpecArgs(
        backoff_limit=backoff_limit,
        active_deadline_seconds=deadline_seconds,
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=pod_labels),
            spec=k8s.core.v1.PodSpecArgs(
                restart_policy="Never",
                service_account_name=service_account,
                automount_service_account_token=False,
                enable_service_links=False,
                security_context=pod_security(),
                node_selector={MODEL_POOL_LABEL[0]: MODEL_POOL_LABEL[1]},
                containers=[
                    k8s.core.v1.ContainerArgs(
                        name=name,
                        image=image,
                        image_pull_policy="IfNotPresent",
                        command=command,
                        env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in env.items()] if env else None,
                        resources=k8s.core.v1.ResourceRequirementsArgs(
                            requests={"cpu": cpu, "memory": memory}, limits={"cpu": cpu, "memory": memory}
                        ),
                        security_context=container_security(),
                        volume_mounts=[mount],
                    )
                ],
                volumes=[volume],
            ),
        ),
    )
    return {"job": {"metadata": {"labels": labels}, "spec": spec}}


def _analysis_template(  # noqa: PLR0917 - the template's seven parts, each different
    w: Workload,
    role: str,
    template_name: str,
    namespace: pulumi.Input[str],
    labels: dict[str, str],
    spec: pulumi.Input[dict[str, Any]],
    after: list[pulumi.Resource],
) -> k8s.apiextensions.CustomResource:
    """An AnalysisTemplate child `<name>-<role>`; its Job pods run the digest-pinned image (the pull-policy skip)."""
    return k8s.apiextensions.CustomResource(
        f"{w.name}-{role}",
        api_version=ANALYSIS_API_VERSION,
        kind="AnalysisTemplate",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=template_name,
            namespace=namespace,
            labels=labels,
            annotations={"checkov.io/skip1": SKIP_PULL_POLICY},
        ),
        spec=spec,
        opts=pulumi.ResourceOptions.merge(w.kube, pulumi.ResourceOptions(depends_on=after)),
    )


def build_smoke_template(
    w: Workload, namespace: pulumi.Input[str], image: pulumi.Input[str], after: list[pulumi.Resource]
) -> k8s.apiextensions.CustomResource:
    """The smoke test as an AnalysisTemplate with a Job metric: the step passes if the Job exits 0
    (argo-rollouts docs/analysis/job.md), and a failed step aborts the release."""
    app = w.app
    labels = {**w.common, "app.kubernetes.io/component": "smoke-test", "app.kubernetes.io/version": w.version}
    provider = job_provider(
        w,
        image,
        labels=labels,
        container=("smoke", smoke_command(app)),
        service_account=app,
        resources=("500m", "512Mi"),
        deadline_seconds=SMOKE_DEADLINE_SECONDS,
        backoff_limit=SMOKE_BACKOFF_LIMIT,
        env=POD_THREAD_ENV,  # as the server: one thread per process
    )
    spec = {"metrics": [{"name": "smoke-test", "provider": provider}]}
    return _analysis_template(w, "smoke-template", smoke_template_name(app), namespace, labels, spec, after)


def judge_command(prometheus_url: str, check: CanaryCheck) -> list[str]:
    """One measurement of one check (each check is its own metric, so the AnalysisRun says which one failed):
    `python -m model_server judge` exits 0 iff the check's pass query returns a sample."""
    return [
        *server.Commands.JUDGE,
        "--prometheus",
        prometheus_url,
        "--auth",
        "workload-identity",
        "--check",
        f"{check.name}={check.query}",
        "--value",
        f"{check.name}={check.value_query}",
    ]


def build_analysis_template(
    w: Workload,
    namespace: pulumi.Input[str],
    image: pulumi.Input[str],
    *,
    release: CanaryRelease,
    analysis: CanaryAnalysis,
    service_account: k8s.core.v1.ServiceAccount,
) -> k8s.apiextensions.CustomResource:
    """The canary's checks as an AnalysisTemplate: one Job metric per check, measured every interval from the
    first weighted step on, in pods that query Prometheus by workload identity. A check fails when its query
    returns nothing or the query cannot run; more failed (or errored) measurements than the stack allows abort."""
    app = w.app
    labels = {**w.common, "app.kubernetes.io/component": "canary-analysis"}
    allowed = release.max_failed_measurements - 1

    def metric(check: CanaryCheck, prometheus_url: str) -> dict[str, Any]:
        provider = job_provider(
            w,
            image,
            labels=labels,
            container=("judge", judge_command(prometheus_url, check)),
            service_account=analysis_service_account_name(app),
            resources=("100m", "128Mi"),
            deadline_seconds=JUDGE_DEADLINE_SECONDS,
            workload_identity=True,
        )
        return {
            "name": check.name,
            "initialDelay": ANALYSIS_INITIAL_DELAY,
            "interval": prometheus_duration(release.measurement_interval_seconds),
            "failureLimit": allowed,
            # A judge that runs and cannot measure fails (exit 1). Errors are the controller's own (the Job could
            # not be created or read) and keep Argo's default limit of 4 in a row before they abort.
            "provider": provider,
        }

    spec = pulumi.Output.from_input(analysis.prometheus_url).apply(
        lambda url: {
            "args": [{"name": CANARY_HASH_ARG}, {"name": STABLE_HASH_ARG}],
            "metrics": [
                *(metric(check, url) for check in analysis.checks),
                *([synthetic_traffic_metric(w, image, release)] if release.synthetic_rps > 0 else []),
            ],
        }
    )
    return _analysis_template(
        w, "analysis-template", analysis_template_name(app), namespace, labels, spec, [service_account]
    )


def synthetic_traffic_metric(w: Workload, image: pulumi.Input[str], release: CanaryRelease) -> dict[str, Any]:
    """One Job for the whole analysis that sends the canary Service the model's input example at the stack's rate:
    a quiet canary would fail its checks for lack of requests, never for its own faults. It measures once and
    fails only if the canary never answered (`python -m model_server traffic`)."""
    seconds = len(release.steps) * release.pause_seconds
    labels = {**w.common, "app.kubernetes.io/component": "canary-traffic"}
    url = f"http://{canary_service_name(w.app)}.{w.app}.svc.cluster.local{server.Routes.INVOCATIONS}"
    command = [
        *server.Commands.TRAFFIC,
        *("--url", url),
        *("--rps", f"{release.synthetic_rps:g}", "--seconds", str(seconds)),
    ]
    provider = job_provider(
        w,
        image,
        labels=labels,
        container=("traffic", command),
        service_account=w.app,
        resources=("100m", "128Mi"),
        deadline_seconds=seconds + SMOKE_DEADLINE_SECONDS,
    )
    return {
        "name": "synthetic-traffic",
        "count": 1,
        "provider": provider,
    }


def build_analysis_service_account(
    w: Workload, namespace: pulumi.Input[str], identity_client_id: pulumi.Input[str]
) -> k8s.core.v1.ServiceAccount:
    """The analysis Jobs' ServiceAccount, bound to the analysis identity by its client id."""
    return k8s.core.v1.ServiceAccount(
        f"{w.name}-analysis-service-account",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=analysis_service_account_name(w.app),
            namespace=namespace,
            labels=w.common,
            annotations={WORKLOAD_IDENTITY_CLIENT_ID: identity_client_id},
        ),
        automount_service_account_token=False,
        opts=w.kube,
    )
