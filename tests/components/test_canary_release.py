"""Each new model version is released as a canary: the Rollout and its smoke test, from the real stack files,
validated against the pinned Argo Rollouts CRDs' own schemas (tests/reference/argo-rollouts/, copied from
argoproj/argo-rollouts v1.9.0), with the steps each stack file asks for."""

from __future__ import annotations

from typing import Any

import pytest

from components.model_canary import CanaryRelease, canary_strategy, rollout_timeout_seconds
from offline.harness import ProgramRun, RecordedResource
from offline.preview import StackRun
from offline.render import manifest
from program import stack_args
from stacks.files import load_stack_config
from tests.components.crd_schema import crd_problems
from tests.conftest import ROOT, run_variant

ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
ANALYSIS_TEMPLATE = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SERVICE = "kubernetes:core/v1:Service"
RELEASE = "kubernetes:helm.sh/v3:Release"
APP = "wine-quality"


def _run(request: pytest.FixtureRequest, stack: str) -> ProgramRun:
    result: StackRun = request.getfixturevalue(stack)
    return result.run


def _manifest(resource: RecordedResource) -> dict[str, Any]:
    document = manifest(resource)
    assert document is not None
    return document


@pytest.fixture(scope="module")
def ingress_run() -> ProgramRun:
    def with_ingress(values: dict[str, Any]) -> None:
        values["mlops-serving:serving"].update(
            {"exposure": "ingress", "host": "models.staging.example.com", "tlsSecretName": "models-tls"}
        )

    return run_variant("staging", with_ingress)


def test_the_schema_check_catches_a_misspelt_field_and_a_wrong_type() -> None:
    rollout = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "x"}}
    rollout["spec"] = {"strategy": {"canary": {"stepz": [], "maxSurge": 1}}, "revisionHistoryLimit": "five"}
    problems = crd_problems(rollout, "rollout-crd.yaml")
    assert "unknown field .spec.strategy.canary.stepz" in problems
    assert any(p.startswith("spec.revisionHistoryLimit:") for p in problems)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_rollout_and_its_smoke_template_validate_against_the_pinned_crds(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run = _run(request, stack)
    assert crd_problems(_manifest(run.one(ROLLOUT)), "rollout-crd.yaml") == []
    for name in ("model-smoke-template", "model-analysis-template"):
        assert crd_problems(_manifest(run.one(ANALYSIS_TEMPLATE, name)), "analysis-template-crd.yaml") == []


def test_the_routed_rollout_validates_against_the_pinned_crd(ingress_run: ProgramRun) -> None:
    assert crd_problems(_manifest(ingress_run.one(ROLLOUT)), "rollout-crd.yaml") == []


@pytest.mark.parametrize(
    ("stack", "shares", "pause"),
    [("staging", [10, 50], "5m"), ("prod", [10, 25, 50], "10m")],
)
def test_without_a_router_the_canary_takes_each_stacks_shares_by_replicas_and_is_smoke_tested_on_its_first_pods(
    request: pytest.FixtureRequest, stack: str, shares: list[int], pause: str
) -> None:
    canary = _manifest(_run(request, stack).one(ROLLOUT))["spec"]["strategy"]["canary"]
    smoke = {"analysis": {"templates": [{"templateName": f"{APP}-smoke"}]}}
    waits = [step for share in shares for step in ({"setWeight": share}, {"pause": {"duration": pause}})]
    assert canary["steps"] == [waits[0], smoke, *waits[1:]]
    # No stable Service: the controller would pin it to the stable pods, and the canary would get no traffic.
    assert "stableService" not in canary
    assert "trafficRouting" not in canary
    # The checks start at the first pause: the canary's pods exist, took traffic and passed the smoke test.
    assert canary["analysis"]["startingStep"] == 2
    assert canary["steps"][2] == {"pause": {"duration": pause}}
    assert canary["canaryService"] == f"{APP}-canary"
    assert (canary["maxSurge"], canary["maxUnavailable"]) == (1, 0)


def test_with_the_ingress_router_one_canary_pod_is_smoke_tested_before_it_gets_any_traffic(
    ingress_run: ProgramRun,
) -> None:
    canary = _manifest(ingress_run.one(ROLLOUT))["spec"]["strategy"]["canary"]
    assert canary["steps"][:3] == [
        {"setCanaryScale": {"replicas": 1}},
        {"analysis": {"templates": [{"templateName": f"{APP}-smoke"}]}},
        {"setCanaryScale": {"matchTrafficWeight": True}},
    ]
    assert canary["steps"][3] == {"setWeight": 10}
    assert canary["analysis"]["startingStep"] == 4
    assert "pause" in canary["steps"][4]
    assert canary["stableService"] == APP
    assert canary["trafficRouting"] == {"nginx": {"stableIngress": APP}}


def test_the_smoke_test_predicts_through_the_canary_service_with_the_new_image(staging: StackRun) -> None:
    run = staging.run
    template = _manifest(run.one(ANALYSIS_TEMPLATE, "model-smoke-template"))
    (metric,) = template["spec"]["metrics"]
    container = metric["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]
    url = f"http://{APP}-canary.{APP}.svc.cluster.local/invocations"
    assert container["command"] == ["python", "-m", "model_server", "smoke", "--url", url]
    server = _manifest(run.one(ROLLOUT))["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == server["image"]
    canary_service = next(r for r in run.all(SERVICE) if r.name == "model-canary-service")
    assert (
        _manifest(canary_service)["spec"]["selector"] == _manifest(run.one(ROLLOUT))["spec"]["selector"]["matchLabels"]
    )


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_autoscaler_scales_the_rollout(request: pytest.FixtureRequest, stack: str) -> None:
    target = _manifest(_run(request, stack).one(HPA))["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": APP}
    assert "replicas" not in _manifest(_run(request, stack).one(ROLLOUT))["spec"]


@pytest.mark.parametrize(("stack", "timeout"), [("staging", 600 + 2 * 300 + 600), ("prod", 600 + 3 * 600 + 600)])
def test_the_release_may_take_as_long_as_its_smoke_test_steps_and_start(stack: str, timeout: int) -> None:
    release = stack_args.canary_release(load_stack_config(ROOT, stack).settings().serving.canary)
    assert rollout_timeout_seconds(release) == timeout


def test_pods_spread_per_version_by_the_label_the_controller_sets(staging: StackRun) -> None:
    spread = _manifest(staging.run.one(ROLLOUT))["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {tuple(c["matchLabelKeys"]) for c in spread} == {("rollouts-pod-template-hash",)}


def test_every_argo_object_waits_for_the_controller_that_defines_its_kind(staging: StackRun) -> None:
    release = staging.run.one(RELEASE)
    for resource in (staging.run.one(ROLLOUT), *staging.run.all(ANALYSIS_TEMPLATE)):
        assert release.urn in resource.dependencies


@pytest.mark.parametrize(
    ("steps", "reason"),
    [((), "rising"), ((50, 10), "rising"), ((0, 10), "between 1 and 99"), ((10, 100), "between 1 and 99")],
)
def test_a_canary_with_impossible_steps_cannot_be_built(steps: tuple[int, ...], reason: str) -> None:
    with pytest.raises(ValueError, match="steps"):
        CanaryRelease(steps=steps, pause_seconds=60, measurement_interval_seconds=60, max_failed_measurements=2)


def test_a_routed_canary_without_its_ingress_is_refused() -> None:
    release = CanaryRelease(steps=(10,), pause_seconds=60, measurement_interval_seconds=60, max_failed_measurements=1)
    with pytest.raises(ValueError, match="stable Ingress"):
        canary_strategy(APP, release, routed=True, stable_ingress=None, analysed=False)


def test_the_release_reads_as_its_shares() -> None:
    release = CanaryRelease(
        steps=(10, 50), pause_seconds=60, measurement_interval_seconds=60, max_failed_measurements=2
    )
    assert release.shares == "10% -> 50% -> 100%"


# --- The analysis -------------------------------------------------------------------------------------------------

IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
FEDERATED = "azure-native:managedidentity:FederatedIdentityCredential"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
WORKSPACE = "azure-native:monitor:AzureMonitorWorkspace"


def _analysis_template(run: ProgramRun) -> dict[str, Any]:
    return _manifest(run.one(ANALYSIS_TEMPLATE, "model-analysis-template"))


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_each_check_of_the_stacks_thresholds_is_a_metric_measured_every_interval_and_aborting_after_n_failures(
    request: pytest.FixtureRequest, stack: str
) -> None:
    from monitoring.analysis import canary_checks
    from stacks.files import load_stack_config
    from tests.conftest import ROOT

    settings = load_stack_config(ROOT, stack).settings()
    checks = canary_checks(settings.monitoring, APP, "{{args.canary-hash}}", "{{args.stable-hash}}")
    spec = _analysis_template(_run(request, stack))["spec"]
    assert spec["args"] == [{"name": "canary-hash"}, {"name": "stable-hash"}]
    synthetic = ["synthetic-traffic"] if settings.serving.canary.synthetic_rps else []
    assert [m["name"] for m in spec["metrics"]] == [c.name for c in checks] + synthetic
    allowed = settings.serving.canary.max_failed_measurements - 1
    for metric, check in zip(spec["metrics"], checks, strict=False):
        assert (metric["interval"], metric["initialDelay"]) == ("1m", "2m")
        assert metric["failureLimit"] == allowed
        assert "consecutiveErrorLimit" not in metric  # Argo's default, 4: the controller's own errors
        container = metric["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]
        command = container["command"]
        assert command[:4] == ["python", "-m", "model_server", "judge"]
        assert command[command.index("--check") + 1] == f"{check.name}={check.query}"
        assert command[command.index("--value") + 1] == f"{check.name}={check.value_query}"
        assert command[command.index("--auth") + 1] == "workload-identity"


def test_staging_sends_its_quiet_canary_synthetic_traffic_for_the_whole_analysis_and_prod_does_not(
    staging: StackRun, prod: StackRun
) -> None:
    metrics = {m["name"]: m for m in _analysis_template(staging.run)["spec"]["metrics"]}
    traffic = metrics["synthetic-traffic"]
    assert traffic["count"] == 1
    job = traffic["provider"]["job"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    url = f"http://{APP}-canary.{APP}.svc.cluster.local/invocations"
    seconds = 2 * 300  # staging: two steps of 5 minutes
    assert container["command"] == [
        *("python", "-m", "model_server", "traffic", "--url", url, "--rps", "2", "--seconds", str(seconds))
    ]
    assert job["activeDeadlineSeconds"] > seconds
    # Its pods are not the server's: neither scraped as the canary nor counted by its Service.
    assert job["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "canary-traffic"
    assert "synthetic-traffic" not in {m["name"] for m in _analysis_template(prod.run)["spec"]["metrics"]}


def test_the_checks_query_the_stacks_own_prometheus(staging: StackRun) -> None:
    run = staging.run
    endpoint = run.outputs["prometheusQueryEndpoint"]
    for metric in _analysis_template(run)["spec"]["metrics"][:-1]:
        command = metric["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[command.index("--prometheus") + 1] == endpoint


def test_the_release_fills_the_checks_hashes_with_the_canarys_and_the_stables(staging: StackRun) -> None:
    analysis = _manifest(staging.run.one(ROLLOUT))["spec"]["strategy"]["canary"]["analysis"]
    assert analysis["templates"] == [{"templateName": f"{APP}-canary"}]
    assert analysis["args"] == [
        {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
        {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
    ]


def test_only_the_analysis_jobs_may_read_prometheus_and_only_by_workload_identity(staging: StackRun) -> None:
    run = staging.run
    identity = run.one(IDENTITY, "model-analysis-identity")
    account = _manifest(run.one(SERVICE_ACCOUNT, "model-analysis-service-account"))
    assert account["metadata"]["name"] == f"{APP}-analysis"
    assert account["automountServiceAccountToken"] is False
    federated = run.one(FEDERATED, "model-analysis-federated-credential").inputs
    assert federated["subject"] == f"system:serviceaccount:{APP}:{APP}-analysis"
    assert federated["audiences"] == ["api://AzureADTokenExchange"]
    grants = [r for r in run.all(ROLE_ASSIGNMENT) if r.inputs.get("description", "").startswith("The canary analysis")]
    (grant,) = grants
    assert grant.inputs["roleDefinitionId"].endswith("/b0d8363b-8ddd-447d-831f-62ca05bff136")  # Monitoring Data Reader
    workspace = run.one(WORKSPACE).inputs["azureMonitorWorkspaceName"]
    assert grant.inputs["scope"].endswith(f"/providers/Microsoft.Monitor/accounts/{workspace}")
    assert identity.urn in grant.dependencies
    for metric in _analysis_template(run)["spec"]["metrics"]:
        pod = metric["provider"]["job"]["spec"]["template"]
        if metric["name"] == "synthetic-traffic":  # it only talks to the canary: the serving pods' own account
            assert pod["spec"]["serviceAccountName"] == APP
            assert "azure.workload.identity/use" not in pod["metadata"]["labels"]
            continue
        assert pod["spec"]["serviceAccountName"] == f"{APP}-analysis"
        assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    serving_identity = run.one(IDENTITY, "model-identity")
    assert not [r for r in run.all(ROLE_ASSIGNMENT) if serving_identity.urn in r.dependencies]


def test_an_analysis_without_checks_cannot_be_built() -> None:
    from components.model_canary import CanaryAnalysis

    with pytest.raises(ValueError, match="at least one check"):
        CanaryAnalysis(checks=(), prometheus_url="https://p", azure_monitor_workspace_id="/w", subscription_id="s")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_each_step_holds_for_at_least_the_checks_rate_window(stack: str) -> None:
    """A shorter step would be judged on the previous step's traffic too: a fault that starts at the last step
    would be diluted below its bound before the release completes."""
    from monitoring.rules import RATE_WINDOW, duration_seconds
    from stacks.files import load_stack_config
    from tests.conftest import ROOT

    canary = load_stack_config(ROOT, stack).settings().serving.canary
    assert duration_seconds(canary.pause) >= duration_seconds(RATE_WINDOW)
