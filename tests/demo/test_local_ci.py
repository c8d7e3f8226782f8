"""The demo's GitHub stand-in against the release's own client: `release.proposal.upsert_pull_request` opens a pull
request on it, finds and updates that one the second time; the stand-in keeps dispatches and checks the token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from demo.local_ci import LocalCI
from release.github import GitHub, GitHubError
from release.proposal import upsert_pull_request

REPOSITORY = "acme-ml/mlops-serving"
TOKEN = "demo-token"


@pytest.fixture
def ci() -> Iterator[LocalCI]:
    stand_in = LocalCI(token=TOKEN, repository=REPOSITORY)
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


def github(ci: LocalCI, token: str = TOKEN) -> GitHub:
    return GitHub(token, REPOSITORY, ci.url, retries=0)


def test_a_pull_request_is_opened_then_updated_in_place(ci: LocalCI) -> None:
    with github(ci) as client:
        first = upsert_pull_request(client, branch="rollback/staging/m-v2", base="main", title="Roll back", body="a")
        second = upsert_pull_request(client, branch="rollback/staging/m-v2", base="main", title="Roll back", body="b")
        same = upsert_pull_request(client, branch="rollback/staging/m-v2", base="main", title="Roll back", body="b")

    assert first[:2] == ("created", 1)
    assert second[:2] == ("updated", 1)
    assert same[:2] == ("unchanged", 1)
    assert list(ci.pulls) == [1]
    pull = ci.pulls[1]
    assert (pull["title"], pull["body"], pull["state"]) == ("Roll back", "b", "open")
    assert pull["head"] == {"ref": "rollback/staging/m-v2", "label": "acme-ml:rollback/staging/m-v2"}
    assert pull["base"] == {"ref": "main"}


def test_a_merged_pull_request_is_not_listed_as_open_and_a_new_one_gets_the_next_number(ci: LocalCI) -> None:
    with github(ci) as client:
        upsert_pull_request(client, branch="rollback/staging/m-v2", base="main", title="t", body="b")
        merged = ci.merge(1)
        again = upsert_pull_request(client, branch="rollback/staging/m-v2", base="main", title="t", body="b")
        closed = client.paginate(f"/repos/{REPOSITORY}/pulls", {"state": "closed"})

    assert merged["state"] == "closed"
    assert merged["merged_at"]
    assert again[:2] == ("created", 2)
    assert [pull["number"] for pull in closed] == [1]
    with pytest.raises(ValueError, match="pull request #1 is closed, not open"):
        ci.merge(1)


def test_a_second_open_pull_request_from_the_same_head_is_refused(ci: LocalCI) -> None:
    with github(ci) as client:
        body = {"title": "t", "head": "promote/staging/m-v3", "base": "main"}
        client.request("POST", f"/repos/{REPOSITORY}/pulls", json=body)
        with pytest.raises(GitHubError, match="422 Validation Failed") as refused:
            client.request("POST", f"/repos/{REPOSITORY}/pulls", json=body)

    assert refused.value.status == 422
    assert "A pull request already exists for acme-ml:promote/staging/m-v3" in str(refused.value)


def test_a_wrong_token_or_repository_is_refused(ci: LocalCI) -> None:
    with github(ci, token="wrong") as client, pytest.raises(GitHubError) as refused:
        client.paginate(f"/repos/{REPOSITORY}/pulls")
    assert refused.value.status == 401
    assert ci.rejected == ["bad credentials"]

    with github(ci) as client, pytest.raises(GitHubError) as unknown:
        client.paginate("/repos/someone/else/pulls")
    assert unknown.value.status == 404
    assert ci.pulls == {}


def test_a_dispatch_is_handed_to_the_local_workflow(ci: LocalCI) -> None:
    answer = httpx.post(
        f"{ci.url}/repos/{REPOSITORY}/dispatches",
        json={"event_type": "model-promoted", "client_payload": {"model": "m", "version": "3"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )

    assert answer.status_code == 204
    dispatch = ci.dispatches.get_nowait()
    assert (dispatch.event_type, dispatch.client_payload) == ("model-promoted", {"model": "m", "version": "3"})
