"""Rendered manifests: what the components declare on a cluster, written as YAML by `offline.render`, validated
against the Kubernetes 1.33 schemas (kubernetes-validate, strict, offline) or, for Argo Rollouts' kinds, against the
pinned CRDs' schemas, and scanned by checkov (no failed check, every skip justified in place). checkov knows no
Argo kind, so it scans the Rollout's pod template as a Deployment and each analysis Job as a Job.

The program rendered here is AksCluster + ModelDeployment built from the real stack files (the Kubernetes part of
the whole program), for staging, prod and prod exposed through an ingress.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pulumi
import pytest
from ruamel.yaml import YAML

from components.aks_cluster import AksCluster, AksClusterArgs
from components.model_deployment import ModelDeployment, ModelDeploymentArgs, ServedModel
from components.naming import Naming
from components.placement import Placement
from offline.harness import ProgramOptions, ProgramRun, RecordedResource, run_program
from offline.render import (
    REDACTED,
    UNKNOWN,
    RenderError,
    api_version_and_kind,
    manifest,
    manifest_file_name,
    render,
    render_stack,
)
from stacks.files import load_stack_config
from stacks.settings import ServingSettings, pinned_model
from tests.components.crd_schema import problems_of
from tests.components.stack_fields import a_deployer, cluster_fields, deployers, serving_fields

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "mlops-serving"
KUBERNETES_VERSION = "1.33"  # the clusters' minor version (the mock cloud reports 1.33.x)
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
CHECKOV_INSTALL = "uv venv -p 3.11 .tools/checkov && uv pip install -p .tools/checkov/bin/python checkov==3.3.30"
IMAGE = "mlopsservingstagingacr1a2b3c.azurecr.io/models/wine-quality:1-0123456789ab@sha256:" + "1" * 64
VARIANTS = ("staging", "prod", "prod-ingress")
EXPECTED_FILES = {
    "namespace-cluster-wine-quality.yaml",
    "serviceaccount-wine-quality-wine-quality.yaml",
    "rollout-wine-quality-wine-quality.yaml",
    "service-wine-quality-wine-quality.yaml",
    "service-wine-quality-wine-quality-canary.yaml",
    "poddisruptionbudget-wine-quality-wine-quality.yaml",
    "horizontalpodautoscaler-wine-quality-wine-quality.yaml",
    "networkpolicy-wine-quality-default-deny-ingress.yaml",
    "networkpolicy-wine-quality-wine-quality-allow-http.yaml",
    "analysistemplate-wine-quality-wine-quality-smoke.yaml",
}


def cluster_program_run(variant: str) -> ProgramRun:
    stack = variant.split("-", maxsplit=1)[0]
    settings = load_stack_config(ROOT, stack).settings()
    serving: ServingSettings = settings.serving
    if variant.endswith("-ingress"):
        serving = serving.model_copy(
            update={"exposure": "ingress", "host": "wine.models.example.com", "tls_secret_name": "wine-models-tls"}
        )
    naming = Naming(PROJECT, stack, settings.name_suffix)
    placement = Placement(naming, naming.resource("rg"), settings.location, naming.tags(settings.tags), protect=False)

    def program() -> None:
        aks = AksCluster(
            "cluster",
            AksClusterArgs(
                placement=dataclasses.replace(placement, protect=settings.protect),
                **cluster_fields(settings.cluster),
                log_analytics_workspace_id="/subscriptions/s/resourceGroups/rg/providers/x/workspaces/law",
                registry_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acr",
                enable_app_routing=serving.exposure == "ingress",
                deployers=deployers(settings),
            ),
        )
        ModelDeployment(
            "model",
            ModelDeploymentArgs(
                placement=placement,
                model=ServedModel(pinned_model(settings).name, pinned_model(settings).version, serving.max_rows),
                image_ref=IMAGE,
                oidc_issuer_url=aks.oidc_issuer_url,
                **serving_fields(serving),
            ),
            opts=pulumi.ResourceOptions(providers=[aks.provider]),
        )

    return run_program(program, {}, project=PROJECT, stack=stack, options=ProgramOptions(**a_deployer(settings)))


@pytest.fixture(scope="module")
def rendered_manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Each variant rendered into its own directory under one root (checkov scans the root once)."""
    root = tmp_path_factory.mktemp("rendered")
    return {variant: render(cluster_program_run(variant), root / variant) for variant in VARIANTS}


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = YAML(typ="safe", pure=True).load(path.read_text())
    return document


def recorded(
    type_: str, inputs: dict[str, Any], *, secret: tuple[str, ...] = (), custom: bool = True
) -> RecordedResource:
    return RecordedResource(
        type=type_,
        name="logical",
        urn=f"urn:pulumi:s::p::{type_}::logical",
        parent="",
        custom=custom,
        inputs=inputs,
        secret_inputs=secret,
        protect=False,
        dependencies=(),
        property_dependencies={},
        provider="",
        ignore_changes=(),
        replace_on_changes=(),
        delete_before_replace=False,
        retain_on_delete=False,
        additional_secret_outputs=(),
        aliases=(),
    )


# --- The renderer ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("kubernetes:apps/v1:Deployment", ("apps/v1", "Deployment")),
        ("kubernetes:core/v1:Service", ("v1", "Service")),
        ("kubernetes:core/v1:Namespace", ("v1", "Namespace")),
        ("kubernetes:networking.k8s.io/v1:Ingress", ("networking.k8s.io/v1", "Ingress")),
        ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", ("autoscaling/v2", "HorizontalPodAutoscaler")),
        ("kubernetes:policy/v1:PodDisruptionBudget", ("policy/v1", "PodDisruptionBudget")),
        ("kubernetes:batch/v1:Job", ("batch/v1", "Job")),
        ("kubernetes:helm.sh/v3:Release", None),
        ("kubernetes:yaml/v2:ConfigGroup", None),
        ("pulumi:providers:kubernetes", None),
        ("azure-native:containerservice:ManagedCluster", None),
    ],
)
def test_api_version_and_kind_come_from_the_type_token(token: str, expected: tuple[str, str] | None) -> None:
    assert api_version_and_kind(token) == expected


def test_render_writes_one_file_per_kubernetes_object_named_kind_namespace_name(
    rendered_manifests: dict[str, list[Path]],
) -> None:
    for variant, paths in rendered_manifests.items():
        expected = EXPECTED_FILES | (
            {"ingress-wine-quality-wine-quality.yaml"} if variant.endswith("ingress") else set()
        )
        assert {p.name for p in paths} == expected
        # Nothing else: no provider, no Azure object (and the render's own index, which is not a manifest).
        assert {p.name for p in paths[0].parent.iterdir()} == expected | {".rendered"}
        for path in paths:
            document = load(path)
            metadata = document["metadata"]
            namespace = metadata.get("namespace", "cluster")
            assert path.name == f"{document['kind'].lower()}-{namespace}-{metadata['name']}.yaml"


def test_rendered_objects_are_the_recorded_inputs_with_integers_restored(
    rendered_manifests: dict[str, list[Path]],
) -> None:
    rollout = load(next(p for p in rendered_manifests["prod"] if p.name.startswith("rollout-")))
    assert rollout["apiVersion"] == "argoproj.io/v1alpha1"
    assert rollout["kind"] == "Rollout"
    container = rollout["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert isinstance(container["ports"][0]["containerPort"], int)  # the engine's 8080.0, written as 8080
    service = load(next(p for p in rendered_manifests["prod"] if p.name.startswith("service-")))
    assert service["apiVersion"] == "v1"


def test_render_is_byte_for_byte_stable(rendered_manifests: dict[str, list[Path]], tmp_path: Path) -> None:
    again = render(cluster_program_run("prod"), tmp_path)
    for first, second in zip(rendered_manifests["prod"], again, strict=True):
        assert first.name == second.name
        assert first.read_bytes() == second.read_bytes()


def test_a_new_render_removes_the_manifests_the_stack_no_longer_declares(tmp_path: Path) -> None:
    def config_map(name: str) -> RecordedResource:
        return recorded("kubernetes:core/v1:ConfigMap", {"metadata": {"name": name, "namespace": "n"}})

    def run_of(*names: str) -> ProgramRun:
        resources = [config_map(n) for n in names]
        return ProgramRun(project=PROJECT, stack="s", resources=resources, outputs={}, secret_outputs=[], invokes=[])

    (tmp_path / "notes.yaml").write_text("kept: true\n")  # not written by render: never touched
    render(run_of("smoke-v1", "server"), tmp_path)
    render(run_of("smoke-v2", "server"), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".rendered",
        "configmap-n-server.yaml",
        "configmap-n-smoke-v2.yaml",
        "notes.yaml",
    ]


def test_secret_inputs_are_written_redacted() -> None:
    secret = recorded(
        "kubernetes:core/v1:Secret",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "stringData": {"k": "v"}},
        secret=("stringData",),
    )
    assert manifest(secret) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "n"},
        "stringData": {"k": REDACTED},
    }


def test_values_unknown_until_deployment_cannot_be_rendered() -> None:
    unknown = recorded("kubernetes:core/v1:ConfigMap", {"metadata": {"name": "c"}, "data": {"k": UNKNOWN}})
    with pytest.raises(RenderError, match=r"logical: \.data\.k is not known until deployment"):
        manifest(unknown)


def test_a_name_that_is_not_a_kubernetes_name_cannot_escape_the_directory() -> None:
    with pytest.raises(RenderError, match="not a Kubernetes name"):
        manifest_file_name({"kind": "ConfigMap", "metadata": {"name": "../../etc/x", "namespace": "n"}})


def test_two_declarations_of_one_object_are_an_error(tmp_path: Path) -> None:
    one = recorded("kubernetes:core/v1:ConfigMap", {"metadata": {"name": "c", "namespace": "n"}})
    run = ProgramRun(project=PROJECT, stack="s", resources=[one, one], outputs={}, secret_outputs=[], invokes=[])
    with pytest.raises(RenderError, match=r"are the same object \(configmap-n-c\)"):
        render(run, tmp_path)


def test_components_are_not_objects_and_auto_named_objects_use_their_logical_name() -> None:
    assert manifest(recorded("kubernetes:core/v1:ConfigMap", {}, custom=False)) is None
    auto = manifest(recorded("kubernetes:core/v1:ConfigMap", {"data": {"k": "v"}}))
    assert auto is not None
    assert auto["metadata"] == {"name": "logical", "namespace": "default"}


def test_render_stack_renders_what_the_stack_runner_returns(tmp_path: Path) -> None:
    asked: list[tuple[Path, str]] = []

    def runner(project_dir: Path, stack: str) -> ProgramRun:
        asked.append((project_dir, stack))
        return cluster_program_run(stack)

    paths = render_stack(ROOT, "staging", tmp_path / "out", runner=runner)
    assert asked == [(ROOT, "staging")]
    assert {p.name for p in paths} == EXPECTED_FILES


# --- Schema validation -----------------------------------------------------------------------------------------


def test_every_manifest_passes_kubernetes_validate_strict(rendered_manifests: dict[str, list[Path]]) -> None:
    checked = 0
    for paths in rendered_manifests.values():
        for path in paths:
            document = load(path)
            if document["apiVersion"].startswith("argoproj.io/"):
                assert problems_of(document) == [], path.name
            else:
                version = kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
                assert version == KUBERNETES_VERSION, path.name
            checked += 1
    assert checked == 3 * len(EXPECTED_FILES) + 1


def test_strict_validation_rejects_an_unknown_field(rendered_manifests: dict[str, list[Path]]) -> None:
    # The validator is live: the same manifest with a misspelt field fails.
    document = load(next(p for p in rendered_manifests["prod"] if p.name.startswith("service-")))
    document["spec"]["ports"][0]["targetPorts"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    rollout = load(next(p for p in rendered_manifests["prod"] if p.name.startswith("rollout-")))
    rollout["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert problems_of(rollout) == ["unknown field .spec.template.spec.containers[0].readinesProbe"]


# --- Policy scan ---------------------------------------------------------------------------------------------------


def checkov_env() -> dict[str, str]:
    # Offline and anonymous: no platform API key (it would upload results), no PyPI version check, no mapping
    # download; --skip-download does the rest.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    env.update({"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE", "DO_NOT_TRACK": "1"})
    return env


def require_checkov(checkov: Path) -> Path:
    """checkov lives in its own venv (its dependencies conflict with the project's). Missing: a failure in CI, a
    skip on a workstation."""
    if not checkov.exists():
        message = f"checkov is not installed at {checkov}; install it with: {CHECKOV_INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return checkov


def test_missing_checkov_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    absent = tmp_path / "no-checkov"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"checkov is not installed at .*uv pip install"):
        require_checkov(absent)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_checkov(absent)


def as_core_workloads(document: dict[str, Any]) -> list[dict[str, Any]]:
    """What checkov can read of an Argo object: a Rollout's pods as a Deployment with the same metadata and
    template; each Job an AnalysisTemplate runs as a Job with the template's metadata (its skip annotations)."""
    if document["kind"] == "Rollout":
        spec = {"selector": document["spec"]["selector"], "template": document["spec"]["template"]}
        return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": document["metadata"], "spec": spec}]
    if document["kind"] == "AnalysisTemplate":
        return [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {**document["metadata"], "name": f"{document['metadata']['name']}-{metric['name']}"},
                "spec": metric["provider"]["job"]["spec"],
            }
            for metric in document["spec"]["metrics"]
        ]
    return [document]


@pytest.mark.slow
def test_checkov_finds_no_failed_check_and_every_skip_is_justified(
    rendered_manifests: dict[str, list[Path]], tmp_path: Path
) -> None:
    checkov = require_checkov(CHECKOV)
    root = tmp_path / "scanned"
    for variant, paths in rendered_manifests.items():
        (root / variant).mkdir(parents=True)
        for path in paths:
            for i, document in enumerate(as_core_workloads(load(path))):
                YAML().dump(document, root / variant / f"{i}-{path.name}")
    result = subprocess.run(
        [str(checkov), "--directory", str(root), "--framework", "kubernetes", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        env=checkov_env(),
        cwd=root,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert summary["parsing_errors"] == 0
    # Every file was read (checkov also counts each workload's containers as a resource of their own).
    assert summary["resource_count"] >= sum(len(paths) for paths in rendered_manifests.values())
    assert summary["passed"] > 100
    skipped = report["results"]["skipped_checks"]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment") or ""
        assert reason != "No comment provided", check["check_id"]
        assert len(reason.split()) >= 8, (check["check_id"], check["resource"], reason)
    # The only suppression: imagePullPolicy on the digest-pinned server and smoke-test pods.
    assert {(c["check_id"], c["resource"].split(".")[0]) for c in skipped} == {
        ("CKV_K8S_15", "Deployment"),
        ("CKV_K8S_15", "Job"),
    }
