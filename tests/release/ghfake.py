"""A recording stand-in for the GitHub REST API, on 127.0.0.1: the endpoints the release commands call.

It keeps state (pull requests, comments) like GitHub does, records every request (method, path, query, headers,
JSON body), and can be told to fail the next calls with a given status.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.release.jsonapi import JsonApiServer


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    """State and recordings; `url` is the API base URL to put in GITHUB_API_URL."""

    repository: str = "acme-ml/mlops-serving"
    bot_login: str = "github-actions[bot]"
    requests: list[Recorded] = field(default_factory=list)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    page_size: int | None = None
    # The repository's immutable ids and whether its OIDC subjects carry them (the default for a repository created
    # or renamed on or after 2026-07-15: GitHub changelog 2026-04-23, "Immutable subject claims for GitHub Actions
    # OIDC tokens"; github/docs#45221).
    owner_id: int = 1234567
    repo_id: int = 890123456
    immutable_subjects: bool = True
    url: str = ""
    _next_id: int = 100
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, message: str = "failure", headers: dict[str, str] | None = None) -> None:
        self.failures.append((status, {"message": message}, headers or {}))

    def calls(self, method: str | None = None, path_suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and r.path.endswith(path_suffix)]

    def add_comment(self, pr: int, body: str, user: str = "octocat", user_type: str = "User") -> int:
        with self._lock:
            self._next_id += 1
            cid = self._next_id
            self.comments[cid] = {
                "id": cid,
                "pr": pr,
                "body": body,
                "user": {"login": user, "type": user_type},
                "html_url": f"https://github.test/{self.repository}/pull/{pr}#issuecomment-{cid}",
            }
        return cid

    def add_pull(self, head: str, base: str, title: str = "t", body: str = "", head_sha: str = "0" * 40) -> int:
        with self._lock:
            number = len(self.pulls) + 1
            self.pulls[number] = {
                "number": number,
                "title": title,
                "body": body,
                "state": "open",
                "merged_at": None,
                "head": {"ref": head, "sha": head_sha, "label": f"{self.repository.split('/')[0]}:{head}"},
                "base": {"ref": base},
                "html_url": f"https://github.test/{self.repository}/pull/{number}",
            }
        return number

    def merge(self, number: int, at: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
        """What merging in the web UI leaves on the pull request: closed, with `merged_at` set."""
        with self._lock:
            pull = self.pulls[number]
            pull.update({"state": "closed", "merged_at": at})
        return pull

    def close(self, number: int) -> dict[str, Any]:
        """A reviewer closes the pull request without merging it."""
        with self._lock:
            self.pulls[number]["state"] = "closed"
        return self.pulls[number]

    def open_pulls(self) -> list[dict[str, Any]]:
        return [p for p in self.pulls.values() if p["state"] == "open"]

    def subject_prefix(self) -> str:
        owner, name = self.repository.split("/")
        if self.immutable_subjects:
            return f"repo:{owner}@{self.owner_id}/{name}@{self.repo_id}"
        return f"repo:{owner}/{name}"

    def oidc_subject(self, context: str) -> str:
        """The `sub` of the OIDC token a job gets: the prefix, then `environment:<name>` for a job naming an
        environment, `pull_request` for a pull-request job (GitHub docs, "OpenID Connect reference")."""
        return f"{self.subject_prefix()}:{context}"

    @staticmethod
    def issues_oidc_token(*, actor: str, event: str, from_fork: bool, id_token_write: bool) -> bool:
        """Whether a job gets an OIDC token at all. A fork's pull request gets at most `read` for every permission,
        `id-token` included (GitHub docs, "Automatic token authentication", permissions for the GITHUB_TOKEN), and
        Dependabot's `pull_request` and `push` runs are treated as a fork's (GitHub docs, "Troubleshooting
        Dependabot on GitHub Actions", "Restrictions when Dependabot triggers events")."""
        dependabot = actor == "dependabot[bot]" and event in ("pull_request", "push", "pull_request_review")
        return id_token_write and not from_fork and not dependabot

    # --- request handling ---------------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(Recorded(method, parts.path, query, headers, body))
            if self.failures:
                return self.failures.pop(0)
        if headers.get("authorization") != "Bearer test-token":
            return 401, {"message": "Bad credentials"}, {}
        prefix = f"/repos/{self.repository}"
        if not parts.path.startswith(prefix):
            return 404, {"message": "Not Found"}, {}
        route = parts.path[len(prefix) :]
        segments = route.strip("/").split("/")
        return self._route(method, segments, query, body)

    def _route(self, method: str, seg: list[str], query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        match (method, seg):
            # The repository's subject template and prefix (the answer azd reads, Azure/azure-dev#9430).
            case ("GET", ["actions", "oidc", "customization", "sub"]):
                answer = {"use_default": True, "use_immutable_subject": self.immutable_subjects}
                return 200, answer | {"sub_claim_prefix": self.subject_prefix()}, {}
            case ("GET", ["pulls"]):
                found = [
                    p
                    for p in self.pulls.values()
                    if (query.get("state", "open") in ("all", p["state"]))
                    and ("head" not in query or query["head"] == p["head"]["label"])
                ]
                return self._page(found, query)
            case ("POST", ["pulls"]):
                owner = self.repository.split("/")[0]
                label = f"{owner}:{body['head']}"
                if any(p["head"]["label"] == label and p["state"] == "open" for p in self.pulls.values()):
                    return (
                        422,
                        {"message": "Validation Failed", "errors": [{"message": "A pull request already exists"}]},
                        {},
                    )
                number = self.add_pull(body["head"], body["base"], body["title"], body.get("body", ""))
                return 201, self.pulls[number], {}
            case ("GET", ["pulls", number]) if int(number) in self.pulls:
                return 200, self.pulls[int(number)], {}
            case ("PATCH", ["pulls", number]) if int(number) in self.pulls:
                self.pulls[int(number)].update({k: body[k] for k in ("title", "body", "state") if k in body})
                return 200, self.pulls[int(number)], {}
            # Issues and pull requests share one number sequence, and listing issues lists pull requests too (marked
            # by a `pull_request` key): https://docs.github.com/en/rest/issues/issues#list-repository-issues
            case ("GET", ["issues"]):
                listed = [*self.issues.values(), *({**p, "pull_request": {}} for p in self.pulls.values())]
                found = [i for i in listed if query.get("state", "open") in ("all", i["state"])]
                return self._page(sorted(found, key=lambda i: -i["number"]), query)
            case ("POST", ["issues"]):
                with self._lock:
                    number = max([0, *self.pulls, *self.issues]) + 1
                    self.issues[number] = {
                        "number": number,
                        "title": body["title"],
                        "body": body.get("body", ""),
                        "labels": [{"name": name} for name in body.get("labels", [])],
                        "state": "open",
                        "html_url": f"https://github.test/{self.repository}/issues/{number}",
                    }
                return 201, self.issues[number], {}
            case ("GET", ["issues", number, "comments"]):
                found = [c for c in self.comments.values() if c["pr"] == int(number)]
                return self._page(found, query)
            case ("POST", ["issues", number, "comments"]):
                cid = self.add_comment(int(number), body["body"], self.bot_login, "Bot")
                return 201, self.comments[cid], {}
            case ("PATCH", ["issues", "comments", cid]) if int(cid) in self.comments:
                comment = self.comments[int(cid)]
                if comment["user"]["type"] != "Bot":
                    return 403, {"message": "Resource not accessible by integration"}, {}
                comment["body"] = body["body"]
                return 200, comment, {}
        return 404, {"message": "Not Found"}, {}

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        size = self.page_size or int(query.get("per_page", "30"))
        page = int(query.get("page", "1"))
        headers = {}
        if page * size < len(items):
            params = urlencode(dict(query, page=str(page + 1)))
            headers["Link"] = f'<{self.url}{self.requests[-1].path}?{params}>; rel="next"'
        return 200, items[(page - 1) * size : page * size], headers


@dataclass
class ConcurrencyGroup:
    """GitHub Actions' scheduling of the runs (or jobs) of one concurrency group.

    At most one runs. With `queue: single` (the default) at most one waits: a newer run cancels the pending one and
    takes its place; with `queue: max` up to 100 wait, in arrival order, and a run finding the queue full is
    cancelled; `cancel-in-progress: true` also cancels the running one, and is refused with `queue: max` (GitHub
    docs, "Control the concurrency of workflows and jobs"; changelog 2026-05-07 "GitHub Actions concurrency groups
    now allow larger queues").
    """

    queue: str = "single"
    cancel_in_progress: bool = False
    running: str | None = None
    pending: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)

    MAX_PENDING = 100

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> ConcurrencyGroup:
        queue = settings.get("queue", "single")
        cancel = settings.get("cancel-in-progress", False)
        if queue not in ("single", "max"):
            raise ValueError(f"concurrency.queue: expected single or max, got {queue!r}")
        if queue == "max" and cancel is True:
            raise ValueError("concurrency: queue: max cannot be combined with cancel-in-progress: true")
        return cls(queue=queue, cancel_in_progress=cancel is True)

    def arrive(self, run: str) -> None:
        if self.running is not None and self.cancel_in_progress:
            self.cancelled.append(self.running)
            self.running = None
        if self.running is None:
            self.running = run
            self.ran.append(run)
        elif self.queue == "single":
            self.cancelled.extend(self.pending)
            self.pending = [run]
        elif len(self.pending) >= self.MAX_PENDING:
            self.cancelled.append(run)
        else:
            self.pending.append(run)

    def finish(self) -> None:
        """The running one completes; the oldest pending starts."""
        self.running = self.pending.pop(0) if self.pending else None
        if self.running is not None:
            self.ran.append(self.running)


def GitHubServer(fake: FakeGitHub | None = None) -> JsonApiServer[FakeGitHub]:
    """Runs a FakeGitHub on 127.0.0.1 in a thread."""
    return JsonApiServer(fake or FakeGitHub(), "fake-github")
