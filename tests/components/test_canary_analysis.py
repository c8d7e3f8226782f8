"""The canary analysis checks, run by a real PromQL engine: `promtool test rules` evaluates each pass query against
fixed series, with each shipped stack's thresholds.

A check passes iff its pass query returns a sample (monitoring/analysis.py). Every check gets a canary that passes, a
canary that fails, no canary series at all, and the stable version's series alone (which must not pass for the
canary); the traffic checks also get a canary with no requests (0/0). The series carry the names and labels the
model server exports and the scrape job adds (namespace, pod, the pod-template hash).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from model_server.metrics import LATENCY_BUCKETS as SERVER_BUCKETS
from monitoring.analysis import (
    HASH_LABEL,
    LATENCY_VS_STABLE_FACTOR,
    LATENCY_VS_STABLE_FLOOR,
    CanaryCheck,
    canary_checks,
)
from monitoring.rules import DRIFT_SCORE, DRIFT_WINDOW_ROWS, LATENCY_BUCKETS, REQUESTS, SCRAPE_JOB
from stacks.files import load_stack_config
from stacks.identifiers import kubernetes_name
from stacks.settings import MonitoringSettings, pinned_model

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed; scripts/bootstrap.sh installs it"
)

# Pod-template hashes as Argo Rollouts makes them, and the AnalysisTemplate arguments that stand for them.
CANARY, STABLE = "6b9f8c7d5d", "5f7d9b8c4c"
CANARY_ARG, STABLE_ARG = "{{args.canary-hash}}", "{{args.stable-hash}}"
AT = 10  # minutes: past the 5m rate window
LENGTH = AT + 5
PER_MINUTE = 6_000

Series = list[tuple[str, dict[str, str], str]]


@dataclass
class Case:
    """Input series (promtool notation, one sample a minute) and whether the check passes at minute `AT`."""

    name: str
    series: Series
    passes: bool


@dataclass(frozen=True)
class Versions:
    """The scraped pods' target labels, per version (the scrape job adds namespace, pod and the hash)."""

    app: str
    canary_hash: str
    stable_hash: str

    def pod(self, version: str, n: int = 0) -> dict[str, str]:
        pod_hash = self.canary_hash if version == "canary" else self.stable_hash
        address = {"canary": 20, "stable": 10}[version] + n
        return {
            "job": SCRAPE_JOB,
            "namespace": self.app,
            "instance": f"10.244.1.{address}:8080",
            "pod": f"{self.app}-{version}-{n}",
            HASH_LABEL: pod_hash,
        }


def _selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _constant(value: float) -> str:
    # promtool's expanding notation (`1x40`) has no form for NaN: spell every sample out.
    return " ".join(["NaN"] * (LENGTH + 1)) if math.isnan(value) else f"{value:g}x{LENGTH}"


def _counter(per_minute: float) -> str:
    return f"0+{per_minute:g}x{LENGTH}"


def _p99_estimate(bucket: float) -> float:
    """histogram_quantile(0.99) of requests that all land in the bucket `bucket`: interpolated within it."""
    below = max((b for b in SERVER_BUCKETS if b < bucket), default=0.0)
    return below + (bucket - below) * 0.99


def _latency(pod: dict[str, str], seconds: float | None, route: str = "/invocations") -> Series:
    # Every request takes `seconds` (None: no requests, every bucket flat): buckets from it up count every request.
    series = []
    for bound in [*SERVER_BUCKETS, math.inf]:
        le = "+Inf" if bound == math.inf else f"{bound:g}"
        per_minute = PER_MINUTE if seconds is not None and seconds <= bound else 0
        series.append((LATENCY_BUCKETS, {**pod, "route": route, "le": le}, _counter(per_minute)))
    return series


def ready_cases(v: Versions) -> list[Case]:
    def up(version: str, value: int, n: int = 0) -> Series:
        return [("up", v.pod(version, n), f"{value}x{LENGTH}")]

    return [
        Case("a canary pod up", up("canary", 1), passes=True),
        Case("one of two canary pods up", up("canary", 0) + up("canary", 1, n=1), passes=True),
        Case("the canary pod down", up("canary", 0), passes=False),
        Case("no canary series", [], passes=False),
        Case("only the stable version up", up("stable", 1), passes=False),
    ]


def error_ratio_cases(settings: MonitoringSettings, v: Versions) -> list[Case]:
    ratio = settings.slo.error_ratio
    ok = PER_MINUTE
    # Scoring requests a minute: `ok` answered 200, `ok` answered 400, and the 5xx.
    breach = min(2 * ratio, (1 + ratio) / 2)
    above = math.ceil(2 * ok * breach / (1 - breach))
    below = math.floor(2 * ok * ratio / 3)

    def requests(version: str, errors: float | None, ok_per_minute: float = ok) -> Series:
        base = {**v.pod(version), "route": "/invocations"}
        series: Series = [(REQUESTS, {**base, "status": "200"}, _counter(ok_per_minute))]
        if errors is not None:  # None: the server never answered 5xx, so it has no such series
            series.append((REQUESTS, {**base, "status": "500"}, _counter(errors)))
        # A client's error is no server error.
        series.append((REQUESTS, {**base, "status": "400"}, _counter(ok_per_minute)))
        return series

    health = [(REQUESTS, {**v.pod("canary"), "route": "/health/ready", "status": "503"}, _counter(ok))]
    return [
        Case("no 5xx series at all", requests("canary", None), passes=True),
        Case("5xx share below the SLO", requests("canary", below), passes=True),
        Case("5xx share above the SLO", requests("canary", above), passes=False),
        Case("failed health checks are not scoring requests", requests("canary", None) + health, passes=True),
        Case("no requests (0/0)", requests("canary", 0, ok_per_minute=0), passes=False),
        Case("no canary series", [], passes=False),
        Case("only the stable version, healthy", requests("stable", below), passes=False),
        Case(
            "the stable version's errors are not the canary's",
            requests("canary", None) + requests("stable", above),
            passes=True,
        ),
    ]


@dataclass(frozen=True)
class LatencyBuckets:
    """Request latencies (bucket bounds) that put a single-bucket p99 where each case needs it."""

    under_floor: float  # p99 at most the relative check's floor
    near_target: float  # p99 above the floor, at most the SLO target
    over_target: float  # p99 above the SLO target
    much_faster: float  # p99 more than the factor below near_target's

    @staticmethod
    def of(settings: MonitoringSettings) -> LatencyBuckets:
        target = settings.slo.latency_p99_ms / 1000
        floor = target * LATENCY_VS_STABLE_FLOOR
        near = max(b for b in SERVER_BUCKETS if floor < _p99_estimate(b) <= target)
        return LatencyBuckets(
            under_floor=max(b for b in SERVER_BUCKETS if _p99_estimate(b) <= floor),
            near_target=near,
            over_target=min(b for b in SERVER_BUCKETS if _p99_estimate(b) > target),
            much_faster=max(
                b for b in SERVER_BUCKETS if _p99_estimate(b) * LATENCY_VS_STABLE_FACTOR < _p99_estimate(near)
            ),
        )


def latency_cases(settings: MonitoringSettings, v: Versions) -> list[Case]:
    b = LatencyBuckets.of(settings)
    canary, stable = v.pod("canary"), v.pod("stable")
    return [
        Case("p99 at most the target", _latency(canary, b.near_target), passes=True),
        Case("p99 above the target", _latency(canary, b.over_target), passes=False),
        Case(
            "slow non-scoring route",
            _latency(canary, b.near_target) + _latency(canary, 10.0, "/health/ready"),
            passes=True,
        ),
        Case("no requests (NaN)", _latency(canary, None), passes=False),
        Case("no canary series", [], passes=False),
        Case("only the stable version, fast", _latency(stable, b.under_floor), passes=False),
        Case(
            "the stable version's slowness is not the canary's",
            _latency(canary, b.near_target) + _latency(stable, b.over_target),
            passes=True,
        ),
    ]


def latency_vs_stable_cases(settings: MonitoringSettings, v: Versions) -> list[Case]:
    b = LatencyBuckets.of(settings)
    canary, stable = v.pod("canary"), v.pod("stable")
    return [
        Case(
            "as fast as the stable version",
            _latency(canary, b.near_target) + _latency(stable, b.near_target),
            passes=True,
        ),
        Case(
            "slower than the factor allows",
            _latency(canary, b.near_target) + _latency(stable, b.much_faster),
            passes=False,
        ),
        Case(
            "slower than the factor allows, under the floor",
            _latency(canary, b.under_floor) + _latency(stable, min(SERVER_BUCKETS)),
            passes=True,
        ),
        Case(
            "the stable version has no requests", _latency(canary, b.near_target) + _latency(stable, None), passes=True
        ),
        Case("the stable version has no series", _latency(canary, b.near_target), passes=True),
        Case(
            "the canary has no requests (NaN)", _latency(canary, None) + _latency(stable, b.near_target), passes=False
        ),
        Case("no canary series", [], passes=False),
        Case("only the stable version", _latency(stable, b.near_target), passes=False),
    ]


def drift_cases(settings: MonitoringSettings, v: Versions) -> list[Case]:
    drift = settings.drift
    high, low, rows = drift.threshold * 2, drift.threshold / 2, drift.min_window_rows

    def pod(version: str, alcohol: float, ph: float, window_rows: int, n: int = 0) -> Series:
        labels = v.pod(version, n)
        return [
            (DRIFT_SCORE, {**labels, "feature": "alcohol"}, _constant(alcohol)),
            (DRIFT_SCORE, {**labels, "feature": "pH"}, _constant(ph)),
            (DRIFT_WINDOW_ROWS, labels, f"{window_rows}x{LENGTH}"),
        ]

    return [
        Case("every feature below the threshold", pod("canary", low, low, rows), passes=True),
        Case("one feature above the threshold", pod("canary", high, low, rows * 2), passes=False),
        # Before the window is full the server reports NaN: no data yet is no drift yet.
        Case("window not full yet (NaN)", pod("canary", math.nan, math.nan, rows - 1), passes=True),
        Case("above the threshold on too few rows", pod("canary", high, low, rows - 1), passes=True),
        # The server's own DRIFT_MIN_ROWS may be above the stack's: rows enough, but not scored yet.
        Case("rows enough, not scored yet (NaN)", pod("canary", math.nan, math.nan, rows * 2), passes=True),
        Case(
            "one pod drifted, another not full",
            pod("canary", high, low, rows * 2) + pod("canary", math.nan, math.nan, rows - 1, n=1),
            passes=False,
        ),
        # A model without a drift reference: the server exports an empty window and no scores.
        Case("drift not measured", [(DRIFT_WINDOW_ROWS, v.pod("canary"), f"0x{LENGTH}")], passes=True),
        Case("no canary series", [], passes=False),
        Case("only the stable version, no drift", pod("stable", low, low, rows * 2), passes=False),
        Case("only the stable version, window not full", pod("stable", math.nan, math.nan, 0), passes=False),
        Case(
            "the stable version's drift is not the canary's",
            pod("canary", low, low, rows * 2) + pod("stable", high, high, rows * 2),
            passes=True,
        ),
    ]


def all_cases(settings: MonitoringSettings, v: Versions) -> dict[str, list[Case]]:
    return {
        "ready": ready_cases(v),
        "error-ratio": error_ratio_cases(settings, v),
        "latency-p99": latency_cases(settings, v),
        "latency-vs-stable": latency_vs_stable_cases(settings, v),
        "drift": drift_cases(settings, v),
    }


def _case_tag(check: str, case: Case) -> str:
    return f"# case {check}: {case.name}"


def promtool_tests(checks: dict[str, CanaryCheck], cases: dict[str, list[Case]]) -> dict[str, Any]:
    """One promtool test group per case: `count(<pass query>)` is 1 when the check passes, no sample when it fails."""
    tests = []
    for name, check_cases in cases.items():
        for case in check_cases:
            tests.append(
                {
                    "name": f"{name}: {case.name}",
                    "interval": "1m",
                    "input_series": [
                        {"series": _selector(metric, labels), "values": values}
                        for metric, labels, values in case.series
                    ],
                    "promql_expr_test": [
                        {
                            # promtool names a failed expression, not its group: the comment says which case it is.
                            "expr": f"{_case_tag(name, case)}\ncount(\n{checks[name].query}\n)",
                            "eval_time": f"{AT}m",
                            "exp_samples": [{"labels": "{}", "value": 1}] if case.passes else [],
                        }
                    ],
                }
            )
    return {"rule_files": [], "evaluation_interval": "1m", "tests": tests}


def _stack(stack: str) -> tuple[MonitoringSettings, str]:
    settings = load_stack_config(ROOT, stack).settings()
    return settings.monitoring, kubernetes_name(pinned_model(settings).name)


def _run_promtool(
    tmp_path: Path, checks: dict[str, CanaryCheck], cases: dict[str, list[Case]]
) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    test_file = tmp_path / "canary.test.yml"
    yaml = YAML()
    yaml.width = 4096
    with test_file.open("w") as out:
        yaml.dump(promtool_tests(checks, cases), out)
    command = [PROMTOOL, "test", "rules", test_file.name]
    return subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def _covered(checks: dict[str, CanaryCheck], cases: dict[str, list[Case]]) -> dict[str, list[Case]]:
    assert set(cases) == set(checks), "every check needs its cases"
    for name, check_cases in cases.items():
        assert any(c.passes for c in check_cases), f"{name} has no case where it passes"
        assert any(not c.passes for c in check_cases), f"{name} has no case where it fails"
        assert any(not c.series for c in check_cases), f"{name} has no case without canary series"
        assert any(c.name.startswith("only the stable version") for c in check_cases), f"{name}: no stable-only case"
    return cases


def _checks(settings: MonitoringSettings, app: str, canary: str, stable: str) -> dict[str, CanaryCheck]:
    return {check.name: check for check in canary_checks(settings, app, canary, stable)}


@needs_promtool
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_each_check_passes_a_good_canary_and_fails_a_bad_absent_or_idle_one(tmp_path: Path, stack: str) -> None:
    settings, app = _stack(stack)
    checks = _checks(settings, app, CANARY, STABLE)
    result = _run_promtool(tmp_path, checks, _covered(checks, all_cases(settings, Versions(app, CANARY, STABLE))))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_argument_placeholders_are_literal_label_values_in_promql(tmp_path: Path) -> None:
    # Before Argo fills the arguments in, the queries are valid PromQL that select series labelled with the
    # placeholder's own text: the braces stay inside the quoted label value.
    settings, app = _stack("staging")
    checks = _checks(settings, app, CANARY_ARG, STABLE_ARG)
    result = _run_promtool(
        tmp_path, checks, _covered(checks, all_cases(settings, Versions(app, CANARY_ARG, STABLE_ARG)))
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_really_checks_the_expectations(tmp_path: Path) -> None:
    # Every expectation inverted must fail, for every check: the tests above cannot pass vacuously.
    settings, app = _stack("staging")
    cases = all_cases(settings, Versions(app, CANARY, STABLE))
    inverted = {name: [replace(c, passes=not c.passes) for c in check_cases] for name, check_cases in cases.items()}
    result = _run_promtool(tmp_path, _checks(settings, app, CANARY, STABLE), inverted)
    assert result.returncode != 0
    failed = result.stdout + result.stderr
    for name, check_cases in cases.items():
        for case in check_cases:
            assert _case_tag(name, case) + "\\n" in failed, f"{name}: {case.name} did not fail inverted"


@needs_promtool
def test_without_the_hash_matcher_the_stable_version_passes_for_the_canary(tmp_path: Path) -> None:
    # The same checks selecting any hash: the cases where only the stable version has series now pass, so the hash
    # matcher is what keeps the stable version from vouching for the canary.
    settings, app = _stack("staging")
    checks = _checks(settings, app, CANARY, STABLE)
    any_hash = {
        name: replace(
            check,
            value_query=check.value_query.replace(f'{HASH_LABEL}="{CANARY}"', f'{HASH_LABEL}=~".+"'),
            exempt=check.exempt and check.exempt.replace(f'{HASH_LABEL}="{CANARY}"', f'{HASH_LABEL}=~".+"'),
        )
        for name, check in checks.items()
    }
    cases = all_cases(settings, Versions(app, CANARY, STABLE))
    stable_only = {
        name: [c for c in check_cases if c.name.startswith("only the stable version")]
        for name, check_cases in _covered(checks, cases).items()
    }
    result = _run_promtool(tmp_path, any_hash, stable_only)
    assert result.returncode != 0
    failed = result.stdout + result.stderr
    for name, check_cases in stable_only.items():
        for case in check_cases:
            assert _case_tag(name, case) + "\\n" in failed, f"{name}: {case.name} fails even without the hash matcher"


def _resolve_like_argo(query: str, args: dict[str, str]) -> str:
    """Argo's argument substitution: every `{{tag}}` (to the first `}}`) is an argument, trimmed, or an error
    (argoproj/argo-rollouts utils/template/template.go `ResolveArgs`, fasttemplate with `{{` and `}}`, v1.9.0)."""

    def value(match: re.Match[str]) -> str:
        tag = match.group(1).strip()
        if tag not in args:
            raise AssertionError(f"failed to resolve {{{{{match.group(1)}}}}}")
        return args[tag]

    return re.sub(r"\{\{(.*?)\}\}", value, query, flags=re.DOTALL)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_argo_filling_in_the_arguments_gives_the_queries_for_those_hashes(stack: str) -> None:
    settings, app = _stack(stack)
    templated = canary_checks(settings, app, CANARY_ARG, STABLE_ARG)
    concrete = canary_checks(settings, app, CANARY, STABLE)
    args = {"args.canary-hash": CANARY, "args.stable-hash": STABLE}
    assert [_resolve_like_argo(c.query, args) for c in templated] == [c.query for c in concrete]
    # No other `{{`: Argo would fail the measurement on a tag it cannot resolve.
    assert all("{{" not in c.query and "}}" not in c.query for c in concrete)


def test_checks_are_named_once_and_kebab_case() -> None:
    checks = canary_checks(MonitoringSettings(), "m", CANARY, STABLE)
    names = [c.name for c in checks]
    assert names == ["ready", "error-ratio", "latency-p99", "latency-vs-stable", "drift"]
    assert all(c.summary and "\n" not in c.summary for c in checks)
    with pytest.raises(ValueError, match="check name: expected kebab-case"):
        CanaryCheck(name="Error_Ratio", value_query="vector(0)", bound=1, summary="x")


def test_bounds_come_from_the_stack_settings() -> None:
    settings = MonitoringSettings.model_validate(
        {
            "slo": {"errorRatio": 0.05, "latencyP99Ms": 800},
            "drift": {"threshold": 0.3, "minWindowRows": 321},
        }
    )
    checks = _checks(settings, "m", CANARY, STABLE)
    assert checks["error-ratio"].bound == 0.05
    assert checks["error-ratio"].query.endswith(") <= 0.05")
    assert checks["latency-p99"].query.endswith(") <= 0.8")
    assert checks["latency-vs-stable"].bound == LATENCY_VS_STABLE_FACTOR
    assert f"<= {0.8 * LATENCY_VS_STABLE_FLOOR!r}" in (checks["latency-vs-stable"].exempt or "")
    assert ") <= 0.3\nor\n" in checks["drift"].query
    assert ">= 321)" in checks["drift"].value_query
    assert checks["ready"].query.endswith(") >= 1.0")


@pytest.mark.parametrize(
    ("canary", "stable", "message"),
    [
        ('6b9f"} or vector(1) #', STABLE, "canary_hash: expected a pod-template hash"),
        (CANARY, "{{args.stable hash}}", "stable_hash: expected a pod-template hash"),
        ("", STABLE, "canary_hash: expected"),
        (CANARY, CANARY, "canary_hash and stable_hash: expected two versions"),
    ],
)
def test_a_bad_hash_is_refused_by_name(canary: str, stable: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        canary_checks(MonitoringSettings(), "m", canary, stable)


def test_a_bad_namespace_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=re.escape("app: expected a Kubernetes namespace name (got 'Wine\"')")):
        canary_checks(MonitoringSettings(), 'Wine"', CANARY, STABLE)


def test_a_server_that_measures_no_drift_still_exports_its_window_rows() -> None:
    # The drift check lets a canary through while its window is not full; a model with no drift reference never
    # fills one, and the series the check reads must still be there (else the canary could never pass).
    metrics = pytest.importorskip("model_server.metrics")
    body, _ = metrics.Metrics().render()
    samples = dict(line.rsplit(" ", 1) for line in body.decode().splitlines() if not line.startswith("#"))
    assert float(samples[DRIFT_WINDOW_ROWS]) == 0
    assert not any(name.startswith(DRIFT_SCORE) for name in samples)
