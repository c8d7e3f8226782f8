"""`serving.maxRows` end to end: the stack file's value, through the program as `python -m stacks` runs it, into the
Rollout's environment, into the real server, which then refuses one row more than that and serves that many."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_variant
from tests.model_image.serving_helpers import Pool, Served, our_server

DEPLOYMENT = "kubernetes:argoproj.io/v1alpha1:Rollout"  # the model's pods
STACK = "staging"
# Two stack values, so the test shows the setting moving the server's limit, not a default that happens to match.
LIMITS = (5, 9)


def pod_environment(max_rows: int) -> dict[str, str]:
    """The server container's `env` as the program renders the staging Rollout with `serving.maxRows` set."""

    def edit(values: dict[str, Any]) -> None:
        values["mlops-serving:serving"]["maxRows"] = max_rows

    run = run_variant(STACK, edit)
    containers = run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"]
    (server,) = (c for c in containers if c["name"] == "server")
    return {item["name"]: item["value"] for item in server["env"]}


@pytest.fixture(scope="module")
def servers(wine_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Served]]:
    root = tmp_path_factory.mktemp("max-rows")
    pool = Pool()
    try:
        started = {
            limit: pool.start(our_server(wine_model, root / f"rows-{limit}", pod_environment(limit)))
            for limit in LIMITS
        }
        pool.wait()
        yield started
    finally:
        pool.stop()


def rows(wine_features: Any, n: int) -> dict[str, Any]:
    frame = wine_features.head(n)
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}


@pytest.mark.integration
@pytest.mark.parametrize("limit", LIMITS)
def test_the_server_refuses_more_rows_than_the_stack_allows(
    servers: dict[int, Served], wine_features: Any, limit: int
) -> None:
    response = servers[limit].post_json("/invocations", rows(wine_features, limit + 1))
    assert response.status_code == 413
    message = response.json()["message"]
    assert f"the limit is {limit}" in message


@pytest.mark.integration
@pytest.mark.parametrize("limit", LIMITS)
def test_the_server_serves_exactly_as_many_rows_as_the_stack_allows(
    servers: dict[int, Served], wine_features: Any, limit: int
) -> None:
    response = servers[limit].post_json("/invocations", rows(wine_features, limit))
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == limit


@pytest.mark.integration
def test_a_different_stack_value_changes_what_the_server_accepts(
    servers: dict[int, Served], wine_features: Any
) -> None:
    small, large = LIMITS
    body = rows(wine_features, large)
    assert servers[small].post_json("/invocations", body).status_code == 413
    assert servers[large].post_json("/invocations", body).status_code == 200
