"""`python -m release.await_rollout` against a stand-in AKS API server over real TLS, GitHub's OIDC endpoint and
Entra (tests/release/kubefake.py): it waits for the release the last `pulumi up` applied, reads the outcome the way
Argo Rollouts v1.9.0 does, and reports the failed check from the judge's own log line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from model_server.judge import Verdict
from release.await_rollout import AKS_SCOPE, main
from tests.components.crd_schema import crd_problems
from tests.model_image.judge_standins import serving
from tests.release.kubefake import (
    NEW_HASH,
    OLD_HASH,
    Clock,
    FederatedEntra,
    GitHubOidc,
    KubeApi,
    Pki,
    analysis_run,
    job_name,
    judge_log,
    kubeconfig,
    make_pki,
    measurement,
    rollout,
    run_name,
    serve_tls,
)

TENANT = "72f988bf-0000-4000-8000-000000000001"
CLIENT = "0f1e2d3c-0000-4000-8000-000000000002"
ROLLOUT_REF = '{"namespace": "wine-quality", "name": "wine-quality"}'
ABORT_MESSAGE = (
    "RolloutAborted: Rollout aborted update to revision 2: Background analysis phase error/failed: "
    'Metric "error-ratio" assessed Failed due to failed (2) > failureLimit (1)'
)

# States of one release, as the controller writes them (each GET serves the next; the last one stays).
STALE = rollout(generation=3, observed=2, phase="Healthy", message="", stable=OLD_HASH, current=OLD_HASH, step=5)
STARTED = rollout(
    generation=3,
    observed=3,
    phase="Progressing",
    message="more replicas need to be updated",
    stable=OLD_HASH,
    current=NEW_HASH,
    step=1,
)
PAUSED_AT_10 = rollout(
    generation=3,
    observed=3,
    phase="Paused",
    message="CanaryPauseStep",
    stable=OLD_HASH,
    current=NEW_HASH,
    step=2,
    paused=True,
    background_run=(run_name(), "Running"),
)
PAUSED_AT_50 = rollout(
    generation=3,
    observed=3,
    phase="Paused",
    message="CanaryPauseStep",
    stable=OLD_HASH,
    current=NEW_HASH,
    step=4,
    paused=True,
    background_run=(run_name(), "Running"),
)
PROMOTED = rollout(generation=3, observed=3, phase="Healthy", message="", stable=NEW_HASH, current=NEW_HASH, step=5)
# canary.go: on abort the step index goes back to 0 while the canary is not the stable version.
ABORTED = rollout(
    generation=3,
    observed=3,
    phase="Degraded",
    message=ABORT_MESSAGE,
    stable=OLD_HASH,
    current=NEW_HASH,
    step=0,
    abort=True,
    background_run=(run_name(), "Failed"),
)

FAILED_JOB = job_name("error-ratio", 2)
FAILED_RUN = analysis_run(
    "Failed",
    'Metric "error-ratio" assessed Failed due to failed (2) > failureLimit (1)',
    [
        {
            "name": "error-ratio",
            "phase": "Failed",
            "count": 2,
            "failed": 2,
            "measurements": [
                measurement("Failed", job_name("error-ratio", 1)),
                measurement("Failed", FAILED_JOB),
            ],
        },
        {
            # A run that ends terminates its other metrics' measurements (analysis/analysis.go, terminating).
            "name": "up",
            "phase": "Successful",
            "count": 2,
            "successful": 2,
            "measurements": [
                measurement("Successful", job_name("up", 1)),
                measurement("Successful", job_name("up", 2)),
            ],
        },
    ],
)
PASSED_RUN = analysis_run(
    "Successful",
    "",
    [
        {
            "name": "error-ratio",
            "phase": "Successful",
            "count": 1,
            "successful": 1,
            "measurements": [measurement("Successful", job_name("error-ratio", 1))],
        }
    ],
)
FAILED_LOG = judge_log(
    Verdict("error-ratio", False, 0, "0.0734", "empty answer: no sample met the bound (or no such series)")
)


@dataclass
class World:
    tmp: Path
    clock: Clock
    pki: Pki
    github: GitHubOidc
    entra: FederatedEntra
    github_url: str
    entra_url: str

    def run(self, api: KubeApi, *extra: str, ca_pem: str | None = None, rollout_ref: str = ROLLOUT_REF) -> Result:
        api.clock = self.clock
        self.entra.api = api
        with serve_tls(api, self.pki):
            env = {
                "AKS_KUBECONFIG": kubeconfig(api.url, ca_pem or self.pki.ca_pem),
                "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.github_url}/token?api-version=2.0",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.github.request_token,
                "ARM_TENANT_ID": TENANT,
                "ARM_CLIENT_ID": CLIENT,
            }
            summary, outputs = self.tmp / "summary.md", self.tmp / "outputs.txt"
            code = main(
                [
                    *("--rollout", rollout_ref, "--kubeconfig-env", "AKS_KUBECONFIG", "--auth", "github-oidc"),
                    *("--authority", self.entra_url, "--interval", "60", "--timeout", "3600"),
                    *("--summary", str(summary), "--outputs", str(outputs)),
                    *extra,
                ],
                environ=env,
                clock=self.clock,
                sleep=self.clock.sleep,
            )
        text = summary.read_text() if summary.exists() else ""
        lines = outputs.read_text().splitlines() if outputs.exists() else []
        return Result(code, text, dict(line.split("=", 1) for line in lines), lines)


@dataclass
class Result:
    code: int
    summary: str
    outputs: dict[str, str]
    output_lines: list[str]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    github = GitHubOidc()
    entra = FederatedEntra(
        tenant=TENANT,
        client_id=CLIENT,
        trusted_assertion="",
        access_token="",
        scope=AKS_SCOPE,
        github=github,
        clock=clock,
    )
    with serving(github.handler()) as github_url, serving(entra.handler()) as entra_url:
        yield World(tmp_path, clock, make_pki(tmp_path), github, entra, github_url, entra_url)


def test_a_canary_promoted_after_its_steps_exits_0(world: World) -> None:
    api = KubeApi([STARTED, PAUSED_AT_10, PAUSED_AT_50, PROMOTED], world.clock, runs=[PASSED_RUN])
    result = world.run(api)
    assert result.code == 0
    assert result.outputs["outcome"] == "promoted"
    assert result.outputs["canary-hash"] == NEW_HASH
    assert result.outputs["failed-check"] == ""
    assert "Steps reached: 5 of 5" in result.summary
    assert f"AnalysisRun `{run_name()}` (Background): Successful" in result.summary
    # The GitHub token asked for the audience Entra's federated credentials expect.
    assert world.github.audiences == ["api://AzureADTokenExchange"]


def test_a_failed_job_metric_aborts_with_the_check_and_value_from_the_judges_log(world: World) -> None:
    api = KubeApi([STARTED, PAUSED_AT_10, ABORTED], world.clock, runs=[FAILED_RUN], jobs={FAILED_JOB: FAILED_LOG})
    result = world.run(api)
    assert result.code == 3
    assert result.outputs["outcome"] == "aborted"
    assert result.outputs["failed-check"] == "error-ratio"
    assert result.outputs["failed-value"] == "0.0734"
    assert "error-ratio = 0.0734" in result.outputs["reason"]
    assert "failed (2) > failureLimit (1)" in result.outputs["reason"]
    assert "**Failed check: `error-ratio` = `0.0734`**" in result.summary
    # The highest step seen, though Argo puts the index back to 0 on abort.
    assert "Steps reached: 2 of 5" in result.summary
    assert "| error-ratio | Failed | Failed |" in result.summary
    assert "| up | Successful | Successful |" in result.summary
    # Every output is one `name=value` line: nothing a later step could read as another output.
    assert len(result.output_lines) == 5


def test_a_stale_healthy_from_before_the_update_is_not_taken_as_promoted(world: World) -> None:
    api = KubeApi([STALE, STALE, STARTED, PAUSED_AT_50, PROMOTED], world.clock, runs=[PASSED_RUN])
    result = world.run(api)
    assert result.code == 0
    assert result.outputs["canary-hash"] == NEW_HASH  # the new release's, not the stale stable one
    served = [path for _, path in api.requests if path.endswith("/rollouts/wine-quality")]
    assert len(served) == 5


def test_only_a_stale_healthy_times_out(world: World) -> None:
    api = KubeApi([STALE], world.clock)
    result = world.run(api, "--timeout", "600")
    assert result.code == 1
    assert result.outputs["outcome"] == "timeout"


def test_a_job_already_deleted_still_names_the_failed_metric(world: World) -> None:
    api = KubeApi([STARTED, ABORTED], world.clock, runs=[FAILED_RUN], jobs={})
    result = world.run(api)
    assert result.code == 3
    assert result.outputs["failed-check"] == "error-ratio"
    assert result.outputs["failed-value"] == ""
    assert f"Job `{FAILED_JOB}` of `error-ratio` is already deleted" in result.summary


def test_the_token_is_fetched_again_before_it_expires_mid_wait(world: World) -> None:
    # Tokens of 10 minutes polled every minute: the wait outlives the first one.
    world.entra.expires_in = 600
    states = [STARTED, *[PAUSED_AT_10] * 8, *[PAUSED_AT_50] * 8, PROMOTED]
    api = KubeApi(states, world.clock, runs=[PASSED_RUN])
    result = world.run(api)
    assert result.code == 0
    assert api.refused == 0  # renewed ahead of its expiry, never after a 401
    assert len(world.entra.exchanged) >= 2
    # Each exchange used a GitHub token fetched for it, never one kept from before.
    assert world.entra.exchanged == world.github.issued


def test_a_401_from_the_api_server_is_a_clear_error_that_leaks_no_token(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    class Refusing(KubeApi):
        def accepts(self, header: str) -> bool:
            return False

    api = Refusing([STARTED], world.clock)
    result = world.run(api)
    assert result.code == 1
    assert result.outputs["outcome"] == ""
    assert "refused the token (HTTP 401)" in result.outputs["reason"]
    assert api.refused == 2  # once, then once more with a new token
    logged = capsys.readouterr()
    assert "refused the token (HTTP 401)" in logged.err
    for token in [*world.github.issued, *world.entra.tokens_issued()]:
        for text in (result.summary, "\n".join(result.output_lines), logged.out, logged.err):
            assert token not in text


def test_a_wrong_ca_fails_the_tls_handshake_with_a_clear_error(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_pki(world.tmp, "other")
    api = KubeApi([PROMOTED], world.clock)
    result = world.run(api, ca_pem=other.ca_pem)
    assert result.code == 1
    assert "certificate the kubeconfig's CA did not sign" in capsys.readouterr().err
    assert api.requests == []


def test_day_zero_with_no_rollout_exits_0_and_says_so(world: World) -> None:
    result = world.run(KubeApi([PROMOTED], world.clock), rollout_ref="")
    assert result.code == 0
    assert result.outputs["outcome"] == "none"
    assert "day zero" in result.summary


def test_a_timeout_exits_1_and_aborts_nothing(world: World) -> None:
    api = KubeApi([STARTED, PAUSED_AT_10], world.clock, runs=[PASSED_RUN])
    result = world.run(api, "--timeout", "300")
    assert result.code == 1
    assert result.outputs["outcome"] == "timeout"
    assert "nothing was aborted" in result.summary
    assert {method for method, _ in api.requests} == {"GET"}


@pytest.mark.parametrize(
    ("rollout_ref", "expected"),
    [
        ("not json", "--rollout: expected JSON"),
        ('{"namespace": "Wine"}', '--rollout: expected exactly {"namespace"'),
        ('{"namespace": "Wine", "name": "x"}', "--rollout: namespace: expected a Kubernetes name"),
    ],
)
def test_bad_input_exits_2_naming_the_option(
    world: World, rollout_ref: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = world.run(KubeApi([PROMOTED], world.clock), rollout_ref=rollout_ref)
    assert result.code == 2
    assert expected in capsys.readouterr().err


def test_on_a_laptop_the_azure_cli_token_for_the_aks_server_app_is_used(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in `az`: the token only for `account get-access-token --resource <AKS server app>`, with the
    # `expires_on` POSIX time Azure CLI 2.54+ prints (Azure/azure-cli#27476).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    expires = int(world.clock()) + 3600
    az = bin_dir / "az"
    az.write_text(
        "#!/bin/sh\n"
        f'[ "$*" = "account get-access-token --resource {AKS_SCOPE.removesuffix("/.default")} --output json" ] '
        "|| exit 1\n"
        f'echo \'{{"accessToken": "cli-aks-token", "expires_on": {expires}, "tokenType": "Bearer"}}\'\n'
    )
    az.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    api = KubeApi([STARTED, PROMOTED], world.clock, runs=[PASSED_RUN], tokens={"cli-aks-token": float(expires)})
    result = world.run(api, "--auth", "azure-cli")
    assert result.code == 0
    assert result.outputs["outcome"] == "promoted"
    assert world.github.issued == []  # no GitHub token on a laptop


def test_an_analysis_that_cannot_be_read_never_hides_the_abort(world: World) -> None:
    class LogsFail(KubeApi):
        def handle(self, method: str, raw: str, authorization: str) -> tuple[int, object]:
            if raw.split("?", 1)[0].endswith("/log"):
                return 500, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500}
            return super().handle(method, raw, authorization)

    api = LogsFail([STARTED, ABORTED], world.clock, runs=[FAILED_RUN], jobs={FAILED_JOB: FAILED_LOG})
    result = world.run(api)
    assert result.code == 3
    assert result.outputs["outcome"] == "aborted"
    assert "The analysis could not be read" in result.summary
    assert "failed (2) > failureLimit (1)" in result.outputs["reason"]  # Argo's own message still says why


def test_a_few_api_server_errors_in_a_row_are_waited_out(world: World) -> None:
    class Blips(KubeApi):
        failures = 3

        def handle(self, method: str, raw: str, authorization: str) -> tuple[int, object]:
            if raw.endswith("/rollouts/wine-quality") and self.failures:
                self.failures -= 1
                return 503, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503}
            return super().handle(method, raw, authorization)

    api = Blips([STARTED, PROMOTED], world.clock, runs=[PASSED_RUN])
    result = world.run(api)
    assert result.code == 0
    assert result.outputs["outcome"] == "promoted"


def test_an_api_server_that_keeps_failing_ends_the_wait_with_an_error(world: World) -> None:
    class Down(KubeApi):
        def handle(self, method: str, raw: str, authorization: str) -> tuple[int, object]:
            return 503, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503}

    result = world.run(Down([STARTED], world.clock))
    assert result.code == 1
    assert "HTTP 503" in result.outputs["reason"]


def test_the_stand_ins_objects_are_held_to_the_pinned_crds() -> None:
    # Argo writes observedGeneration as a string (types.go); the CRD check refuses the integer a guess would write.
    wrong = {**PROMOTED, "status": {**PROMOTED["status"], "observedGeneration": 3}}
    assert crd_problems(wrong, "rollout-crd.yaml") != []
    unknown = {**FAILED_RUN, "status": {**FAILED_RUN["status"], "verdict": "Failed"}}
    assert "unknown field .status.verdict" in crd_problems(unknown, "analysis-run-crd.yaml")
    for served in (STALE, STARTED, PAUSED_AT_10, PAUSED_AT_50, PROMOTED, ABORTED):
        assert crd_problems(served, "rollout-crd.yaml") == []
    for run in (FAILED_RUN, PASSED_RUN):
        assert crd_problems(run, "analysis-run-crd.yaml") == []


def test_without_a_summary_file_the_report_goes_to_stdout(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--rollout", ""], environ={}, clock=world.clock, sleep=world.clock.sleep)
    assert code == 0
    assert "day zero" in capsys.readouterr().out
