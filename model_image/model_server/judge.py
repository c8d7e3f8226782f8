"""The canary's judge: run each pass query once against Prometheus; pass only if every one returned a sample.

Argo Rollouts runs this as one measurement of its Job metric provider (the measurement passes iff the Job completes
with exit code 0: argoproj/argo-rollouts docs/analysis/job.md), from the model image, so it is standard library only:
the serving image must not grow for it. Each check is a PromQL query with its bound inside it
(`(error_ratio) <= 0.01`): it passes iff the instant query returns at least one sample, and none of them is NaN. An
empty answer (bound not met, no traffic, no such series), an error, a timeout or a result that is not a vector fails
the check; nothing that cannot decide ever passes (docs/decisions/0001-canary-release.md).

In the cluster the pod queries Azure Monitor managed Prometheus under Microsoft Entra workload identity: the
projected service account token is exchanged for an access token (client credentials with a federated assertion),
no secret held. Locally the same command queries a plain Prometheus with no auth.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The resource's application ID URI with `/.default` (client credentials, v2 endpoint); the resource is
# `https://prometheus.monitor.azure.com` (learn.microsoft.com azure-monitor/metrics/prometheus-api-promql "Request a
# token"; scope rule: learn.microsoft.com entra/identity-platform/v2-oauth2-client-creds-grant-flow "scope").
PROMETHEUS_SCOPE = "https://prometheus.monitor.azure.com/.default"
# learn.microsoft.com entra/identity-platform/v2-oauth2-client-creds-grant-flow "Third case ... federated credential".
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# What the Azure Workload Identity webhook injects into a labelled pod whose ServiceAccount is annotated
# (Azure/azure-workload-identity pkg/webhook/consts.go "Environment variables injected in the pod").
CLIENT_ID = "AZURE_CLIENT_ID"
TENANT_ID = "AZURE_TENANT_ID"
TOKEN_FILE = "AZURE_FEDERATED_TOKEN_FILE"
AUTHORITY_HOST = "AZURE_AUTHORITY_HOST"
WORKLOAD_IDENTITY_ENV = (CLIENT_ID, TENANT_ID, TOKEN_FILE, AUTHORITY_HOST)

AUTH_NONE = "none"
AUTH_WORKLOAD_IDENTITY = "workload-identity"
QUERY_PATH = "/api/v1/query"
_ERROR_TEXT_LIMIT = 300


class JudgeUsageError(RuntimeError):
    """The judge cannot run as configured (a missing variable, an unreadable token file); exit 2."""


class QueryError(RuntimeError):
    """One query got no usable answer; the message says what came back instead (never a credential)."""


@dataclass(frozen=True)
class NamedQuery:
    name: str
    query: str


@dataclass(frozen=True)
class Verdict:
    """One check's outcome, printed as one JSON line."""

    check: str
    passed: bool
    samples: int
    value: str | None
    error: str | None

    def as_json(self) -> str:
        document = {
            "check": self.check,
            "passed": self.passed,
            "samples": self.samples,
            "value": self.value,
            "error": self.error,
        }
        return json.dumps(document)


# --- command line --------------------------------------------------------------------------------------------


def named_query(text: str) -> NamedQuery:
    """argparse type of `--check`/`--value`: `NAME=QUERY`, both non-empty (the query may itself hold `=`)."""
    name, sep, query = text.partition("=")
    if not sep or not name.strip() or not query.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=QUERY with a non-empty name and query, got {text!r}")
    return NamedQuery(name.strip(), query.strip())


def positive_seconds(text: str) -> float:
    """argparse type of `--timeout`: a positive number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return seconds


def http_url(text: str) -> str:
    """argparse type of `--prometheus`: an http(s) URL with a host (the API path is added to it)."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected an http(s) URL such as http://127.0.0.1:9090, got {text!r}")
    return text


class NamedQueries(argparse.Action):
    """Appends `NAME=QUERY` pairs and refuses a name given twice, naming the option."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, NamedQuery)  # the option's `type` made it
        given: list[NamedQuery] = list(getattr(namespace, self.dest, None) or [])
        if any(item.name == values.name for item in given):
            raise argparse.ArgumentError(self, f"duplicate name {values.name!r}: each NAME=QUERY needs its own name")
        given.append(values)
        setattr(namespace, self.dest, given)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `judge` subcommand's options."""
    parser.add_argument(
        "--prometheus", required=True, type=http_url, help="the Prometheus base URL (the query endpoint in Azure)"
    )
    parser.add_argument("--auth", choices=(AUTH_NONE, AUTH_WORKLOAD_IDENTITY), default=AUTH_NONE)
    parser.add_argument(
        "--check",
        dest="checks",
        required=True,
        type=named_query,
        action=NamedQueries,
        metavar="NAME=QUERY",
        help="a pass query: the check passes iff it returns at least one sample (repeatable)",
    )
    parser.add_argument(
        "--value",
        dest="values",
        type=named_query,
        action=NamedQueries,
        metavar="NAME=QUERY",
        help="the measured value shown beside check NAME (its first sample); never changes the verdict",
    )
    parser.add_argument("--timeout", type=positive_seconds, default=10.0, help="seconds per HTTP request")


def usage_problems(args: argparse.Namespace) -> list[str]:
    """What the options say that argparse cannot check one by one: every `--value` names a `--check`, and a bearer
    token is never sent in clear text off this host."""
    problems = []
    names = {check.name for check in args.checks}
    for value in args.values or []:
        if value.name not in names:
            problems.append(f"--value {value.name!r}: no --check has that NAME (expected one of {sorted(names)})")
    if args.auth == AUTH_WORKLOAD_IDENTITY and not _https_or_loopback(args.prometheus):
        problems.append(f"--prometheus {args.prometheus!r}: workload identity sends a token; expected an https URL")
    return problems


def run(args: argparse.Namespace) -> int:
    """Runs every check once, prints one JSON line each; 0 iff all passed, 1 if any failed, 2 if it cannot run."""
    problems = usage_problems(args)
    for problem in problems:
        print(f"python -m model_server judge: error: {problem}", file=sys.stderr)
    if problems:
        return 2
    try:
        headers = _auth_headers(args.auth, os.environ, args.timeout)
    except JudgeUsageError as exc:
        print(f"judge: {exc}", file=sys.stderr)
        return 2
    except QueryError as exc:
        # No token, no answer: every check fails, each saying why.
        verdicts = [Verdict(check.name, False, 0, None, str(exc)) for check in args.checks]
    else:
        values = {value.name: value.query for value in args.values or []}
        verdicts = [
            judge(check, values.get(check.name), args.prometheus, headers=headers, timeout=args.timeout)
            for check in args.checks
        ]
    for verdict in verdicts:
        print(verdict.as_json(), flush=True)
    failed = [verdict.check for verdict in verdicts if not verdict.passed]
    if failed:
        print(f"judge: {len(failed)} of {len(verdicts)} checks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# --- querying ------------------------------------------------------------------------------------------------


def judge(
    check: NamedQuery, value_query: str | None, base_url: str, *, headers: Mapping[str, str], timeout: float
) -> Verdict:
    """One check: its verdict from its own query, and the measured value from `value_query` if there is one."""
    value = _first_value(value_query, base_url, headers=headers, timeout=timeout) if value_query else None
    try:
        samples = instant_query(base_url, check.query, headers=headers, timeout=timeout)
    except QueryError as exc:
        return Verdict(check.name, False, 0, value, str(exc))
    if not samples:
        return Verdict(check.name, False, 0, value, "empty answer: no sample met the bound (or no such series)")
    nan = sum(1 for sample in samples if _is_nan(sample))
    if nan:
        return Verdict(check.name, False, len(samples), value, f"{nan} of {len(samples)} samples are NaN")
    return Verdict(check.name, True, len(samples), value, None)


def instant_query(base_url: str, query: str, *, headers: Mapping[str, str], timeout: float) -> list[dict[str, Any]]:
    """The samples of an instant query: `POST /api/v1/query` with form field `query`; the answer must be
    `{"status": "success", "data": {"resultType": "vector", "result": [...]}}`
    (prometheus.io/docs/prometheus/latest/querying/api/ "Instant queries", "Instant vectors")."""
    url = base_url.rstrip("/") + QUERY_PATH
    body = urllib.parse.urlencode({"query": query}).encode()
    document = _post_json(url, body, headers=headers, timeout=timeout, what="Prometheus")
    if document.get("status") != "success":
        raise QueryError(f"Prometheus answered status {document.get('status')!r}: {_api_error(document)}")
    data = document.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        kind = data.get("resultType") if isinstance(data, dict) else None
        raise QueryError(f"expected an instant vector, got result type {kind!r}: write the check as a vector query")
    result = data.get("result")
    if not isinstance(result, list) or not all(isinstance(sample, dict) for sample in result):
        raise QueryError("Prometheus answered a vector without a list of samples")
    return result


def _first_value(query: str, base_url: str, *, headers: Mapping[str, str], timeout: float) -> str | None:
    try:
        samples = instant_query(base_url, query, headers=headers, timeout=timeout)
    except QueryError:
        return None
    # A vector sample is {"metric": {...}, "value": [<unix time>, "<value as a string>"]}.
    pair = samples[0].get("value") if samples else None
    if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str):
        return pair[1]
    return None


def _is_nan(sample: Mapping[str, Any]) -> bool:
    pair = sample.get("value")
    return isinstance(pair, list) and len(pair) == 2 and pair[1] == "NaN"


def _api_error(document: Mapping[str, Any]) -> str:
    # The error envelope: {"status": "error", "errorType": "<string>", "error": "<string>"} (same API page).
    return f"{document.get('errorType', '?')}: {str(document.get('error', ''))[:_ERROR_TEXT_LIMIT]}"


def _post_json(url: str, body: bytes, *, headers: Mapping[str, str], timeout: float, what: str) -> dict[str, Any]:
    # Imported here, not at the top: `python -m model_server serve` builds this parser too, and its start is timed.
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """A redirect is an answer, not a hop: the bearer token must not follow it to another host."""

        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by http_url / _https_or_loopback
        url,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        answer = exc.read().decode("utf-8", "replace")
        raise QueryError(f"{what} answered HTTP {exc.code}: {_describe(answer)}") from None
    except urllib.error.URLError as exc:
        raise QueryError(f"{what} unreachable at {url}: {exc.reason}") from None
    except (TimeoutError, OSError) as exc:
        raise QueryError(f"{what} at {url}: {type(exc).__name__}: {exc or 'timed out'}") from None
    try:
        document = json.loads(text)
    except ValueError:
        raise QueryError(f"{what} answered something that is not JSON: {text[:_ERROR_TEXT_LIMIT]!r}") from None
    if not isinstance(document, dict):
        raise QueryError(f"{what} answered JSON that is not an object: {text[:_ERROR_TEXT_LIMIT]!r}")
    return document


def _describe(answer: str) -> str:
    """An error body in a line: Prometheus' error envelope or Entra's `error`/`error_description`, else its text."""
    try:
        document = json.loads(answer)
    except ValueError:
        return answer[:_ERROR_TEXT_LIMIT]
    if isinstance(document, dict) and "errorType" in document:
        return _api_error(document)
    if isinstance(document, dict) and "error" in document:
        description = str(document.get("error_description", ""))[:_ERROR_TEXT_LIMIT]
        return f"{document['error']}: {description}"
    return answer[:_ERROR_TEXT_LIMIT]


# --- workload identity ---------------------------------------------------------------------------------------


def _auth_headers(auth: str, environ: Mapping[str, str], timeout: float) -> dict[str, str]:
    if auth == AUTH_NONE:
        return {}
    token = workload_identity_token(environ, timeout=timeout)
    return {"Authorization": f"Bearer {token}"}


def workload_identity_token(environ: Mapping[str, str], *, timeout: float) -> str:
    """An Entra access token for Azure Monitor's Prometheus, from the pod's federated service account token.

    The client credentials grant with the token file's contents as `client_assertion`, the request Azure's own
    WorkloadIdentityCredential sends (azure-sdk-for-python sdk/identity/azure-identity/azure/identity/_credentials/
    workload_identity.py, client_assertion.py; _internal/aad_client_base.py `_get_jwt_assertion_request`).
    """
    missing = [name for name in WORKLOAD_IDENTITY_ENV if not environ.get(name)]
    if missing:
        raise JudgeUsageError(
            f"--auth {AUTH_WORKLOAD_IDENTITY}: {', '.join(missing)} not set (the workload identity webhook sets "
            "them in a pod labelled azure.workload.identity/use=true whose ServiceAccount has the client-id annotation)"
        )
    authority = environ[AUTHORITY_HOST]
    if not _https_or_loopback(authority):
        raise JudgeUsageError(f"{AUTHORITY_HOST}={authority!r}: expected an https URL")
    # The kubelet rotates the projected token: read it at each token request, never keep it
    # (azure-identity workload_identity.py reads the file again at most ten minutes after the last read).
    try:
        with open(environ[TOKEN_FILE], encoding="utf-8") as file:
            assertion = file.read().strip()
    except OSError as exc:
        raise JudgeUsageError(f"{TOKEN_FILE}: cannot read {environ[TOKEN_FILE]!r}: {exc.strerror}") from None
    if not assertion:
        raise JudgeUsageError(f"{TOKEN_FILE}: {environ[TOKEN_FILE]!r} is empty")
    # The webhook sets the host with a trailing slash ("https://login.microsoftonline.com/": go-autorest's
    # ActiveDirectoryEndpoint, Azure/azure-workload-identity pkg/webhook/webhook.go getAzureAuthorityHost).
    return federated_token(
        authority, environ[TENANT_ID], environ[CLIENT_ID], PROMETHEUS_SCOPE, assertion, timeout=timeout
    ).access_token


@dataclass(frozen=True)
class EntraToken:
    """An Entra access token and how long it lives, as the token endpoint answered."""

    access_token: str
    expires_in: int | None
    """Seconds the token is valid for, from the answer's `expires_in` (None if the answer had none)."""


def federated_token(
    authority: str, tenant_id: str, client_id: str, scope: str, assertion: str, *, timeout: float
) -> EntraToken:
    """An Entra access token for `scope`, for the app `client_id`, from a federated `assertion` (a JWT its
    federated credential trusts: a pod's projected service account token, a GitHub Actions OIDC token).

    The client credentials grant with the assertion as `client_assertion` (learn.microsoft.com entra/identity-platform/
    v2-oauth2-client-creds-grant-flow, "Third case: Access token request with a federated credential"), the request
    Azure's own WorkloadIdentityCredential sends (azure-identity _internal/aad_client_base.py
    `_get_jwt_assertion_request`). Raises QueryError, never quoting the assertion.
    """
    if not _https_or_loopback(authority):
        raise QueryError(f"the Entra authority {authority!r} is not an https URL")
    url = f"{authority.rstrip('/')}/{urllib.parse.quote(tenant_id, safe='')}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "scope": scope,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }
    body = urllib.parse.urlencode(form).encode()
    try:
        document = _post_json(url, body, headers={}, timeout=timeout, what="the Entra token endpoint")
    except QueryError as exc:
        raise QueryError(_scrubbed(f"no access token: {exc}", assertion)) from None
    token = document.get("access_token")
    if not isinstance(token, str) or not token:
        raise QueryError("no access token: the Entra token endpoint answered without access_token")
    # "Successful response": `expires_in`, how long the access token is valid, in seconds (same page).
    expires_in = document.get("expires_in")
    lifetime = expires_in if isinstance(expires_in, int) and not isinstance(expires_in, bool) else None
    return EntraToken(token, lifetime)


def _scrubbed(message: str, secret: str) -> str:
    # An error echoed back must not carry the assertion into the Job's log.
    return message.replace(secret, "[redacted]")


def _https_or_loopback(url: str) -> bool:
    """True for https, and for http to this host only (the local stand-ins); a token never crosses a network
    in clear text."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False
