"""Placement: where a component's Azure children go and how they are marked, given once instead of in every Args.

Every component that creates Azure resources used to repeat the same five fields (naming, resource group, location,
tags, protect); they travel together, so they are one value. `__main__.py` makes one per stack, and one with the
shared services' protection for the owner stack's shared components (`dataclasses.replace(..., protect=...)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from components.naming import Naming


@dataclass(frozen=True)
class Placement:
    """Names, resource group, region, tags and protection for one component's Azure children."""

    naming: Naming
    """The stack's naming scheme: every child's Azure name comes from it (`<project>-<stack>-<role>` or a global
    name)."""
    resource_group_name: pulumi.Input[str]
    """The resource group the children live in."""
    location: str
    """The Azure region of the children."""
    tags: Mapping[str, str]
    """Azure tags on every child that takes tags."""
    protect: bool
    """Protect the component's stateful children (identities, storage, registry, vault, workspace, cluster) from
    deletion. Each component says which children that is; those whose children are all made again by the program
    from nothing (observability, monitoring, the model's workload) protect none."""

    def tag_map(self) -> dict[str, str]:
        """The tags as the plain dict the SDKs' `tags` inputs take."""
        return dict(self.tags)
