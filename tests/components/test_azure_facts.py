"""The program's and the mock cloud's Azure ids are the ones Azure's own table gives, under the same names.

The oracle is `tests/reference/azure-built-in-roles.md`, a verbatim copy of
`../shared/reference/azure-built-in-roles.md` (ids copied from learn.microsoft.com's built-in roles table),
never the code under test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components import azure_facts
from offline import cloud_facts, mockcloud

REFERENCE = Path(__file__).parents[1] / "reference" / "azure-built-in-roles.md"
SHARED = Path(__file__).parents[2].parent / "shared" / "reference" / "azure-built-in-roles.md"
ROW = re.compile(r"^\| (?P<name>[^|]+?) \| (?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) \|")


def _table() -> dict[str, str]:
    # An application's row names it with a gloss in parentheses: "AzureDatabricks (audience of ...)".
    rows = (m for line in REFERENCE.read_text().splitlines() if (m := ROW.match(line)))
    return {m["name"].split(" (")[0]: m["id"] for m in rows}


def test_every_role_the_program_assigns_is_the_built_in_role_of_that_name() -> None:
    reference = _table()
    for name, role_id in azure_facts.BUILT_IN_ROLES.items():
        assert reference.get(name) == role_id, f"{name}: program has {role_id}, Azure's table {reference.get(name)}"


def test_every_first_party_application_id_is_azures() -> None:
    reference = _table()
    for name, app_id in azure_facts.FIRST_PARTY_APPS.items():
        assert reference.get(name) == app_id, f"{name}: program has {app_id}, Azure's table {reference.get(name)}"


def test_the_mock_cloud_holds_the_built_in_roles_of_azures_table() -> None:
    reference = _table()
    for name, role_id in cloud_facts.BUILT_IN_ROLE_DEFINITIONS.items():
        assert reference.get(name) == role_id, f"{name}: mock cloud has {role_id}, Azure's table {reference.get(name)}"
    assert reference["Azure Kubernetes Service AAD Server"] == cloud_facts.AKS_SERVER_APP_ID


def test_the_mock_cloud_refuses_an_assignment_of_a_role_that_does_not_exist() -> None:
    cloud = mockcloud.MockCloud(project="p", stack="s")
    wrong = "/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/8311e382-0749-4cb8-b61a-fd4c4ba34a4d"
    with pytest.raises(cloud_facts.CloudError, match="RoleDefinitionDoesNotExist"):
        cloud.admit(
            "azure-native:authorization:RoleAssignment", "push", {"roleDefinitionId": wrong, "principalId": "p"}, [], ""
        )


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/reference is not beside this checkout")
def test_the_copied_reference_is_the_shared_one() -> None:
    assert REFERENCE.read_text() == SHARED.read_text()
