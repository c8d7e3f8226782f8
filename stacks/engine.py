"""Stack settings as the Pulumi engine hands them to the running program."""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from stacks.settings import StackSettings, parse_settings
from stacks.settings_errors import SettingsError


def engine_config() -> dict[str, Any]:
    """Every config key the engine passed to this program run, `<namespace>:<key>` to value.

    The engine sends the whole stack config (as the `PULUMI_CONFIG` JSON bag, or through `set_all_config` under
    test); reading all of it, not key by key, is what lets an unknown key be reported.
    """
    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return {k: _maybe_json(v) for k, v in merged.items()}


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load_settings() -> StackSettings:
    """The running stack's validated settings; every problem at once, as one error without a traceback."""
    source = f"Pulumi.{pulumi.get_stack()}.yaml"
    try:
        return parse_settings(engine_config(), source, pulumi.get_project())
    except SettingsError as exc:
        raise pulumi.RunError("invalid stack config:\n" + "\n".join(exc.problems)) from None
