"""`release.github`: headers, pagination, and one distinct message per kind of failure, against a local server."""

from __future__ import annotations

import pytest

from release.github import GitHub, GitHubError
from tests.release.ghfake import FakeGitHub


def client(fake: FakeGitHub, token: str = "test-token") -> GitHub:
    return GitHub(token, fake.repository, fake.url, retries=2, backoff=0.0)


def test_sends_token_and_api_version(github: FakeGitHub) -> None:
    with GitHub.from_env() as gh:
        gh.request("GET", f"/repos/{github.repository}/pulls")
    sent = github.requests[-1]
    assert sent.headers["authorization"] == "Bearer test-token"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    assert sent.headers["accept"] == "application/vnd.github+json"


def test_paginates_through_link_headers(github: FakeGitHub) -> None:
    github.page_size = 2
    for i in range(5):
        github.add_comment(7, f"comment {i}")
    with client(github) as gh:
        comments = gh.paginate(f"/repos/{github.repository}/issues/7/comments")
    assert [c["body"] for c in comments] == [f"comment {i}" for i in range(5)]
    assert len(github.calls("GET", "/issues/7/comments")) == 3


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (401, {}, "GitHub rejected the token (401"),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000000"}, "rate limit exhausted (403)"),
        (403, {}, "forbidden (403 failure); the token lacks a permission"),
        (404, {}, "not found (404 failure); wrong repository or number"),
        (422, {}, "refused the request as invalid (422 failure)"),
    ],
)
def test_client_errors_have_distinct_messages_and_are_not_retried(
    github: FakeGitHub, status: int, headers: dict[str, str], expected: str
) -> None:
    github.fail_next(status, headers=headers)
    with client(github) as gh, pytest.raises(GitHubError) as raised:
        gh.request("GET", f"/repos/{github.repository}/pulls/1", what="reading #1")
    assert raised.value.status == status
    assert str(raised.value).startswith("reading #1: ")
    assert expected in str(raised.value)
    assert len(github.requests) == 1


def test_server_errors_are_retried_on_idempotent_calls_only(github: FakeGitHub) -> None:
    github.add_pull("b", "main")
    for _ in range(2):
        github.fail_next(502, "Bad Gateway")
    with client(github) as gh:
        pull = gh.request("GET", f"/repos/{github.repository}/pulls/1")
        assert pull["number"] == 1
        assert len(github.requests) == 3

        github.fail_next(503, "Unavailable")
        with pytest.raises(GitHubError) as raised:
            gh.request("POST", f"/repos/{github.repository}/issues/1/comments", json={"body": "x"})
    assert "GitHub server error (503 Unavailable)" in str(raised.value)
    assert len(github.calls("POST")) == 1
    assert github.comments == {}


def test_a_wrong_token_gets_the_401_message(github: FakeGitHub) -> None:
    with client(github, token="wrong") as gh, pytest.raises(GitHubError, match="rejected the token"):
        gh.request("GET", f"/repos/{github.repository}/pulls")


def test_unreachable_api_and_missing_settings() -> None:
    with GitHub("t", "o/r", "http://127.0.0.1:9", retries=0) as gh, pytest.raises(GitHubError, match="cannot reach"):
        gh.request("GET", "/repos/o/r/pulls")
    with pytest.raises(GitHubError, match="no GitHub token"):
        GitHub.from_env({"GITHUB_REPOSITORY": "o/r"})
    with pytest.raises(GitHubError, match="must be <owner>/<name>"):
        GitHub.from_env({"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "nonsense"})


def test_pagination_never_follows_another_host(github: FakeGitHub) -> None:
    github.page_size = 1
    for i in range(2):
        github.add_comment(3, f"c{i}")
    real_url = github.url
    github.url = "http://evil.test"  # the fake now advertises its next page on another host
    with GitHub("test-token", github.repository, real_url) as gh, pytest.raises(GitHubError, match="another host"):
        gh.paginate(f"/repos/{github.repository}/issues/3/comments")
