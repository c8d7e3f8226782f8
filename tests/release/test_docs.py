"""docs/release-workflow.md takes a new repository to its first promotion: the commands it gives are the ones the
workflows need (stacks created before the first deploy, subjects derived from the repository, role grants that
cover what the program assigns)."""

from __future__ import annotations

import re
from pathlib import Path

from stacks.files import stack_names
from tests.release.gitrepo import ROOT

DOC = (ROOT / "docs" / "release-workflow.md").read_text(encoding="utf-8")
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Azure built-in role ids (learn.microsoft.com/azure/role-based-access-control/built-in-roles): the roles the
# program assigns, by name.
BUILT_IN = {
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "AcrPush": "8311e382-0749-4cb8-b61a-304f252e45ec",
    "Azure Kubernetes Service RBAC Cluster Admin": "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Monitoring Data Reader": "b0d8363b-8ddd-447d-831f-62ca05bff136",
    "Grafana Admin": "22926164-76b3-42b3-bc55-97df8dab3e41",
}


def day_zero() -> str:
    return DOC[DOC.index("## From nothing to the first promotion") :]


def condition_roles() -> set[str]:
    line = next(line for line in DOC.splitlines() if line.strip().startswith("ROLES="))
    return set(GUID.findall(line))


def test_the_stacks_exist_before_the_first_deploy() -> None:
    """pulumi/actions selects a stack, it does not create one."""
    text = day_zero()
    first_deploy = text.index("gh workflow run deploy.yml")
    for stack in stack_names(ROOT):
        init = f'pulumi stack init "$PULUMI_ORG/mlops-serving/{stack}"'
        assert init in text, stack
        assert text.index(init) < first_deploy, stack


def test_the_subjects_come_from_the_repository() -> None:
    assert "repo:<org>/<repo>" not in DOC, "a hand-written name-only subject fails on an immutable-subject repository"
    text = day_zero()
    assert 'gh api "repos/$REPO/actions/oidc/customization/sub" | python3 -m release.oidc_subjects' in text
    assert text.index("release.oidc_subjects") < text.index("gh workflow run deploy.yml")


def test_the_condition_allows_exactly_the_listed_built_in_roles() -> None:
    assert condition_roles() == set(BUILT_IN.values())
    for name, role_id in BUILT_IN.items():
        assert f"{name} `{role_id}`" in " ".join(DOC.split()), name


def test_the_condition_covers_every_built_in_role_the_program_assigns() -> None:
    assigned = set()
    for path in sorted(Path(ROOT / "components").glob("*.py")):
        assigned |= set(GUID.findall(path.read_text(encoding="utf-8")))
    assert assigned & set(BUILT_IN.values()) <= condition_roles()
    assert BUILT_IN["AcrPull"] in assigned, "prod's cluster pulls from staging's registry"


def test_the_deploy_identities_can_create_the_resource_group_and_assign_on_staging_registry() -> None:
    """The program creates its resource group (a subscription-scope write), and prod assigns AcrPull on staging's
    registry, in staging's resource group: both need the subscription scope."""
    text = day_zero()
    assert '--role Contributor --scope "/subscriptions/$SUB"' in text
    assert '--role "Role Based Access Control Administrator" --scope "/subscriptions/$SUB"' in text
    assert '--condition "$CONDITION" --condition-version 2.0' in text
    assert 'for sp in "$STAGING_SP" "$PROD_SP"; do' in text


def test_no_long_lived_pulumi_token_is_asked_for() -> None:
    assert "PULUMI_ACCESS_TOKEN" not in DOC
