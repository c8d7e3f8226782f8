"""The component Args fields a stack file's sections set, for tests that build components from a stack's settings
(what `__main__.py` passes, field by field)."""

from __future__ import annotations

from typing import Any

from components.model_canary import CanaryRelease
from components.model_workload import Exposure, IngressHost, InternalLoadBalancer, PodSize, Scale
from components.role_assignment import Principal
from stacks.settings import ClusterSettings, ServingSettings, StackSettings


def cluster_fields(cluster: ClusterSettings) -> dict[str, Any]:
    """The AksClusterArgs fields a stack file's `cluster` section sets."""
    return {
        "tier": cluster.tier,
        "upgrade_channel": cluster.upgrade_channel,
        "availability_zones": cluster.availability_zones,
        "system_pool": cluster.system_pool,
        "user_pool": cluster.user_pool,
        "admin_group_object_ids": cluster.admin_group_object_ids,
    }


def serving_fields(serving: ServingSettings) -> dict[str, Any]:
    """The ModelDeploymentArgs fields a stack file's `serving` section sets (all but the model, which it pins)."""
    return {
        "size": PodSize(serving.cpu, serving.memory),
        "scale": Scale(serving.min_replicas, serving.max_replicas, serving.target_cpu_utilization),
        "exposure": serving_exposure(serving),
        "canary": CanaryRelease.from_settings(serving.canary),
    }


def serving_exposure(serving: ServingSettings) -> Exposure:
    """`exposure` as the component takes it: an ingress always comes with its host and TLS secret."""
    if serving.exposure == "ingress":
        assert serving.host is not None
        assert serving.tls_secret_name is not None
        return IngressHost(serving.host, serving.tls_secret_name)
    return InternalLoadBalancer()


def deployers(settings: StackSettings) -> list[Principal]:
    """The principals a stack file's `deployers` section names, as the components take them."""
    return [Principal(d.object_id, d.type) for d in settings.deployers]


def a_deployer(settings: StackSettings) -> dict[str, Any]:
    """ProgramOptions fields for a caller who is one of the stack's deployers: a person in its listed groups."""
    return {"caller_groups": tuple(d.object_id for d in settings.deployers if d.type == "Group")}
