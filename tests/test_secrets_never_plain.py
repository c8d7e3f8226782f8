"""Secrets stay secret: every value the mock cloud makes up carries a planted marker, and the marker must not show
in plain text in any preview document, any input not marked secret, any non-secret output, or any config file."""

from __future__ import annotations

import json
from typing import Any

import pytest

from offline.harness import ProgramRun
from offline.preview import StackRun, preview_document
from tests.conftest import ROOT, STAGING_REF, run_variant

MARKER = "PLANTEDsecret7f3a"


@pytest.fixture(scope="module")
def planted() -> dict[str, ProgramRun]:
    staging = run_variant("staging", secret_marker=MARKER)
    prod = run_variant("prod", secret_marker=MARKER, stack_outputs={STAGING_REF: staging.outputs})
    return {"staging": staging, "prod": prod}


def test_the_marker_really_reaches_the_program(planted: dict[str, ProgramRun]) -> None:
    # Without this, every other test here would pass vacuously.
    secret_inputs = [json.dumps(r.inputs[k]) for r in planted["staging"].resources for k in r.secret_inputs]
    assert any(MARKER in text for text in secret_inputs)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_no_input_that_is_not_secret_holds_a_secret(planted: dict[str, ProgramRun], stack: str) -> None:
    leaks = [
        f"{r.type} {r.name} input {key}"
        for r in planted[stack].resources
        for key, value in r.inputs.items()
        if key not in r.secret_inputs and MARKER in json.dumps(value)
    ]
    assert leaks == []


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_no_output_that_is_not_secret_holds_a_secret(planted: dict[str, ProgramRun], stack: str) -> None:
    run = planted[stack]
    leaks = [k for k, v in run.outputs.items() if k not in run.secret_outputs and MARKER in json.dumps(v)]
    assert leaks == []


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_preview_document_shows_no_secret(planted: dict[str, ProgramRun], stack: str) -> None:
    doc = preview_document(StackRun(stack=stack, settings={}, run=planted[stack]))
    assert MARKER not in json.dumps(doc)


def test_kubeconfig_is_exported_as_a_secret(planted: dict[str, ProgramRun]) -> None:
    for run in planted.values():
        assert "kubeconfig" in run.secret_outputs


def _walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _walk(v, f"{path}.{k}" if path else str(k))]
    return [(path, value)]


@pytest.mark.parametrize("name", ["Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"])
def test_config_files_hold_no_secret_in_plain_text(name: str) -> None:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load((ROOT / name).read_text())
    suspicious = ("secret", "token", "password", "key", "credential")
    for path, value in _walk(data):
        leaf = path.rsplit(".", 1)[-1].lower()
        if any(word in leaf for word in suspicious) and isinstance(value, str) and value:
            pytest.fail(f"{name}: {path} holds a plain value; use `pulumi config set --secret` or Key Vault")


def test_secret_settings_never_reach_the_program_as_config() -> None:
    # The only credentials the platform needs are generated (pulumi_random) or live in Key Vault; the stack files
    # carry none, encrypted or not.
    for name in ("Pulumi.staging.yaml", "Pulumi.prod.yaml"):
        assert "secure:" not in (ROOT / name).read_text()
