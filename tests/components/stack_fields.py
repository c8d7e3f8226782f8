"""The component Args fields a stack file's sections set, grouped for tests that build one component at a time.

Every value comes from the program's own translation (`program.stack_args`), as `__main__.py` passes it.
"""

from __future__ import annotations

from typing import Any

from components.role_assignment import Principal
from program import stack_args
from stacks.settings import ClusterSettings, ServingSettings, StackSettings


def cluster_fields(cluster: ClusterSettings) -> dict[str, Any]:
    """The AksClusterArgs fields a stack file's `cluster` section sets."""
    return {
        "tier": cluster.tier,
        "upgrade_channel": cluster.upgrade_channel,
        "availability_zones": cluster.availability_zones,
        "system_pool": stack_args.node_pool(cluster.system_pool),
        "user_pool": stack_args.node_pool(cluster.user_pool),
        "admin_group_object_ids": cluster.admin_group_object_ids,
    }


def serving_fields(serving: ServingSettings) -> dict[str, Any]:
    """The ModelDeploymentArgs fields a stack file's `serving` section sets (all but the model, which it pins)."""
    return {
        "size": stack_args.pod_size(serving),
        "scale": stack_args.scale(serving),
        "exposure": stack_args.exposure(serving),
        "canary": stack_args.canary_release(serving.canary),
    }


def deployers(settings: StackSettings) -> list[Principal]:
    """The principals a stack file's `deployers` section names, as the components take them."""
    return stack_args.deployers(settings)


def a_deployer(settings: StackSettings) -> dict[str, Any]:
    """ProgramOptions fields for a caller who is one of the stack's deployers: a person in its listed groups."""
    return {"caller_groups": tuple(d.object_id for d in settings.deployers if d.type == "Group")}
