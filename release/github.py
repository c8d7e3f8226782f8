"""A small GitHub REST client: base URL and token from the Actions environment, one message per kind of failure."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx

API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
_RETRIED_METHODS = frozenset({"GET", "PATCH", "PUT", "DELETE"})
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubError(RuntimeError):
    """A GitHub API call failed; the message says what to check. `status` is 0 when no response came back."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if not isinstance(body, dict):
        return ""
    text = str(body.get("message", ""))
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts = [str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e) for e in errors]
        text += f" ({'; '.join(parts)})"
    return text


def explain(response: httpx.Response, what: str) -> GitHubError:
    """The error for a failed response, in words that say what to fix."""
    status = response.status_code
    detail = _detail(response)
    if status == 401:
        message = f"{what}: GitHub rejected the token (401 {detail}); is GITHUB_TOKEN set, valid and unexpired?"
    elif status == 403 and response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "?")
        message = f"{what}: GitHub API rate limit exhausted (403); it resets at epoch {reset}"
    elif status == 403:
        message = (
            f"{what}: forbidden (403 {detail}); the token lacks a permission this needs "
            "(the workflow's `permissions:` block: contents/pull-requests: write)"
        )
    elif status == 404:
        message = (
            f"{what}: not found (404 {detail}); wrong repository or number, or the token cannot see the repository"
        )
    elif status == 422:
        message = f"{what}: GitHub refused the request as invalid (422 {detail})"
    elif status >= 500:
        message = f"{what}: GitHub server error ({status} {detail}); a GitHub-side fault, try again later"
    else:
        message = f"{what}: unexpected HTTP {status} ({detail})"
    return GitHubError(message, status)


class GitHub:
    """Calls `{api_url}/...` with a bearer token; no redirects are followed, so the token never leaves the host."""

    def __init__(
        self,
        token: str,
        repository: str,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise GitHubError("no GitHub token: set GITHUB_TOKEN (the workflow passes secrets.GITHUB_TOKEN)")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
            raise GitHubError(f"GITHUB_REPOSITORY must be <owner>/<name>, got {repository!r}")
        self.repository = repository
        self.api_url = api_url.rstrip("/")
        self._retries = retries
        self._backoff = backoff
        self._client = httpx.Client(
            base_url=self.api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "mlops-serving-release",
            },
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=transport,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GitHub:
        """GITHUB_TOKEN, GITHUB_REPOSITORY and GITHUB_API_URL, as GitHub Actions sets them (token passed in)."""
        env = os.environ if env is None else env
        return cls(
            token=env.get("GITHUB_TOKEN", ""),
            repository=env.get("GITHUB_REPOSITORY", ""),
            api_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL,
        )

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GitHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        what: str | None = None,
    ) -> Any:
        """One call; returns the decoded JSON body (None for 204). Server errors on idempotent calls are retried."""
        response = self._send(method, path, json=json, params=params, what=what)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def paginate(
        self, path: str, params: Mapping[str, str | int] | None = None, *, what: str | None = None
    ) -> list[Any]:
        """Every item of a list endpoint, following `Link: rel="next"`."""
        items: list[Any] = []
        url: str | None = path
        query: Mapping[str, str | int] | None = {"per_page": 100, **(params or {})}
        while url is not None:
            response = self._send("GET", url, params=query, what=what)
            page = response.json()
            if not isinstance(page, list):
                raise GitHubError(f"{what or url}: expected a list from GitHub, got {type(page).__name__}")
            items.extend(page)
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            url, query = (self._same_host(match.group(1)), None) if match else (None, None)
        return items

    def _same_host(self, url: str) -> str:
        if not url.startswith(self.api_url + "/"):
            raise GitHubError(f"GitHub pagination pointed to another host ({url}); refusing to send the token there")
        return url[len(self.api_url) :]

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        what: str | None = None,
    ) -> httpx.Response:
        label = what or f"{method} {path}"
        attempts = 1 + (self._retries if method in _RETRIED_METHODS else 0)
        for attempt in range(attempts):
            try:
                response = self._client.request(method, path, json=json, params=params)
            except httpx.TimeoutException as exc:
                error = GitHubError(f"{label}: GitHub did not answer in time ({type(exc).__name__})")
            except httpx.TransportError as exc:
                error = GitHubError(f"{label}: cannot reach {self.api_url} ({type(exc).__name__}: {exc})")
            else:
                if response.is_success:
                    return response
                error = explain(response, label)
                if response.status_code < 500:
                    raise error
            if attempt + 1 < attempts:
                time.sleep(self._backoff * (attempt + 1))
        raise error
