"""One version rule: the stack settings, the promotion payload, the rollback CLI and the deployment record accept
and refuse exactly the same versions, because all of them read versions with `parse_model_version`."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from release.promote import PromotionPayload
from release.rollback import _version as rollback_version
from stacks.model_version import parse_model_version
from stacks.settings import ModelSettings

GOOD = [(3, 3), ("3", 3), (" 12 ", 12), (9_999_999_999, 9_999_999_999)]
BAD: list[Any] = [0, -1, "0", "03", "v2", "1.5", 1.5, True, "", None, "12345678901", 10_000_000_000]


@pytest.mark.parametrize(("raw", "version"), GOOD)
def test_every_reader_takes_a_good_version_as_the_same_number(raw: Any, version: int) -> None:
    assert parse_model_version(raw) == version
    assert ModelSettings.model_validate({"name": "m", "version": raw, "catalog": "workspace"}).version == version
    payload = {"model": "m", "version": raw, "target_stack": "staging", "delivery_id": "d", "source": "mlflow"}
    assert PromotionPayload.model_validate(payload).version == str(version)
    assert rollback_version(str(raw)) == version


@pytest.mark.parametrize("raw", BAD)
def test_every_reader_refuses_a_bad_version(raw: Any) -> None:
    with pytest.raises(ValueError, match="a positive integer"):
        parse_model_version(raw)
    with pytest.raises(ValueError, match="a positive integer"):
        ModelSettings.model_validate({"name": "m", "version": raw, "catalog": "workspace"})
    payload = {"model": "m", "version": raw, "target_stack": "staging", "delivery_id": "d", "source": "mlflow"}
    with pytest.raises(ValueError, match="version"):
        PromotionPayload.model_validate(payload)
    if isinstance(raw, str):
        with pytest.raises(argparse.ArgumentTypeError, match="a positive integer"):
            rollback_version(raw)
