"""The platform Key Vault's soft-delete retention, which Azure fixes when the vault is created: the program reads what
its stack's last update left and refuses a different `keyVault.softDeleteRetentionDays` before Azure does; day zero
(no outputs yet) and the offline preview check nothing."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from components.key_vault import DEPLOYED_RETENTION_OUTPUT
from offline import harness
from offline.cloud_facts import CloudError
from offline.harness import ProgramRun
from offline.mockcloud import MockCloud
from tests.conftest import STAGING_REF, run_variant

VAULT = "azure-native:keyvault:Vault"
KEY = "mlops-serving:keyVault.softDeleteRetentionDays"


def retention(days: int) -> Any:
    def edit(values: dict[str, Any]) -> None:
        values["mlops-serving:keyVault"]["softDeleteRetentionDays"] = days

    return edit


@pytest.fixture(scope="module")
def first() -> ProgramRun:
    """Staging's first update: no outputs of its own to read yet."""
    return run_variant("staging")


def cloud_holding(monkeypatch: pytest.MonkeyPatch, first: ProgramRun) -> None:
    """The cloud holds the vault the first update created, with the retention it was created with."""
    vault = first.one(VAULT).inputs
    held = {vault["vaultName"]: {"softDeleteRetentionInDays": vault["properties"]["softDeleteRetentionInDays"]}}
    monkeypatch.setattr(harness, "MockCloud", functools.partial(MockCloud, existing_key_vaults=held))


def test_day_zero_reads_its_own_empty_outputs_and_exports_what_azure_reports(first: ProgramRun) -> None:
    (own,) = first.all("pulumi:pulumi:StackReference")
    assert own.inputs["name"].endswith("/mlops-serving/staging")
    assert first.one(VAULT).inputs["properties"]["softDeleteRetentionInDays"] == 90
    assert first.outputs[DEPLOYED_RETENTION_OUTPUT] == 90
    assert {"keyVaultName", "keyVaultId"} <= set(first.outputs)


def test_a_later_update_with_the_same_retention_goes_through(
    monkeypatch: pytest.MonkeyPatch, first: ProgramRun
) -> None:
    cloud_holding(monkeypatch, first)
    again = run_variant("staging", stack_outputs={STAGING_REF: first.outputs})
    assert again.one(VAULT).inputs["properties"]["softDeleteRetentionInDays"] == 90


def test_a_changed_retention_is_refused_naming_the_key_before_azure_refuses_it(
    monkeypatch: pytest.MonkeyPatch, first: ProgramRun
) -> None:
    cloud_holding(monkeypatch, first)
    with pytest.raises(Exception, match=rf"{KEY} is 30, but the stack's Key Vault was created with 90 days") as err:
        run_variant("staging", retention(30), stack_outputs={STAGING_REF: first.outputs})
    assert not isinstance(err.value, CloudError)


def test_the_cloud_refuses_a_retention_update_on_an_existing_vault(
    monkeypatch: pytest.MonkeyPatch, first: ProgramRun
) -> None:
    # Without the stack's outputs the program cannot know the vault exists: Azure's refusal is what remains.
    cloud_holding(monkeypatch, first)
    with pytest.raises(
        CloudError, match=r"softDeleteRetentionInDays of the existing vault .* is 90 and cannot be changed"
    ):
        run_variant("staging", retention(30))
