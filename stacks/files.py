"""Reading a project's `Pulumi.yaml` and its `Pulumi.<stack>.yaml` files, the way the Pulumi CLI merges them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from stacks.settings import StackSettings, parse_settings
from stacks.settings_errors import SettingsError


@dataclass(frozen=True)
class StackConfig:
    """One stack's effective config: project defaults overlaid by the stack file, keys fully namespaced."""

    project: str
    stack: str
    project_dir: Path
    source: str
    values: dict[str, Any]
    secure_keys: frozenset[str]

    def settings(self) -> StackSettings:
        return parse_settings(self.values, self.source, self.project)


def _read_yaml(path: Path) -> Any:
    yaml = YAML(typ="safe", pure=True)
    try:
        return yaml.load(path.read_text())
    except YAMLError as exc:
        raise SettingsError(path.name, [f"{path.name}: not valid YAML: {str(exc).splitlines()[0]}"]) from None


def project_file(project_dir: Path) -> dict[str, Any]:
    data = _read_yaml(project_dir / "Pulumi.yaml")
    if not isinstance(data, dict) or "name" not in data:
        raise SettingsError("Pulumi.yaml", ["Pulumi.yaml: expected a Pulumi project file with a name"])
    return data


def stack_names(project_dir: Path) -> list[str]:
    """Every stack that has a `Pulumi.<stack>.yaml` in the project."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def load_stack_config(project_dir: Path, stack: str) -> StackConfig:
    """The config `pulumi up` would see for `stack`: declared defaults, then the stack file's values.

    Secure values (`secure: v1:...`) cannot be decrypted offline; they are passed on as a placeholder the program
    only ever handles as a secret.
    """
    project = project_file(project_dir)
    name = str(project["name"])
    path = stack_file(project_dir, stack)
    if not path.exists():
        known = ", ".join(stack_names(project_dir)) or "none"
        raise SettingsError(path.name, [f"{path.name}: no such stack file (stacks here: {known})"])
    values: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(decl, dict) and "default" in decl:
            values[full] = decl["default"]
        elif isinstance(decl, dict) and "value" in decl:
            values[full] = decl["value"]
    data = _read_yaml(path) or {}
    if not isinstance(data, dict):
        raise SettingsError(path.name, [f"{path.name}: expected a mapping with a `config:` key"])
    secure: set[str] = set()
    for key, raw in (data.get("config") or {}).items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(raw, dict) and set(raw) == {"secure"}:
            secure.add(full)
            values[full] = f"[secret:{full}]"
        else:
            values[full] = raw
    return StackConfig(
        project=name,
        stack=stack,
        project_dir=project_dir,
        source=path.name,
        values=values,
        secure_keys=frozenset(secure),
    )
