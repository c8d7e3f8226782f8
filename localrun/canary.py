"""The local stand-in for Argo Rollouts' canary loop: steps the weighted proxy through a release's shares while the
real judge measures the canary, and aborts or promotes the way the controller does.

In the cluster the controller sets each step's weight, holds it for the pause, and runs the analysis in the
background from the first step: one Job per measurement interval (`python -m model_server judge`, exit 0 iff every
check passed), and once the failed measurements reach the limit the rollout aborts and all traffic goes back to the
stable version (docs/decisions/0001-canary-release.md). Here the same checks (`monitoring.analysis.canary_checks`,
with two concrete hashes) run through the same judge command, `--auth none`, against a local Prometheus that
labels each server's series as the cluster's scrape job does (`localrun.monitoring.canary_prometheus`); the
router is `localrun.weighted_proxy.WeightedProxy`. Failed measurements are counted per check over the whole run, as
Argo counts each metric's (it fails a metric once its failed measurements exceed failureLimit: argoproj/argo-rollouts
analysis/analysis.go `assessMetricStatus`), so an abort names the check and carries the judge's own JSON line for it.
In the cluster the judge is one Job metric for all checks, so there failures of different checks add up.

Durations come from `components.model_canary.CanaryRelease` (a stack's `serving.canary`, or a scaled-down one:
`dataclasses.replace(release, pause_seconds=20, measurement_interval_seconds=5)`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from components.contracts import server
from components.model_canary import CanaryRelease
from localrun.processes import LOOPBACK, ManagedProcess, child_env, free_port
from localrun.weighted_proxy import SIDE_HEADER, WeightedProxy
from monitoring.analysis import CanaryCheck, canary_checks
from stacks.settings import MonitoringSettings

Outcome = Literal["promoted", "aborted"]
PROMOTED: Outcome = "promoted"
ABORTED: Outcome = "aborted"
# What a response that never came back through the proxy is counted as.
UNANSWERED = "unanswered"
INPUT_EXAMPLE = "serving_input_example.json"  # MLflow saves a model's input example in this serving form
JSON_BODY = "application/json"


# --- the model servers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelServer:
    """A model server process (not started until `process.start()`) and where it listens."""

    process: ManagedProcess
    port: int

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>`: what the proxy and Prometheus are given."""
        return f"{LOOPBACK}:{self.port}"


def model_server(
    model_dir: Path, workdir: Path, *, name: str, version: str, env: Mapping[str, str] | None = None
) -> ModelServer:
    """`python -m model_server serve` on `model_dir` from the project's venv, on 127.0.0.1, as model `name` at
    `version` (not started: start its `process`, ready once the model is loaded and warmed up)."""
    port = free_port()
    process = ManagedProcess(
        name=f"model-server-{name}-{version}",
        argv=[sys.executable, "-m", "model_server", "serve", "--model-dir", str(model_dir), "--port", str(port)],
        log_path=workdir / f"model-server-{version}.log",
        # One BLAS thread: two servers, Prometheus, nginx and the judge share a small machine.
        env={"MODEL_NAME": name, "MODEL_VERSION": version, "OMP_NUM_THREADS": "1", **(env or {})},
        ready_url=f"http://{LOOPBACK}:{port}{server.Routes.HEALTH_READY}",
    )
    return ModelServer(process, port)


def input_example_body(model_dir: Path) -> bytes:
    """The model's input example as a scoring request body (JSON), as the demo's smoke test sends it."""
    path = model_dir / INPUT_EXAMPLE
    if not path.is_file():
        raise ValueError(f"model_dir: expected an MLflow model saved with an input example ({path} is missing)")
    return path.read_bytes()


# --- traffic ----------------------------------------------------------------------------------------------------


@dataclass
class Traffic:
    """Scoring requests through the proxy at a steady rate, in a background thread, counted by the side that served
    them (the proxy's `X-Canary-Side`) and their status."""

    url: str
    """The proxy's base URL; requests go to `<url>/invocations`."""
    bodies: Sequence[bytes]
    """Request bodies, sent in turn."""
    requests_per_second: float = 20.0
    content_type: str = JSON_BODY
    timeout: float = 10.0
    _served: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.bodies:
            raise ValueError("bodies: expected at least one request body (e.g. the model's input example)")
        if not 0 < self.requests_per_second <= 1000:
            raise ValueError(f"requests_per_second: expected a rate from 0 to 1000, got {self.requests_per_second!r}")

    def served(self) -> dict[tuple[str, int], int]:
        """(side, status) -> requests so far; a request that got no answer is (`UNANSWERED`, 0)."""
        with self._lock:
            return dict(self._served)

    def _send(self) -> None:
        gap = 1.0 / self.requests_per_second
        due = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=self.timeout) as client:
            sent = 0
            while not self._stop.is_set():
                body = self.bodies[sent % len(self.bodies)]
                sent += 1
                try:
                    response = client.post(
                        server.Routes.INVOCATIONS, content=body, headers={"content-type": self.content_type}
                    )
                    outcome = (response.headers.get(SIDE_HEADER, UNANSWERED), response.status_code)
                except httpx.HTTPError:
                    outcome = (UNANSWERED, 0)
                with self._lock:
                    self._served[outcome] += 1
                # A steady rate, not a burst to catch up after a slow answer.
                due = max(due + gap, time.monotonic())
                self._stop.wait(max(0.0, due - time.monotonic()))

    def start(self) -> Traffic:
        """Start sending; a Traffic runs once (make a new one for another release)."""
        if self._thread is not None:
            raise RuntimeError("traffic: already started")
        self._thread = threading.Thread(target=self._send, name="canary-traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)

    @contextlib.contextmanager
    def running(self) -> Iterator[Traffic]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


# --- the judge --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One check's outcome in one measurement, from the judge's JSON line for it."""

    check: str
    passed: bool
    value: str | None
    """The measured value (the first sample of the check's value query), when there was one."""
    error: str | None
    line: str
    """The judge's JSON line, verbatim (or, if it printed none for this check, why not)."""


@dataclass(frozen=True)
class Measurement:
    """One run of the judge: when (seconds since the canary started), at which weight, and its verdicts."""

    at_seconds: float
    weight: int
    exit_code: int
    verdicts: tuple[Verdict, ...]

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and all(verdict.passed for verdict in self.verdicts)


def judge_argv(checks: Sequence[CanaryCheck], prometheus_url: str, timeout: float) -> list[str]:
    """The judge's command line: every check's pass query and its value query, no auth (a local Prometheus)."""
    argv = [sys.executable, "-m", "model_server", "judge", "--prometheus", prometheus_url, "--auth", "none"]
    for check in checks:
        argv += ["--check", f"{check.name}={check.query}", "--value", f"{check.name}={check.value_query}"]
    return [*argv, "--timeout", f"{timeout:g}"]


def run_judge(
    checks: Sequence[CanaryCheck], prometheus_url: str, *, timeout: float = 10.0
) -> tuple[int, tuple[Verdict, ...]]:
    """One measurement: the judge's exit code and a verdict per check. A check the judge printed no line for (it
    could not run, or crashed) fails: an analysis that cannot measure must not pass."""
    # Each query may take `timeout`, and there are two per check (value and pass).
    deadline = timeout * 2 * len(checks) + 30
    try:
        done = subprocess.run(
            judge_argv(checks, prometheus_url, timeout),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=deadline,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, tuple(_no_verdict(check.name, f"the judge did not finish in {deadline:.0f}s") for check in checks)
    printed: dict[str, Verdict] = {}
    for line in done.stdout.splitlines():
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict) and isinstance(document.get("check"), str):
            value, error = document.get("value"), document.get("error")
            printed[document["check"]] = Verdict(
                check=document["check"],
                passed=document.get("passed") is True,
                value=value if isinstance(value, str) else None,
                error=error if isinstance(error, str) else None,
                line=line,
            )
    why = f"the judge printed no verdict (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    return done.returncode, tuple(printed.get(check.name) or _no_verdict(check.name, why) for check in checks)


def _no_verdict(check: str, why: str) -> Verdict:
    return Verdict(check=check, passed=False, value=None, error=why, line=why)


# --- the canary loop --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepTiming:
    """One step: its share, when it started and when its weight was live (seconds since the canary started), when
    it ended (the pause was over, or the release aborted), and the traffic each side served meanwhile."""

    weight: int
    started_seconds: float
    weight_set_seconds: float
    ended_seconds: float
    served: Mapping[tuple[str, int], int]
    """(side, status) -> requests answered during the step."""


@dataclass(frozen=True)
class CanaryResult:
    """How a canary release ended, and what it measured on the way."""

    outcome: Outcome
    steps: tuple[StepTiming, ...]
    measurements: tuple[Measurement, ...]
    failed_checks: tuple[str, ...]
    """The checks whose failed measurements reached the limit (empty when promoted)."""
    failed_verdict: Verdict | None
    """In the measurement that aborted the release, the verdict of the first check (in `canary_checks` order) that
    reached the limit."""
    seconds_to_abort: float | None
    """From the canary's start to its weight back at 0."""
    seconds_total: float

    @property
    def failed_check(self) -> str | None:
        return self.failed_verdict.check if self.failed_verdict else None

    @property
    def failed_value(self) -> str | None:
        """The aborting check's measured value (None when it measured nothing)."""
        return self.failed_verdict.value if self.failed_verdict else None


def run_canary(
    *,
    proxy: WeightedProxy,
    prometheus_url: str,
    monitoring: MonitoringSettings,
    app: str,
    stable_hash: str,
    canary_hash: str,
    release: CanaryRelease,
    traffic: Traffic,
    initial_delay_seconds: float,
    judge_timeout: float = 10.0,
    report: Callable[[str], None] | None = None,
) -> CanaryResult:
    """Release the canary behind `proxy` (which must send it no traffic yet) in `release`'s steps, with `traffic`
    flowing through the proxy the whole time, judged by `canary_checks(monitoring, app, canary_hash, stable_hash)`.

    The first measurement is `initial_delay_seconds` after the release starts (the canary must have served and
    been scraped twice for a rate to exist), then one every measurement interval across the steps.
    A check failing its `max_failed_measurements`-th time aborts: the weight goes back to 0 at once. Otherwise, when
    the last step's pause is over, the canary takes all traffic (weight 100). If anything else goes wrong on the
    way, the weight goes back to 0 before the error propagates.
    """
    checks = canary_checks(monitoring, app, canary_hash, stable_hash)
    pause, interval = release.pause_seconds, release.measurement_interval_seconds
    if not 0 <= initial_delay_seconds < pause * len(release.steps):
        raise ValueError(
            f"initial_delay_seconds: expected 0 or more and less than the steps' total pause "
            f"({pause * len(release.steps)} s), so the analysis measures before promotion "
            f"(got {initial_delay_seconds!r})"
        )
    if proxy.canary_weight != 0:
        raise ValueError(f"proxy: expected a canary weight of 0 before the release (got {proxy.canary_weight})")
    say = report or (lambda _line: None)
    measurements: list[Measurement] = []
    steps: list[StepTiming] = []
    failures: collections.Counter[str] = collections.Counter()
    start = time.monotonic()

    def since() -> float:
        return time.monotonic() - start

    with traffic.running():
        try:
            next_measurement = start + initial_delay_seconds
            for weight in release.steps:
                step_started, served_before = since(), traffic.served()
                proxy.set_canary_weight(weight)
                weight_set = since()
                say(f"canary at {weight}% ({weight_set:.1f} s)")
                step_end = time.monotonic() + pause
                while next_measurement < step_end:
                    time.sleep(max(0.0, next_measurement - time.monotonic()))
                    at = since()
                    exit_code, verdicts = run_judge(checks, prometheus_url, timeout=judge_timeout)
                    measurement = Measurement(at, weight, exit_code, verdicts)
                    measurements.append(measurement)
                    failures.update(verdict.check for verdict in verdicts if not verdict.passed)
                    failed = ", ".join(f"{v.check} ({failures[v.check]})" for v in verdicts if not v.passed)
                    say(f"  measurement at {at:.1f} s: {f'failed: {failed}' if failed else 'passed'}")
                    # The next one an interval later, or at once if the judge took longer than that.
                    next_measurement = max(next_measurement + interval, time.monotonic())
                    aborted = [c.name for c in checks if failures[c.name] >= release.max_failed_measurements]
                    if aborted:
                        proxy.set_canary_weight(0)
                        abort_seconds = since()
                        culprit = next(v for v in verdicts if v.check == aborted[0])
                        say(f"aborted at {abort_seconds:.1f} s: {culprit.line}")
                        steps.append(
                            _step(weight, (step_started, weight_set, abort_seconds), traffic.served(), served_before)
                        )
                        return CanaryResult(
                            outcome=ABORTED,
                            steps=tuple(steps),
                            measurements=tuple(measurements),
                            failed_checks=tuple(aborted),
                            failed_verdict=culprit,
                            seconds_to_abort=abort_seconds,
                            seconds_total=since(),
                        )
                time.sleep(max(0.0, step_end - time.monotonic()))
                steps.append(_step(weight, (step_started, weight_set, since()), traffic.served(), served_before))
            proxy.set_canary_weight(100)
            say(f"promoted at {since():.1f} s")
            return CanaryResult(
                outcome=PROMOTED,
                steps=tuple(steps),
                measurements=tuple(measurements),
                failed_checks=(),
                failed_verdict=None,
                seconds_to_abort=None,
                seconds_total=since(),
            )
        except BaseException:
            # Whatever broke the loop, the canary must not keep its share unwatched (the first error is the one raised).
            with contextlib.suppress(Exception):
                proxy.set_canary_weight(0)
            raise


def _step(
    weight: int,
    times: tuple[float, float, float],
    now: Mapping[tuple[str, int], int],
    before: Mapping[tuple[str, int], int],
) -> StepTiming:
    """The step's timing (started, weight set, ended) and what was served between the two traffic counts."""
    served = {key: count - before.get(key, 0) for key, count in now.items() if count > before.get(key, 0)}
    return StepTiming(weight, *times, served)
