"""The identifier rules live once (`stacks/identifiers.py`); the copies kept by what ships on its own match them."""

from __future__ import annotations

import pytest

from policies import rules
from stacks import identifiers


def test_the_listeners_repository_rule_is_the_projects() -> None:
    # The listener ships alone (listener/webhook_listener), so it keeps its own copy.
    from webhook_listener import settings

    assert settings._REPOSITORY.pattern == identifiers.REPOSITORY_PATTERN


def test_the_policy_packs_digest_rule_is_the_projects() -> None:
    assert rules._DIGEST.pattern == rf"@{identifiers.DIGEST_PATTERN}$"


@pytest.mark.parametrize(
    ("text", "digest", "model", "stack"),
    [
        ("sha256:" + "ab" * 32, True, False, False),
        ("sha256:" + "AB" * 32, False, False, False),
        ("mlops.models.wine_quality", False, True, False),
        ("wine-quality", False, True, True),
        ("eu-west-prod", False, True, True),
        ("-prod", False, False, False),
        ("Prod", False, True, False),
        ("p" * 41, False, True, False),
    ],
)
def test_the_rules(text: str, digest: bool, model: bool, stack: bool) -> None:
    assert (
        bool(identifiers.DIGEST.match(text)),
        bool(identifiers.MODEL_NAME.match(text)),
        bool(identifiers.STACK_NAME.match(text)),
    ) == (digest, model, stack)
