"""Dispatch targets: GitHub `repository_dispatch` and an Azure DevOps pipeline run.

Every way a call can fail becomes a `DispatchError` with a distinct `kind` (logged as `error_kind`) and whether
trying again can help. Retryable: timeouts, connection errors, 5xx, 429 and GitHub's rate-limit 403. Not retryable:
401 (bad or expired token), 403, 404 (wrong repository/pipeline, or a token that cannot see it), 400/422 (the
request itself is wrong, e.g. variables not settable at queue time) and Azure DevOps' 203 sign-in page.
"""

from __future__ import annotations

import base64
import email.utils
import enum
import time
from typing import Protocol

import httpx

from webhook_listener.logs import redact
from webhook_listener.schemas import DriftAlert, QueuedEvent
from webhook_listener.settings import DispatchTarget, ListenerSettings

GITHUB_API_VERSION = "2022-11-28"
AZURE_DEVOPS_API_VERSION = "7.1"
MAX_BODY_IN_ERROR = 300


class ErrorKind(enum.StrEnum):
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    UNPROCESSABLE = "unprocessable"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection_error"
    UNEXPECTED = "unexpected_response"


RETRYABLE = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.SERVER_ERROR, ErrorKind.TIMEOUT, ErrorKind.CONNECTION})


_STATUS_KINDS = {
    401: ErrorKind.UNAUTHORIZED,
    404: ErrorKind.NOT_FOUND,
    422: ErrorKind.UNPROCESSABLE,
    429: ErrorKind.RATE_LIMITED,
}


class DispatchError(Exception):
    def __init__(
        self, kind: ErrorKind, detail: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


class Dispatcher(Protocol):
    target: str

    async def dispatch(self, promotion: QueuedEvent) -> None:
        """Start the release for `promotion`; raise `DispatchError` when CI did not accept it."""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        reset = response.headers.get("x-ratelimit-reset")
        if reset is not None and reset.isdigit():
            return max(0.0, int(reset) - time.time())
        return None
    if value.strip().isdigit():
        return float(value.strip())
    parsed = email.utils.parsedate_to_datetime(value) if value else None
    return max(0.0, parsed.timestamp() - time.time()) if parsed is not None else None


def _classify(response: httpx.Response) -> DispatchError:
    status = response.status_code
    # The body goes into logs and the poison message: scrub it in case the API echoes a credential back.
    body = redact(response.text[: MAX_BODY_IN_ERROR * 10])[:MAX_BODY_IN_ERROR].replace("\n", " ")
    detail = f"HTTP {status} from {response.request.method} {response.request.url.path}: {body}"
    if status in _STATUS_KINDS:
        kind = _STATUS_KINDS[status]
    elif status == 403:
        # GitHub signals its secondary rate limits with 403 plus Retry-After or an exhausted quota.
        limited = response.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in response.headers
        kind = ErrorKind.RATE_LIMITED if limited else ErrorKind.FORBIDDEN
    elif status >= 500:
        kind = ErrorKind.SERVER_ERROR
    elif status >= 400:
        kind = ErrorKind.BAD_REQUEST
    else:
        kind = ErrorKind.UNEXPECTED
    retry_after = _retry_after(response) if kind in RETRYABLE else None
    return DispatchError(kind, detail, status=status, retry_after=retry_after)


async def _post(client: httpx.AsyncClient, url: str, body: object, headers: dict[str, str]) -> httpx.Response:
    try:
        return await client.post(url, json=body, headers=headers)
    except httpx.TimeoutException as exc:
        raise DispatchError(ErrorKind.TIMEOUT, f"{type(exc).__name__} calling {httpx.URL(url).path}") from None
    except httpx.TransportError as exc:
        raise DispatchError(ErrorKind.CONNECTION, f"{type(exc).__name__} calling {httpx.URL(url).path}") from None


class GitHubDispatcher:
    """`POST {api}/repos/{owner}/{repo}/dispatches`; GitHub answers 204."""

    target = "github"

    def __init__(self, client: httpx.AsyncClient, settings: ListenerSettings) -> None:
        assert settings.github_repository is not None
        assert settings.github_token is not None
        self._client = client
        self._url = f"{settings.github_api_url}/repos/{settings.github_repository}/dispatches"
        self._event_type = settings.github_event_type
        self._drift_event_type = settings.github_drift_event_type
        self._headers = {
            "Authorization": f"Bearer {settings.github_token.get_secret_value()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
        }

    async def dispatch(self, promotion: QueuedEvent) -> None:
        event_type = self._drift_event_type if isinstance(promotion, DriftAlert) else self._event_type
        body = {"event_type": event_type, "client_payload": promotion.client_payload()}
        response = await _post(self._client, self._url, body, self._headers)
        if not 200 <= response.status_code < 300:
            raise _classify(response)


class AzureDevOpsDispatcher:
    """`POST {org}/{project}/_apis/pipelines/{id}/runs?api-version=7.1` with Basic auth (PAT); answers 200.

    An invalid PAT can also come back as 203 with an HTML sign-in page: that is a failure, not a success.
    """

    target = "azure-devops"

    def __init__(self, client: httpx.AsyncClient, settings: ListenerSettings) -> None:
        assert settings.azure_devops_org_url is not None
        assert settings.azure_devops_token is not None
        self._client = client
        self._url = self._runs_url(settings, settings.azure_devops_pipeline_id)
        self._drift_url = (
            self._runs_url(settings, settings.azure_devops_drift_pipeline_id)
            if settings.azure_devops_drift_pipeline_id is not None
            else None
        )
        basic = base64.b64encode(f":{settings.azure_devops_token.get_secret_value()}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}

    @staticmethod
    def _runs_url(settings: ListenerSettings, pipeline_id: int | None) -> str:
        return (
            f"{settings.azure_devops_org_url}/{settings.azure_devops_project}"
            f"/_apis/pipelines/{pipeline_id}/runs?api-version={AZURE_DEVOPS_API_VERSION}"
        )

    async def dispatch(self, promotion: QueuedEvent) -> None:
        url = self._url
        if isinstance(promotion, DriftAlert):
            if self._drift_url is None:  # the routes ignore drift alerts then; a queued one is a leftover
                raise DispatchError(
                    ErrorKind.BAD_REQUEST, "no LISTENER_AZURE_DEVOPS_DRIFT_PIPELINE_ID for drift alerts"
                )
            url = self._drift_url
        variables = {name: {"value": value or ""} for name, value in promotion.client_payload().items()}
        response = await _post(self._client, url, {"variables": variables}, self._headers)
        if response.status_code == 203:
            raise DispatchError(ErrorKind.UNAUTHORIZED, "HTTP 203 (sign-in page): the PAT was not accepted", status=203)
        if not 200 <= response.status_code < 300:
            raise _classify(response)


def build_dispatcher(settings: ListenerSettings, client: httpx.AsyncClient) -> Dispatcher:
    if settings.dispatch_target is DispatchTarget.GITHUB:
        return GitHubDispatcher(client, settings)
    return AzureDevOpsDispatcher(client, settings)


def build_http_client(settings: ListenerSettings) -> httpx.AsyncClient:
    # No redirects: a token must not follow a redirect to another host. No proxies from the environment either.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.dispatch_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": "mlflow-promotion-listener"},
    )
