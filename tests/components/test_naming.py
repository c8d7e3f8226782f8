"""Global names: valid by Azure's rules for every stack name, stable, and distinct per role."""

from __future__ import annotations

import re

import pytest

from components.naming import InvalidNameError, Naming

KINDS = {
    "registry": (5, 50, r"^[a-z0-9]+$"),
    "storage": (3, 24, r"^[a-z0-9]+$"),
    "keyvault": (3, 24, r"^[a-z][a-z0-9-]*[a-z0-9]$"),
    "functionapp": (2, 60, r"^[a-z0-9][a-z0-9-]*[a-z0-9]$"),
}
STACKS = ["staging", "prod", "dev", "a-very-long-stack-name-for-a-feature-branch", "PR_1234"]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_global_names_follow_azures_rules(kind: str, stack: str) -> None:
    minimum, maximum, pattern = KINDS[kind]
    name = Naming("mlops-serving", stack).global_name(kind, "listener")
    assert minimum <= len(name) <= maximum
    assert re.match(pattern, name), name
    assert "--" not in name


def test_two_roles_of_one_kind_in_one_stack_never_share_a_name() -> None:
    naming = Naming("mlops-serving", "staging")
    assert naming.global_name("storage", "listener") != naming.global_name("storage", "pkg")


def test_names_are_stable_and_differ_between_stacks_and_suffixes() -> None:
    def acr(stack: str, suffix: str = "") -> str:
        return Naming("p", stack, suffix).global_name("registry", "acr")

    assert acr("staging") == acr("staging")
    assert acr("staging") != acr("prod")
    assert acr("prod") != acr("prod", "x1")


def test_resource_names_follow_the_project_stack_role_scheme() -> None:
    assert Naming("mlops-serving", "prod").resource("aks") == "mlops-serving-prod-aks"


def test_a_role_that_cannot_fit_is_refused_with_the_rule() -> None:
    with pytest.raises(InvalidNameError, match=r"storage name .* breaks Azure's rule: 3-24 lowercase letters"):
        Naming("p", "s").global_name("storage", "a-role-far-too-long-for-storage")
