"""The demo's monitoring steps: drift in the served traffic becomes a `model-drift` dispatch, with real parts.

A real Prometheus (Debian's package) scrapes the serving model server and evaluates the staging stack's rules (the
file `python -m monitoring staging` renders, the rules Azure evaluates), with one change: the evaluation interval
and the `for` durations are shortened (`DEMO_INTERVAL`, `DEMO_FOR`, instead of 1m and the stack's 30m), so the
alert fires in seconds. A real Alertmanager sends it to the listener's Alertmanager route with a bearer token; the
listener verifies, records, queues and dispatches `model-drift` to the GitHub stand-in.

The traffic is the demo model's own training data, resampled (seeded): first as it is (the drift score stays under
the stack's threshold), then with four measurements shifted well outside what the model was trained on.
"""

from __future__ import annotations

import json
import math
import queue
import re
import time
from typing import Any

import httpx

from demo.context import Loop, LoopFailedError
from demo.local_ci import Dispatch
from localrun.monitoring import alertmanager, port_of, prometheus

DEMO_INTERVAL = "2s"
DEMO_FOR = "6s"
DRIFT_ALERT = "ModelDataDrift"
BATCH_ROWS = 500
STEADY_ROWS = 1_500
SHIFTED_ROWS = 6_000  # more than the server's drift window (DRIFT_WINDOW_ROWS, 5000): the window is all shifted
SEED = 13
# Measurements moved outside the training range: in standard deviations of the training data.
SHIFTS = {"alcohol": 3.0, "color_intensity": 3.0, "proline": 2.5, "flavanoids": -2.0}


def _rows(count: int, *, shifted: bool) -> tuple[list[str], list[list[float]]]:
    from demo.wine_model import load_data

    features, _ = load_data()
    sample = features.sample(n=count, replace=True, random_state=SEED + int(shifted))
    if shifted:
        for column, sigmas in SHIFTS.items():
            sample[column] = sample[column] + sigmas * features[column].std()
    return list(sample.columns), sample.to_numpy(dtype=float).tolist()


def _send(invocations_url: str, count: int, *, shifted: bool) -> None:
    columns, rows = _rows(count, shifted=shifted)
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(rows), BATCH_ROWS):
            body = {"dataframe_split": {"columns": columns, "data": rows[start : start + BATCH_ROWS]}}
            answer = client.post(
                invocations_url, content=json.dumps(body), headers={"Content-Type": "application/json"}
            )
            answer.raise_for_status()


class DriftAlertSteps:
    """Owns Prometheus and Alertmanager for the demo (started through the loop, so every exit path stops them)."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.prometheus_url = ""
        self.seconds_to_dispatch = 0.0

    def run(self) -> None:
        from monitoring.__main__ import stack_rules_file
        from stacks.files import load_stack_config

        loop = self.loop
        version = max(loop.serving)
        invocations = loop.serving[version][1]
        threshold = load_stack_config(loop.worktree, "staging").settings().monitoring.drift.threshold

        with loop.step("start Prometheus and Alertmanager (Debian) with the staging stack's alert rules") as detail:
            from localrun.monitoring import demo_rules

            rules = loop.workdir / "monitoring" / "staging.rules.yml"
            rules.parent.mkdir(parents=True, exist_ok=True)
            text = stack_rules_file(loop.worktree, "staging")
            rules.write_text(demo_rules(text, interval=DEMO_INTERVAL, pending=DEMO_FOR))
            manager = loop.start(
                alertmanager(
                    loop.workdir / "alertmanager",
                    webhook_url=f"{loop.listener_url}/api/alerts/alertmanager",
                    token=loop.alert_token,
                )
            )
            target = re.sub(r"^https?://", "", invocations).split("/", 1)[0]
            server = loop.start(
                prometheus(
                    loop.workdir / "prometheus",
                    scrape_target=target,
                    rules_file=rules,
                    alertmanager_port=port_of(manager),
                )
            )
            self.prometheus_url = f"http://127.0.0.1:{port_of(server)}"
            detail.append(f"Prometheus {self.prometheus_url} scraping {target}, Alertmanager :{port_of(manager)}")
            detail.append(f"rules: interval {DEMO_INTERVAL}, for {DEMO_FOR} (the stack: 1m and 30m)")

        with loop.step(f"traffic like the training data ({STEADY_ROWS} rows): the drift score stays low") as detail:
            _send(invocations, STEADY_ROWS, shifted=False)
            score = self._wait_for_score(lambda s: s is not None, timeout=30)
            assert score is not None
            loop.out(f"  max drift score (PSI) {score:.3f}, threshold {threshold}")
            if score >= threshold:
                raise LoopFailedError(f"traffic like the training data scored {score:.3f} >= {threshold}")
            if self._alert_state() is not None:
                raise LoopFailedError(f"{DRIFT_ALERT} is active on traffic like the training data")
            detail.append(f"PSI {score:.3f} < {threshold}, no alert")

        name = "shifted traffic: drift score rises, the alert fires, the listener dispatches model-drift"
        with loop.step(name) as detail:
            assert loop.servers.ci is not None
            shifted_at = time.monotonic()
            _send(invocations, SHIFTED_ROWS, shifted=True)
            sent = time.monotonic() - shifted_at
            score = self._wait_for_score(lambda s: s is not None and s > threshold, timeout=60)
            above = time.monotonic() - shifted_at
            loop.out(f"  {SHIFTED_ROWS} shifted rows sent in {sent:.1f}s; max drift score {score:.3f} > {threshold}")
            self._wait_for_firing(timeout=60)
            firing = time.monotonic() - shifted_at
            loop.out(f"  Prometheus: {DRIFT_ALERT} firing")
            dispatch = self._next_drift_dispatch(timeout=60)
            arrived = time.monotonic() - shifted_at
            loop.out(f"  listener: {self._listener_line()}")
            loop.out(f"  dispatch received ({dispatch.event_type}): {json.dumps(dispatch.client_payload)}")
            detail.append(
                f"from the shift: score above {above:.1f}s, firing {firing:.1f}s, model-drift at CI {arrived:.1f}s"
            )
            self.seconds_to_dispatch = arrived

    # --- reading Prometheus, the listener and CI ------------------------------------------------------------

    def _query(self, expression: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expression}, timeout=5)
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    def _score(self) -> float | None:
        values = [float(r["value"][1]) for r in self._query("model_server_drift_feature_score")]
        values = [v for v in values if not math.isnan(v)]  # NaN until the window is full enough
        return max(values) if values else None

    def _wait_for_score(self, good: Any, timeout: float) -> float | None:

        deadline = time.monotonic() + timeout
        score = None
        while time.monotonic() < deadline:
            score = self._score()
            if good(score):
                return score
            time.sleep(0.5)
        raise LoopFailedError(f"the drift score did not get there within {timeout:.0f}s (last: {score})")

    def _alert_state(self) -> str | None:
        answer = httpx.get(f"{self.prometheus_url}/api/v1/alerts", timeout=5)
        answer.raise_for_status()
        states = [a["state"] for a in answer.json()["data"]["alerts"] if a["labels"].get("alertname") == DRIFT_ALERT]
        return "firing" if "firing" in states else (states[0] if states else None)

    def _wait_for_firing(self, timeout: float) -> None:

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._alert_state() == "firing":
                return
            time.sleep(0.5)
        raise LoopFailedError(f"{DRIFT_ALERT} did not fire within {timeout:.0f}s (state: {self._alert_state()})")

    def _next_drift_dispatch(self, timeout: float) -> Dispatch:

        assert self.loop.servers.ci is not None
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                dispatch = self.loop.servers.ci.dispatches.get(timeout=remaining)
            except queue.Empty:
                break
            if dispatch.event_type == "model-drift":
                return dispatch
        listener = next(p for p in self.loop.servers.processes if p.name == "listener")
        raise LoopFailedError(f"no model-drift dispatch within {timeout:.0f}s; listener log:\n{listener.log_tail()}")

    def _listener_line(self) -> str:
        listener = next(p for p in self.loop.servers.processes if p.name == "listener")
        for line in reversed(listener.log_tail(200).splitlines()):
            if '"drift alert accepted"' in line:
                return line
        return "(no 'drift alert accepted' line in its log)"


def drift_alert_reaches_ci(loop: Loop) -> float:
    """Run the monitoring steps; returns the seconds from the traffic shift to the dispatch at the CI stand-in."""
    steps = DriftAlertSteps(loop)
    steps.run()
    return steps.seconds_to_dispatch
