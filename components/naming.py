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
}


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

    def _fingerprint(self) -> str:
        return hashlib.sha256(f"{self.project}/{self.stack}/{self.suffix}".encode()).hexdigest()[:6]

    def global_name(self, kind: str, role: str) -> str:
        """A globally unique name for `kind` (registry, storage, keyvault), valid by Azure's rules."""
        minimum, maximum, pattern, rule = _RULES[kind]
        tail = self._fingerprint() + self.suffix
        if kind == "keyvault":
            stem = re.sub(r"[^a-z0-9-]", "", f"{self.project}-{self.stack}-{role}".lower())
            stem = re.sub(r"-+", "-", stem)[: maximum - len(tail) - 1].rstrip("-")
            name = f"{stem}-{tail}"
        else:
            stem = re.sub(r"[^a-z0-9]", "", f"{self.project}{self.stack}{role}".lower())
            name = stem[: maximum - len(tail)] + tail
        if not (minimum <= len(name) <= maximum and re.match(pattern, name)):
            raise InvalidNameError(f"{kind} name {name!r} breaks Azure's rule: {rule}")
        return name

    def tags(self, extra: dict[str, str]) -> dict[str, str]:
        """Tags on every resource: who owns it and what made it, plus the stack's own."""
        return {**extra, "project": self.project, "stack": self.stack, "managed-by": "pulumi"}
