"""Monitoring in Azure, from the real stack files: managed Prometheus and Container Insights wired to each stack's
cluster, the scrape job selecting the model's own pods, and the alert rules Azure evaluates being the rules file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pytest
from ruamel.yaml import YAML

from components.model_alerts import listener_alert_url
from components.model_metrics_scrape import ControllerPods, scrape_config
from components.rollout_controller import CONTROLLER_POD_LABELS, METRICS_PORT_NAME
from monitoring.__main__ import rules_path
from monitoring.analysis import HASH_LABEL
from offline.harness import ProgramRun, RecordedResource, run_program
from offline.preview import StackRun
from tests.conftest import run_variant

CLUSTER = "azure-native:containerservice:ManagedCluster"
AMW = "azure-native:monitor:AzureMonitorWorkspace"
DCE = "azure-native:monitor:DataCollectionEndpoint"
DCR = "azure-native:monitor:DataCollectionRule"
DCRA = "azure-native:monitor:DataCollectionRuleAssociation"
RULE_GROUP = "azure-native:alertsmanagement:PrometheusRuleGroup"
ACTION_GROUP = "azure-native:monitor:ActionGroup"
LOG_ANALYTICS = "azure-native:operationalinsights:Workspace"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:argoproj.io/v1alpha1:Rollout"  # the model's pods: an Argo Rollout


def _run(request: pytest.FixtureRequest, stack: str) -> ProgramRun:
    result: StackRun = request.getfixturevalue(stack)
    return result.run


def _id_of(run: ProgramRun, type_: str, name: str | None = None) -> str:
    """The resource id the mock cloud gave a resource: read back from whoever references it."""
    resource = run.one(type_, name)
    own = {
        CLUSTER: "resourceName",
        AMW: "azureMonitorWorkspaceName",
        DCE: "dataCollectionEndpointName",
        DCR: "dataCollectionRuleName",
        LOG_ANALYTICS: "workspaceName",
    }[type_]
    provider = {
        CLUSTER: "Microsoft.ContainerService/managedClusters",
        AMW: "Microsoft.Monitor/accounts",
        DCE: "Microsoft.Insights/dataCollectionEndpoints",
        DCR: "Microsoft.Insights/dataCollectionRules",
        LOG_ANALYTICS: "Microsoft.OperationalInsights/workspaces",
    }[type_]
    return f"/resourceGroups/{resource.inputs['resourceGroupName']}/providers/{provider}/{resource.inputs[own]}"


def _ends_with(value: str, suffix: str) -> bool:
    return value.endswith(suffix) and value.startswith("/subscriptions/")


def _association(run: ProgramRun, name: str) -> RecordedResource:
    return next(r for r in run.all(DCRA) if r.inputs["associationName"] == name)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_cluster_sends_prometheus_metrics_to_the_stack_workspace(request: pytest.FixtureRequest, stack: str) -> None:
    run = _run(request, stack)
    cluster = run.one(CLUSTER)
    assert cluster.inputs["azureMonitorProfile"] == {"metrics": {"enabled": True}}
    rule = run.one(DCR, "prometheus-rule")
    inputs = rule.inputs
    assert inputs["kind"] == "Linux"
    assert _ends_with(inputs["dataCollectionEndpointId"], _id_of(run, DCE))
    assert inputs["dataSources"] == {
        "prometheusForwarder": [
            {"name": "PrometheusDataSource", "streams": ["Microsoft-PrometheusMetrics"], "labelIncludeFilter": {}}
        ]
    }
    (account,) = inputs["destinations"]["monitoringAccounts"]
    assert _ends_with(account["accountResourceId"], _id_of(run, AMW))
    assert inputs["dataFlows"] == [{"streams": ["Microsoft-PrometheusMetrics"], "destinations": [account["name"]]}]
    association = _association(run, "ContainerInsightsMetricsExtension")
    assert _ends_with(association.inputs["resourceUri"], _id_of(run, CLUSTER))
    assert _ends_with(association.inputs["dataCollectionRuleId"], _id_of(run, DCR, "prometheus-rule"))


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_container_insights_has_the_rule_its_managed_identity_mode_needs(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run = _run(request, stack)
    addon = run.one(CLUSTER).inputs["addonProfiles"]["omsagent"]
    assert addon["enabled"] is True
    assert addon["config"]["useAADAuth"] == "true"
    rule = run.one(DCR, "container-insights-rule").inputs
    (extension,) = rule["dataSources"]["extensions"]
    assert extension["extensionName"] == "ContainerInsights"
    assert extension["streams"] == ["Microsoft-ContainerInsights-Group-Default"]
    assert extension["extensionSettings"]["dataCollectionSettings"]["enableContainerLogV2"] is True
    (destination,) = rule["destinations"]["logAnalytics"]
    # The same workspace the add-on is configured with: logs (sampled payloads included) land beside the rest.
    assert destination["workspaceResourceId"] == addon["config"]["logAnalyticsWorkspaceResourceID"]
    assert _ends_with(destination["workspaceResourceId"], _id_of(run, LOG_ANALYTICS))
    assert rule["dataFlows"] == [
        {"streams": ["Microsoft-ContainerInsights-Group-Default"], "destinations": [destination["name"]]}
    ]
    association = _association(run, "ContainerInsightsExtension")
    assert _ends_with(association.inputs["resourceUri"], _id_of(run, CLUSTER))
    assert _ends_with(association.inputs["dataCollectionRuleId"], _id_of(run, DCR, "container-insights-rule"))


def _target_labels(config: dict[str, Any], labels: dict[str, str], port_name: str) -> dict[str, str] | None:
    """The job's relabel steps applied to a pod target with these labels and this container port, as Prometheus
    applies `keep` and `replace` (prometheus/prometheus model/relabel/relabel.go `relabel`): the target's labels,
    or None when a step drops it."""
    target = {
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_namespace": "ns",
        "__meta_kubernetes_pod_name": "pod-0",
    }
    for key, value in labels.items():
        target["__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in key)] = value
    for step in config["relabel_configs"]:
        joined = step.get("separator", ";").join(target.get(label, "") for label in step["source_labels"])
        match = re.fullmatch(step.get("regex", "(.*)"), joined)
        if step["action"] == "keep":
            if match is None:
                return None
            continue
        assert step["action"] == "replace", f"relabel action {step['action']!r}: teach _target_labels it"
        if match is None:
            continue
        value = match.expand(re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", step.get("replacement", "$1")))
        if value:
            target[step["target_label"]] = value
        else:  # an empty value deletes the label
            target.pop(step["target_label"], None)
    return {k: v for k, v in target.items() if not k.startswith("__")}


def _relabel_keeps(config: dict[str, Any], labels: dict[str, str], port_name: str) -> bool:
    return _target_labels(config, labels, port_name) is not None


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_scrape_job_selects_the_model_server_pods(request: pytest.FixtureRequest, stack: str) -> None:
    run = _run(request, stack)
    config_map = run.one(CONFIG_MAP)
    cluster_provider = run.one("pulumi:providers:kubernetes")
    assert config_map.provider.split("::")[-1].startswith(cluster_provider.name)
    assert config_map.inputs["metadata"]["name"] == "ama-metrics-prometheus-config"
    assert config_map.inputs["metadata"]["namespace"] == "kube-system"
    config = YAML(typ="safe").load(config_map.inputs["data"]["prometheus-config"])
    assert [j["job_name"] for j in config["scrape_configs"]] == ["model-server", "argo-rollouts"]
    job = config["scrape_configs"][0]
    deployment = run.one(DEPLOYMENT).inputs
    namespace = deployment["metadata"]["namespace"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": [namespace]}}]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    (port,) = container["ports"]
    assert _relabel_keeps(job, pod["metadata"]["labels"], port["name"])
    # Not another pod of the namespace (the smoke test's or the analysis' Jobs), not another port.
    for template in run.all("kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"):
        for metric in template.inputs["spec"]["metrics"]:
            labels = metric["provider"]["job"]["spec"]["template"]["metadata"]["labels"]
            assert not _relabel_keeps(job, labels, port["name"])
    assert not _relabel_keeps(job, pod["metadata"]["labels"], "metrics-other")
    # The namespace denies all ingress but the serving port; the agent in kube-system scrapes that port, so it passes.
    allow = next(
        r.inputs for r in run.all("kubernetes:networking.k8s.io/v1:NetworkPolicy") if r.inputs["spec"].get("ingress")
    )
    (rule,) = allow["spec"]["ingress"]
    assert "from" not in rule
    assert [p["port"] for p in rule["ports"]] == [port["containerPort"]]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_scrape_job_labels_every_series_with_the_pods_template_hash(request: pytest.FixtureRequest, stack: str) -> None:
    # The canary analysis tells a rollout's versions apart by this label: Argo Rollouts puts it on every pod it makes
    # (argoproj/argo-rollouts pkg/apis/rollouts/v1alpha1/types.go DefaultRolloutUniqueLabelKey, v1.9.0).
    run = _run(request, stack)
    config = YAML(typ="safe").load(run.one(CONFIG_MAP).inputs["data"]["prometheus-config"])
    job = config["scrape_configs"][0]
    pod = run.one(DEPLOYMENT).inputs["spec"]["template"]
    (port,) = pod["spec"]["containers"][0]["ports"]
    rollout_pod = {**pod["metadata"]["labels"], "rollouts-pod-template-hash": "6b9f8c7d5d"}
    labels = _target_labels(job, rollout_pod, port["name"])
    assert labels == {"namespace": "ns", "pod": "pod-0", HASH_LABEL: "6b9f8c7d5d"}
    # A pod no rollout made has no hash, and its series no such label.
    assert _target_labels(job, pod["metadata"]["labels"], port["name"]) == {"namespace": "ns", "pod": "pod-0"}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_release_controllers_metrics_are_scraped_from_the_pods_the_chart_makes(
    request: pytest.FixtureRequest, stack: str
) -> None:
    reference = Path(__file__).parents[1] / "reference" / "argo-rollouts"
    config = YAML(typ="safe").load(_run(request, stack).one(CONFIG_MAP).inputs["data"]["prometheus-config"])
    job = config["scrape_configs"][1]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["argo-rollouts"]}}]
    # The chart's pod labels: selectorLabels (name, instance = the release) and the controller's component.
    values = YAML(typ="safe").load((reference / "values.yaml").read_text())
    helpers = (reference / "_helpers.tpl").read_text()
    assert 'app.kubernetes.io/name: {{ include "argo-rollouts.name" . }}' in helpers
    assert "app.kubernetes.io/instance: {{ .Release.Name }}" in helpers
    chart_pod = {
        "app.kubernetes.io/name": "argo-rollouts",
        "app.kubernetes.io/instance": "argo-rollouts",
        "app.kubernetes.io/component": values["controller"]["component"],
    }
    deployment = (reference / "controller-deployment.yaml").read_text()
    assert "- containerPort: {{ .Values.controller.containerPorts.metrics }}\n          name: metrics" in deployment
    assert _relabel_keeps(job, chart_pod, "metrics")
    assert not _relabel_keeps(job, chart_pod, "healthz")
    assert not _relabel_keeps(job, {**chart_pod, "app.kubernetes.io/component": "rollouts-dashboard"}, "metrics")
    # No target label may shadow the Rollout's own `namespace` label on its series.
    assert job["honor_labels"] is True
    assert _target_labels(job, chart_pod, "metrics") == {}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")
def test_scrape_job_relabel_steps_pass_promtool_check_config(tmp_path: Path) -> None:
    controller = ControllerPods("argo-rollouts", CONTROLLER_POD_LABELS, METRICS_PORT_NAME)
    config = scrape_config("wine-quality", {"app.kubernetes.io/name": "wine-quality"}, "http", "/metrics", controller)
    # Debian's promtool is built without Kubernetes discovery: a static target stands in; the relabel steps (label
    # names a Prometheus config accepts) are what this checks.
    assert len(config["scrape_configs"]) == 2
    for job in config["scrape_configs"]:
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        ["promtool", "check", "config", str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_azure_evaluates_the_rules_file_on_the_stack_cluster(request: pytest.FixtureRequest, stack: str) -> None:
    run = _run(request, stack)
    rules_file = YAML(typ="safe").load(rules_path(stack).read_text())
    cluster = run.one(CLUSTER)
    action_group = run.one(ACTION_GROUP)
    groups = {g.inputs["ruleGroupName"]: g for g in run.all(RULE_GROUP)}
    assert set(groups) == {g["name"] for g in rules_file["groups"]}
    for file_group in rules_file["groups"]:
        group = groups[file_group["name"]].inputs
        scopes = group["scopes"]
        assert len(scopes) == 2
        assert _ends_with(scopes[0], _id_of(run, AMW))
        assert _ends_with(scopes[1], _id_of(run, CLUSTER))
        assert group["clusterName"] == cluster.inputs["resourceName"]
        assert group["interval"] == "PT1M"
        assert [(r["alert"], r["expression"].strip(), r["labels"], r["annotations"]) for r in group["rules"]] == [
            (r["alert"], r["expr"].strip(), r["labels"], r["annotations"]) for r in file_group["rules"]
        ]
        for rule, file_rule in zip(group["rules"], file_group["rules"], strict=True):
            minutes = int(file_rule["for"][:-1]) * {"m": 1, "h": 60}[file_rule["for"][-1]]
            assert rule["for"] in (f"PT{minutes}M", f"PT{minutes // 60}H")
            (action,) = rule["actions"]
            assert action["actionGroupId"].endswith(f"/actionGroups/{action_group.inputs['actionGroupName']}")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_alerts_reach_the_listener_with_the_common_schema_and_stay_secret(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run = _run(request, stack)
    group = run.one(ACTION_GROUP)
    assert group.inputs["location"] == "global"
    assert "webhookReceivers" in group.secret_inputs
    assert "webhookReceivers" in group.additional_secret_outputs
    (webhook,) = group.inputs["webhookReceivers"]
    assert webhook["useCommonAlertSchema"] is True
    listener_host = "mlops-serving-staging-listener-"
    assert webhook["serviceUri"].startswith(f"https://{listener_host}")
    # The route's own secret (listener settings: azure_monitor_token) is its authentication; the app has no host key.
    assert "/api/alerts/azure-monitor?token=" in webhook["serviceUri"]
    assert "code=" not in webhook["serviceUri"]
    emails = [r["emailAddress"] for r in group.inputs["emailReceivers"]]
    settings: StackRun = request.getfixturevalue(stack)
    assert emails == settings.settings["monitoring"]["receivers"]["emails"]


def test_prod_alerts_call_the_listener_staging_exports(staging: StackRun, prod: StackRun) -> None:
    (webhook,) = prod.run.one(ACTION_GROUP).inputs["webhookReceivers"]
    assert webhook["serviceUri"] == staging.run.outputs["listenerAlertUrl"]
    assert "listenerAlertUrl" in staging.run.secret_outputs


def test_without_the_listener_receiver_only_email_is_declared() -> None:
    def edit(values: dict[str, Any]) -> None:
        values["mlops-serving:monitoring"]["receivers"] = {"emails": ["a@example.com"], "listener": False}

    run = run_variant("staging", edit)
    group = run.one(ACTION_GROUP)
    assert not group.inputs.get("webhookReceivers")
    assert [r["emailAddress"] for r in group.inputs["emailReceivers"]] == ["a@example.com"]


def test_a_stack_without_a_monitoring_section_gets_the_defaults() -> None:
    def edit(values: dict[str, Any]) -> None:
        del values["mlops-serving:monitoring"]

    run = run_variant("staging", edit)
    drift = next(g for g in run.all(RULE_GROUP) if g.inputs["ruleGroupName"].endswith("-drift"))
    assert drift.inputs["rules"][0]["expression"].rstrip().endswith("> 0.2")
    assert drift.inputs["rules"][0]["for"] == "PT30M"


def test_grafana_is_declared_only_where_a_stack_asks(staging: StackRun, prod: StackRun) -> None:
    assert staging.settings["monitoring"]["grafana"] is False
    assert staging.run.all("azure-native:dashboard:Grafana") == []
    assert prod.settings["monitoring"]["grafana"] is True
    grafana = prod.run.one("azure-native:dashboard:Grafana").inputs
    (integration,) = grafana["properties"]["grafanaIntegrations"]["azureMonitorWorkspaceIntegrations"]
    assert _ends_with(integration["azureMonitorWorkspaceResourceId"], _id_of(prod.run, AMW))
    assert grafana["properties"]["apiKey"] == "Disabled"
    reader = prod.run.one("azure-native:authorization:RoleAssignment", "grafana-reads-prometheus").inputs
    assert reader["roleDefinitionId"].endswith("/b0d8363b-8ddd-447d-831f-62ca05bff136")  # Monitoring Data Reader
    assert _ends_with(reader["scope"], _id_of(prod.run, AMW))
    assert prod.run.outputs["grafanaEndpoint"].endswith(".grafana.azure.com")


def test_the_alert_url_carries_the_route_token_encoded_and_secret() -> None:
    def program() -> None:
        url = listener_alert_url("listener.azurewebsites.net", pulumi.Output.secret("t0ken+&x/=="))
        pulumi.export("url", url)

    run = run_program(program, {}, project="mlops-serving", stack="staging")
    assert (
        run.outputs["url"] == "https://listener.azurewebsites.net/api/alerts/azure-monitor?token=t0ken%2B%26x%2F%3D%3D"
    )
    assert "url" in run.secret_outputs
