"""The components' own value types refuse what a component cannot be built from, whoever builds them; and the
program's translation gives each stack file's sections as those types."""

from __future__ import annotations

import pytest

from components.aks_cluster import NodePool
from components.listener_app import AzureDevOpsDispatch, GitHubDispatch, ListenerRelease
from components.model_catalog import ModelSchema
from components.model_image import RegisteredModel, pinned_image_ref
from components.model_registry_webhook import AliasJob, RegistryWebhook
from program import stack_args
from stacks.files import load_stack_config
from tests.conftest import ROOT


@pytest.mark.parametrize(("low", "high"), [(0, 3), (4, 3), (-1, -1)])
def test_a_node_pool_keeps_at_least_one_node_and_its_bounds_in_order(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="1 <= min_count <= max_count"):
        NodePool("Standard_D4ds_v5", low, high)


@pytest.mark.parametrize("repository", ["acme", "acme/", "/repo", "a/b/c"])
def test_a_github_dispatch_names_owner_and_repository(repository: str) -> None:
    with pytest.raises(ValueError, match="<owner>/<name>"):
        GitHubDispatch(repository=repository, event_type="model-promoted")


def test_an_azure_devops_dispatch_needs_an_https_organization_and_a_pipeline() -> None:
    with pytest.raises(ValueError, match="https://"):
        AzureDevOpsDispatch(organization_url="http://dev.azure.com/acme", project="ml", pipeline_id=1)
    with pytest.raises(ValueError, match="pipeline id"):
        AzureDevOpsDispatch(organization_url="https://dev.azure.com/acme", project="ml", pipeline_id=0)


def test_a_listener_release_needs_a_stage_and_an_attempt() -> None:
    github = GitHubDispatch(repository="acme/ml", event_type="model-promoted")
    with pytest.raises(ValueError, match="promote_stages"):
        ListenerRelease(dispatch=github, promote_alias="champion", promote_stages=(), max_dispatch_attempts=5)
    with pytest.raises(ValueError, match="max_dispatch_attempts"):
        ListenerRelease(dispatch=github, promote_alias="champion", promote_stages=("Staging",), max_dispatch_attempts=0)


def test_a_schema_with_models_has_their_owner_among_the_registerers() -> None:
    with pytest.raises(ValueError, match="need a model_owner"):
        ModelSchema(catalog="mlops", schema="models", models=("wine",))
    with pytest.raises(ValueError, match="must be one of registerers"):
        ModelSchema(catalog="mlops", schema="models", models=("wine",), model_owner="ml", registerers=("other",))


def test_a_registered_model_starts_at_version_one_and_a_pin_is_a_digest() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        RegisteredModel(name="m", version=0)
    with pytest.raises(ValueError, match="sha256:<64 hex>"):
        pinned_image_ref("r.azurecr.io", RegisteredModel(name="m", version=1), "sha256:short")


def test_the_shipped_stacks_translate_into_the_components_types() -> None:
    staging = load_stack_config(ROOT, "staging").settings()
    assert staging.release is not None
    assert staging.model_registry is not None
    assert staging.model is not None
    release = stack_args.listener_release(staging.release)
    assert release.dispatch == GitHubDispatch(repository="acme-ml/mlops-serving", event_type="model-promoted")
    # Staging watches the whole schema (webhookScope: registry): the job reads every model's alias in it.
    signal = stack_args.promotion_signal(staging.release, staging.model_registry, staging.model)
    assert signal == AliasJob(securable="mlops.models", alias="champion", status="ACTIVE")
    assert stack_args.watched_models(staging.release, staging.model) == []
    model_scoped = staging.release.model_copy(update={"webhook_scope": "model"})
    assert stack_args.promotion_signal(model_scoped, staging.model_registry, staging.model) == AliasJob(
        securable="mlops.models.wine_quality", alias="champion", status="ACTIVE"
    )
    workspace = staging.model_registry.model_validate({"type": "workspace"})
    assert stack_args.promotion_signal(model_scoped, workspace, staging.model) == RegistryWebhook(
        events=tuple(staging.release.events), model_name="mlops.models.wine_quality", status="ACTIVE"
    )
    assert stack_args.model_schema(workspace) is None
    assert stack_args.node_pool(staging.cluster.user_pool) == NodePool("Standard_D4ds_v5", 1, 3)


def test_a_node_pool_holds_at_most_a_thousand_nodes() -> None:
    assert NodePool("Standard_D4ds_v5", 1, 1000).max_count == 1000
    with pytest.raises(ValueError, match="<= 1000"):
        NodePool("Standard_D4ds_v5", 1, 1001)


@pytest.mark.parametrize(
    ("events", "model_name", "reason"),
    [
        (("MODEL_VERSION_PROMOTED",), None, "not registry webhook events"),
        (("COMMENT_CREATED", "COMMENT_CREATED"), None, "each event once"),
        (("REGISTERED_MODEL_CREATED",), "wine-quality", "only on a registry-wide webhook"),
    ],
)
def test_a_registry_webhook_names_only_events_the_registry_has(
    events: tuple[str, ...], model_name: str | None, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        RegistryWebhook(events=events, model_name=model_name)
    assert RegistryWebhook(events=("REGISTERED_MODEL_CREATED",), model_name=None).model_name is None


def test_a_github_event_type_has_at_most_a_hundred_characters() -> None:
    assert GitHubDispatch(repository="acme/ml", event_type="e" * 100).event_type
    with pytest.raises(ValueError, match="1 to 100 characters"):
        GitHubDispatch(repository="acme/ml", event_type="e" * 101)
    with pytest.raises(ValueError, match="<owner>/<name>"):
        GitHubDispatch(repository="acme/my repo", event_type="model-promoted")


def test_a_model_scoped_signal_without_a_model_is_refused_not_widened() -> None:
    staging = load_stack_config(ROOT, "staging").settings()
    assert staging.release is not None
    assert staging.model_registry is not None
    model_scoped = staging.release.model_copy(update={"webhook_scope": "model"})
    with pytest.raises(ValueError, match="webhookScope: model needs a pinned model"):
        stack_args.promotion_signal(model_scoped, staging.model_registry, None)
