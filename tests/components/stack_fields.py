"""The component Args fields a stack file's sections set, for tests that build components from a stack's settings
(what `__main__.py` passes, field by field)."""

from __future__ import annotations

from typing import Any

from stacks.settings import ClusterSettings, ServingSettings


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
    """The ModelDeploymentArgs fields a stack file's `serving` section sets."""
    return {
        "min_replicas": serving.min_replicas,
        "max_replicas": serving.max_replicas,
        "target_cpu_utilization": serving.target_cpu_utilization,
        "cpu": serving.cpu,
        "memory": serving.memory,
        "max_rows": serving.max_rows,
        "exposure": serving.exposure,
        "host": serving.host,
        "tls_secret_name": serving.tls_secret_name,
    }
