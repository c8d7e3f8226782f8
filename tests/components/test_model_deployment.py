"""ModelDeployment, built from the real staging and prod serving settings, asserted input by input through the
harness: identity, the Rollout's pods, probes, security, spread, autoscaling, exposure, the canary's smoke test, and
what a change to the version or to the replica settings does (and does not) touch (the canary strategy itself:
test_canary_release.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.model_deployment import ModelDeployment, ModelDeploymentArgs, ServedModel
from components.naming import Naming
from components.placement import Placement
from offline.diff import flatten
from offline.harness import ProgramRun, RecordedResource, run_program
from stacks.files import load_stack_config
from stacks.settings import ServingSettings, StackSettings, pinned_model
from tests.components.stack_fields import serving_fields

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "mlops-serving"
LOGIN = "mlopsservingstagingacr1a2b3c.azurecr.io"
DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64
IMAGE_V1 = f"{LOGIN}/models/wine-quality:1-0123456789ab@{DIGEST_1}"
IMAGE_V2 = f"{LOGIN}/models/wine-quality:2-0123456789ab@{DIGEST_2}"
ISSUER = "https://westeurope.oic.prod-aks.azure.com/00000000-0000-4000-8000-0000000000aa/cluster-issuer/"

COMPONENT = "mlops:serving:ModelDeployment"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
FEDERATED = "azure-native:managedidentity:FederatedIdentityCredential"
NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SMOKE = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
K8S_PROVIDER = "pulumi:providers:kubernetes"

ProviderOpts = Callable[[k8s.Provider], pulumi.ResourceOptions]


def providers_list(p: k8s.Provider) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(providers=[p])


def providers_map(p: k8s.Provider) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(providers={"kubernetes": p})


def single_provider(p: k8s.Provider) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(provider=p)


@dataclass(frozen=True)
class DeploymentRun:
    stack: str
    serving: ServingSettings
    run: ProgramRun

    @property
    def component(self) -> RecordedResource:
        return self.run.one(COMPONENT)

    @property
    def rollout(self) -> RecordedResource:
        return self.run.one(ROLLOUT)

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.rollout.inputs["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["containers"]
        result: dict[str, Any] = container
        return result

    @property
    def smoke(self) -> RecordedResource:
        return self.run.one(SMOKE)

    @property
    def smoke_job(self) -> dict[str, Any]:
        (metric,) = self.smoke.inputs["spec"]["metrics"]
        job: dict[str, Any] = metric["provider"]["job"]
        return job

    @property
    def provider_ref(self) -> str:
        provider = self.run.one(K8S_PROVIDER)
        return f"{provider.urn}::{provider.name}-provider-id"


def stack_settings(stack: str) -> StackSettings:
    return load_stack_config(ROOT, stack).settings()


def ingress_serving(stack: str) -> ServingSettings:
    return stack_settings(stack).serving.model_copy(
        update={"exposure": "ingress", "host": "wine.models.example.com", "tls_secret_name": "wine-models-tls"}
    )


def run_deployment(
    stack: str,
    *,
    serving: ServingSettings | None = None,
    version: int | None = None,
    image_ref: pulumi.Input[str] | None = None,
    provider_opts: ProviderOpts = providers_list,
) -> DeploymentRun:
    settings = stack_settings(stack)
    serving = serving or settings.serving
    naming = Naming(PROJECT, stack, settings.name_suffix)

    def program() -> None:
        # A cluster provider as AksCluster makes one; the component must only ever use it for Kubernetes objects.
        cluster = k8s.Provider("cluster", kubeconfig=pulumi.Output.secret("apiVersion: v1\nkind: Config\n"))
        deployment = ModelDeployment(
            "wine",
            ModelDeploymentArgs(
                placement=Placement(
                    naming, naming.resource("rg"), settings.location, naming.tags(settings.tags), protect=False
                ),
                model=ServedModel(
                    pinned_model(settings).name, version or pinned_model(settings).version, serving.max_rows
                ),
                image_ref=image_ref or IMAGE_V1,
                oidc_issuer_url=ISSUER,
                **serving_fields(serving),
            ),
            opts=provider_opts(cluster),
        )
        pulumi.export("namespace", deployment.namespace)
        pulumi.export("serviceName", deployment.service_name)
        pulumi.export("servingUrl", deployment.serving_url)
        pulumi.export("clientId", deployment.identity.client_id)

    return DeploymentRun(stack, serving, run_program(program, {}, project=PROJECT, stack=stack))


@pytest.fixture(scope="module", params=["staging", "prod"])
def md_run(request: pytest.FixtureRequest) -> DeploymentRun:
    return run_deployment(request.param)


@pytest.fixture(scope="module", params=["staging", "prod"])
def md_ingress_run(request: pytest.FixtureRequest) -> DeploymentRun:
    return run_deployment(request.param, serving=ingress_serving(request.param))


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    a, b = flatten(before), flatten(after)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


# --- Structure and providers ---------------------------------------------------------------------------------


def test_component_children_are_parented_and_named_from_the_instance(md_run: DeploymentRun) -> None:
    component = md_run.component
    assert component.type == COMPONENT
    children = md_run.run.children(component)
    assert sorted((c.type, c.name) for c in children) == sorted(
        [
            (IDENTITY, "wine-identity"),
            (FEDERATED, "wine-federated-credential"),
            (NAMESPACE, "wine-namespace"),
            (SERVICE_ACCOUNT, "wine-service-account"),
            (ROLLOUT, "wine-rollout"),
            (SERVICE, "wine-service"),
            (SERVICE, "wine-canary-service"),
            (PDB, "wine-pdb"),
            (HPA, "wine-hpa"),
            (NETWORK_POLICY, "wine-default-deny"),
            (NETWORK_POLICY, "wine-allow-serving-port"),
            (SMOKE, "wine-smoke-template"),
        ]
    )


@pytest.mark.parametrize("provider_opts", [providers_list, providers_map, single_provider])
def test_kubernetes_children_use_the_passed_provider_and_azure_children_do_not(provider_opts: ProviderOpts) -> None:
    result = run_deployment("prod", provider_opts=provider_opts)
    children = result.run.children(result.component)
    kube = [c for c in children if c.type.startswith("kubernetes:")]
    azure = [c for c in children if c.type.startswith("azure-native:")]
    assert len(kube) == 10
    assert len(azure) == 2
    assert {c.provider for c in kube} == {result.provider_ref}
    assert all("pulumi:providers:kubernetes" not in c.provider for c in azure)


def test_a_missing_kubernetes_provider_is_rejected_naming_the_property() -> None:
    settings = stack_settings("prod")
    with pytest.raises(pulumi.InputPropertiesError) as caught:
        ModelDeployment(
            "wine",
            ModelDeploymentArgs(
                placement=Placement(Naming(PROJECT, "prod"), "rg", "westeurope", {}, protect=False),
                model=ServedModel("wine-quality", 1, settings.serving.max_rows),
                image_ref=IMAGE_V1,
                oidc_issuer_url=ISSUER,
                **serving_fields(settings.serving),
            ),
        )
    assert [e["property_path"] for e in caught.value.errors or []] == ["opts.providers"]


def test_invalid_args_are_reported_together_each_naming_its_property() -> None:
    settings = stack_settings("prod")
    with pytest.raises(pulumi.InputPropertiesError) as caught:
        ModelDeployment(
            "wine",
            ModelDeploymentArgs(
                placement=Placement(Naming(PROJECT, "prod"), "rg", "westeurope", {}, protect=False),
                model=ServedModel("wine-quality", 1, settings.serving.max_rows),
                image_ref=f"{LOGIN}/models/wine-quality:1",  # a tag, no digest
                oidc_issuer_url=ISSUER,
                **serving_fields(settings.serving),
            ),
        )
    paths = [e["property_path"] for e in caught.value.errors or []]
    # The version and the exposure are the stack settings' to check (stacks/settings.py), once.
    assert paths == ["image_ref", "opts.providers"]
    assert "image_ref: must be <login server>/<repository>:<tag>@sha256:<64 hex>" in str(caught.value)


def test_an_image_ref_known_only_at_deploy_time_is_checked_too() -> None:
    with pytest.raises(Exception, match=r"image_ref must be .*@sha256:<64 hex> \(got 'acr.azurecr.io/m:latest'\)"):
        run_deployment("staging", image_ref=pulumi.Output.from_input("acr.azurecr.io/m:latest"))


# --- Workload identity ---------------------------------------------------------------------------------------


def test_service_account_is_bound_to_a_managed_identity_by_workload_identity(md_run: DeploymentRun) -> None:
    identity = md_run.run.one(IDENTITY)
    assert identity.inputs == {
        "resourceName": f"mlops-serving-{md_run.stack}-wine-quality-workload",
        "resourceGroupName": f"mlops-serving-{md_run.stack}-rg",
        "location": "westeurope",
        "tags": {
            **stack_settings(md_run.stack).tags,
            "project": PROJECT,
            "stack": md_run.stack,
            "managed-by": "pulumi",
        },
    }
    federated = md_run.run.one(FEDERATED)
    assert federated.inputs == {
        "resourceGroupName": f"mlops-serving-{md_run.stack}-rg",
        "resourceName": identity.inputs["resourceName"],
        "federatedIdentityCredentialResourceName": "kubernetes-wine-quality-wine-quality",
        "issuer": ISSUER,
        "subject": "system:serviceaccount:wine-quality:wine-quality",
        "audiences": ["api://AzureADTokenExchange"],
    }
    assert identity.urn in federated.property_dependencies["resourceName"]

    account = md_run.run.one(SERVICE_ACCOUNT)
    assert account.inputs["metadata"]["name"] == "wine-quality"
    assert account.inputs["metadata"]["namespace"] == "wine-quality"
    assert account.inputs["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": md_run.run.outputs["clientId"]
    }
    assert identity.urn in account.property_dependencies["metadata"]
    assert account.inputs["automountServiceAccountToken"] is False


def test_pods_opt_into_workload_identity_without_mounting_the_api_token(md_run: DeploymentRun) -> None:
    labels = md_run.rollout.inputs["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"
    assert md_run.pod["serviceAccountName"] == "wine-quality"
    assert md_run.pod["automountServiceAccountToken"] is False
    assert md_run.run.one(SERVICE_ACCOUNT).urn in md_run.rollout.dependencies


# --- Namespace ---------------------------------------------------------------------------------------------------


def test_namespace_is_the_model_name_and_enforces_restricted_pod_security(md_run: DeploymentRun) -> None:
    namespace = md_run.run.one(NAMESPACE)
    metadata = namespace.inputs["metadata"]
    assert metadata["name"] == "wine-quality"
    assert metadata["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert md_run.run.outputs["namespace"] == "wine-quality"
    # Every namespaced object is created after the namespace (its name comes from the Namespace's output).
    for child in md_run.run.children(md_run.component):
        if child.type.startswith("kubernetes:") and child.type != NAMESPACE:
            assert child.inputs["metadata"]["namespace"] == "wine-quality"
            assert namespace.urn in child.property_dependencies["metadata"], child.name


# --- Rollout ---------------------------------------------------------------------------------------------------


def test_the_rollout_runs_the_image_by_digest_with_one_pod_of_surge_and_none_unavailable(md_run: DeploymentRun) -> None:
    spec = md_run.rollout.inputs["spec"]
    assert md_run.rollout.inputs["metadata"]["name"] == "wine-quality"
    assert md_run.container["image"] == IMAGE_V1
    assert md_run.container["imagePullPolicy"] == "IfNotPresent"
    assert (spec["strategy"]["canary"]["maxSurge"], spec["strategy"]["canary"]["maxUnavailable"]) == (1, 0)
    assert spec["progressDeadlineAbort"] is True
    assert spec["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "wine-quality", "app.kubernetes.io/component": "server"}
    }
    # The HPA owns the replica count.
    assert "replicas" not in spec


def test_the_release_is_awaited_not_skipped(md_run: DeploymentRun) -> None:
    annotations = md_run.rollout.inputs["metadata"]["annotations"]
    assert "pulumi.com/skipAwait" not in annotations
    assert annotations["pulumi.com/waitFor"] == "jsonpath={.status.phase}=Healthy"


def test_probes_hit_the_server_health_endpoints_on_the_named_port(md_run: DeploymentRun) -> None:
    container = md_run.container
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["startupProbe"] == {
        "httpGet": {"path": "/health/ready", "port": "http"},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 60,
    }
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/health/ready", "port": "http"},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/health/live", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def test_cpu_and_memory_requests_equal_limits_from_config(md_run: DeploymentRun) -> None:
    serving = md_run.serving
    assert (serving.cpu, serving.memory) == ("1", "2Gi")
    assert md_run.container["resources"] == {
        "requests": {"cpu": serving.cpu, "memory": serving.memory},
        "limits": {"cpu": serving.cpu, "memory": serving.memory},
    }


def test_other_resources_in_config_reach_the_container() -> None:
    serving = stack_settings("prod").serving.model_copy(update={"cpu": "2", "memory": "4Gi", "max_rows": 500})
    result = run_deployment("prod", serving=serving)
    assert result.container["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert result.container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert {"name": "MAX_REQUEST_ROWS", "value": "500"} in result.container["env"]


def test_serving_max_rows_is_the_limit_the_server_reads_from_the_pod_environment() -> None:
    # The server's own settings loader, fed the environment the program renders: a name that drifts on either side
    # (the program once wrote MAX_ROWS, which the server never read) leaves the limit at its default and fails here.
    from model_server.settings import load_settings

    serving = stack_settings("prod").serving.model_copy(update={"max_rows": 500})
    env = {e["name"]: e["value"] for e in run_deployment("prod", serving=serving).container["env"]}
    assert load_settings({**env, "MODEL_DIR": "/opt/model"}).max_request_rows == 500


def test_container_runs_non_root_read_only_with_no_capabilities(md_run: DeploymentRun) -> None:
    assert md_run.container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert md_run.pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert md_run.container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert md_run.pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert "hostNetwork" not in md_run.pod
    assert md_run.pod["enableServiceLinks"] is False


def test_env_names_the_model_and_keeps_one_thread_per_process(md_run: DeploymentRun) -> None:
    assert md_run.container["env"] == [
        {"name": "OMP_NUM_THREADS", "value": "1"},
        {"name": "MODEL_NAME", "value": "mlops.models.wine_quality"},
        {"name": "MODEL_VERSION", "value": "1"},
        {"name": "MAX_REQUEST_ROWS", "value": "10000"},
    ]


def test_pods_spread_across_zones_and_hosts_on_the_user_pool_without_tolerations(md_run: DeploymentRun) -> None:
    pod = md_run.pod
    assert pod["nodeSelector"] == {"workload": "models"}
    assert "tolerations" not in pod
    selector = {"matchLabels": {"app.kubernetes.io/name": "wine-quality", "app.kubernetes.io/component": "server"}}
    assert pod["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
            "matchLabelKeys": ["rollouts-pod-template-hash"],
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def test_model_name_version_and_digest_label_and_annotate_the_pod_template(md_run: DeploymentRun) -> None:
    metadata = md_run.rollout.inputs["spec"]["template"]["metadata"]
    assert metadata["labels"] == {
        "app.kubernetes.io/name": "wine-quality",
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/part-of": PROJECT,
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/version": "1",
        "mlops/model": "mlops.models.wine_quality",
        "azure.workload.identity/use": "true",
    }
    assert metadata["annotations"] == {"mlops/model-version": "1", "mlops/image-ref": IMAGE_V1}


# --- Availability ----------------------------------------------------------------------------------------------


def test_disruption_budget_allows_one_pod_down_at_a_time(md_run: DeploymentRun) -> None:
    spec = md_run.run.one(PDB).inputs["spec"]
    assert spec == {
        "maxUnavailable": 1,
        "selector": md_run.rollout.inputs["spec"]["selector"],
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


def test_autoscaler_scales_the_rollout_between_configured_replicas_on_cpu(md_run: DeploymentRun) -> None:
    hpa = md_run.run.one(HPA)
    serving = md_run.serving
    assert hpa.inputs["spec"] == {
        "scaleTargetRef": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "wine-quality"},
        "minReplicas": serving.min_replicas,
        "maxReplicas": serving.max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": serving.target_cpu_utilization},
                },
            }
        ],
    }
    expected = {"staging": (1, 3, 70), "prod": (3, 12, 60)}[md_run.stack]
    assert (serving.min_replicas, serving.max_replicas, serving.target_cpu_utilization) == expected
    assert md_run.rollout.urn in hpa.dependencies


# --- Exposure --------------------------------------------------------------------------------------------------


def test_internal_load_balancer_exposure_serves_on_a_private_ip(md_run: DeploymentRun) -> None:
    assert md_run.serving.exposure == "internal-load-balancer"
    service = md_run.run.one(SERVICE, "wine-service")
    assert service.inputs["metadata"]["annotations"] == {
        "service.beta.kubernetes.io/azure-load-balancer-internal": "true"
    }
    assert service.inputs["spec"] == {
        "type": "LoadBalancer",
        "selector": md_run.rollout.inputs["spec"]["selector"]["matchLabels"],
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    }
    assert md_run.run.all(INGRESS) == []
    assert re.fullmatch(r"http://10\.224\.\d{1,3}\.10/invocations", md_run.run.outputs["servingUrl"])
    assert md_run.run.outputs["serviceName"] == "wine-quality"


def test_ingress_exposure_puts_a_cluster_ip_service_behind_a_tls_ingress(md_ingress_run: DeploymentRun) -> None:
    service = md_ingress_run.run.one(SERVICE, "wine-service")
    assert "annotations" not in service.inputs["metadata"]
    assert service.inputs["spec"]["type"] == "ClusterIP"
    ingress = md_ingress_run.run.one(INGRESS)
    assert ingress.inputs["metadata"]["name"] == "wine-quality"
    assert ingress.inputs["spec"] == {
        "ingressClassName": "webapprouting.kubernetes.azure.com",
        "tls": [{"hosts": ["wine.models.example.com"], "secretName": "wine-models-tls"}],
        "rules": [
            {
                "host": "wine.models.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "wine-quality", "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ],
    }
    assert ingress.provider == md_ingress_run.provider_ref
    assert md_ingress_run.run.outputs["servingUrl"] == "https://wine.models.example.com/invocations"


def test_network_policies_admit_only_the_serving_port(md_run: DeploymentRun) -> None:
    policies = {p.name: p.inputs for p in md_run.run.all(NETWORK_POLICY)}
    assert policies["wine-default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert policies["wine-allow-serving-port"]["spec"] == {
        "podSelector": md_run.rollout.inputs["spec"]["selector"],
        "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"port": 8080, "protocol": "TCP"}]}],
    }


# --- Smoke test ------------------------------------------------------------------------------------------------


def test_the_smoke_test_posts_the_input_example_through_the_canary_service_with_the_same_image(
    md_run: DeploymentRun,
) -> None:
    assert md_run.smoke.inputs["metadata"]["name"] == "wine-quality-smoke"
    spec = md_run.smoke_job["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == md_run.container["image"] == IMAGE_V1
    assert container["command"] == [
        "python",
        "-m",
        "model_server",
        "smoke",
        "--url",
        "http://wine-quality-canary.wine-quality.svc.cluster.local/invocations",
    ]
    assert container["securityContext"] == md_run.container["securityContext"]
    assert pod["securityContext"] == md_run.pod["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"workload": "models"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    # Its pods are not selected by the Services, the PDB or the spread constraints of the server.
    assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "smoke-test"


def test_the_rollout_starts_once_the_services_policy_and_smoke_test_it_reads_exist(md_run: DeploymentRun) -> None:
    rollout = md_run.rollout
    for dependency in (SERVICE_ACCOUNT, SMOKE):
        assert md_run.run.one(dependency).urn in rollout.dependencies
    for name in ("wine-service", "wine-canary-service"):
        assert md_run.run.one(SERVICE, name).urn in rollout.dependencies
    assert md_run.run.one(NETWORK_POLICY, "wine-allow-serving-port").urn in rollout.dependencies
    assert rollout.provider == md_run.provider_ref


# --- What changes, and what does not ---------------------------------------------------------------------------


def test_same_inputs_twice_give_identical_rollout_inputs() -> None:
    first, second = run_deployment("prod"), run_deployment("prod")
    assert first.rollout.inputs == second.rollout.inputs
    # Registration order is asynchronous; what matters is each resource's inputs.
    assert {(r.type, r.name): r.inputs for r in first.run.resources} == {
        (r.type, r.name): r.inputs for r in second.run.resources
    }
    assert len(first.run.resources) == len(second.run.resources)


def test_a_new_version_changes_only_the_pod_template_identity_and_the_smoke_test() -> None:
    before = run_deployment("prod")
    after = run_deployment("prod", version=2, image_ref=IMAGE_V2)
    assert changed_fields(before.rollout.inputs, after.rollout.inputs) == [
        "spec.template.metadata.annotations.mlops/image-ref",
        "spec.template.metadata.annotations.mlops/model-version",
        "spec.template.metadata.labels.app.kubernetes.io/version",
        "spec.template.spec.containers[0].env[2].value",  # MODEL_VERSION
        "spec.template.spec.containers[0].image",
    ]
    assert changed_fields(before.smoke.inputs, after.smoke.inputs) == [
        "metadata.labels.app.kubernetes.io/version",
        "spec.metrics[0].provider.job.metadata.labels.app.kubernetes.io/version",
        "spec.metrics[0].provider.job.spec.template.metadata.labels.app.kubernetes.io/version",
        "spec.metrics[0].provider.job.spec.template.spec.containers[0].image",
    ]
    unchanged = [r for r in before.run.resources if r.type not in (ROLLOUT, SMOKE)]
    assert len(unchanged) == 12  # the provider, the component and 10 of its children
    for resource in unchanged:
        assert after.run.one(resource.type, resource.name).inputs == resource.inputs, resource.name


def test_a_new_digest_for_the_same_version_changes_only_the_image() -> None:
    before = run_deployment("prod")
    after = run_deployment("prod", image_ref=IMAGE_V1.replace(DIGEST_1, DIGEST_2))
    assert changed_fields(before.rollout.inputs, after.rollout.inputs) == [
        "spec.template.metadata.annotations.mlops/image-ref",
        "spec.template.spec.containers[0].image",
    ]
    assert changed_fields(before.smoke.inputs, after.smoke.inputs) == [
        "spec.metrics[0].provider.job.spec.template.spec.containers[0].image"
    ]


def test_replica_and_autoscaler_changes_leave_the_rollout_untouched() -> None:
    before = run_deployment("prod")
    serving = stack_settings("prod").serving.model_copy(
        update={"min_replicas": 4, "max_replicas": 20, "target_cpu_utilization": 50}
    )
    after = run_deployment("prod", serving=serving)
    assert after.rollout.inputs == before.rollout.inputs
    assert after.rollout.inputs["spec"]["template"] == before.rollout.inputs["spec"]["template"]
    assert changed_fields(before.run.one(HPA).inputs, after.run.one(HPA).inputs) == [
        "spec.maxReplicas",
        "spec.metrics[0].resource.target.averageUtilization",
        "spec.minReplicas",
    ]
    for resource in before.run.resources:
        if resource.type != HPA:
            assert after.run.one(resource.type, resource.name).inputs == resource.inputs, resource.name


def test_switching_exposure_leaves_the_pod_template_untouched() -> None:
    internal = run_deployment("staging")
    ingress = run_deployment("staging", serving=ingress_serving("staging"))
    assert ingress.rollout.inputs["spec"]["template"] == internal.rollout.inputs["spec"]["template"]
