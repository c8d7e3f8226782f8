"""The server's own routes, apart from either protocol: liveness, readiness, identity, metrics (`contract.Routes`)."""

from __future__ import annotations

import platform
from typing import Any

from model_server import SERVER_NAME, SERVER_VERSION, mlflow_compat
from model_server.contract import Routes
from model_server.lifecycle import Lifecycle
from model_server.metrics import Metrics
from model_server.transport import Request, Response, RouteTable, json_response


class StatusRoutes:
    """Owns `/health/live`, `/health/ready` (the lifecycle's readiness), `/version` (the model's identity, the
    scoring path, batching, drift monitoring and the startup report) and `/metrics` (Prometheus' text format).
    """

    # Probes and scrapes, left out of the access log.
    quiet_routes = frozenset({Routes.HEALTH_LIVE, Routes.HEALTH_READY, Routes.METRICS})

    def __init__(self, metrics: Metrics, lifecycle: Lifecycle) -> None:
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.routes: RouteTable = {
            Routes.HEALTH_LIVE: ("GET", self.live),
            Routes.HEALTH_READY: ("GET", self.ready),
            Routes.VERSION: ("GET", self.version),
            Routes.METRICS: ("GET", self.render_metrics),
        }

    async def live(self, request: Request) -> Response:
        return json_response(200, {"status": "alive"})

    async def ready(self, request: Request) -> Response:
        lifecycle = self.lifecycle
        ready, state = lifecycle.readiness()
        document: dict[str, Any] = {"status": state, "model_name": lifecycle.identity.name}
        if lifecycle.load_error:
            document["error"] = lifecycle.load_error
        return json_response(200 if ready else 503, document)

    async def version(self, request: Request) -> Response:
        lifecycle = self.lifecycle
        loaded = lifecycle.loaded
        document: dict[str, Any] = {
            **lifecycle.identity.as_dict(),
            "server": f"{SERVER_NAME} {SERVER_VERSION}",
            "mlflow_version": mlflow_compat.mlflow_version(),
            "python_version": platform.python_version(),
            "model_flavor": loaded.flavor if loaded else None,
            "scoring_path": loaded.scorer.path.value if loaded else None,
            "batching": lifecycle.batching_description(),
            "drift": lifecycle.drift_description(),
            "ready": lifecycle.readiness()[0],
            "startup": lifecycle.startup or None,
        }
        return json_response(200, document)

    async def render_metrics(self, request: Request) -> Response:
        if self.lifecycle.drift is not None:
            self.lifecycle.drift.refresh()
        body, content_type = self.metrics.render()
        return 200, body, content_type.encode()
