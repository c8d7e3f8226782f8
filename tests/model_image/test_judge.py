"""`python -m model_server judge`, the canary analysis Job's command, against a real Prometheus (Debian's package)
scraping fixed metrics on 127.0.0.1; workload identity against stand-ins of the Entra token endpoint and of Azure
Monitor's query endpoint. A check passes only when its query returns a sample; anything that cannot decide fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from localrun.monitoring import port_of, prometheus
from localrun.processes import LOOPBACK, child_env, free_port
from tests.model_image.judge_standins import (
    BearerProxy,
    EntraStandIn,
    Recorder,
    echoing_refusal_handler,
    metrics_handler,
    redirect_handler,
    serving,
    silent_port,
)

CANARY = "6c9f7d8b4"  # pod-template hashes as Argo Rollouts labels each ReplicaSet's pods
STABLE = "5d4b8c7f9"
NO_SUCH_HASH = "0000000000"
METRICS = f"""# TYPE judge_error_ratio gauge
judge_error_ratio{{rollouts_pod_template_hash="{CANARY}"}} 0.002
judge_error_ratio{{rollouts_pod_template_hash="{STABLE}"}} 0.03
"""
BOUND = 0.01
WORKLOAD_IDENTITY_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")
TENANT = "72f988bf-0000-4000-8000-2d7cd011db47"
CLIENT = "5a1e3c2b-0000-4000-8000-000000000001"
ASSERTION = "eyJhbGciOiJSUzI1NiJ9.test-projected-service-account-token.sig"
ACCESS_TOKEN = "eyJ0eXAiOiJKV1QifQ.test-entra-access-token.sig"

needs_prometheus = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus"),
]


def ratio(hash_: str) -> str:
    return f'judge_error_ratio{{rollouts_pod_template_hash="{hash_}"}}'


def within_bound(hash_: str) -> str:
    return f"({ratio(hash_)}) <= {BOUND}"


def judge(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = child_env()
    for name in WORKLOAD_IDENTITY_ENV:
        environment.pop(name, None)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "model_server", "judge", *args],
        capture_output=True, text=True, env=environment, timeout=120, check=False,
    )  # fmt: skip


def verdicts(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping the fixed metrics every second, once both series are queryable."""
    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus")
    workdir = tmp_path_factory.mktemp("judge-prometheus")
    rules = workdir / "rules.yml"
    rules.write_text("groups: []\n")
    with serving(metrics_handler(METRICS)) as target:
        server = prometheus(
            workdir, scrape_target=target.removeprefix("http://"), rules_file=rules, alertmanager_port=free_port()
        )
        server.start(timeout=60)
        try:
            url = f"http://{LOOPBACK}:{port_of(server)}"
            deadline = time.monotonic() + 60
            while _series(url) < 2:
                assert time.monotonic() < deadline, f"the series never appeared:\n{server.log_tail()}"
                time.sleep(0.2)
            yield url
        finally:
            server.stop()


def _series(url: str) -> int:
    answer = httpx.post(f"{url}/api/v1/query", data={"query": "judge_error_ratio"}, timeout=5).json()
    return len(answer["data"]["result"])


# --- verdicts against a real Prometheus ----------------------------------------------------------------------


class TestAgainstPrometheus:
    pytestmark = needs_prometheus

    def test_a_check_within_its_bound_passes(self, prometheus_url: str) -> None:
        proc = judge("--prometheus", prometheus_url, "--check", f"error-ratio={within_bound(CANARY)}")
        assert proc.returncode == 0, proc.stderr
        assert verdicts(proc) == [{"check": "error-ratio", "passed": True, "samples": 1, "value": None, "error": None}]

    def test_a_check_outside_its_bound_fails_and_shows_the_measured_value(self, prometheus_url: str) -> None:
        proc = judge(
            "--prometheus", prometheus_url,
            "--check", f"error-ratio={within_bound(STABLE)}",
            "--value", f"error-ratio={ratio(STABLE)}",
        )  # fmt: skip
        assert proc.returncode == 1
        [verdict] = verdicts(proc)
        assert (verdict["passed"], verdict["samples"], verdict["value"]) == (False, 0, "0.03")
        assert "empty answer" in verdict["error"]
        assert "error-ratio" in proc.stderr

    def test_the_value_is_shown_beside_a_passing_check_too(self, prometheus_url: str) -> None:
        proc = judge(
            "--prometheus", prometheus_url,
            "--check", f"error-ratio={within_bound(CANARY)}",
            "--value", f"error-ratio={ratio(CANARY)}",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert verdicts(proc)[0]["value"] == "0.002"

    def test_a_hash_without_series_fails_with_no_samples(self, prometheus_url: str) -> None:
        # No traffic, never scraped, the wrong label: the most reported way an analysis passes by mistake.
        proc = judge("--prometheus", prometheus_url, "--check", f"error-ratio={within_bound(NO_SUCH_HASH)}")
        assert proc.returncode == 1
        [verdict] = verdicts(proc)
        assert (verdict["passed"], verdict["samples"]) == (False, 0)

    def test_one_failing_check_fails_the_measurement_and_every_check_is_reported(self, prometheus_url: str) -> None:
        proc = judge(
            "--prometheus", prometheus_url,
            "--check", f"canary={within_bound(CANARY)}",
            "--check", f"stable={within_bound(STABLE)}",
        )  # fmt: skip
        assert proc.returncode == 1
        assert [(v["check"], v["passed"]) for v in verdicts(proc)] == [("canary", True), ("stable", False)]

    def test_a_nan_sample_fails(self, prometheus_url: str) -> None:
        # 0/0 is NaN: no data to judge, whatever the expression around it.
        proc = judge("--prometheus", prometheus_url, "--check", f"ratio=({ratio(CANARY)} * 0) / 0")
        assert proc.returncode == 1
        [verdict] = verdicts(proc)
        assert (verdict["passed"], verdict["samples"]) == (False, 1)
        assert "NaN" in verdict["error"]

    def test_invalid_promql_fails_with_prometheus_error(self, prometheus_url: str) -> None:
        proc = judge("--prometheus", prometheus_url, "--check", "broken=sum(judge_error_ratio")
        assert proc.returncode == 1
        [verdict] = verdicts(proc)
        assert verdict["passed"] is False
        # Prometheus answers 400 with {"status": "error", "errorType": "bad_data", "error": "...parse error..."}.
        assert "HTTP 400" in verdict["error"]
        assert "bad_data" in verdict["error"]
        assert "parse error" in verdict["error"]

    def test_a_result_that_is_not_a_vector_fails(self, prometheus_url: str) -> None:
        # `1` is a scalar: it always "returns" something, so it can never be a pass query.
        proc = judge("--prometheus", prometheus_url, "--check", "constant=1")
        assert proc.returncode == 1
        [verdict] = verdicts(proc)
        assert verdict["passed"] is False
        assert "'scalar'" in verdict["error"]

    def test_a_failing_value_query_shows_null_and_never_changes_the_verdict(self, prometheus_url: str) -> None:
        proc = judge(
            "--prometheus", prometheus_url,
            "--check", f"error-ratio={within_bound(CANARY)}",
            "--value", "error-ratio=sum(broken",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert verdicts(proc) == [{"check": "error-ratio", "passed": True, "samples": 1, "value": None, "error": None}]


def test_prometheus_unreachable_fails() -> None:
    closed = f"http://{LOOPBACK}:{free_port()}"
    proc = judge("--prometheus", closed, "--check", f"error-ratio={within_bound(CANARY)}")
    assert proc.returncode == 1
    [verdict] = verdicts(proc)
    assert verdict["passed"] is False
    assert "unreachable" in verdict["error"]


def test_a_timeout_fails() -> None:
    with silent_port() as port:
        proc = judge(
            "--prometheus", f"http://{LOOPBACK}:{port}", "--timeout", "0.5", "--check", f"r={within_bound(CANARY)}"
        )
    assert proc.returncode == 1
    [verdict] = verdicts(proc)
    assert verdict["passed"] is False
    assert "timed out" in verdict["error"]


def test_an_answer_whose_status_is_not_success_fails_even_with_http_200() -> None:
    answer: dict[str, object] = {
        "status": "error",
        "errorType": "execution",
        "error": "query processing failed",
        "data": None,
    }
    with serving(Recorder(answer).handler()) as url:
        proc = judge("--prometheus", url, "--check", f"r={within_bound(CANARY)}")
    assert proc.returncode == 1
    assert "status 'error': execution: query processing failed" in verdicts(proc)[0]["error"]


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", ["no-equals-sign", "=up", "name=", "  =  "])
def test_a_check_not_of_the_form_name_equals_query_is_refused(check: str) -> None:
    proc = judge("--prometheus", f"http://{LOOPBACK}:9", "--check", check)
    assert proc.returncode == 2
    assert "--check" in proc.stderr
    assert "NAME=QUERY" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--timeout", "0", "positive number of seconds"),
        ("--timeout", "nan", "positive number of seconds"),
        ("--timeout", "soon", "positive number of seconds"),
        ("--prometheus", "ftp://127.0.0.1:9090", "http(s) URL"),
        ("--prometheus", "127.0.0.1:9090", "http(s) URL"),
    ],
)
def test_a_bad_option_value_is_refused_naming_the_option(option: str, value: str, expected: str) -> None:
    args = {"--prometheus": f"http://{LOOPBACK}:9", "--timeout": "1", option: value}
    proc = judge(*[part for pair in args.items() for part in pair], "--check", "a=up")
    assert proc.returncode == 2
    assert f"argument {option}: expected a" in proc.stderr
    assert expected in proc.stderr


def test_a_duplicate_check_name_is_refused() -> None:
    proc = judge("--prometheus", f"http://{LOOPBACK}:9", "--check", "a=up", "--check", "a=up == 1")
    assert proc.returncode == 2
    assert "duplicate name 'a'" in proc.stderr


def test_a_value_for_no_check_is_refused() -> None:
    proc = judge("--prometheus", f"http://{LOOPBACK}:9", "--check", "a=up", "--value", "b=up")
    assert proc.returncode == 2
    assert "--value 'b'" in proc.stderr


def test_a_bearer_token_is_never_sent_in_clear_text_off_this_host(tmp_path: Path) -> None:
    proc = judge(
        "--prometheus", "http://prometheus.example.invalid", "--auth", "workload-identity", "--check", "a=up",
        env=pod_environment(tmp_path, authority=f"http://{LOOPBACK}:{free_port()}/"),
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--prometheus 'http://prometheus.example.invalid'" in proc.stderr
    assert "expected an https URL" in proc.stderr


# --- workload identity ---------------------------------------------------------------------------------------


@dataclass
class WorkloadIdentity:
    entra: EntraStandIn
    proxy: BearerProxy
    proxy_url: str
    env: dict[str, str]


@pytest.fixture
def workload_identity(prometheus_url: str, tmp_path: Path) -> Iterator[WorkloadIdentity]:
    """A pod's environment as the webhook injects it, the token endpoint trusting its projected token, and the
    query endpoint requiring the token that endpoint issues."""
    entra = EntraStandIn(tenant=TENANT, client_id=CLIENT, trusted_assertion=ASSERTION, access_token=ACCESS_TOKEN)
    proxy = BearerProxy(upstream=prometheus_url, access_token=ACCESS_TOKEN)
    with serving(entra.handler()) as authority, serving(proxy.handler()) as proxy_url:
        # The authority host with its trailing slash, as the webhook sets it.
        env = pod_environment(tmp_path, authority=f"{authority}/")
        yield WorkloadIdentity(entra, proxy, proxy_url, env)


class TestWorkloadIdentity:
    pytestmark = needs_prometheus

    @pytest.mark.parametrize("host_suffix", ["/", ""], ids=["trailing-slash", "no-trailing-slash"])
    def test_the_entra_token_opens_the_query_endpoint(
        self, workload_identity: WorkloadIdentity, host_suffix: str
    ) -> None:
        env = dict(workload_identity.env)
        env["AZURE_AUTHORITY_HOST"] = env["AZURE_AUTHORITY_HOST"].rstrip("/") + host_suffix
        proc = judge(
            "--prometheus", workload_identity.proxy_url, "--auth", "workload-identity",
            "--check", f"error-ratio={within_bound(CANARY)}", "--value", f"error-ratio={ratio(CANARY)}",
            env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert verdicts(proc)[0]["value"] == "0.002"
        assert len(workload_identity.entra.requests) == 1  # one token for the whole measurement
        assert (workload_identity.proxy.authorized, workload_identity.proxy.refused) == (2, 0)
        assert ACCESS_TOKEN not in proc.stdout + proc.stderr
        assert ASSERTION not in proc.stdout + proc.stderr

    def test_a_redirect_is_not_followed_with_the_token(self, workload_identity: WorkloadIdentity) -> None:
        elsewhere = Recorder({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "1"]}]}})
        with serving(elsewhere.handler()) as target, serving(redirect_handler(f"{target}/api/v1/query")) as query:
            proc = judge(
                "--prometheus", query, "--auth", "workload-identity", "--check", f"r={within_bound(CANARY)}",
                env=workload_identity.env,
            )  # fmt: skip
        assert proc.returncode == 1
        assert "HTTP 302" in verdicts(proc)[0]["error"]
        assert elsewhere.seen == []

    def test_the_query_endpoint_refuses_a_query_without_the_token(self, workload_identity: WorkloadIdentity) -> None:
        proc = judge("--prometheus", workload_identity.proxy_url, "--check", f"error-ratio={within_bound(CANARY)}")
        assert proc.returncode == 1
        assert "HTTP 401" in verdicts(proc)[0]["error"]
        assert workload_identity.proxy.refused == 1

    def test_a_refused_assertion_fails_every_check_and_leaks_nothing(
        self, workload_identity: WorkloadIdentity, tmp_path: Path
    ) -> None:
        untrusted = "eyJhbGciOiJSUzI1NiJ9.a-token-no-federated-credential-trusts.sig"
        token_file = tmp_path / "other-token"
        token_file.write_text(untrusted)
        env = {**workload_identity.env, "AZURE_FEDERATED_TOKEN_FILE": str(token_file)}
        proc = judge(
            "--prometheus", workload_identity.proxy_url, "--auth", "workload-identity",
            "--check", f"a={within_bound(CANARY)}", "--check", f"b={within_bound(CANARY)}",
            env=env,
        )  # fmt: skip
        assert proc.returncode == 1
        assert [(v["check"], v["passed"]) for v in verdicts(proc)] == [("a", False), ("b", False)]
        assert "invalid_client" in verdicts(proc)[0]["error"]
        assert workload_identity.entra.requests[0]["client_assertion"] == [untrusted]  # the file, read when asked
        assert (workload_identity.proxy.authorized, workload_identity.proxy.refused) == (0, 0)
        for secret in (untrusted, ASSERTION, ACCESS_TOKEN):
            assert secret not in proc.stdout + proc.stderr


def pod_environment(tmp_path: Path, *, authority: str) -> dict[str, str]:
    """What the workload identity webhook injects (the token file with the trusted assertion)."""
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(ASSERTION)
    return {
        "AZURE_CLIENT_ID": CLIENT,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZURE_AUTHORITY_HOST": authority,
    }


def test_an_assertion_quoted_back_in_an_error_is_never_printed(tmp_path: Path) -> None:
    with serving(echoing_refusal_handler()) as authority:
        env = pod_environment(tmp_path, authority=f"{authority}/")
        proc = judge(
            "--prometheus", f"http://{LOOPBACK}:{free_port()}", "--auth", "workload-identity", "--check", "a=up",
            env=env,
        )  # fmt: skip
    assert proc.returncode == 1
    error = verdicts(proc)[0]["error"]
    assert "invalid_client" in error
    assert "[redacted]" in error
    assert ASSERTION not in proc.stdout + proc.stderr


def test_a_token_answer_without_an_access_token_fails(tmp_path: Path) -> None:
    with serving(Recorder({"token_type": "Bearer", "expires_in": 3599}).handler()) as authority:
        proc = judge(
            "--prometheus", f"http://{LOOPBACK}:{free_port()}", "--auth", "workload-identity", "--check", "a=up",
            env=pod_environment(tmp_path, authority=f"{authority}/"),
        )  # fmt: skip
    assert proc.returncode == 1
    assert "without access_token" in verdicts(proc)[0]["error"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/azure-identity-token", "cannot read"),
        ("AZURE_FEDERATED_TOKEN_FILE", "EMPTY", "is empty"),
        ("AZURE_AUTHORITY_HOST", "http://login.example.invalid/", "expected an https URL"),
    ],
)
def test_an_unusable_pod_environment_is_refused_naming_the_variable(
    variable: str, value: str, expected: str, tmp_path: Path
) -> None:
    env = pod_environment(tmp_path, authority=f"http://{LOOPBACK}:{free_port()}/")
    if value == "EMPTY":
        (tmp_path / "empty-token").write_text("")
        value = str(tmp_path / "empty-token")
    env[variable] = value
    proc = judge(
        "--prometheus", f"http://{LOOPBACK}:{free_port()}", "--auth", "workload-identity", "--check", "a=up", env=env
    )
    assert proc.returncode == 2
    assert variable in proc.stderr
    assert expected in proc.stderr


@pytest.mark.parametrize("missing", WORKLOAD_IDENTITY_ENV)
def test_a_missing_workload_identity_variable_is_named(missing: str, tmp_path: Path) -> None:
    env = pod_environment(tmp_path, authority=f"http://{LOOPBACK}:{free_port()}/")
    del env[missing]
    proc = judge(
        "--prometheus", f"http://{LOOPBACK}:{free_port()}", "--auth", "workload-identity", "--check", "a=up", env=env
    )
    assert proc.returncode == 2
    assert f"workload-identity: {missing} not set" in proc.stderr
    assert ASSERTION not in proc.stdout + proc.stderr
