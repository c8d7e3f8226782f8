"""Argo Rollouts on each stack's cluster, held to the chart it pins (tests/reference/argo-rollouts/, copied from
argoproj/argo-helm at the pinned tag): the version, every value the program sets, and the rights it leaves out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from components.rollout_controller import CHART_VERSION, CONTROLLER_VERSION, RolloutControllerArgs, chart_values
from offline.harness import ProgramRun
from offline.preview import StackRun

REFERENCE = Path(__file__).parents[1] / "reference" / "argo-rollouts"
RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_PROVIDER = "pulumi:providers:kubernetes"


def _reference(name: str) -> Any:
    return YAML(typ="safe").load((REFERENCE / name).read_text())


def _run(request: pytest.FixtureRequest, stack: str) -> ProgramRun:
    result: StackRun = request.getfixturevalue(stack)
    return result.run


def _unknown_keys(values: dict[str, Any], chart: dict[str, Any], path: str = "") -> list[str]:
    """Every key of `values` the chart's values.yaml does not have (a typo there is silently ignored by Helm)."""
    unknown = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if key not in chart:
            unknown.append(where)
        elif isinstance(value, dict) and isinstance(chart[key], dict) and chart[key]:
            unknown += _unknown_keys(value, chart[key], where)
    return unknown


def test_the_pinned_chart_is_the_reference_chart_and_its_controller_version() -> None:
    chart = _reference("Chart.yaml")
    expected = ("argo-rollouts", CHART_VERSION, CONTROLLER_VERSION)
    assert (chart["name"], chart["version"], chart["appVersion"]) == expected


def test_every_value_the_program_sets_is_a_key_of_the_charts_values() -> None:
    assert _unknown_keys(chart_values(RolloutControllerArgs()), _reference("values.yaml")) == []


def test_every_traffic_router_the_chart_knows_is_named_and_switched_off() -> None:
    chart_providers = set(_reference("values.yaml")["providerRBAC"]["providers"])
    providers = chart_values(RolloutControllerArgs())["providerRBAC"]
    assert providers["enabled"] is False
    assert providers["providers"] == dict.fromkeys(chart_providers, False)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_each_cluster_runs_the_pinned_controller_from_argos_chart_repository(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run = _run(request, stack)
    release = run.one(RELEASE)
    inputs = release.inputs
    assert (inputs["chart"], inputs["version"]) == ("argo-rollouts", CHART_VERSION)
    assert inputs["repositoryOpts"] == {"repo": "https://argoproj.github.io/argo-helm"}
    assert (inputs["name"], inputs["namespace"], inputs["createNamespace"]) == ("argo-rollouts", "argo-rollouts", True)
    assert inputs["atomic"] is True
    values = inputs["values"]
    assert values["installCRDs"] is True
    assert values["keepCRDs"] is True
    assert values["dashboard"] == {"enabled": False}
    assert values["controller"]["metrics"] == {"enabled": True}
    assert values["controller"]["image"] == {"tag": CONTROLLER_VERSION}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_controller_is_installed_through_the_stacks_own_cluster_provider(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run = _run(request, stack)
    release = run.one(RELEASE)
    (provider,) = run.all(K8S_PROVIDER)
    assert release.provider.startswith(provider.urn + "::")
    assert release.parent_type == "mlops:delivery:RolloutController"


def test_prod_protects_the_controller_and_staging_does_not(staging: StackRun, prod: StackRun) -> None:
    assert prod.run.one(RELEASE).protect is True
    assert staging.run.one(RELEASE).protect is False


def test_a_single_replica_controller_has_no_disruption_budget_that_would_block_every_node_drain() -> None:
    assert chart_values(RolloutControllerArgs(replicas=1))["controller"]["pdb"]["enabled"] is False
    assert chart_values(RolloutControllerArgs(replicas=2))["controller"]["pdb"] == {"enabled": True, "minAvailable": 1}
