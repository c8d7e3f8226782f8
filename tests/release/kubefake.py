"""Stand-ins for what `release.await_rollout` talks to: the AKS API server (over real TLS, with a CA of its own),
GitHub's OIDC token endpoint, and Entra's token endpoint trusting the GitHub tokens (a federated credential).

The API server serves a Rollout through a sequence of states, one per GET, and the canary's AnalysisRuns, Jobs, pods
and pod logs, each shaped as Argo Rollouts v1.9.0 and Kubernetes write them (the field's source beside it); every
Rollout and AnalysisRun is checked against the pinned CRDs (tests/reference/argo-rollouts/) before it is served.
A bearer token is accepted only while it is valid on the shared clock; anything else gets the API server's 401.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.model_canary import CanaryRelease, canary_strategy
from localrun.processes import LOOPBACK
from model_server.judge import Verdict
from tests.components.crd_schema import crd_problems
from tests.model_image.judge_standins import EntraStandIn

NAMESPACE = "wine-quality"
NAME = "wine-quality"
ROLLOUT_UID = "5f0b7c4e-2d1a-4b7e-9a53-1c2d3e4f5a6b"
RUN_UID = "a1b2c3d4-0000-4000-8000-00000000beef"
OLD_HASH = "6d4b9c7f58"
NEW_HASH = "7f9c5d8b46"
T0 = "2026-12-07T20:00:00Z"
# The staging release: 10% then 50%, five minutes each, as components/model_canary.py builds it (no router).
RELEASE = CanaryRelease(
    steps=(10, 50), pause_seconds=300, measurement_interval_seconds=60, max_failed_measurements=2, synthetic_rps=2
)
STRATEGY = canary_strategy(NAME, RELEASE, routed=False, stable_ingress=None, analysed=True)
SELECTOR = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "server"}


class Clock:
    """The time both sides read: the client's sleeps move it on, so nothing in a test waits for real."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


# --- TLS -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_pem: str
    cert_file: Path
    key_file: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(directory: Path, label: str = "cluster") -> Pki:
    """A self-signed CA, as AKS makes one per cluster, and the API server's certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{label}-ca"))
        .issuer_name(_name(f"{label}-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{label}-server.pem", directory / f"{label}-server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Pki(ca.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file)


def kubeconfig(server: str, ca_pem: str) -> str:
    """The exec-format kubeconfig AKS returns (listClusterUserCredential, format=exec): kubelogin in device-code mode
    as the user, which the waiter ignores (learn.microsoft.com/azure/aks/kubelogin-authentication)."""
    import base64

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "mlops-serving-staging-aks",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem.encode()).decode(),
                },
            }
        ],
        "contexts": [
            {
                "name": "mlops-serving-staging-aks",
                "context": {"cluster": "mlops-serving-staging-aks", "user": "clusterUser_rg_aks"},
            }
        ],
        "current-context": "mlops-serving-staging-aks",
        "users": [
            {
                "name": "clusterUser_rg_aks",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "kubelogin",
                        "args": [
                            "get-token",
                            "--login",
                            "devicecode",
                            "--server-id",
                            "6dae42f8-4368-4678-94ff-3960e28e3630",
                        ],
                    }
                },
            }
        ],
    }
    return json.dumps(config)


# --- objects as Argo v1.9.0 writes them ----------------------------------------------------------------------


def rollout(
    *,
    generation: int,
    observed: int,
    phase: str,
    message: str,
    stable: str,
    current: str,
    step: int,
    abort: bool = False,
    paused: bool = False,
    background_run: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The model's Rollout as the controller leaves it (pkg/apis/rollouts/v1alpha1/types.go RolloutStatus)."""
    status: dict[str, Any] = {
        # rollout/sync.go persistRolloutStatus: strconv.Itoa(generation), a string.
        "observedGeneration": str(observed),
        "currentPodHash": current,
        "stableRS": stable,
        "currentStepIndex": step,
        "currentStepHash": "5b8d7f6c9d",
        "phase": phase,  # sync.go: rolloututil.CalculateRolloutPhase, written by the controller since v1.0
        "message": message,
        "replicas": 3,
        "updatedReplicas": 3 if stable == current else 1,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "HPAReplicas": 3,
        "selector": "app.kubernetes.io/component=server,app.kubernetes.io/name=wine-quality",
        "conditions": [
            {
                "type": "Progressing",
                # sync.go calculateRolloutConditions: an abort sets Progressing False, reason RolloutAborted.
                "status": "False" if abort else "True",
                "reason": "RolloutAborted" if abort else "ReplicaSetUpdated",
                "message": message if abort else f'ReplicaSet "{NAME}-{current}" is progressing.',
                "lastTransitionTime": T0,
                "lastUpdateTime": T0,
            }
        ],
        "canary": {},
    }
    if abort:
        status["abort"] = True
        status["abortedAt"] = T0
    if paused:
        # rollout/pause.go: the canary's pause step adds CanaryPauseStep and sets controllerPause.
        status["pauseConditions"] = [{"reason": "CanaryPauseStep", "startTime": T0}]
        status["controllerPause"] = True
    if background_run is not None:
        run_name, run_phase = background_run
        status["canary"]["currentBackgroundAnalysisRunStatus"] = {"name": run_name, "status": run_phase}
    document = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "uid": ROLLOUT_UID,
            "generation": generation,
            "annotations": {"rollout.argoproj.io/revision": "2"},
        },
        "spec": {
            "selector": {"matchLabels": SELECTOR},
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 600,
            "progressDeadlineAbort": True,
            "template": {
                "metadata": {"labels": SELECTOR},
                "spec": {"containers": [{"name": "server", "image": "example.azurecr.io/wine@sha256:" + "a" * 64}]},
            },
            "strategy": {"canary": STRATEGY},
        },
        "status": status,
    }
    _check(document, "rollout-crd.yaml")
    return document


def run_name(pod_hash: str = NEW_HASH) -> str:
    # rollout/analysis.go newAnalysisRunFromRollout: <rollout>-<pod hash>-<revision> (no infix for Background).
    return f"{NAME}-{pod_hash}-2"


def job_name(metric: str, index: int) -> str:
    # metricproviders/job/job.go newJobName: <run uid>.<metric>.<measurements so far + 1>.
    return f"{RUN_UID}.{metric}.{index}"


def _job_metric(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "interval": "1m",
        "initialDelay": "2m",
        "failureLimit": 1,
        "provider": {
            "job": {
                "metadata": {"labels": {"app.kubernetes.io/component": "canary-analysis"}},
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": 120,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "judge",
                                    "image": "example.azurecr.io/wine@sha256:" + "a" * 64,
                                    "command": ["python", "-m", "model_server", "judge", "--check", f"{name}=up"],
                                }
                            ],
                        }
                    },
                },
            }
        },
    }


def measurement(phase: str, job: str, message: str | None = None) -> dict[str, Any]:
    """One Job measurement (metricproviders/job/job.go Run sets metadata job-name/job-namespace; Resume the phase)."""
    value: dict[str, Any] = {
        "phase": phase,
        "startedAt": T0,
        "metadata": {"job-name": job, "job-namespace": NAMESPACE},
    }
    if phase != "Running":
        value["finishedAt"] = T0
    if message is not None:
        value["message"] = message
    return value


def analysis_run(phase: str, message: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The canary's background AnalysisRun (rollout/analysis.go; utils/analysis/factory.go BackgroundLabels)."""
    failed = sum(1 for r in results if r["phase"] == "Failed")
    document = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": run_name(),
            "namespace": NAMESPACE,
            "uid": RUN_UID,
            "creationTimestamp": T0,
            "labels": {"rollouts-pod-template-hash": NEW_HASH, "rollout-type": "Background", **SELECTOR},
            "annotations": {"rollout.argoproj.io/revision": "2"},
            # NewControllerRef(rollout, controllerKind): controller and blockOwnerDeletion true.
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": NAME,
                    "uid": ROLLOUT_UID,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "args": [{"name": "canary-hash", "value": NEW_HASH}, {"name": "stable-hash", "value": OLD_HASH}],
            "metrics": [_job_metric(r["name"]) for r in results],
        },
        "status": {
            "phase": phase,
            "message": message,
            "startedAt": T0,
            # analysis/analysis.go assessRunStatus: the run's summary of its metrics.
            "runSummary": {"count": len(results), "successful": len(results) - failed, "failed": failed},
            "metricResults": results,
        },
    }
    _check(document, "analysis-run-crd.yaml")
    return document


def judge_log(*verdicts: Verdict) -> str:
    """What the judge's pod prints: one JSON line per check, then its stderr line (model_server/judge.py run)."""
    return "".join(v.as_json() + "\n" for v in verdicts)


def _check(document: dict[str, Any], crd: str) -> None:
    problems = crd_problems(document, crd)
    assert not problems, f"{document['kind']} the stand-in would serve is not valid: {problems}"


# --- the API server ------------------------------------------------------------------------------------------


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    # A metav1.Status, the body of every API error (kubernetes.io/docs/reference/using-api/api-concepts).
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass
class KubeApi:
    """The AKS API server, as far as the waiter sees it."""

    states: list[dict[str, Any]]
    clock: Clock
    runs: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)
    """Job name -> the judge's log in its one pod; a Job not here does not exist."""
    tokens: dict[str, float] = field(default_factory=dict)
    """Bearer token -> its expiry on the clock (what Entra issued)."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    refused: int = 0
    url: str = ""
    _served: int = 0

    def accepts(self, header: str) -> bool:
        # A request that cannot be authenticated is refused with 401 (kubernetes.io/docs/reference/access-authn-authz/
        # authentication); an Entra token past its `exp` cannot.
        token = header.removeprefix("Bearer ")
        return header.startswith("Bearer ") and self.clock() < self.tokens.get(token, -1.0)

    def handle(self, method: str, raw: str, authorization: str) -> tuple[int, Any]:
        self.requests.append((method, raw))
        if not self.accepts(authorization):
            self.refused += 1
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if method != "GET":
            return 405, _status(405, "MethodNotAllowed", "the stand-in only reads")
        parts = urllib.parse.urlsplit(raw)
        query = urllib.parse.parse_qs(parts.query)
        path = parts.path
        base = f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}"
        if path == f"{base}/rollouts/{NAME}":
            state = self.states[min(self._served, len(self.states) - 1)]
            self._served += 1
            return 200, state
        if path == f"{base}/analysisruns":
            wanted = dict(pair.split("=", 1) for pair in query.get("labelSelector", [""])[0].split(",") if pair)
            items = [r for r in self.runs if wanted.items() <= r["metadata"]["labels"].items()]
            return 200, {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AnalysisRunList",
                "metadata": {},
                "items": items,
            }
        jobs = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/"
        if path.startswith(jobs):
            job = path.removeprefix(jobs)
            if job not in self.jobs:
                return 404, _status(404, "NotFound", f'jobs.batch "{job}" not found')
            return 200, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job, "namespace": NAMESPACE}}
        if path == f"/api/v1/namespaces/{NAMESPACE}/pods":
            selector = query.get("labelSelector", [""])[0]
            key, _, job = selector.partition("=")
            pods = (
                [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        # The Job controller names its pods <job>-<5 random> and labels them with the Job's name.
                        "metadata": {
                            "name": f"{job}-x7k2p",
                            "namespace": NAMESPACE,
                            "labels": {key: job, "job-name": job},
                        },
                        "spec": {
                            "containers": [{"name": "judge", "image": "example.azurecr.io/wine@sha256:" + "a" * 64}]
                        },
                    }
                ]
                if key == "batch.kubernetes.io/job-name" and job in self.jobs
                else []
            )
            return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}
        prefix = f"/api/v1/namespaces/{NAMESPACE}/pods/"
        if path.startswith(prefix) and path.endswith("/log"):
            pod = path.removeprefix(prefix).removesuffix("/log")
            job = pod.removesuffix("-x7k2p")
            if job not in self.jobs:
                return 404, _status(404, "NotFound", f'pods "{pod}" not found')
            if query.get("container") != ["judge"]:
                # The log of a container the pod does not have is refused (pods/log, `container`).
                return 400, _status(400, "BadRequest", f"container {query.get('container')} is not valid for {pod}")
            return 200, self.jobs[job]
        return 404, _status(404, "NotFound", "the server could not find the requested resource")


@contextmanager
def serve_tls(api: KubeApi, pki: Pki) -> Iterator[KubeApi]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = api.handle(self.command, self.path, self.headers.get("Authorization", ""))
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_PATCH = do_POST = do_DELETE = do_GET

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    api.url = f"https://{LOOPBACK}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- GitHub's OIDC endpoint and Entra ------------------------------------------------------------------------


@dataclass
class GitHubOidc:
    """GitHub's ID token endpoint for one job (actions/toolkit packages/core/src/oidc-utils.ts getIDToken: GET the
    request URL with `&audience=`, the request token as a bearer; the JWT in `value`). Every call a new token."""

    request_token: str = "runtime-request-token"
    issued: list[str] = field(default_factory=list)
    audiences: list[str] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        github = self

        class Token(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                github.audiences += query.get("audience", [])
                if self.headers.get("Authorization") != f"Bearer {github.request_token}":
                    self._reply(401, {"message": "bad request token"})
                    return
                token = f"github-oidc-jwt-{len(github.issued) + 1}"
                github.issued.append(token)
                self._reply(200, {"count": 1, "value": token})

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Token


@dataclass
class FederatedEntra(EntraStandIn):
    """Entra for the deploy app whose federated credential trusts this job's GitHub tokens, each used once; every
    access token it issues is one the API server accepts until `expires_in` has passed on the clock."""

    github: GitHubOidc = field(default_factory=GitHubOidc)
    api: KubeApi | None = None
    clock: Callable[[], float] = field(default_factory=Clock)
    exchanged: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def tokens_issued(self) -> list[str]:
        return list(self.issued)

    def answer(self, path: str, content_type: str, form: dict[str, list[str]]) -> tuple[int, dict[str, object]]:
        assertion = (form.get("client_assertion") or [""])[0]
        fresh = assertion in self.github.issued and assertion not in self.exchanged
        self.trusted_assertion = assertion if fresh else "no-such-assertion"
        self.access_token = f"aks-access-token-{len(self.exchanged) + 1}"
        status, answer = super().answer(path, content_type, form)
        if status == 200:
            self.exchanged.append(assertion)
            self.issued.append(self.access_token)
            if self.api is not None:
                self.api.tokens[self.access_token] = self.clock() + self.expires_in
        return status, answer
