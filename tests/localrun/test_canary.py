"""The local canary loop against real processes: three model servers from the project's venv (the stable version, a
good new version and a bad one that answers 500 to about half its requests), the weighted nginx proxy in front of
two of them, a Prometheus scraping all three with the cluster's labels, and the real judge command.

A bad canary is aborted by the error-ratio check and traffic goes back to stable; a good one is promoted through
every step; a canary the analysis cannot see (its hash is on no series) is aborted. Durations are scaled down
(20 s steps, 5 s measurements, 1 s scrapes); times are printed, never asserted.
"""

from __future__ import annotations

import collections
import json
import shutil
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from components.model_canary import CanaryRelease
from demo.wine_model import save_failing_model, save_wine_model
from localrun.canary import (
    ABORTED,
    PROMOTED,
    CanaryResult,
    ModelServer,
    Traffic,
    input_example_body,
    model_server,
    run_canary,
    run_judge,
)
from localrun.monitoring import canary_prometheus, port_of
from localrun.processes import LOOPBACK, free_port
from localrun.weighted_proxy import CANARY, NGINX, SIDE_HEADER, STABLE, WeightedProxy
from monitoring.analysis import canary_checks
from stacks.settings import MonitoringSettings, ServingSloSettings

REAL_PROCESSES = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not NGINX.exists(), reason="Debian's nginx (scripts/bootstrap.sh installs it)"),
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus"),
]

APP = "wine"
# Any two label values stand for the pod-template hashes locally: the versions' names.
STABLE_HASH, GOOD_HASH, BAD_HASH = "wine-v1", "wine-v2", "wine-v3-bad"
NOT_SCRAPED_HASH = "wine-v2-unseen"
RELEASE = CanaryRelease(steps=(10, 50), pause_seconds=20, measurement_interval_seconds=5, max_failed_measurements=2)
# Several 1 s scrapes after the canary's first requests (2 a second at 10%), so a rate over them exists.
INITIAL_DELAY_SECONDS = 8.0
# The stack defaults' error ratio, with a p99 bound a 2-core machine shared with other work keeps (the wine model
# answers in milliseconds): the latency checks are not what these tests are about.
MONITORING = MonitoringSettings(slo=ServingSloSettings(latency_p99_ms=1000))


@dataclass(frozen=True)
class Versions:
    stable: ModelServer
    good: ModelServer
    bad: ModelServer
    prometheus_url: str
    body: bytes


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Versions]:
    workdir = tmp_path_factory.mktemp("canary")
    with warnings.catch_warnings():
        # MLflow warns about its own type hints and about a model from code without type hints on predict.
        warnings.simplefilter("ignore", UserWarning)
        stable_dir = save_wine_model(workdir / "models" / "v1", max_iter=50)
        good_dir = save_wine_model(workdir / "models" / "v2", max_iter=60)
        bad_dir = save_failing_model(workdir / "models" / "v3")
    armed = workdir / "bad-version-armed"
    servers = [
        model_server(stable_dir, workdir, name=APP, version=STABLE_HASH),
        model_server(good_dir, workdir, name=APP, version=GOOD_HASH),
        model_server(
            bad_dir, workdir, name=APP, version=BAD_HASH, env={"FAILING_ARMED_FILE": str(armed), "FAILING_SHARE": "0.5"}
        ),
    ]
    # Each server spends seconds importing MLflow: start them together.
    errors: list[BaseException] = []

    def start(server: ModelServer) -> None:
        try:
            server.process.start(timeout=240)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stable, good, bad = servers
    prometheus = canary_prometheus(
        workdir / "prometheus",
        namespace=APP,
        targets={STABLE_HASH: stable.address, GOOD_HASH: good.address, BAD_HASH: bad.address},
    )
    try:
        if errors:
            raise errors[0]
        armed.touch()  # warmed up and ready: from now on the bad version fails half its predictions
        prometheus.start(timeout=60)
        yield Versions(stable, good, bad, f"http://{LOOPBACK}:{port_of(prometheus)}", input_example_body(stable_dir))
    finally:
        prometheus.stop()
        for server in servers:
            server.process.stop()


def release(
    versions: Versions, canary: ModelServer, canary_hash: str, workdir: Path
) -> tuple[CanaryResult, collections.Counter[str]]:
    """Release `canary` behind a fresh proxy, judged as `canary_hash`; then 200 requests through the proxy,
    counted by the side that served them."""
    with WeightedProxy(workdir / "proxy", stable=versions.stable.address, canary=canary.address) as proxy:
        result = run_canary(
            proxy=proxy,
            prometheus_url=versions.prometheus_url,
            monitoring=MONITORING,
            app=APP,
            stable_hash=STABLE_HASH,
            canary_hash=canary_hash,
            release=RELEASE,
            traffic=Traffic(proxy.url, [versions.body]),
            initial_delay_seconds=INITIAL_DELAY_SECONDS,
            report=lambda line: print(line, flush=True),
        )
        after: collections.Counter[str] = collections.Counter()
        with httpx.Client(base_url=proxy.url) as client:
            for _ in range(200):
                answer = client.post(
                    "/invocations", content=versions.body, headers={"content-type": "application/json"}
                )
                after[f"{answer.headers.get(SIDE_HEADER)} {answer.status_code}"] += 1
    for step in result.steps:
        print(
            f"step {step.weight}%: {step.started_seconds:.1f}-{step.ended_seconds:.1f} s, "
            f"weight live at {step.weight_set_seconds:.1f} s, served {dict(step.served)}"
        )
    print(f"outcome {result.outcome} after {result.seconds_total:.1f} s; then 200 requests: {dict(after)}")
    return result, after


class TestRealProcesses:
    """Two model servers, the proxy, Prometheus and the judge, all real, on 127.0.0.1."""

    pytestmark = REAL_PROCESSES

    def test_a_bad_canary_is_aborted_by_its_error_ratio_and_traffic_returns_to_stable(
        self, versions: Versions, tmp_path: Path
    ) -> None:
        result, after = release(versions, versions.bad, BAD_HASH, tmp_path)

        assert result.outcome == ABORTED
        assert result.failed_checks == ("error-ratio",), result.failed_verdict
        assert result.failed_verdict is not None
        assert not result.failed_verdict.passed
        assert result.failed_value is not None
        assert float(result.failed_value) > MONITORING.slo.error_ratio
        assert '"check": "error-ratio"' in result.failed_verdict.line
        assert result.seconds_to_abort is not None
        print(
            f"\nbad canary: start -> abort {result.seconds_to_abort:.1f} s, error ratio measured {result.failed_value}"
        )
        # The canary did answer 500s through the proxy before the abort: the analysis measured real failures.
        assert result.steps[-1].served.get((CANARY, 500), 0) > 0
        assert after == {f"{STABLE} 200": 200}

    def test_a_good_canary_is_promoted_through_every_step(self, versions: Versions, tmp_path: Path) -> None:
        result, after = release(versions, versions.good, GOOD_HASH, tmp_path)

        assert result.outcome == PROMOTED, result.failed_verdict
        assert [step.weight for step in result.steps] == list(RELEASE.steps)
        # Measured at every step, and the canary served at every step.
        assert {measurement.weight for measurement in result.measurements} == set(RELEASE.steps)
        assert all(step.served.get((CANARY, 200), 0) > 0 for step in result.steps)
        assert after == {f"{CANARY} 200": 200}

    def test_a_canary_the_analysis_cannot_see_is_aborted(self, versions: Versions, tmp_path: Path) -> None:
        # The good version serves the canary's share, but no series carries the hash the checks select.
        result, after = release(versions, versions.good, NOT_SCRAPED_HASH, tmp_path)

        assert result.outcome == ABORTED
        assert result.failed_verdict is not None
        assert result.failed_verdict.value is None
        assert "empty answer" in (result.failed_verdict.error or "")
        # Every check is blind to it, not only the one named first.
        assert set(result.failed_checks) == {"ready", "error-ratio", "latency-p99", "latency-vs-stable", "drift"}
        assert result.seconds_to_abort is not None
        print(f"\nunseen canary: start -> abort {result.seconds_to_abort:.1f} s")
        assert after == {f"{STABLE} 200": 200}


# --- without servers: the judge's failures and bad input --------------------------------------------------------


CHECKS = canary_checks(MONITORING, APP, GOOD_HASH, STABLE_HASH)


def test_a_judge_that_cannot_run_fails_every_check() -> None:
    # The judge refuses a non-http URL before querying anything (exit 2) and prints no verdict.
    exit_code, verdicts = run_judge(CHECKS, f"ftp://{LOOPBACK}:9090")

    assert exit_code == 2
    assert [verdict.check for verdict in verdicts] == [check.name for check in CHECKS]
    assert not any(verdict.passed for verdict in verdicts)
    assert all("printed no verdict" in (verdict.error or "") for verdict in verdicts)


def test_an_unreachable_prometheus_fails_every_check_with_the_judges_line() -> None:
    exit_code, verdicts = run_judge(CHECKS, f"http://{LOOPBACK}:{free_port()}", timeout=2)

    assert exit_code == 1
    assert not any(verdict.passed for verdict in verdicts)
    assert [json.loads(verdict.line)["check"] for verdict in verdicts] == [check.name for check in CHECKS]


def run_with(proxy: WeightedProxy, initial_delay_seconds: float) -> CanaryResult:
    return run_canary(
        proxy=proxy,
        prometheus_url=f"http://{LOOPBACK}:9090",
        monitoring=MONITORING,
        app=APP,
        stable_hash=STABLE_HASH,
        canary_hash=GOOD_HASH,
        release=RELEASE,
        traffic=Traffic(proxy.url, [b"{}"]),
        initial_delay_seconds=initial_delay_seconds,
    )


def test_a_release_that_would_promote_before_measuring_is_refused(tmp_path: Path) -> None:
    proxy = WeightedProxy(tmp_path, stable=f"{LOOPBACK}:8081", canary=f"{LOOPBACK}:8082")
    total = RELEASE.pause_seconds * len(RELEASE.steps)
    with pytest.raises(ValueError, match=rf"initial_delay_seconds: .* \({total} s\)"):
        run_with(proxy, initial_delay_seconds=total)


def test_a_proxy_already_sending_the_canary_traffic_is_refused(tmp_path: Path) -> None:
    proxy = WeightedProxy(tmp_path, stable=f"{LOOPBACK}:8081", canary=f"{LOOPBACK}:8082", canary_weight=10)
    with pytest.raises(ValueError, match="proxy: expected a canary weight of 0"):
        run_with(proxy, initial_delay_seconds=INITIAL_DELAY_SECONDS)


def test_traffic_without_a_body_is_refused() -> None:
    with pytest.raises(ValueError, match="bodies: expected at least one request body"):
        Traffic(f"http://{LOOPBACK}:8080", [])


def test_a_scrape_target_that_is_not_a_loopback_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"targets\['wine-v1'\]: expected '<IPv4 loopback address>:<port>'"):
        canary_prometheus(tmp_path, namespace=APP, targets={STABLE_HASH: "0.0.0.0:8080"})
