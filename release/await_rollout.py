"""Waits for the canary release the last `pulumi up` applied to end, and reports how it ended.

    python -m release.await_rollout --rollout '{"namespace": "wine-quality", "name": "wine-quality"}' \\
        --kubeconfig-env AKS_KUBECONFIG --auth github-oidc --timeout 3000

`pulumi up` cannot wait for an update's outcome itself (docs/decisions/0001-canary-release.md), so the deploy
workflow runs this right after it. It polls the model's Rollout through the Kubernetes API and reads its state the
way Argo Rollouts v1.9.0's own client does (`kubectl argo rollouts status`): a status the controller wrote before
it saw the update does not count, Healthy for the new pod hash is promoted, an abort (or Degraded) is aborted.

Exit codes: 0 promoted, or nothing to wait for (`--rollout ''`: no model is pinned yet, day zero; it says so);
3 aborted (the controller already sent all traffic back to the stable version); 1 timeout or error (a timeout
aborts nothing: the controller carries on with the release by itself; after an error `outcome` is empty and
`reason` says why); 2 bad input.

It writes markdown to `$GITHUB_STEP_SUMMARY` (or `--summary FILE`): the outcome, the steps reached, each
AnalysisRun of the canary with each metric's measurements, and for a failed check its name and measured value from
the judge's log (`python -m model_server judge` prints one JSON line per check). It writes `$GITHUB_OUTPUT` (or
`--outputs FILE`): `outcome` (promoted|aborted|none|timeout), `failed-check`, `failed-value`, `reason` (one line)
and `canary-hash`.

Credentials: the API server's URL and CA come from a kubeconfig (the stack output `kubeconfig`, AKS's exec-format
one: its user part is ignored), from a file or an environment variable, never printed. The bearer token is an Entra
access token for the AKS server application: in GitHub Actions (`--auth github-oidc`) a fresh GitHub OIDC token
exchanged at Entra as the deploy app's (ARM_TENANT_ID, ARM_CLIENT_ID) client assertion; on a laptop
(`--auth azure-cli`) `az account get-access-token`. It is fetched again before it expires; it is never logged.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from components.azure_facts import AKS_AAD_SERVER_APP_ID
from model_server.judge import QueryError, federated_token, positive_seconds
from release.oidc_subjects import AUDIENCE
from release.record_deployment import one_line

EXIT_PROMOTED = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3

OUTCOME_PROMOTED = "promoted"
OUTCOME_ABORTED = "aborted"
OUTCOME_NONE = "none"
OUTCOME_TIMEOUT = "timeout"

AUTH_GITHUB_OIDC = "github-oidc"
AUTH_AZURE_CLI = "azure-cli"
# An Entra token for the AKS server application's `/.default` scope is what an AKS-managed Entra API server accepts
# (kubelogin's `--server-id`, learn.microsoft.com/azure/aks/kubelogin-authentication).
AKS_SCOPE = f"{AKS_AAD_SERVER_APP_ID}/.default"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
# Fetch a new token when the one in hand has less than this left: a poll, its retries and the analysis reads fit.
REFRESH_MARGIN_SECONDS = 300
# `az account get-access-token`: the token is "valid for at least 5 minutes with the maximum at 60 minutes"
# (`az account get-access-token --help`); without an `expires_on` in the answer, assume the least.
AZ_CLI_MIN_LIFETIME_SECONDS = 300

ROLLOUTS_API = "/apis/argoproj.io/v1alpha1"
# The label Argo puts on every ReplicaSet, pod and AnalysisRun of one pod template (argo-rollouts
# pkg/apis/rollouts/v1alpha1/types.go DefaultRolloutUniqueLabelKey; utils/analysis/factory.go BackgroundLabels).
POD_HASH_LABEL = "rollouts-pod-template-hash"
# The Job provider records its Job's name and namespace in the measurement's metadata (argo-rollouts
# metricproviders/job/job.go JobNameKey, JobNamespaceKey).
JOB_NAME_KEY = "job-name"
JOB_NAMESPACE_KEY = "job-namespace"
# The Job controller labels each Job's pods with the Job's name (kubernetes.io/docs/concepts/workloads/controllers/
# job, "Job labels": batch.kubernetes.io/job-name).
JOB_POD_LABEL = "batch.kubernetes.io/job-name"
# The judge's container in each check's Job (components/model_canary.py build_analysis_template).
JUDGE_CONTAINER = "judge"
_REASON_LIMIT = 400
# Polls in a row that may fail with a transient error before the wait gives up.
TRANSIENT_FAILURES_ALLOWED = 5
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class UsageError(ValueError):
    """Bad input: exit 2, naming the option and what it expects."""


class WaitError(RuntimeError):
    """The wait cannot go on (no API server, refused token, Rollout gone): exit 1, with what to do."""


class TransientError(WaitError):
    """An answer worth asking again (a 5xx or 429, a dropped connection): the poll tolerates a few in a row."""


# --- credentials ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float


class TokenSource:
    """One bearer token at a time, fetched again once it nears its expiry or when the API server refuses it."""

    def __init__(self, fetch: Callable[[], Token], clock: Callable[[], float]) -> None:
        self._fetch, self._clock = fetch, clock
        self._token: Token | None = None

    def bearer(self, *, renew: bool = False) -> str:
        if renew or self._token is None or self._token.expires_at - self._clock() < REFRESH_MARGIN_SECONDS:
            self._token = self._fetch()
        return self._token.value


def github_oidc_token(environ: Mapping[str, str], authority: str, clock: Callable[[], float], timeout: float) -> Token:
    """An Entra token for the AKS API server, for the deploy app, from a GitHub OIDC token fetched just now.

    Each exchange gets its own GitHub token: they are short-lived (docs.github.com "About security hardening with
    OpenID Connect": "short-lived"), so one is never kept for a later exchange. The request is actions/toolkit's
    `getIDToken` (packages/core/src/oidc-utils.ts: the URL with `&audience=`, the request token as a bearer, the
    JWT in `value`). The Entra token lives 60-90 minutes (learn.microsoft.com/entra/identity-platform/access-tokens,
    "Token lifetime"); its answer's `expires_in` says exactly how long.
    """
    names = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ARM_TENANT_ID", "ARM_CLIENT_ID")
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise WaitError(
            f"--auth {AUTH_GITHUB_OIDC}: {', '.join(missing)} not set (a GitHub Actions job with `id-token: write` "
            "sets the first two; the deploy job's env sets ARM_TENANT_ID and ARM_CLIENT_ID)"
        )
    url = f"{environ['ACTIONS_ID_TOKEN_REQUEST_URL']}&audience={urllib.parse.quote(AUDIENCE, safe='')}"
    try:
        response = httpx.get(
            url, headers={"Authorization": f"Bearer {environ['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"}, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise WaitError(f"GitHub's OIDC token endpoint: {type(exc).__name__}") from None
    try:
        answer = response.json() if response.status_code == 200 else None
    except ValueError:
        answer = None
    assertion = answer.get("value") if isinstance(answer, dict) else None
    if not isinstance(assertion, str) or not assertion:
        raise WaitError(f"GitHub's OIDC token endpoint answered HTTP {response.status_code} without a token")
    started = clock()
    try:
        entra = federated_token(
            authority, environ["ARM_TENANT_ID"], environ["ARM_CLIENT_ID"], AKS_SCOPE, assertion, timeout=timeout
        )
    except QueryError as exc:
        raise WaitError(f"Entra refused the exchange for an AKS token: {exc}") from None
    lifetime = entra.expires_in if entra.expires_in is not None else REFRESH_MARGIN_SECONDS
    return Token(entra.access_token, started + lifetime)


def azure_cli_token(clock: Callable[[], float], az: str = "az") -> Token:
    """The Azure CLI's token for the AKS server application (learn.microsoft.com/azure/aks/kubelogin-authentication:
    `az account get-access-token --resource <server id>`); `expires_on` is its expiry as a POSIX time since Azure CLI
    2.54.0 (Azure/azure-cli#27476), an older CLI's token is assumed to have its guaranteed minimum left."""
    try:
        done = subprocess.run(
            [az, "account", "get-access-token", "--resource", AKS_AAD_SERVER_APP_ID, "--output", "json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WaitError(f"--auth {AUTH_AZURE_CLI}: cannot run `{az} account get-access-token`: {exc}") from None
    if done.returncode != 0:
        raise WaitError(f"--auth {AUTH_AZURE_CLI}: `az account get-access-token` failed; run `az login` first")
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise WaitError("`az account get-access-token` printed something that is not JSON") from None
    value = answer.get("accessToken") if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise WaitError("`az account get-access-token` answered without accessToken")
    expires_on = answer.get("expires_on")
    if isinstance(expires_on, int) and not isinstance(expires_on, bool):
        return Token(value, float(expires_on))
    return Token(value, clock() + AZ_CLI_MIN_LIFETIME_SECONDS)


# --- the Kubernetes API --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiServer:
    url: str
    ca_pem: str


def api_server(kubeconfig_text: str, where: str) -> ApiServer:
    """The current context's cluster: its `server` and `certificate-authority-data` (kubernetes.io/docs/concepts/
    configuration/organize-cluster-access-kubeconfig). `where` names the source in errors; the text is never quoted."""
    try:
        config: Any = YAML(typ="safe").load(kubeconfig_text)
    except YAMLError:
        raise UsageError(f"{where}: not a kubeconfig (not YAML)") from None
    if not isinstance(config, dict) or not isinstance(config.get("clusters"), list) or not config["clusters"]:
        raise UsageError(f"{where}: expected a kubeconfig with `clusters` (the stack output `kubeconfig`)")
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or [] if isinstance(c, dict)}
    wanted = (contexts.get(config.get("current-context")) or {}).get("cluster")
    clusters = [c for c in config["clusters"] if isinstance(c, dict)]
    chosen = next((c for c in clusters if c.get("name") == wanted), clusters[0] if len(clusters) == 1 else None)
    if chosen is None:
        raise UsageError(f"{where}: the current context names no cluster of the kubeconfig")
    cluster = chosen.get("cluster") or {}
    server, ca_data = cluster.get("server"), cluster.get("certificate-authority-data")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise UsageError(f"{where}: clusters[].cluster.server: expected the API server's https URL")
    if not isinstance(ca_data, str) or not ca_data:
        raise UsageError(f"{where}: clusters[].cluster.certificate-authority-data: expected the cluster's CA (base64)")
    try:
        ca_pem = base64.b64decode(ca_data, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise UsageError(f"{where}: certificate-authority-data is not base64 of a PEM certificate") from None
    return ApiServer(server.rstrip("/"), ca_pem)


class Kube:
    """GETs against the API server over TLS verified with the kubeconfig's CA, with the bearer token."""

    def __init__(self, server: ApiServer, tokens: TokenSource, timeout: float) -> None:
        try:
            context = ssl.create_default_context(cadata=server.ca_pem)
        except ssl.SSLError:
            raise UsageError("the kubeconfig's certificate-authority-data is not a PEM certificate") from None
        self._client = httpx.Client(base_url=server.url, verify=context, timeout=timeout, follow_redirects=False)
        self._server, self._tokens = server.url, tokens

    def close(self) -> None:
        self._client.close()

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The object at `path`, or None if the API server answers 404 (it does not exist)."""
        response = self._get(path, params)
        if response is None:
            return None
        document = response.json()
        if not isinstance(document, dict):
            raise WaitError(f"the API server answered {path} with JSON that is not an object")
        return document

    def get_text(self, path: str, params: Mapping[str, str] | None = None) -> str | None:
        response = self._get(path, params)
        return None if response is None else response.text

    def _get(self, path: str, params: Mapping[str, str] | None) -> httpx.Response | None:
        response = self._send(path, params, renew=False)
        if response.status_code == 401:
            # A token the API server no longer accepts (expired early, revoked): one new one, then give up.
            response = self._send(path, params, renew=True)
        if response.status_code == 404:
            return None
        if response.status_code == 401:
            raise WaitError(
                f"the API server {self._server} refused the token (HTTP 401): the Entra token is not one it accepts "
                f"(audience {AKS_AAD_SERVER_APP_ID}, the cluster's tenant)"
            )
        if response.status_code == 403:
            raise WaitError(
                f"the API server refused GET {path} (HTTP 403): the deploy identity needs read access to Rollouts, "
                "AnalysisRuns, Jobs and pod logs in the model's namespace (its AKS RBAC role)"
            )
        if response.status_code != 200:
            error = TransientError if response.status_code >= 500 or response.status_code == 429 else WaitError
            raise error(f"the API server answered GET {path} with HTTP {response.status_code}")
        return response

    def _send(self, path: str, params: Mapping[str, str] | None, *, renew: bool) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._tokens.bearer(renew=renew)}", "Accept": "application/json"}
        try:
            return self._client.get(path, params=params, headers=headers)
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise WaitError(
                    f"TLS: the API server {self._server} presented a certificate the kubeconfig's CA did not sign "
                    "(wrong kubeconfig, or not the cluster's API server)"
                ) from None
            raise TransientError(f"cannot reach the API server {self._server}: {exc}") from None
        except httpx.HTTPError as exc:
            raise TransientError(f"the API server {self._server}: {type(exc).__name__}: {exc}") from None


# --- reading the Rollout as Argo does ------------------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    state: str  # "progressing" | OUTCOME_PROMOTED | OUTCOME_ABORTED
    phase: str
    message: str


def _generation_observed(rollout: Mapping[str, Any]) -> bool:
    # utils/rollout/rolloututil.go isGenerationObserved: a numeric status.observedGeneration must equal
    # metadata.generation (or be above it); a non-numeric one (a v0.9 hash) counts as observed.
    observed = str((rollout.get("status") or {}).get("observedGeneration", ""))
    generation = int((rollout.get("metadata") or {}).get("generation") or 0)
    if not re.fullmatch(r"[+-]?\d+", observed):
        return True
    return int(observed) >= generation


def assess(rollout: Mapping[str, Any]) -> Assessment:
    """The Rollout's outcome as Argo v1.9.0's client reads it (utils/rollout/rolloututil.go GetRolloutPhase, used by
    pkg/kubectl-argo-rollouts/cmd/status/status.go: Healthy succeeds, Degraded fails)."""
    status = rollout.get("status") or {}
    if not _generation_observed(rollout):
        # rolloututil.go GetRolloutPhase: a status from before the update is not the update's.
        return Assessment("progressing", "Progressing", "waiting for rollout spec update to be observed")
    if status.get("controllerPause") and not status.get("pauseConditions"):
        # rolloututil.go IsUnpausing.
        return Assessment("progressing", "Progressing", "waiting for rollout to unpause")
    phase, message = str(status.get("phase") or ""), str(status.get("message") or "")
    if status.get("abort") or phase == "Degraded":
        # types.go RolloutStatus.Abort; rolloututil.go CalculateRolloutPhase: RolloutAborted -> Degraded "<why>: <msg>".
        return Assessment(OUTCOME_ABORTED, phase or "Degraded", message or "aborted")
    stable, current = status.get("stableRS"), status.get("currentPodHash")
    if phase == "Healthy" and stable and stable == current:
        # rolloututil.go IsFullyPromoted: stableRS == currentPodHash; the controller's Healthy already requires it.
        return Assessment(OUTCOME_PROMOTED, phase, message)
    return Assessment("progressing", phase or "Progressing", message)


def step_count(rollout: Mapping[str, Any]) -> int:
    canary = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    return len(canary.get("steps") or [])


def current_step(rollout: Mapping[str, Any]) -> int | None:
    index = (rollout.get("status") or {}).get("currentStepIndex")
    return index if isinstance(index, int) else None


# --- the analysis --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedCheck:
    check: str
    value: str
    source: str


@dataclass
class Report:
    namespace: str
    name: str
    outcome: str
    phase: str = ""
    message: str = ""
    canary_hash: str = ""
    steps: int = 0
    highest_step: int | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    failed: FailedCheck | None = None
    notes: list[str] = field(default_factory=list)
    error: str = ""
    """Why the wait stopped without an outcome (the outcome is then empty)."""


def canary_runs(kube: Kube, rollout: Mapping[str, Any], canary_hash: str) -> list[dict[str, Any]]:
    """The canary's AnalysisRuns: labelled with its pod hash and controlled by this Rollout (argo-rollouts
    rollout/analysis.go newAnalysisRunFromRollout: the hash labels, OwnerReferences = NewControllerRef(rollout))."""
    metadata = rollout.get("metadata") or {}
    namespace, uid = metadata.get("namespace"), metadata.get("uid")
    listing = kube.get_json(
        f"{ROLLOUTS_API}/namespaces/{namespace}/analysisruns", {"labelSelector": f"{POD_HASH_LABEL}={canary_hash}"}
    )
    runs = [
        run
        for run in (listing or {}).get("items") or []
        if any(
            ref.get("controller") and ref.get("uid") == uid
            for ref in (run.get("metadata") or {}).get("ownerReferences") or []
        )
    ]
    return sorted(runs, key=lambda run: str((run.get("metadata") or {}).get("creationTimestamp", "")))


def judge_verdicts(log: str) -> list[dict[str, Any]]:
    """The judge's JSON lines (model_server/judge.py Verdict.as_json); other lines are skipped."""
    verdicts = []
    for line in log.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and isinstance(document.get("check"), str) and "passed" in document:
            verdicts.append(document)
    return verdicts


def failed_check(kube: Kube, run: Mapping[str, Any], notes: list[str]) -> FailedCheck | None:
    """The first failed metric's check and measured value, from the judge's log of its last failed measurement."""
    namespace = (run.get("metadata") or {}).get("namespace", "")
    for result in (run.get("status") or {}).get("metricResults") or []:
        if result.get("phase") not in ("Failed", "Error"):
            continue
        metric = str(result.get("name"))
        failed = [m for m in result.get("measurements") or [] if m.get("phase") in ("Failed", "Error")]
        if not failed:
            return FailedCheck(metric, "", "no failed measurement kept")
        measurement = failed[-1]
        if measurement.get("phase") == "Error":
            return FailedCheck(metric, "", f"error: {measurement.get('message', '')}")
        meta = measurement.get("metadata") or {}
        job, job_ns = meta.get(JOB_NAME_KEY), meta.get(JOB_NAMESPACE_KEY) or namespace
        if not job:
            return FailedCheck(metric, "", "the measurement names no Job")
        # The Job may be gone: once a metric holds over 10 measurements the provider keeps the run's newest 10 Jobs,
        # counted across all its metrics; it deletes a terminated measurement's Job; the run's deletion takes its
        # Jobs (metricproviders/job/job.go GarbageCollect, Terminate, OwnerReferences; analysis/analysis.go
        # garbageCollectMeasurements, DefaultMeasurementHistoryLimit = 10).
        if kube.get_json(f"/apis/batch/v1/namespaces/{job_ns}/jobs/{job}") is None:
            notes.append(f"Job `{job}` of `{metric}` is already deleted: its judge's log is gone with it.")
            return FailedCheck(metric, "", f"Job {job} already deleted")
        pods = kube.get_json(f"/api/v1/namespaces/{job_ns}/pods", {"labelSelector": f"{JOB_POD_LABEL}={job}"})
        for pod in (pods or {}).get("items") or []:
            pod_name = (pod.get("metadata") or {}).get("name")
            # The Job's own container: `judge` for a check, `smoke` for the smoke test (whose log holds no verdict).
            containers = (pod.get("spec") or {}).get("containers") or [{}]
            container = str(containers[0].get("name") or JUDGE_CONTAINER)
            log = kube.get_text(f"/api/v1/namespaces/{job_ns}/pods/{pod_name}/log", {"container": container})
            for verdict in judge_verdicts(log or ""):
                if not verdict.get("passed"):
                    value = verdict.get("value")
                    error = verdict.get("error")
                    shown = str(value) if value is not None else ""
                    return FailedCheck(str(verdict["check"]), shown, f"judge log of Job {job}: {error or 'failed'}")
        notes.append(f"Job `{job}` of `{metric}` has no pod log with a failed check.")
        return FailedCheck(metric, "", f"no judge log in Job {job}")
    return None


# --- the report ----------------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    return one_line(str(value if value is not None else ""), 200).replace("|", "\\|")


def reason_of(report: Report) -> str:
    if report.error:
        return f"could not wait for the outcome: {report.error}"
    if report.outcome == OUTCOME_NONE:
        return "no model is pinned yet (day zero): there is no Rollout to wait for"
    if report.outcome == OUTCOME_TIMEOUT:
        return f"no outcome before the timeout; the controller carries on (last: {report.phase} {report.message})"
    if report.outcome == OUTCOME_PROMOTED:
        return f"canary {report.canary_hash} promoted after {report.steps} steps"
    if report.failed is not None:
        value = f" = {report.failed.value}" if report.failed.value else ""
        return f"check {report.failed.check}{value} failed; Argo Rollouts: {report.message}"
    return f"Argo Rollouts: {report.message}"


def summary_markdown(report: Report) -> str:
    lines = [f"## Canary of `{report.namespace}/{report.name}`: {report.outcome or 'unknown'}", ""]
    if report.outcome == OUTCOME_NONE:
        lines.append("No model is pinned yet (day zero): the stack has no Rollout, so there is nothing to wait for.")
        return "\n".join(lines) + "\n"
    if report.error:
        lines.append(f"Could not wait for the outcome: {_cell(report.error)}. Nothing was aborted by this step.")
        return "\n".join(lines) + "\n"
    lines.append(f"- Argo Rollouts: **{report.phase or '?'}** {_cell(report.message)}".rstrip())
    if report.canary_hash:
        lines.append(f"- Canary pod hash: `{report.canary_hash}`")
    reached = "none" if report.highest_step is None else str(report.highest_step)
    lines.append(f"- Steps reached: {reached} of {report.steps}")
    if report.outcome == OUTCOME_TIMEOUT:
        lines.append("- Timed out waiting: nothing was aborted, the controller carries on with the release by itself.")
    if report.outcome == OUTCOME_ABORTED:
        lines.append("- Aborted: the controller has sent all traffic back to the stable version.")
    if report.failed is not None:
        value = f" = `{_cell(report.failed.value)}`" if report.failed.value else ""
        lines.append(f"- **Failed check: `{_cell(report.failed.check)}`{value}** ({_cell(report.failed.source)})")
    for note in report.notes:
        lines.append(f"- {note}")
    for run in report.runs:
        metadata, status = run.get("metadata") or {}, run.get("status") or {}
        kind = (metadata.get("labels") or {}).get("rollout-type", "")
        lines += ["", f"### AnalysisRun `{metadata.get('name')}` ({kind}): {status.get('phase', 'Pending')}"]
        if status.get("message"):
            lines.append(f"{_cell(status['message'])}")
        lines += ["", "| metric | phase | measurement | started | finished | message |", "|---|---|---|---|---|---|"]
        for result in status.get("metricResults") or []:
            measurements = result.get("measurements") or [{}]
            for m in measurements:
                lines.append(
                    f"| {_cell(result.get('name'))} | {_cell(result.get('phase'))} | {_cell(m.get('phase'))} | "
                    f"{_cell(m.get('startedAt'))} | {_cell(m.get('finishedAt'))} | {_cell(m.get('message'))} |"
                )
    return "\n".join(lines) + "\n"


def outputs_of(report: Report) -> dict[str, str]:
    failed = report.failed
    return {
        "outcome": report.outcome,
        "failed-check": one_line(failed.check, _REASON_LIMIT) if failed else "",
        "failed-value": one_line(failed.value, _REASON_LIMIT) if failed else "",
        "reason": one_line(reason_of(report), _REASON_LIMIT),
        "canary-hash": one_line(report.canary_hash, _REASON_LIMIT),
    }


def write_report(report: Report, summary: Path | None, outputs: Path | None) -> None:
    """The summary to its file (stdout when there is none: a laptop), the outputs to theirs."""
    if summary is not None:
        with summary.open("a", encoding="utf-8") as file:
            file.write(summary_markdown(report))
    else:
        print(summary_markdown(report), end="")
    if outputs is not None:
        # `name=value` lines (docs.github.com "Workflow commands", "Setting an output parameter"); values are one line.
        with outputs.open("a", encoding="utf-8") as file:
            file.writelines(f"{key}={value}\n" for key, value in outputs_of(report).items())


# --- the wait ------------------------------------------------------------------------------------------------


def wait(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    timeout: float,
    interval: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    log: Callable[[str], None],
) -> Report:
    """Polls the Rollout until it is promoted or aborted, or `timeout` seconds pass."""
    path = f"{ROLLOUTS_API}/namespaces/{namespace}/rollouts/{name}"
    deadline = clock() + timeout
    report = Report(namespace, name, OUTCOME_TIMEOUT)
    last = ""
    failures = 0
    while True:
        try:
            rollout = kube.get_json(path)
        except TransientError as exc:
            # A 35-minute wait outlives an API server blip: ask again next poll, give up after a few in a row.
            failures += 1
            if failures > TRANSIENT_FAILURES_ALLOWED or clock() >= deadline:
                raise
            log(f"{exc} (again in {interval:g} s)")
            sleep(interval)
            continue
        failures = 0
        if rollout is None:
            raise WaitError(
                f"the Rollout {namespace}/{name} does not exist: the stack declares it, the cluster has not"
            )
        verdict = assess(rollout)
        status = rollout.get("status") or {}
        report.phase, report.message = verdict.phase, verdict.message
        report.steps = step_count(rollout)
        if _generation_observed(rollout):
            report.canary_hash = str(status.get("currentPodHash") or "")
            step = current_step(rollout)
            if step is not None and (report.highest_step is None or step > report.highest_step):
                report.highest_step = step
        line = f"{verdict.phase} - {verdict.message} (step {current_step(rollout)} of {report.steps})"
        if line != last:
            log(line)
            last = line
        if verdict.state != "progressing":
            report.outcome = verdict.state
            break
        if clock() >= deadline:
            break
        sleep(interval)
    if report.canary_hash:
        # The outcome stands whatever happens here: a report missing its analysis still says promoted or aborted.
        try:
            report.runs = canary_runs(kube, rollout, report.canary_hash)
            if report.outcome == OUTCOME_ABORTED:
                for run in report.runs:
                    report.failed = report.failed or failed_check(kube, run, report.notes)
        except WaitError as exc:
            report.notes.append(f"The analysis could not be read: {exc}")
    return report


# --- command line --------------------------------------------------------------------------------------------


def rollout_ref(text: str) -> tuple[str, str] | None:
    """`--rollout`: the stack output `modelRollout`, `{"namespace": ..., "name": ...}`, which pulumi/actions hands on as
    JSON (@actions/core lib/utils.js toCommandValue: JSON.stringify); empty means day zero."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise UsageError(
            '--rollout: expected JSON {"namespace": ..., "name": ...} (the stack output modelRollout)'
        ) from None
    if not isinstance(value, dict) or set(value) != {"namespace", "name"}:
        raise UsageError('--rollout: expected exactly {"namespace": ..., "name": ...} (the stack output modelRollout)')
    for key in ("namespace", "name"):
        if not isinstance(value[key], str) or not _NAME.match(value[key]):
            raise UsageError(
                f"--rollout: {key}: expected a Kubernetes name (lowercase, digits, '-'), got {value[key]!r}"
            )
    return value["namespace"], value["name"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m release.await_rollout", description=__doc__.split("\n\n")[0])
    p.add_argument("--rollout", required=True, help="the stack output modelRollout (JSON); empty: day zero")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--kubeconfig", type=Path, help="a file holding the stack output kubeconfig")
    source.add_argument("--kubeconfig-env", metavar="NAME", help="an environment variable holding it")
    p.add_argument("--auth", choices=(AUTH_GITHUB_OIDC, AUTH_AZURE_CLI), default=AUTH_AZURE_CLI)
    p.add_argument("--authority", default=DEFAULT_AUTHORITY, help="the Entra authority host (github-oidc)")
    p.add_argument("--timeout", type=positive_seconds, default=3600.0, help="seconds to wait for an outcome")
    p.add_argument("--interval", type=positive_seconds, default=15.0, help="seconds between two polls")
    p.add_argument("--request-timeout", type=positive_seconds, default=30.0, help="seconds per HTTP request")
    p.add_argument("--summary", type=Path, help="markdown report (default: $GITHUB_STEP_SUMMARY, else stdout)")
    p.add_argument("--outputs", type=Path, help="step outputs file (default: $GITHUB_OUTPUT)")
    return p


def _kubeconfig_text(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str]:
    if args.kubeconfig is not None:
        try:
            return args.kubeconfig.read_text(encoding="utf-8"), f"--kubeconfig {args.kubeconfig}"
        except OSError as exc:
            raise UsageError(f"--kubeconfig: cannot read {args.kubeconfig}: {exc.strerror}") from None
    if args.kubeconfig_env:
        text = environ.get(args.kubeconfig_env, "")
        if not text.strip():
            raise UsageError(f"--kubeconfig-env: {args.kubeconfig_env} is not set or empty (expected the kubeconfig)")
        return text, f"${args.kubeconfig_env}"
    raise UsageError("one of --kubeconfig FILE or --kubeconfig-env NAME is required (the stack output kubeconfig)")


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    env = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    summary = args.summary or (Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None)
    outputs = args.outputs or (Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None)

    def log(line: str) -> None:
        print(f"await_rollout: {line}", file=sys.stderr, flush=True)

    try:
        ref = rollout_ref(args.rollout)
        if ref is None:
            report = Report("", "", OUTCOME_NONE)
            log(reason_of(report))
            write_report(report, summary, outputs)
            return EXIT_PROMOTED
        server = api_server(*_kubeconfig_text(args, env))
    except UsageError as exc:
        print(f"python -m release.await_rollout: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    namespace, name = ref
    if args.auth == AUTH_GITHUB_OIDC:
        tokens = TokenSource(lambda: github_oidc_token(env, args.authority, clock, args.request_timeout), clock)
    else:
        tokens = TokenSource(lambda: azure_cli_token(clock), clock)
    try:
        kube = Kube(server, tokens, args.request_timeout)
    except UsageError as exc:
        print(f"python -m release.await_rollout: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = wait(
            kube, namespace, name, timeout=args.timeout, interval=args.interval, clock=clock, sleep=sleep, log=log
        )
    except WaitError as exc:
        log(f"error: {exc}")
        write_report(Report(namespace, name, "", error=str(exc)), summary, outputs)
        return EXIT_ERROR
    finally:
        kube.close()
    write_report(report, summary, outputs)
    log(reason_of(report))
    if report.outcome == OUTCOME_ABORTED:
        return EXIT_ABORTED
    return EXIT_PROMOTED if report.outcome == OUTCOME_PROMOTED else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
