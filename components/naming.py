"""One naming scheme for every stack: `<project>-<stack>-<role>`, and valid, stable, globally unique names
where Azure demands them (container registry, Key Vault, storage account).

Global names carry a short hash of project and stack so that two organisations deploying this project do not
collide, and `nameSuffix` from the stack config for the rare case a name is taken anyway. The hash depends only
on what the stack file says, so a name never changes between runs (a changed name would replace the resource).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


class InvalidNameError(ValueError):
    """A generated name breaks Azure's rules for that resource type; the message names the rule."""


# Azure's rules, per resource type: (min length, max length, allowed pattern, description).
_RULES: dict[str, tuple[int, int, str, str]] = {
    "registry": (5, 50, r"^[a-z0-9]+$", "5-50 lowercase letters and digits"),
    "storage": (3, 24, r"^[a-z0-9]+$", "3-24 lowercase letters and digits"),
    "keyvault": (3, 24, r"^[a-z][a-z0-9-]*[a-z0-9]$", "3-24 letters, digits and hyphens, starting with a letter"),
    "functionapp": (
        2,
        60,
        r"^[a-z0-9][a-z0-9-]*[a-z0-9]$",
        "2-60 letters, digits and hyphens (<name>.azurewebsites.net)",
    ),
    # Azure Managed Grafana (Microsoft.Dashboard/grafana): the portal's rule (its name prefixes the endpoint's host).
    "grafana": (2, 23, r"^[a-z][a-z0-9-]*[a-z0-9]$", "2-23 letters, digits and hyphens, starting with a letter"),
}
# Kinds whose names may carry hyphens between their parts.
_HYPHENATED = frozenset({"keyvault", "functionapp", "grafana"})


@dataclass(frozen=True)
class Naming:
    """Names for one stack of one project."""

    project: str
    stack: str
    suffix: str = ""

    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.stack}"

    def resource(self, role: str) -> str:
        """A name scoped to a resource group or subscription: `<project>-<stack>-<role>`."""
        return f"{self.prefix}-{role}"

    def _fingerprint(self, kind: str, role: str) -> str:
        key = f"{self.project}/{self.stack}/{kind}/{role}/{self.suffix}"
        return hashlib.sha256(key.encode()).hexdigest()[:6]

    def global_name(self, kind: str, role: str) -> str:
        """A globally unique name for `kind` (registry, storage, keyvault, functionapp), valid by Azure's rules.

        The role is always kept whole and the project/stack stem is shortened instead, so two resources of one
        kind in one stack never share a name; the fingerprint covers the role too.
        """
        minimum, maximum, pattern, rule = _RULES[kind]
        role = role.lower()
        tail = self._fingerprint(kind, role) + self.suffix
        sep = "-" if kind in _HYPHENATED else ""
        allowed = r"[^a-z0-9-]" if sep else r"[^a-z0-9]"
        project = re.sub(allowed, "", self.project.lower()).strip("-")
        stack = re.sub(allowed, "", self.stack.lower()).strip("-")
        room = maximum - len(tail) - len(role) - 3 * len(sep)
        # Shorten the project before the stack: within one project, the stack is what tells names apart.
        stack = stack[: max((room + 1) // 2, room - len(project) - len(sep))].strip("-")
        project = project[: room - len(stack) - len(sep)].strip("-")
        name = sep.join(part for part in (project, stack, role, tail) if part)
        if not (minimum <= len(name) <= maximum and re.match(pattern, name)):
            raise InvalidNameError(f"{kind} name {name!r} breaks Azure's rule: {rule}")
        return name

    def tags(self, extra: dict[str, str]) -> dict[str, str]:
        """Tags on every resource: who owns it and what made it, plus the stack's own."""
        return {**extra, "project": self.project, "stack": self.stack, "managed-by": "pulumi"}
