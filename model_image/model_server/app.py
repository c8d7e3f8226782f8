"""The ASGI application serving one model, composed of one part per job:

* transport.py: reading requests, body limits, routing, error answers, the access log (the ASGI callable itself);
* lifecycle.py: loading the model in the background, load succeeded or failed, drift monitoring, readiness;
* protocol_mlflow.py: the MLflow scoring protocol (`/invocations`, `/ping`);
* protocol_v2.py: the Open Inference Protocol (V2);
* status.py: the server's own routes (`/health/live`, `/health/ready`, `/version`, `/metrics`).

Why a plain ASGI callable and not Starlette, like the listener: docs/decisions/0002-model-server-plain-asgi.md
(measured: Starlette costs some 40-120 us per request, 8 % more CPU where the server is fastest, for little code).
"""

from __future__ import annotations

from collections.abc import Callable

from model_server.lifecycle import Lifecycle
from model_server.loading import LoadedModel, load_model
from model_server.metrics import Metrics
from model_server.protocol_mlflow import MlflowProtocol
from model_server.protocol_v2 import MODELS_PREFIX, V2Protocol
from model_server.settings import Settings
from model_server.status import StatusRoutes
from model_server.transport import Transport


class ModelServer(Transport):
    """The ASGI app serving one model: the transport, routing to the status routes and both protocols, with the
    model's lifecycle (`self.lifecycle`) on the ASGI lifespan. A subclass rather than a wrapper, so that a request
    pays no extra call on its way in.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        loader: Callable[[Settings], LoadedModel] = load_model,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        metrics = metrics or Metrics()
        self.lifecycle = Lifecycle(settings, metrics, loader=loader, on_fatal=on_fatal)
        mlflow = MlflowProtocol(settings, metrics, self.lifecycle)
        status = StatusRoutes(metrics, self.lifecycle)
        v2 = V2Protocol(settings, metrics, self.lifecycle)
        super().__init__(
            settings,
            metrics,
            lifespan=self.lifecycle,
            routes={**mlflow.routes, **status.routes, **v2.routes},
            prefix=MODELS_PREFIX,
            resolve=v2.resolve,
            quiet_routes=mlflow.quiet_routes | status.quiet_routes | v2.quiet_routes,
        )
