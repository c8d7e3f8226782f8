"""Prometheus metrics, correct with one process or several.

With WORKERS > 1 the supervisor points PROMETHEUS_MULTIPROC_DIR at a fresh directory before it starts the workers;
prometheus_client then keeps every value in memory-mapped files there and `/metrics`, whichever worker answers it,
adds up all workers (live ones for gauges). With one process the values live in memory and process metrics
(CPU, memory, open files) are included.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from model_server import drift_metrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


class Metrics:
    """The server's metrics in their own registry (so tests can run several servers in one process)."""

    def __init__(self) -> None:
        # The `_created` series double the output and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "model_server_requests", "HTTP requests by route and status code.", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "model_server_request_duration_seconds",
            "Time from the request's arrival to the response's last byte, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter("model_server_rows_predicted", "Rows the model predicted.", registry=r)
        self.batch_rows = Histogram(
            "model_server_batch_rows", "Rows per predict call (merged requests).", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "model_server_batch_requests",
            "Requests merged into one predict call.",
            buckets=BATCH_BUCKETS[:9],
            registry=r,
        )
        self.predict_seconds = Histogram(
            "model_server_predict_duration_seconds",
            "Time in the model's predict, per call.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prediction_errors = Counter(
            "model_server_prediction_errors", "Requests the model failed to predict.", registry=r
        )
        self.in_flight = Gauge(
            "model_server_requests_in_flight", "Requests being served now.", registry=r, multiprocess_mode="livesum"
        )
        self.load_seconds = Gauge(
            "model_server_model_load_seconds", "Time to load the model.", registry=r, multiprocess_mode="max"
        )
        self.warmup_seconds = Gauge(
            "model_server_model_warmup_seconds", "Time of the warm-up prediction.", registry=r, multiprocess_mode="max"
        )
        self.ready = Gauge(
            "model_server_ready",
            "1 when the model is loaded and warmed up (minimum over workers).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.info = Gauge(
            "model_server_model_info",
            "The model version served (always 1).",
            ["model_name", "model_version", "model_run_id", "image_code_hash", "scoring_path"],
            registry=r,
            multiprocess_mode="max",
        )
        # Drift (model_server.drift): names and labels in drift_metrics, the contract alert rules are written against.
        # With several workers each keeps its own window; the worst live worker's score is shown.
        self.drift_enabled = Gauge(
            drift_metrics.MONITORING_ENABLED,
            "1 while drift against the training data is measured (the model has a drift reference), else 0.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.drift_score = Gauge(
            drift_metrics.FEATURE_SCORE,
            "Population stability index of the scored rows in the window against the training data, per feature.",
            list(drift_metrics.LABELS[drift_metrics.FEATURE_SCORE]),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.drift_ratio = Gauge(
            drift_metrics.DRIFTED_FEATURES_RATIO,
            "Share of monitored features whose drift score is above the threshold.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.drift_window_rows = Gauge(
            drift_metrics.WINDOW_ROWS,
            "Scored rows in the sliding window the drift scores describe.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.drift_threshold = Gauge(
            drift_metrics.THRESHOLD,
            "The drift score above which a feature counts as drifted (DRIFT_PSI_THRESHOLD).",
            registry=r,
            multiprocess_mode="livemax",
        )
        if not self.multiprocess:
            ProcessCollector(registry=r)
        self.drift_enabled.set(0)
        self.ready.set(0)
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(route=route, status=str(status))
        counter.inc()
        histogram = self._latency_children.get(route)
        if histogram is None:
            histogram = self._latency_children[route] = self.latency.labels(route=route)
        histogram.observe(seconds)

    def observe_batch(self, requests: int, rows: int, seconds: float) -> None:
        self.rows.inc(rows)
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)
        self.predict_seconds.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
